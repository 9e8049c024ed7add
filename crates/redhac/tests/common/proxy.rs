//! A fault-injecting TCP proxy: every connection to a member goes through
//! its proxy, which can cut them all (and refuse new ones) and be retargeted
//! to a restarted member.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// (target, cut): a change aborts every open connection.
    state: watch::Sender<(SocketAddr, bool)>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (ephemeral port) to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, rx) = watch::channel((target, false));
        let task = tokio::spawn(accept(listener, rx));
        Self { addr, state, task }
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

async fn accept(listener: TcpListener, state: watch::Receiver<(SocketAddr, bool)>) {
    let tasks = Arc::new(Mutex::new(Vec::new()));
    while let Ok((inbound, _)) = listener.accept().await {
        let (target, cut) = *state.borrow();
        if cut {
            continue; // dropped: the dialer sees the connection close
        }
        let mut watch = state.clone();
        watch.mark_unchanged();
        let task = tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (mut a, mut b) = (inbound, outbound);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                _ = watch.changed() => {}
            }
        });
        let mut t = tasks.lock().unwrap();
        t.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
        t.push(task);
    }
}
