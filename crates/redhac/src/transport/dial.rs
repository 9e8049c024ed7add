//! The dialling side of links: a member keeps a link open to every member
//! listed after it, dialling again after a random wait when one fails.

use std::sync::Arc;
use std::time::Duration;

use redhac_proto::cluster_client::ClusterClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::handshake::Expect;
use super::link::{LinkError, LinkSetup, MAX_FRAME_BYTES, stopped};
use redhac_membership::HostEntry;

/// Keeps a link to `peer` open for as long as the node runs.
pub(crate) async fn dial(setup: Arc<LinkSetup>, peer: u32, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if let Err(e) = dial_once(&setup, peer, &shutdown).await {
            tracing::debug!(peer, error = %e, "link to peer failed");
            if matches!(e, LinkError::Auth | LinkError::Protocol(_)) {
                setup.state.refuse(&peer, &e);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(reconnect_delay(setup.settings.reconnect)) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Connects, shakes hands, and holds the link until it ends.
async fn dial_once(
    setup: &LinkSetup,
    peer: u32,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let settings = &setup.settings;
    let timeout = setup.handshake.timeout;
    let entry = &settings.members[peer as usize];
    let endpoint = Endpoint::from_shared(format!("http://{}", authority(entry)))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(true);
    let channel = match &settings.tls {
        Some(tls) => {
            endpoint
                .connect_with_connector(tls.connector(Arc::clone(&setup.state.refused)))
                .await?
        }
        None => endpoint.connect().await?,
    };
    let mut client = ClusterClient::new(channel).max_decoding_message_size(MAX_FRAME_BYTES);
    let (tx, rx) = mpsc::channel(settings.buf_client);
    let opened = tokio::time::timeout(timeout, client.link(ReceiverStream::new(rx)))
        .await
        .map_err(|_| LinkError::Timeout)??;
    let mut inbound = opened.into_inner();
    let hello = setup
        .handshake(&mut inbound, &tx, Expect::Exactly(peer))
        .await?;
    setup.hand_over(hello, inbound, tx, shutdown.clone()).await;
    Ok(())
}

/// A random wait within `(lo, hi)`, so members that lost each other do not
/// dial in lockstep.
fn reconnect_delay((lo, hi): (Duration, Duration)) -> Duration {
    let span = hi.saturating_sub(lo).as_millis() as u64;
    let mut r = [0u8; 8];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) if span > 0 => u64::from_le_bytes(r) % (span + 1),
        _ => span / 2,
    };
    lo + Duration::from_millis(jitter)
}

/// `host:port`, with an IPv6 host in brackets.
fn authority(e: &HostEntry) -> String {
    if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    }
}
