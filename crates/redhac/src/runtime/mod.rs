//! The HA runtime: links, the cluster core, and the store, wired together.
//!
//! One task owns the core (`redhac-membership`); it is fed by the link tasks
//! (frames, links up and down), by the application (writes, lookups), and by
//! a ticker, and it carries out the core's outputs: frames to peers, entries
//! applied to the store, writes resolved, the read gate opened and closed.

mod driver;
#[cfg(test)]
mod frame_bound_tests;
#[cfg(test)]
mod hostile_tests;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redhac_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gate::ReadGate;
use crate::status::{Health, Status};
use crate::transport::auth::{Secret, fingerprint};
use crate::transport::link::{HelloState, LinkSetup, dial, serve};
use crate::transport::tls::TlsSetup;
use crate::write::AckLevel;
use crate::{Error, Result};
use redhac_membership::find_me;

/// A change the application asks the cluster to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteOp {
    Put {
        cache: String,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Delete {
        cache: String,
        key: String,
    },
    Clear {
        cache: String,
    },
}

/// What the application sends the runtime.
#[derive(Debug)]
pub(crate) enum Request {
    Write {
        op: WriteOp,
        ack: AckLevel,
        /// The write's deadline, counted from when the runtime receives it.
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    },
    Lookup {
        cache: String,
        key: String,
        /// The encoded value, when the key is there.
        reply: oneshot::Sender<Result<Option<Vec<u8>>>>,
    },
    /// Hand leadership over, then stop.
    Shutdown { reply: oneshot::Sender<()> },
}

/// What the builder passes on for cluster mode.
#[derive(Debug, Default)]
pub(crate) struct ClusterOptions {
    /// A listener bound by the caller (tests bind port 0 first).
    pub(crate) listener: Option<std::net::TcpListener>,
    /// The name that finds this member in `HA_HOSTS`.
    pub(crate) hostname: Option<String>,
    /// The core's timing, when not derived from the election timeout.
    pub(crate) timing: Option<redhac_membership::Timing>,
}

/// The application's side of a running cluster member.
#[derive(Debug)]
pub(crate) struct Cluster {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    links_refused: Arc<AtomicU64>,
    messages_refused: Arc<AtomicU64>,
}

