//! The transport floor: a small frame's round trip over a tonic
//! bidirectional stream on 127.0.0.1, between two tasks.

use std::pin::Pin;
use std::time::{Duration, Instant};

use redhac_proto::cluster_client::ClusterClient;
use redhac_proto::cluster_server::{Cluster, ClusterServer};
use redhac_proto::{Frame, LookupRequest, frame};
use serde_json::{Map, Value, json};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

struct Echo;

#[tonic::async_trait]
impl Cluster for Echo {
    type LinkStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

    async fn link(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = inbound.next().await {
                if tx.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

pub(crate) async fn row() -> Map<String, Value> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = TcpListenerStream::new(listener).map(|c| {
        c.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ClusterServer::new(Echo))
            .serve_with_incoming(incoming),
    );
    let samples = tokio::spawn(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("url")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut inbound = ClusterClient::new(channel)
            .link(ReceiverStream::new(rx))
            .await
            .expect("link")
            .into_inner();
        let ping = Frame {
            kind: Some(frame::Kind::LookupRequest(LookupRequest {
                id: 1,
                cache: "w1".into(),
                key: "key-1".into(),
            })),
        };
        let mut samples: Vec<Duration> = Vec::with_capacity(10_000);
        for i in 0..11_000 {
            let start = Instant::now();
            tx.send(ping.clone()).await.expect("send");
            inbound.next().await.expect("a reply").expect("no error");
            if i >= 1_000 {
                samples.push(start.elapsed());
            }
        }
        samples
    })
    .await
    .expect("the ping task");
    let (p50, p99, _) = crate::percentiles_us(samples);
    crate::row(
        "transport-floor",
        json!({ "rtt_p50_us": p50, "rtt_p99_us": p99 }),
    )
}
