//! Links between members: the handshake, then frames both ways.
//!
//! One bidirectional gRPC stream per member pair, opened by the member listed
//! first in `HA_HOSTS`. Each link runs in its own task; it reports `Up`, every
//! frame, and `Down` to the runtime over one bounded channel, and the runtime
//! writes to the link through the bounded sender it got with `Up`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redhac_proto::cluster_client::ClusterClient;
use redhac_proto::cluster_server::{Cluster, ClusterServer};
use redhac_proto::{Auth, Frame, Hello, PROTOCOL_VERSION, frame};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{CHALLENGE_LEN, Secret, Transcript, challenge};
use super::tls::TlsSetup;
use redhac_membership::HostEntry;

/// Largest frame accepted from a peer.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Streams accepted but not yet authenticated, at most.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 32;

/// Authenticated links one member may hold to this one at a time: its current
/// link and the one replacing it.
pub(crate) const MAX_LINKS_PER_MEMBER: u32 = 2;

/// The election state a Hello carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HelloState {
    pub(crate) term: u64,
    pub(crate) last_log_term: u64,
    pub(crate) last_log_index: u64,
}

/// What a peer said about itself in its Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerHello {
    pub(crate) member: u32,
    pub(crate) generation: u64,
    pub(crate) state: HelloState,
}

/// A link that passed the handshake, handed to the runtime, which from then
/// on reads `inbound` itself (no task hop per frame) and writes to `tx`.
/// Dropping `held` (with the rest) ends the link.
#[derive(Debug)]
pub(crate) struct LinkUp {
    pub(crate) peer: u32,
    pub(crate) link: u64,
    pub(crate) hello: PeerHello,
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
    #[error("no randomness for a challenge: {0}")]
    Random(#[from] std::io::Error),
}

/// What every link of one node shares.
#[derive(Debug)]
pub(crate) struct LinkSetup {
    pub(crate) me: u32,
    pub(crate) generation: u64,
    pub(crate) members: Vec<HostEntry>,
    pub(crate) fingerprint: Vec<u8>,
    pub(crate) secret: Secret,
    pub(crate) buf_server: usize,
    pub(crate) buf_client: usize,
    pub(crate) keepalive_interval: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) reconnect: (Duration, Duration),
    pub(crate) handshake_timeout: Duration,
    pub(crate) hello_state: watch::Receiver<HelloState>,
    pub(crate) events: mpsc::Sender<LinkUp>,
    pub(crate) next_link: AtomicU64,
    /// Handshakes this node refused (TLS, token, list, version or member).
    pub(crate) refused: Arc<AtomicU64>,
    /// TLS for every link, unless `CACHE_TLS` is false.
    pub(crate) tls: Option<TlsSetup>,
    /// Accepted links per member index.
    pub(crate) links_per_member: Vec<std::sync::atomic::AtomicU32>,
}

/// Which peer a handshake may accept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// The member we dialled.
    Exactly(u32),
    /// Any member listed before us (they dial us).
    Below(u32),
}

