//! A fault-injecting TCP proxy: every connection to a member goes through
//! its proxy, which can cut them all (and refuse new ones), hold back their
//! bytes without closing them (a paused or stalled member), and be
//! retargeted to a restarted member.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// (target, cut): a change aborts every open connection.
    state: watch::Sender<(SocketAddr, bool)>,
    /// While true, connections stay open but no byte moves either way.
    stalled: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (ephemeral port) to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, rx) = watch::channel((target, false));
        let (stalled, stall_rx) = watch::channel(false);
        let task = tokio::spawn(accept(listener, rx, stall_rx));
        Self {
            addr,
            state,
            stalled,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.1 = true);
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.state.send_modify(|s| s.1 = false);
    }

    /// Holds every byte back, both ways, keeping connections open (TCP
    /// buffers fill, the senders' flow control stops them).
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Lets the held bytes through.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Sends new connections to `target`, closing the old ones.
    pub fn retarget(&self, target: SocketAddr) {
        self.state.send_modify(|s| s.0 = target);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding bytes back while stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just as the stall began wait for its end too.
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn accept(
    listener: TcpListener,
    state: watch::Receiver<(SocketAddr, bool)>,
    stalled: watch::Receiver<bool>,
) {
    let tasks = Arc::new(Mutex::new(Vec::new()));
    while let Ok((inbound, _)) = listener.accept().await {
        let (target, cut) = *state.borrow();
        if cut {
            continue; // dropped: the dialer sees the connection close
        }
        let mut watch = state.clone();
        watch.mark_unchanged();
        let stalled = stalled.clone();
        let task = tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            // As the members' own sockets: without it, Nagle's algorithm
            // and delayed acks hold small frames ~40 ms now and then.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (a_read, a_write) = inbound.into_split();
            let (b_read, b_write) = outbound.into_split();
            tokio::select! {
                () = pump(a_read, b_write, stalled.clone()) => {}
                () = pump(b_read, a_write, stalled) => {}
                _ = watch.changed() => {}
            }
        });
        let mut t = tasks.lock().unwrap();
        t.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
        t.push(task);
    }
}
