//! A link between two members once its handshake passed: what the runtime
//! gets (`LinkUp`), and what every link of a node shares (`LinkSetup`).
//!
//! One bidirectional gRPC stream per member pair, opened by the member listed
//! first in `HA_HOSTS` (see `dial` and `accept`). After the handshake the
//! link's task hands the stream to the runtime, which reads its frames
//! itself and writes through the link's bounded sender; the task only keeps
//! the connection open until the runtime drops the link.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redhac_proto::Frame;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::handshake::{Handshake, HelloState, Introduced};
use super::tls::TlsSetup;
use redhac_membership::HostEntry;

/// Largest frame accepted from a peer.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Streams accepted but not yet authenticated, at most.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 32;

/// Authenticated links one member may hold to this one at a time: its current
/// link and the one replacing it.
pub(crate) const MAX_LINKS_PER_MEMBER: u32 = 2;

/// A link that passed the handshake, handed to the runtime, which from then
/// on reads `inbound` itself (no task hop per frame) and writes to `tx`.
/// Dropping `held` (with the rest) ends the link.
#[derive(Debug)]
pub(crate) struct LinkUp {
    pub(crate) peer: u32,
    pub(crate) link: u64,
    /// Whether this member dialled it (else the peer did).
    pub(crate) dialled: bool,
    pub(crate) hello: Introduced,
    pub(crate) tx: mpsc::Sender<Frame>,
    pub(crate) inbound: Inbound,
    pub(crate) held: Held,
}

/// What a link's stream yields: a frame or an error; `None` once, at its end.
pub(crate) type InboundItem = Option<Result<Frame, Status>>;

/// A link's incoming frames, then one `None` when the stream ends.
pub(crate) struct Inbound(Pin<Box<dyn Stream<Item = InboundItem> + Send>>);

impl Inbound {
    fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Frame, Status>> + Send + 'static,
    {
        Self(Box::pin(stream.map(Some).chain(tokio_stream::once(None))))
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inbound")
    }
}

impl Stream for Inbound {
    type Item = InboundItem;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// Keeps a link's connection open while whoever holds it lives.
#[derive(Debug)]
pub(crate) struct Held {
    _release: oneshot::Sender<()>,
}

/// Whether a stream error means the peer sent bytes that are not frames
/// (cut short, undecodable, over the size limit) rather than a network fault.
pub(crate) fn malformed(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Internal | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
}

/// Why a link failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("stream refused: {0}")]
    Status(#[from] Status),
    #[error("handshake timed out")]
    Timeout,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("authentication failed: the peer does not know CACHE_AUTH_TOKEN")]
    Auth,
    #[error("the link closed during the handshake")]
    Closed,
    #[error("the address leads to this member itself")]
    Myself,
    #[error("no randomness for a challenge: {0}")]
    Random(#[from] std::io::Error),
}

/// How every link of one node connects: fixed for the node's life.
#[derive(Debug)]
pub(crate) struct LinkSettings {
    /// The static mode's members (`HA_HOSTS`, `HA_LEARNERS`); empty in the
    /// dynamic mode, whose members are found by discovery.
    pub(crate) members: Vec<HostEntry>,
    /// The dynamic mode: links come from and go to whoever discovery finds.
    pub(crate) dynamic: bool,
    /// Frames a link's channel holds, on the accepting and the dialling side.
    pub(crate) buf_server: usize,
    pub(crate) buf_client: usize,
    pub(crate) keepalive_interval: Duration,
    pub(crate) keepalive_timeout: Duration,
    /// Bounds of the random wait before a failed dial is tried again.
    pub(crate) reconnect: (Duration, Duration),
    /// The longest wait between dials to a lost peer, refusals aside (the
    /// core's `silent_link`, half the election timeout).
    pub(crate) redial_cap: Duration,
    /// TLS for every link, unless `CACHE_TLS` is false.
    pub(crate) tls: Option<TlsSetup>,
}

/// What the link tasks of one node share while it runs.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// The election state this member's Hellos carry, kept by the runtime.
    pub(crate) hello: watch::Receiver<HelloState>,
    /// Where links that passed the handshake go.
    pub(crate) events: mpsc::Sender<LinkUp>,
    next_link: AtomicU64,
    /// Handshakes this node refused (TLS, token, list, version or member).
    pub(crate) refused: Arc<AtomicU64>,
    /// Accepted links per member.
    links_per_member: Mutex<HashMap<u32, u32>>,
    /// The members the runtime holds a link to now (kept by the runtime): a
    /// dial to a member already linked waits (the dynamic mode).
    pub(crate) linked: watch::Receiver<BTreeSet<u32>>,
    /// When each refusal was last logged as a warning.
    warned: Mutex<HashMap<String, Instant>>,
}