impl LinkSetup {
    pub(crate) async fn handshake<S>(
        &self,
        inbound: &mut S,
        tx: &mpsc::Sender<Frame>,
        expect: Expect,
    ) -> Result<PeerHello, LinkError>
    where
        S: Stream<Item = Result<Frame, Status>> + Unpin,
    {
        let mine = challenge()?;
        let state = *self.hello_state.borrow();
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            member: self.me,
            generation: self.generation,
            members_fingerprint: self.fingerprint.clone().into(),
            challenge: mine.to_vec().into(),
            term: state.term,
            last_log_term: state.last_log_term,
            last_log_index: state.last_log_index,
        };
        send(tx, frame::Kind::Hello(hello)).await?;
        let theirs = match self.next(inbound).await? {
            frame::Kind::Hello(h) => h,
            _ => return Err(LinkError::Protocol("the first frame is not a Hello".into())),
        };
        self.check_hello(&theirs, expect)?;
        let proof = self.secret.prove(&Transcript {
            fingerprint: &self.fingerprint,
            prover: self.me,
            verifier: theirs.member,
            verifier_challenge: &theirs.challenge,
            prover_challenge: &mine,
        });
        send(
            tx,
            frame::Kind::Auth(Auth {
                proof: proof.into(),
            }),
        )
        .await?;
        let auth = match self.next(inbound).await? {
            frame::Kind::Auth(a) => a,
            _ => {
                return Err(LinkError::Protocol(
                    "the second frame is not an Auth".into(),
                ));
            }
        };
        let genuine = self.secret.verify(
            &Transcript {
                fingerprint: &self.fingerprint,
                prover: theirs.member,
                verifier: self.me,
                verifier_challenge: &mine,
                prover_challenge: &theirs.challenge,
            },
            &auth.proof,
        );
        if !genuine {
            return Err(LinkError::Auth);
        }
        Ok(PeerHello {
            member: theirs.member,
            generation: theirs.generation,
            state: HelloState {
                term: theirs.term,
                last_log_term: theirs.last_log_term,
                last_log_index: theirs.last_log_index,
            },
        })
    }

    fn check_hello(&self, h: &Hello, expect: Expect) -> Result<(), LinkError> {
        let bad = |m: String| Err(LinkError::Protocol(m));
        if h.protocol_version != PROTOCOL_VERSION {
            return bad(format!(
                "protocol version {} (ours is {PROTOCOL_VERSION}); run one redhac version across the cluster",
                h.protocol_version
            ));
        }
        if h.members_fingerprint.as_ref() != self.fingerprint.as_slice() {
            return bad(
                "the peer was given another HA_HOSTS list; give every member the same list".into(),
            );
        }
        if h.challenge.len() != CHALLENGE_LEN {
            return bad(format!("a challenge of {} bytes", h.challenge.len()));
        }
        let ok = match expect {
            Expect::Exactly(p) => h.member == p,
            Expect::Below(me) => h.member < me,
        };
        if !ok {
            return bad(format!("unexpected member index {} ({expect:?})", h.member));
        }
        Ok(())
    }

    async fn next<S>(&self, inbound: &mut S) -> Result<frame::Kind, LinkError>
    where
        S: Stream<Item = Result<Frame, Status>> + Unpin,
    {
        match tokio::time::timeout(self.handshake_timeout, inbound.next()).await {
            Err(_) => Err(LinkError::Timeout),
            Ok(None) => Err(LinkError::Closed),
            Ok(Some(Err(status))) => Err(status.into()),
            Ok(Some(Ok(Frame { kind: None }))) => Err(LinkError::Protocol("an empty frame".into())),
            Ok(Some(Ok(Frame { kind: Some(k) }))) => Ok(k),
        }
    }

    /// After the handshake: hands the link to the runtime, then keeps its
    /// connection until the runtime drops it or the node stops.
    async fn run<S>(
        &self,
        peer: PeerHello,
        inbound: S,
        tx: mpsc::Sender<Frame>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: Stream<Item = Result<Frame, Status>> + Send + 'static,
    {
        let link = self.next_link.fetch_add(1, Ordering::Relaxed);
        let p = peer.member;
        let (held, released) = oneshot::channel();
        let up = LinkUp {
            peer: p,
            link,
            hello: peer,
            tx,
            inbound: Inbound::new(inbound),
            held: Held { _release: held },
        };
        if self.events.send(up).await.is_err() {
            return;
        }
        tracing::info!(peer = p, link, "link up");
        metrics::counter!(crate::metrics::LINKS_UP, "peer" => p.to_string()).increment(1);
        tokio::select! {
            _ = released => {}
            () = stopped(&mut shutdown) => {}
        }
        tracing::debug!(peer = p, link, "link released");
    }

    fn reconnect_delay(&self) -> Duration {
        let (lo, hi) = self.reconnect;
        let span = hi.saturating_sub(lo).as_millis() as u64;
        let mut r = [0u8; 8];
        let jitter = match getrandom::fill(&mut r) {
            Ok(()) if span > 0 => u64::from_le_bytes(r) % (span + 1),
            _ => span / 2,
        };
        lo + Duration::from_millis(jitter)
    }

    async fn dial_once(
        &self,
        peer: u32,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let entry = &self.members[peer as usize];
        let endpoint = Endpoint::from_shared(format!("http://{}", authority(entry)))?
            .connect_timeout(self.handshake_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true);
        let channel = match &self.tls {
            Some(tls) => {
                endpoint
                    .connect_with_connector(tls.connector(Arc::clone(&self.refused)))
                    .await?
            }
            None => endpoint.connect().await?,
        };
        let mut client = ClusterClient::new(channel).max_decoding_message_size(MAX_FRAME_BYTES);
        let (tx, rx) = mpsc::channel(self.buf_client);
        let opened =
            tokio::time::timeout(self.handshake_timeout, client.link(ReceiverStream::new(rx)))
                .await
                .map_err(|_| LinkError::Timeout)??;
        let mut inbound = opened.into_inner();
        let hello = self
            .handshake(&mut inbound, &tx, Expect::Exactly(peer))
            .await?;
        self.run(hello, inbound, tx, shutdown.clone()).await;
        Ok(())
    }
}

