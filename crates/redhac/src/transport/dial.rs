//! The dialling side of links: a member keeps a link open to every member
//! listed after it (the static mode) or to every address discovery finds
//! (the dynamic mode), dialling again after a random wait when one fails.

use std::sync::Arc;
use std::time::Duration;

use redhac_proto::cluster_client::ClusterClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::discover::Found;
use super::handshake::Expect;
use super::link::{LinkError, LinkSetup, MAX_FRAME_BYTES, stopped};
use redhac_membership::HostEntry;

/// How long a dial waits for the peer's connection (name lookup, TCP, and
/// TLS when on).
/// Members share a network where a connection takes milliseconds; a peer
/// whose address answers nothing (a container or pod being replaced, its
/// address already gone) must not hold the next dial back for the whole
/// handshake timeout: a roll would wait that long for each new member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A link up at least this long resets the back-off.
const LASTED: Duration = Duration::from_secs(1);

/// While a member starts, a peer it never reached yet is dialled at least
/// this often: members of a cluster started together (processes, pods)
/// come up over a second or two, and each must link to the last one within
/// milliseconds of it listening, not after a back-off grown meanwhile.
const STARTING_CAP: Duration = Duration::from_millis(50);

/// How long after a member started `STARTING_CAP` holds for a peer never
/// reached: a member listed but never started is then dialled as rarely as
/// any lost peer.
const STARTING: Duration = Duration::from_secs(60);

/// Whom a dial task keeps a link to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A listed member (the static mode), at its entry's address.
    Member(u32),
    /// An address discovery found (the dynamic mode): whoever answers
    /// there, while discovery lists it.
    Address(Arc<Found>),
}

impl Target {
    fn authority(&self, setup: &LinkSetup) -> String {
        match self {
            Self::Member(peer) => authority(&setup.settings.members[*peer as usize]),
            Self::Address(found) => found.addr.to_string(),
        }
    }

    fn expect(&self) -> Expect {
        match self {
            Self::Member(peer) => Expect::Exactly(*peer),
            Self::Address(_) => Expect::Anyone,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Member(peer) => write!(f, "member {peer}"),
            Self::Address(found) => write!(f, "{}", found.addr),
        }
    }
}

