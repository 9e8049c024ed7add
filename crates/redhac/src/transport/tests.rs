//! Links between two nodes in one process, on 127.0.0.1 ephemeral ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redhac_proto::{LookupRequest, frame};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use super::accept::serve;
use super::auth::{Tokens, fingerprint};
use super::dial::{Target, dial};
use super::handshake::{Expect, Handshake, HelloState, VERSIONS};
use super::link::{LinkSettings, LinkSetup, LinkState, LinkUp};
use super::tls::TlsSetup;
use redhac_membership::HostEntry;

pub(super) struct Side {
    setup: Arc<LinkSetup>,
    events: mpsc::Receiver<LinkUp>,
    _hello: watch::Sender<HelloState>,
}

fn setup(me: u32, hosts: &[String], token: &str, tls: Option<TlsSetup>) -> (Arc<LinkSetup>, Side) {
    let (events_tx, events) = mpsc::channel(16);
    let (hello_tx, hello) = watch::channel(HelloState {
        me,
        term: 3,
        ..HelloState::default()
    });
    let members = hosts.iter().map(|h| HostEntry::parse(h).unwrap()).collect();
    let s = LinkSetup {
        handshake: Handshake {
            address: String::new(),
            generation: 100 + u64::from(me),
            fingerprint: fingerprint(hosts),
            tokens: Tokens::new(token, None),
            versions: VERSIONS,
            timeout: Duration::from_secs(5),
        },
        settings: LinkSettings {
            members,
            dynamic: false,
            buf_server: 8,
            buf_client: 8,
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            reconnect: (Duration::from_millis(10), Duration::from_millis(50)),
            redial_cap: Duration::from_secs(1),
            tls,
        },
        state: LinkState::new(
            hello,
            events_tx,
            Arc::new(AtomicU64::new(0)),
            watch::channel(Default::default()).1,
        ),
    };
    let s = Arc::new(s);
    (
        Arc::clone(&s),
        Side {
            setup: s,
            events,
            _hello: hello_tx,
        },
    )
}

pub(super) async fn next(side: &mut Side) -> LinkUp {
    tokio::time::timeout(Duration::from_secs(10), side.events.recv())
        .await
        .expect("an event within 10 s")
        .expect("events open")
}