/// Resolves once the node shuts down (or its shutdown sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn send(tx: &mpsc::Sender<Frame>, kind: frame::Kind) -> Result<(), LinkError> {
    tx.send(Frame { kind: Some(kind) })
        .await
        .map_err(|_| LinkError::Closed)
}

fn authority(e: &HostEntry) -> String {
    if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    }
}

/// Keeps a link to `peer` open for as long as the node runs.
pub(crate) async fn dial(setup: Arc<LinkSetup>, peer: u32, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if let Err(e) = setup.dial_once(peer, &shutdown).await {
            tracing::debug!(peer, error = %e, "link to peer failed");
            if matches!(e, LinkError::Auth | LinkError::Protocol(_)) {
                super::count_refused(&setup.refused);
                tracing::warn!(peer, error = %e, "link refused");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(setup.reconnect_delay()) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// The server side of links.
#[derive(Debug)]
struct Acceptor {
    setup: Arc<LinkSetup>,
    shutdown: watch::Receiver<bool>,
    handshakes: Arc<Semaphore>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for Acceptor {
    type LinkStream = FrameStream;

    async fn link(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let remote = request.remote_addr();
        // Unauthenticated streams are bounded: a flood of half-open handshakes
        // is refused, not queued.
        let Ok(permit) = Arc::clone(&self.handshakes).try_acquire_owned() else {
            super::count_refused(&self.setup.refused);
            tracing::warn!(peer_addr = ?remote, "refused a link: too many handshakes in progress");
            return Err(Status::resource_exhausted(
                "too many handshakes in progress",
            ));
        };
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(self.setup.buf_server);
        let setup = Arc::clone(&self.setup);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let shaken = setup
                .handshake(&mut inbound, &tx, Expect::Below(setup.me))
                .await;
            drop(permit);
            let refuse = |why: &dyn std::fmt::Display| {
                super::count_refused(&setup.refused);
                tracing::warn!(peer_addr = ?remote, error = %why, "refused a link");
            };
            match shaken {
                Ok(hello) => {
                    let links = &setup.links_per_member[hello.member as usize];
                    if links.fetch_add(1, Ordering::AcqRel) >= MAX_LINKS_PER_MEMBER {
                        refuse(&format!(
                            "member {} already has {MAX_LINKS_PER_MEMBER} links",
                            hello.member
                        ));
                    } else {
                        setup.run(hello, inbound, tx, shutdown).await;
                    }
                    links.fetch_sub(1, Ordering::AcqRel);
                }
                Err(e) => refuse(&e),
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}

/// Serves links on `listener` until shutdown.
pub(crate) async fn serve(
    setup: Arc<LinkSetup>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let service = ClusterServer::new(Acceptor {
        setup: Arc::clone(&setup),
        shutdown: shutdown.clone(),
        handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
    })
    .max_decoding_message_size(MAX_FRAME_BYTES);
    let mut stop = shutdown.clone();
    let server = Server::builder()
        .http2_keepalive_interval(Some(setup.keepalive_interval))
        .http2_keepalive_timeout(Some(setup.keepalive_timeout))
        .add_service(service);
    let until_stopped = async move { stopped(&mut stop).await };
    let result = match &setup.tls {
        Some(tls) => {
            let incoming = tls.incoming(
                listener,
                setup.handshake_timeout,
                Arc::clone(&setup.refused),
                shutdown,
            );
            server
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), until_stopped)
                .await
        }
        None => {
            let incoming = TcpListenerStream::new(listener).map(|conn| {
                conn.inspect(|s| {
                    let _ = s.set_nodelay(true);
                })
            });
            server
                .serve_with_incoming_shutdown(incoming, until_stopped)
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "the link server stopped");
    }
}