/// How long a link's handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a remote lookup waits for the leader's answer.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// Resolves this member, loads TLS, binds, and starts links and the core.
    ///
    /// # Errors
    /// [`Error::Config`] for "me" not in `HA_HOSTS`, TLS files, or a port
    /// that cannot be bound.
    pub(crate) async fn start(
        config: &Config,
        options: ClusterOptions,
        store: Store,
        gate: Arc<ReadGate>,
        health: watch::Sender<Health>,
    ) -> Result<Self> {
        let members = config.members()?;
        let name = match options.hostname.or_else(|| config.hostname_overwrite.clone()) {
            Some(name) => name,
            None => gethostname::gethostname().into_string().map_err(|raw| {
                Error::Config(format!(
                    "the OS hostname {raw:?} is not UTF-8; set HOSTNAME_OVERWRITE to this member's host in HA_HOSTS"
                ))
            })?,
        };
        let me = find_me(&members, &name).map_err(Error::Config)?;
        let tls = TlsSetup::load(config)?;
        let listener = match options.listener {
            Some(l) => l
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
                .map_err(|e| Error::Config(format!("the listener given to the builder is unusable: {e}")))?,
            None => listen_any(members[me].port)
                .and_then(TcpListener::from_std)
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot listen on port {} (this member's HA_HOSTS entry {}): {e}; free the port or fix HA_HOSTS",
                        members[me].port, members[me]
                    ))
                })?,
        };
        let token = config.auth_token.as_deref().unwrap_or_default();
        let (hello_tx, hello_rx) = watch::channel(HelloState::default());
        let (events_tx, events_rx) = mpsc::channel(config.buf_server.max(members.len() * 4));
        let (stop, stop_rx) = watch::channel(false);
        let generation = generation();
        let links_refused = Arc::new(AtomicU64::new(0));
        let messages_refused = Arc::new(AtomicU64::new(0));
        let setup = Arc::new(LinkSetup {
            me: me as u32,
            generation,
            members: members.clone(),
            fingerprint: fingerprint(&config.ha_hosts),
            secret: Secret::new(token),
            buf_server: config.buf_server,
            buf_client: config.buf_client,
            keepalive_interval: config.keepalive_interval,
            keepalive_timeout: config.keepalive_timeout,
            reconnect: (
                config.reconnect_timeout_lower,
                config.reconnect_timeout_upper,
            ),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            hello_state: hello_rx,
            events: events_tx,
            next_link: AtomicU64::new(0),
            refused: Arc::clone(&links_refused),
            tls,
            links_per_member: (0..members.len()).map(|_| Default::default()).collect(),
        });
        tracing::info!(me, name = %name, members = members.len(), generation, "starting cluster member");
        let mut tasks = vec![tokio::spawn(serve(
            Arc::clone(&setup),
            listener,
            stop_rx.clone(),
        ))];
        for peer in me + 1..members.len() {
            tasks.push(tokio::spawn(dial(
                Arc::clone(&setup),
                peer as u32,
                stop_rx.clone(),
            )));
        }
        let (requests, requests_rx) = mpsc::channel(config.buf_client.max(64));
        let (status_tx, status) = watch::channel(Status::standalone(false));
        let driver = driver::Driver::new(driver::Parts {
            me: me as u32,
            members,
            store,
            gate,
            health,
            status: status_tx,
            hello: hello_tx,
            timing: options
                .timing
                .unwrap_or_else(|| redhac_membership::Timing::new(config.election_timeout)),
            seed: generation,
            refused: Arc::clone(&messages_refused),
        });
        // The span rides with the task (never held across an await), so
        // members sharing a process log under their own ids.
        let span = tracing::info_span!("redhac", me);
        tasks.push(tokio::spawn(tracing::Instrument::instrument(
            driver.run(events_rx, requests_rx, stop_rx),
            span,
        )));
        Ok(Self {
            requests,
            status,
            stop,
            tasks: std::sync::Mutex::new(tasks),
            links_refused,
            messages_refused,
        })
    }

    /// Sends a request to the runtime and waits for its answer, within `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::ShutDown`], or the runtime's answer.
    pub(crate) async fn ask<T>(
        &self,
        timeout: Duration,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.requests
                .send(request(tx))
                .await
                .map_err(|_| Error::ShutDown)?;
            rx.await.map_err(|_| Error::ShutDown)?
        };
        tokio::time::timeout(timeout, asked)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Sends a write to the runtime and waits for its ack level, within the
    /// write's timeout.
    ///
    /// # Errors
    /// As [`Cluster::ask`].
    pub(crate) async fn write(&self, op: WriteOp, options: crate::WriteOptions) -> Result<()> {
        // The core resolves the write with Timeout at its deadline; the
        // outer timeout only guards against a stalled runtime.
        let outer = options.timeout + Duration::from_millis(100);
        self.ask(outer, |reply| Request::Write {
            op,
            ack: options.ack,
            timeout: options.timeout,
            reply,
        })
        .await
    }

    /// The latest status the runtime published.
    pub(crate) fn status(&self) -> Status {
        let mut s = self.status.borrow().clone();
        s.links_refused = self.links_refused.load(Ordering::Relaxed);
        s.messages_refused = self.messages_refused.load(Ordering::Relaxed);
        s
    }

    /// Hands leadership over (when leading), stops links and the runtime.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .requests
            .send(Request::Shutdown { reply: tx })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
        let _ = self.stop.send(true);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            let _ = tokio::time::timeout(timeout, task).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A dropped node stops its tasks; no graceful handover.
        let _ = self.stop.send(true);
    }
}

/// Listens on `port` of every address of this host: one dual-stack socket
/// for IPv6 and IPv4 (peers may list this member by either), or IPv4 alone
/// where the host has no IPv6 (a container with IPv6 disabled).
pub(crate) fn listen_any(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let ipv4_only = |why: std::io::Error| {
        tracing::info!(port, error = %why, "no IPv6 here; listening on IPv4 only");
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    // No IPv6 socket at all (a kernel or container without IPv6).
    let socket = match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) => return ipv4_only(e),
    };
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    let any = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    match socket.bind(&SockAddr::from(any)) {
        Ok(()) => {}
        // IPv6 disabled on every interface; any other error (the port in
        // use, no permission) is the caller's to see.
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return ipv4_only(e),
        Err(e) => return Err(e),
    }
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A number that differs between starts of one member (its incarnation).
fn generation() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) >> 1,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}