/// How the two ends of a test link are set up.
#[derive(Default)]
pub(super) struct Spec {
    pub(super) tokens: [&'static str; 2],
    pub(super) hosts1: Option<Vec<String>>,
    pub(super) tls: [Option<TlsSetup>; 2],
}

pub(super) const TOKEN: &str = "token-0123456789";

/// Starts member 1 listening and member 0 dialling it.
pub(super) async fn pair(spec: Spec) -> (Side, Side, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hosts = vec![
        "http://127.0.0.1:1".to_string(),
        format!("http://127.0.0.1:{port}"),
    ];
    let [tls0, tls1] = spec.tls;
    let (s0, side0) = setup(0, &hosts, spec.tokens[0], tls0);
    let (s1, side1) = setup(1, &spec.hosts1.unwrap_or(hosts), spec.tokens[1], tls1);
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(serve(s1, listener, stop.clone()));
    tokio::spawn(dial(s0, Target::Member(1), stop));
    (side0, side1, stop_tx)
}

/// Waits for both ends to report the link up.
pub(super) async fn assert_link_up(a: &mut Side, b: &mut Side) {
    assert_eq!(next(a).await.peer, 1, "member 0 has no link to member 1");
    assert_eq!(next(b).await.peer, 0, "member 1 has no link to member 0");
}

#[tokio::test]
async fn authenticated_link_carries_frames_both_ways() {
    let (mut a, mut b, stop) = pair(Spec {
        tokens: [TOKEN, TOKEN],
        ..Spec::default()
    })
    .await;
    let (up_a, mut up_b) = (next(&mut a).await, next(&mut b).await);
    assert_eq!((up_a.peer, up_b.peer), (1, 0));
    assert_eq!((up_a.hello.generation, up_b.hello.generation), (101, 100));
    assert_eq!(up_a.hello.state.term, 3);
    let lookup = |id| redhac_proto::Frame {
        kind: Some(frame::Kind::LookupRequest(LookupRequest {
            id,
            cache: "c".into(),
            key: "k".into(),
        })),
    };
    let LinkUp {
        tx: txa,
        inbound: mut ina,
        held: held_a,
        ..
    } = up_a;
    txa.send(lookup(7)).await.unwrap();
    up_b.tx.send(lookup(8)).await.unwrap();
    let received = |item: Option<Option<Result<redhac_proto::Frame, tonic::Status>>>| match item {
        Some(Some(Ok(redhac_proto::Frame {
            kind: Some(frame::Kind::LookupRequest(r)),
        }))) => r.id,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(received(up_b.inbound.next().await), 7);
    assert_eq!(received(ina.next().await), 8);
    // A runtime closes a link by dropping it: the peer's stream ends, its
    // runtime drops its side, and the dialler then reconnects.
    drop((txa, held_a));
    assert!(
        matches!(up_b.inbound.next().await, Some(None)),
        "member 1 saw the end"
    );
    drop(up_b);
    assert!(
        matches!(ina.next().await, Some(None) | Some(Some(Err(_)))),
        "member 0 saw the end"
    );
    drop(ina);
    assert_eq!(next(&mut a).await.peer, 1, "reconnected");
    let _ = stop.send(true);
}

/// Waits until both ends refused a few handshakes, and checks no link came up.
pub(super) async fn assert_refused(a: &mut Side, b: &mut Side) {
    assert_refused_by(a, b, [true, true]).await;
}

/// Waits until the chosen ends refused a few handshakes, and checks no link
/// came up.
pub(super) async fn assert_refused_by(a: &mut Side, b: &mut Side, by: [bool; 2]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refused = |s: &Side| s.setup.state.refused.load(Ordering::Relaxed);
    while (by[0] && refused(a) < 3) || (by[1] && refused(b) < 3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handshakes were not refused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        a.events.try_recv().is_err() && b.events.try_recv().is_err(),
        "a link came up"
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let (mut a, mut b, stop) = pair(Spec {
        tokens: [TOKEN, "another-token-xyz"],
        ..Spec::default()
    })
    .await;
    assert_refused(&mut a, &mut b).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn another_member_list_is_refused() {
    let other = vec![
        "http://127.0.0.1:1".to_string(),
        "http://127.0.0.1:2".to_string(),
    ];
    let (mut a, mut b, stop) = pair(Spec {
        tokens: [TOKEN, TOKEN],
        hosts1: Some(other),
        ..Spec::default()
    })
    .await;
    assert_refused(&mut a, &mut b).await;
    let _ = stop.send(true);
}

/// Member 1 listening; returns member 0's setup for hand-made streams.
async fn listening_member_1() -> (Arc<LinkSetup>, Side, String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hosts = vec![
        "http://127.0.0.1:1".to_string(),
        format!("http://127.0.0.1:{port}"),
    ];
    let (s0, _side0) = setup(0, &hosts, TOKEN, None);
    let (s1, side1) = setup(1, &hosts, TOKEN, None);
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(serve(s1, listener, stop));
    (s0, side1, format!("http://127.0.0.1:{port}"), stop_tx)
}

async fn open_stream(
    url: &str,
) -> Result<
    (
        mpsc::Sender<redhac_proto::Frame>,
        tonic::Streaming<redhac_proto::Frame>,
    ),
    tonic::Status,
> {
    let mut client = redhac_proto::cluster_client::ClusterClient::connect(url.to_owned())
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    let inbound = client
        .link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, inbound))
}

#[tokio::test]
async fn a_member_gets_at_most_two_links() {
    let (s0, mut b, url, stop) = listening_member_1().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (tx, mut inbound) = open_stream(&url).await.expect("a stream");
        s0.handshake(&mut inbound, &tx, Expect::Exactly(1))
            .await
            .expect("member 1 proves itself");
        held.push((tx, inbound));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.setup.state.refused.load(Ordering::Relaxed) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the third link was not refused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut ups = 0;
    while let Ok(event) = b.events.try_recv() {
        ups += usize::from(event.peer == 0);
    }
    assert_eq!(ups, 2);
    let _ = stop.send(true);
}

#[tokio::test]
async fn silent_streams_beyond_the_handshake_limit_are_refused() {
    let (_s0, b, url, stop) = listening_member_1().await;
    let mut held = Vec::new();
    for _ in 0..super::link::MAX_PENDING_HANDSHAKES {
        held.push(open_stream(&url).await.expect("a stream within the limit"));
    }
    let refused = open_stream(&url).await.expect_err("one stream too many");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(b.setup.state.refused.load(Ordering::Relaxed), 1);
    let _ = stop.send(true);
}