/// Keeps a link to `target` open for as long as the node runs (and, for a
/// discovered address, discovery lists it).
pub(crate) async fn dial(
    setup: Arc<LinkSetup>,
    target: Target,
    mut shutdown: watch::Receiver<bool>,
) {
    // Dials since the last link that came up: a peer restarting (a roll) or
    // not listening yet (a cluster starting) is dialled again within
    // milliseconds, then less and less often.
    let mut attempt = 0u32;
    // A lost peer is dialled at least every `redial_cap`: a partition that
    // heals is relinked within it.
    let cap = setup.settings.redial_cap;
    let jitter = (
        setup.settings.reconnect.0.min(cap),
        setup.settings.reconnect.1.min(cap),
    );
    let started = std::time::Instant::now();
    let mut reached = false;
    while !*shutdown.borrow() {
        if let Target::Address(found) = &target
            && !found.wait_turn(&setup, &mut shutdown).await
        {
            return;
        }
        let dialled = std::time::Instant::now();
        // A dial in progress ends with the node: a peer that accepts but
        // never answers must not hold a shutdown for the handshake timeout.
        let dialled_once = tokio::select! {
            r = dial_once(&setup, &target, shutdown.clone()) => r,
            () = stopped(&mut shutdown) => return,
        };
        reached |= dialled_once.is_ok();
        let wait = match dialled_once {
            // A link that lasted: its peer is likely restarting.
            Ok(()) if dialled.elapsed() >= LASTED => {
                attempt = 0;
                backoff(attempt, jitter)
            }
            // One dropped at once is no better than a failed dial.
            Ok(()) => {
                attempt = attempt.saturating_add(1);
                backoff(attempt, jitter)
            }
            // Discovery lists this member's own address.
            Err(LinkError::Myself) => {
                if let Target::Address(found) = &target {
                    found.is_myself();
                }
                return;
            }
            // A refusal does not mend itself in milliseconds.
            Err(e @ (LinkError::Auth | LinkError::Protocol(_))) => {
                tracing::debug!(peer = %target, error = %e, "link to peer failed");
                setup.state.refuse(&target.to_string(), &e);
                reconnect_delay(setup.settings.reconnect)
            }
            Err(e) => {
                tracing::debug!(peer = %target, error = %e, "link to peer failed");
                attempt = attempt.saturating_add(1);
                let starting = !reached && started.elapsed() < STARTING;
                failed_dial_wait(attempt, jitter, starting)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// The wait before dial number `attempt` (0 after a link that was up):
/// 5 ms doubling with each failed dial, jittered by up to half, and never
/// above the configured random wait (`CACHE_RECONNECT_TIMEOUT_LOWER` to
/// `_UPPER`), which spreads the dials of members that lost each other.
fn backoff(attempt: u32, (lo, hi): (Duration, Duration)) -> Duration {
    let base = Duration::from_millis(5).saturating_mul(1 << attempt.min(20));
    let jitter = base / 2;
    let jittered = base - jitter + random_below(jitter * 2);
    jittered.min(reconnect_delay((lo, hi)))
}

/// The wait after failed dial number `attempt` to a peer; `starting`
/// while this member starts and never reached the peer yet.
fn failed_dial_wait(attempt: u32, reconnect: (Duration, Duration), starting: bool) -> Duration {
    let wait = backoff(attempt, reconnect);
    if starting {
        wait.min(STARTING_CAP)
    } else {
        wait
    }
}

/// A random duration in `0..=max` (milliseconds), `max / 2` without an OS
/// random source.
fn random_below(max: Duration) -> Duration {
    let span = max.as_millis() as u64;
    let mut r = [0u8; 8];
    let ms = match getrandom::fill(&mut r) {
        Ok(()) if span > 0 => u64::from_le_bytes(r) % (span + 1),
        _ => span / 2,
    };
    Duration::from_millis(ms)
}

/// Connects, shakes hands, and holds the link until it ends.
async fn dial_once(
    setup: &LinkSetup,
    target: &Target,
    shutdown: watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let settings = &setup.settings;
    let timeout = setup.handshake.timeout;
    let endpoint = Endpoint::from_shared(format!("http://{}", target.authority(setup)))?
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(true);
    // The bound covers the name lookup too, which the endpoint's does not:
    // a lookup while this member's network is down waits out the resolver's
    // own timeout (5 s with glibc's defaults).
    let connecting = async {
        match &settings.tls {
            Some(tls) => {
                endpoint
                    .connect_with_connector(tls.connector(Arc::clone(&setup.state.refused)))
                    .await
            }
            None => endpoint.connect().await,
        }
    };
    let channel = tokio::time::timeout(CONNECT_TIMEOUT.min(timeout), connecting)
        .await
        .map_err(|_| LinkError::Timeout)??;
    let mut client = ClusterClient::new(channel).max_decoding_message_size(MAX_FRAME_BYTES);
    let (tx, rx) = mpsc::channel(settings.buf_client);
    let opened = tokio::time::timeout(timeout, client.link(ReceiverStream::new(rx)))
        .await
        .map_err(|_| LinkError::Timeout)??;
    let mut inbound = opened.into_inner();
    let hello = setup.handshake(&mut inbound, &tx, target.expect()).await?;
    if let Target::Address(found) = target {
        found.leads_to(hello.member);
    }
    setup.hand_over(hello, true, inbound, tx, shutdown).await;
    Ok(())
}

/// A random wait within `(lo, hi)`, so members that lost each other do not
/// dial in lockstep.
fn reconnect_delay((lo, hi): (Duration, Duration)) -> Duration {
    lo + random_below(hi.saturating_sub(lo))
}

/// `host:port`, with an IPv6 host in brackets.
fn authority(e: &HostEntry) -> String {
    if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JITTER: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(2000));

    #[test]
    fn dials_again_within_milliseconds_then_less_often_never_beyond_the_jitter() {
        for _ in 0..100 {
            let first = backoff(0, JITTER);
            assert!(first >= Duration::from_millis(2) && first <= Duration::from_millis(8));
            let fourth = backoff(3, JITTER);
            assert!(fourth >= Duration::from_millis(20) && fourth <= Duration::from_millis(60));
            let late = backoff(40, JITTER);
            assert!(late >= JITTER.0 && late <= JITTER.1, "{late:?}");
        }
        // A configured wait below the back-off caps it.
        let short = (Duration::from_millis(1), Duration::from_millis(3));
        assert!(backoff(10, short) <= Duration::from_millis(3));
    }

    #[test]
    fn a_starting_member_keeps_dialling_a_peer_it_never_reached_often() {
        for _ in 0..100 {
            // However many dials failed: the peer may listen any moment.
            assert!(failed_dial_wait(40, JITTER, true) <= STARTING_CAP);
            // Not starting any more, or reached once: the usual back-off.
            let late = failed_dial_wait(40, JITTER, false);
            assert!(late >= JITTER.0 && late <= JITTER.1, "{late:?}");
        }
        assert!(failed_dial_wait(0, JITTER, true) <= Duration::from_millis(8));
    }
}
