//! The accepting side of links: the listener and the gRPC service that
//! takes in the streams of members listed before this one.

use std::pin::Pin;
use std::sync::Arc;

use redhac_proto::Frame;
use redhac_proto::cluster_server::{Cluster, ClusterServer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use super::handshake::Expect;
use super::link::{
    LinkSetup, MAX_FRAME_BYTES, MAX_LINKS_PER_MEMBER, MAX_PENDING_HANDSHAKES, stopped,
};

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
            super::count_refused(&self.setup.state.refused);
            tracing::warn!(peer_addr = ?remote, "refused a link: too many handshakes in progress");
            return Err(Status::resource_exhausted(
                "too many handshakes in progress",
            ));
        };
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(self.setup.settings.buf_server);
        let setup = Arc::clone(&self.setup);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let expect = if setup.settings.dynamic {
                Expect::Anyone
            } else {
                Expect::Below(setup.state.hello.borrow().me)
            };
            let shaken = setup.handshake(&mut inbound, &tx, expect).await;
            drop(permit);
            let refuse = |why: &dyn std::fmt::Display| setup.state.refuse(&remote, why);
            match shaken {
                Ok(hello) => match setup.state.count_link(hello.member) {
                    Some(_counted) => setup.hand_over(hello, false, inbound, tx, shutdown).await,
                    None => refuse(&format!(
                        "member {} already has {MAX_LINKS_PER_MEMBER} links",
                        hello.member
                    )),
                },
                // A member that dialled its own address (discovery lists
                // it): its dialling side notes it; nothing to warn about.
                Err(crate::transport::link::LinkError::Myself) => {}
                Err(e) => refuse(&e),
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}

/// How long the link server waits for its connections to close once the
/// node stops.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

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
        .http2_keepalive_interval(Some(setup.settings.keepalive_interval))
        .http2_keepalive_timeout(Some(setup.settings.keepalive_timeout))
        .add_service(service);
    let until_stopped = async move { stopped(&mut stop).await };
    type Serving = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    >;
    let serving: Serving = match &setup.settings.tls {
        Some(tls) => {
            let incoming = tls.incoming(
                listener,
                setup.handshake.timeout,
                Arc::clone(&setup.state.refused),
                shutdown.clone(),
            );
            Box::pin(
                server.serve_with_incoming_shutdown(ReceiverStream::new(incoming), until_stopped),
            )
        }
        None => {
            let incoming = TcpListenerStream::new(listener).map(|conn| {
                conn.inspect(|s| {
                    let _ = s.set_nodelay(true);
                })
            });
            Box::pin(server.serve_with_incoming_shutdown(incoming, until_stopped))
        }
    };
    // Once the node stops, connections get `STOP_GRACE` to close: one a
    // partition left half-open would hold the graceful stop until its
    // keepalive fails.
    let mut late = shutdown;
    let grace = async move {
        stopped(&mut late).await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    let result = tokio::select! {
        result = serving => result,
        () = grace => {
            tracing::debug!("link connections still open after the stop's grace: dropped");
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "the link server stopped");
    }
}