impl LinkState {
    pub(crate) fn new(
        hello: watch::Receiver<HelloState>,
        events: mpsc::Sender<LinkUp>,
        refused: Arc<AtomicU64>,
        linked: watch::Receiver<BTreeSet<u32>>,
    ) -> Self {
        Self {
            hello,
            events,
            next_link: AtomicU64::new(0),
            refused,
            links_per_member: Mutex::new(HashMap::new()),
            linked,
            warned: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more accepted link from `member` while the guard lives;
    /// `None` when it holds [`MAX_LINKS_PER_MEMBER`] already.
    pub(crate) fn count_link(&self, member: u32) -> Option<LinkCount<'_>> {
        let mut links = self
            .links_per_member
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = links.entry(member).or_insert(0);
        if *n >= MAX_LINKS_PER_MEMBER {
            return None;
        }
        *n += 1;
        Some(LinkCount {
            state: self,
            member,
        })
    }

    /// Counts a refused link and logs why: as a warning the first time in
    /// `REFUSAL_WARNING_EVERY` for one reason (a peer that cannot link keeps
    /// trying every second or two), else at debug level.
    pub(crate) fn refuse(&self, peer: &dyn fmt::Debug, why: &dyn fmt::Display) {
        super::count_refused(&self.refused);
        let why = why.to_string();
        let now = Instant::now();
        let warn = {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            // Bounded: reasons can vary with what a stranger sends.
            if warned.len() >= 64 {
                warned.retain(|_, at| now.duration_since(*at) < REFUSAL_WARNING_EVERY);
                if warned.len() >= 64 {
                    warned.clear();
                }
            }
            match warned.get(&why) {
                Some(at) if now.duration_since(*at) < REFUSAL_WARNING_EVERY => false,
                _ => {
                    warned.insert(why.clone(), now);
                    true
                }
            }
        };
        if warn {
            tracing::warn!(?peer, error = %why, "refused a link");
        } else {
            tracing::debug!(?peer, error = %why, "refused a link");
        }
    }
}

/// One accepted link counted against its member's limit, until dropped.
pub(crate) struct LinkCount<'a> {
    state: &'a LinkState,
    member: u32,
}

impl Drop for LinkCount<'_> {
    fn drop(&mut self) {
        let mut links = self
            .state
            .links_per_member
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = links.get_mut(&self.member) {
            *n -= 1;
            if *n == 0 {
                links.remove(&self.member);
            }
        }
    }
}

/// How often one reason for refusing links is logged as a warning.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Everything a node's link tasks work from.
#[derive(Debug)]
pub(crate) struct LinkSetup {
    pub(crate) handshake: Handshake,
    pub(crate) settings: LinkSettings,
    pub(crate) state: LinkState,
}

impl LinkSetup {
    /// The handshake, with the election state this member has now.
    pub(crate) async fn handshake<S>(
        &self,
        inbound: &mut S,
        tx: &mpsc::Sender<Frame>,
        expect: super::handshake::Expect,
    ) -> Result<Introduced, LinkError>
    where
        S: Stream<Item = Result<Frame, Status>> + Unpin,
    {
        let state = *self.state.hello.borrow();
        self.handshake.run(state, inbound, tx, expect).await
    }

    /// After the handshake: hands the link to the runtime, then keeps its
    /// connection until the runtime drops it or the node stops.
    pub(crate) async fn hand_over<S>(
        &self,
        peer: Introduced,
        dialled: bool,
        inbound: S,
        tx: mpsc::Sender<Frame>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: Stream<Item = Result<Frame, Status>> + Send + 'static,
    {
        let link = self.state.next_link.fetch_add(1, Ordering::Relaxed);
        let p = peer.member;
        let (held, released) = oneshot::channel();
        let up = LinkUp {
            peer: p,
            link,
            dialled,
            hello: peer,
            tx,
            inbound: Inbound::new(inbound),
            held: Held { _release: held },
        };
        if self.state.events.send(up).await.is_err() {
            return;
        }
        tracing::info!(peer = p, link, "link up");
        let label = crate::metrics::peer_label(self.settings.dynamic, p);
        metrics::counter!(crate::metrics::LINKS_UP, "peer" => label).increment(1);
        tokio::select! {
            _ = released => {}
            () = stopped(&mut shutdown) => {}
        }
        tracing::debug!(peer = p, link, "link released");
    }
}

/// Resolves once the node shuts down (or its shutdown sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
