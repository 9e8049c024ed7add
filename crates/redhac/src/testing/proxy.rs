//! A fault-injecting TCP proxy: every connection to a member goes through
//! its proxy, which can cut them all (and refuse new ones), hold back their
//! bytes without closing them (a paused or stalled member), leave them
//! half-open for good (what a partition does to TCP connections: the
//! network heals, they never carry a byte again, new ones work), and be
//! retargeted to a restarted member.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy in front of one member (see the module docs).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// (target, cut): a change aborts every open connection.
    state: watch::Sender<(SocketAddr, bool)>,
    /// While true, connections stay open but no byte moves either way.
    stalled: watch::Sender<bool>,
    /// Connections numbered below this stay open and move no byte, ever.
    dead_below: watch::Sender<u64>,
    /// The number the next connection gets.
    next: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (ephemeral port) to `target`.
    ///
    /// # Errors
    /// When no port can be bound on 127.0.0.1.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, rx) = watch::channel((target, false));
        let (stalled, stall_rx) = watch::channel(false);
        let (dead_below, dead_rx) = watch::channel(0);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(accept(listener, rx, stall_rx, dead_rx, Arc::clone(&next)));
        Ok(Self {
            addr,
            state,
            stalled,
            dead_below,
            next,
            task,
        })
    }

    /// Where to connect to reach the target through the proxy.
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

    /// Leaves every open connection half-open for good: open, moving no
    /// byte either way; connections made from now on work.
    pub fn half_open(&self) {
        let next = self.next.load(std::sync::atomic::Ordering::SeqCst);
        self.dead_below.send_replace(next);
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

/// Copies `from` to `to`, holding bytes back while stalled, and for good
/// once connection `id` is left half-open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
    mut dead: watch::Receiver<u64>,
    id: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() || *dead.borrow() > id {
            break;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = dead.wait_for(|d| *d > id) => break,
        };
        // Bytes read just as the stall began wait for its end too.
        if stalled.wait_for(|s| !*s).await.is_err() || *dead.borrow() > id {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // Half-open: nothing moves any more, and nothing closes.
    std::future::pending::<()>().await;
}

async fn accept(
    listener: TcpListener,
    state: watch::Receiver<(SocketAddr, bool)>,
    stalled: watch::Receiver<bool>,
    dead: watch::Receiver<u64>,
    next: Arc<std::sync::atomic::AtomicU64>,
) {
    let tasks = Arc::new(Mutex::new(Vec::new()));
    while let Ok((inbound, _)) = listener.accept().await {
        let (target, cut) = *state.borrow();
        if cut {
            continue; // dropped: the dialer sees the connection close
        }
        let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut watch = state.clone();
        watch.mark_unchanged();
        let stalled = stalled.clone();
        let dead = dead.clone();
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
                () = pump(a_read, b_write, stalled.clone(), dead.clone(), id) => {}
                () = pump(b_read, a_write, stalled, dead, id) => {}
                _ = watch.changed() => {}
            }
        });
        let mut t = tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
        t.push(task);
    }
}
