//! A member's socket under attack: a raw HTTP/2 peer that knows the token
//! (or does not) sends what no correct member would, byte by byte, and the
//! member refuses it, counts it, closes only that link and keeps serving.
//!
//! The cluster is `HA_HOSTS` = [raw peer, member 1, member 2]: members 1 and
//! 2 are real nodes (a majority, so they elect and commit), and index 0 is
//! this test's raw peer, which dials them as a member listed first would.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;
use redhac_membership::{Append, AppendReply, Entry, LogId, Message, Op};
use redhac_proto::{Auth, Frame, Hello, PROTOCOL_VERSION, frame};

use redhac::test_support::{self, challenge, fingerprint};
use redhac::{AckLevel, Builder, CacheOptions, Config, Redhac, Role, WriteOptions};

const TOKEN: &str = "a-test-token-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

/// The raw peer's end of one link: an HTTP/2 stream carrying gRPC messages.
struct RawPeer {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: BytesMut,
}

/// What the member sent next.
#[derive(Debug)]
enum Next {
    Frame(frame::Kind),
    /// The stream ended or was reset: the member closed the link.
    Ended(String),
}

impl RawPeer {
    /// Opens a `Link` stream to the member at `addr`.
    async fn open(addr: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/redhac.v1.Cluster/Link"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, send) = client.send_request(request, false).unwrap();
        let response = tokio::time::timeout(DEADLINE, response)
            .await
            .expect("response headers in time")
            .unwrap();
        assert_eq!(response.status(), 200);
        Self {
            send,
            recv: response.into_body(),
            buf: BytesMut::new(),
        }
    }

    /// Sends `bytes` as they are (a gRPC length prefix is the caller's).
    fn send_raw(&mut self, bytes: Vec<u8>, end: bool) {
        // A member that already reset the stream makes this fail; the
        // caller learns it from `next`.
        let _ = self.send.send_data(Bytes::from(bytes), end);
    }

    /// Sends one gRPC message holding `payload`.
    fn send_message(&mut self, payload: &[u8]) {
        self.send_raw(grpc_prefixed(payload, payload.len() as u32), false);
    }

    fn send_frame(&mut self, kind: frame::Kind) {
        self.send_message(&Frame { kind: Some(kind) }.encode_to_vec());
    }

    fn send_core(&mut self, msg: &Message) {
        self.send_frame(frame::Kind::Core(test_support::to_wire(msg)));
    }

    /// The next frame from the member, or the end of the stream.
    async fn next(&mut self) -> Next {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                if self.buf.len() >= 5 + len as usize {
                    self.buf.advance(5);
                    let body = self.buf.split_to(len as usize);
                    let frame =
                        Frame::decode(body.freeze()).expect("the member sends valid frames");
                    return Next::Frame(frame.kind.expect("a frame with a kind"));
                }
            }
            match tokio::time::timeout(DEADLINE, self.recv.data()).await {
                Err(_) => {
                    panic!("the member neither sent a frame nor closed the link in {DEADLINE:?}")
                }
                Ok(None) => return Next::Ended("end of stream".into()),
                Ok(Some(Err(e))) => return Next::Ended(e.to_string()),
                Ok(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf.extend_from_slice(&data);
                }
            }
        }
    }

    /// Skips frames until `pick` takes one; `Err` if the link ends first.
    async fn until<T>(
        &mut self,
        mut pick: impl FnMut(frame::Kind) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            match self.next().await {
                Next::Frame(kind) => {
                    if let Some(t) = pick(kind) {
                        return Ok(t);
                    }
                }
                Next::Ended(why) => return Err(why),
            }
        }
    }

    /// Waits until the member closes the link, ignoring what it sends.
    async fn closed(&mut self) -> String {
        self.until(|_| None::<()>).await.unwrap_err()
    }

    /// Runs the member side of the handshake as `hello.member`, proving with
    /// `token`; `Err` when the member refuses the link.
    async fn handshake(&mut self, hello: Hello, token: &str, peer: u32) -> Result<(), String> {
        let mine = hello.challenge.clone();
        let fp = hello.members_fingerprint.clone();
        let me = hello.member;
        self.send_frame(frame::Kind::Hello(hello));
        let theirs = self
            .until(|k| match k {
                frame::Kind::Hello(h) => Some(h),
                _ => None,
            })
            .await?;
        let proof = test_support::proof(token, &fp, me, peer, &theirs.challenge, &mine);
        self.send_frame(frame::Kind::Auth(Auth {
            proof: proof.into(),
            previous_proof: Default::default(),
        }));
        self.until(|k| matches!(k, frame::Kind::Auth(_)).then_some(()))
            .await
    }
}

fn grpc_prefixed(payload: &[u8], announced: u32) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&announced.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn hello(member: u32, hosts: &[String]) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        member,
        generation: 1,
        members_fingerprint: fingerprint(hosts).into(),
        challenge: challenge().expect("OS randomness").into(),
        term: 0,
        last_log_term: 0,
        last_log_index: 0,
        max_protocol_version: 0,
        term_floor: 0,
        cluster: 0,
        address: String::new(),
    }
}

/// Members 1 and 2, running; index 0 is left to the raw peer.
struct Cluster {
    hosts: Vec<String>,
    nodes: [Redhac; 2],
    addrs: [SocketAddr; 2],
}

impl Cluster {
    /// Starts members 1 and 2; `caches` registers each one's caches.
    async fn start(caches: [fn(Builder) -> Builder; 2]) -> Self {
        let ls: Vec<_> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let hosts: Vec<String> = ls
            .iter()
            .map(|l| format!("http://{}", l.local_addr().unwrap()))
            .collect();
        let config = Config::from_vars([
            ("HA_MODE", "true"),
            ("HA_HOSTS", hosts.join(",").as_str()),
            ("CACHE_AUTH_TOKEN", TOKEN),
            ("CACHE_TLS", "false"),
            ("CACHE_RECONNECT_TIMEOUT_LOWER", "10"),
            ("CACHE_RECONNECT_TIMEOUT_UPPER", "50"),
        ])
        .unwrap();
        let mut ls = ls.into_iter().skip(1);
        let mut start = async |register: fn(Builder) -> Builder| {
            let l = ls.next().unwrap();
            let addr = l.local_addr().unwrap();
            let b = Redhac::builder()
                .config(config.clone())
                .listener(l)
                .hostname(addr.to_string());
            (register(b).start().await.unwrap(), addr)
        };
        let (n1, a1) = start(caches[0]).await;
        let (n2, a2) = start(caches[1]).await;
        let c = Self {
            hosts,
            nodes: [n1, n2],
            addrs: [a1, a2],
        };
        c.wait("a leader among members 1 and 2, both serving", |c| {
            c.leader().is_some()
        })
        .await;
        c
    }

    /// The position (0 or 1) of the leader, when both agree and serve.
    fn leader(&self) -> Option<usize> {
        let s = self.nodes.each_ref().map(Redhac::status);
        let l = s.iter().position(|s| s.role == Role::Leader)?;
        let agree = s
            .iter()
            .all(|x| x.leader == Some(s[l].me) && x.term == s[l].term && x.serving);
        agree.then_some(l)
    }

    async fn wait(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let start = tokio::time::Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting until {what}; status {:?}",
                self.nodes.each_ref().map(Redhac::status)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Both members still serve: a Quorum write on each is read on the other.
    async fn still_serving(&self, key: &str) {
        for (i, node) in self.nodes.iter().enumerate() {
            let k = format!("{key}-{i}");
            node.cache::<String>("c")
                .unwrap()
                .put_with(
                    k.clone(),
                    "ok".to_string(),
                    WriteOptions::default().ack(AckLevel::Quorum),
                )
                .await
                .unwrap_or_else(|e| panic!("member {} refused a write: {e}", i + 1));
            let other = self.nodes[1 - i].cache::<String>("c").unwrap();
            self.wait(&format!("{k} replicated"), |_| other.get(&k).is_some())
                .await;
        }
    }

    /// A raw peer, authenticated as member 0, linked to member `i + 1`.
    async fn member_0_linked_to(&self, i: usize) -> RawPeer {
        let mut peer = RawPeer::open(self.addrs[i]).await;
        peer.handshake(hello(0, &self.hosts), TOKEN, i as u32 + 1)
            .await
            .expect("the member accepts member 0");
        self.wait("member 0 connected", |c| {
            c.nodes[i].status().members[0].connected
        })
        .await;
        peer
    }

    fn refused(&self, i: usize) -> (u64, u64) {
        let s = self.nodes[i].status();
        (s.links_refused, s.messages_refused)
    }
}

fn string_cache(b: Builder) -> Builder {
    b.cache::<String>("c", CacheOptions::default())
}

fn put(cache: &str, key: &str, value: Vec<u8>) -> Arc<Op> {
    Arc::new(Op::Put {
        cache: cache.into(),
        key: key.into(),
        value,
        ttl_ms: None,
        schema: None,
    })
}

fn append(term: u64, prev: LogId, entries: Vec<Entry>, commit: u64) -> Message {
    Message::Append(Append {
        term,
        prev,
        entries,
        commit,
        stamp: Duration::from_millis(1),
        echo: None,
        lease: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_from_a_node_not_in_ha_hosts_is_refused() {
    let c = Cluster::start([string_cache, string_cache]).await;
    let mut other_list = c.hosts.clone();
    other_list[0] = "http://intruder.example:9000".into();
    let hellos = [
        ("a host list that is not HA_HOSTS", hello(0, &other_list)),
        ("an index outside HA_HOSTS", hello(7, &c.hosts)),
        ("the member's own index", hello(1, &c.hosts)),
    ];
    for (n, (what, h)) in hellos.into_iter().enumerate() {
        let mut peer = RawPeer::open(c.addrs[0]).await;
        let result = peer.handshake(h, TOKEN, 1).await;
        assert!(result.is_err(), "{what}: the member accepted the link");
        assert_eq!(
            c.refused(0).0,
            n as u64 + 1,
            "{what}: not counted as refused"
        );
        assert!(!c.nodes[0].status().members[0].connected, "{what}");
    }
    // The right list and token still get in: the refusals were for cause.
    drop(c.member_0_linked_to(0).await);
    c.still_serving("after-hellos").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_undecodable_frames_close_only_their_link() {
    let c = Cluster::start([string_cache, string_cache]).await;

    // Before the handshake: a Hello cut short, then the stream ends.
    let mut peer = RawPeer::open(c.addrs[0]).await;
    let whole = Frame {
        kind: Some(frame::Kind::Hello(hello(0, &c.hosts))),
    }
    .encode_to_vec();
    peer.send_raw(
        grpc_prefixed(&whole[..whole.len() / 2], whole.len() as u32),
        true,
    );
    peer.closed().await;
    c.wait("the cut Hello counted", |c| c.refused(0).0 == 1)
        .await;

    // After the handshake, each on a fresh link: a message cut short by the
    // end of the stream; bytes that are not a Frame; a length over the limit.
    let cut = {
        let ping = Frame {
            kind: Some(frame::Kind::Core(test_support::to_wire(&append(
                1,
                LogId::default(),
                vec![],
                0,
            )))),
        }
        .encode_to_vec();
        grpc_prefixed(&ping[..3], ping.len() as u32)
    };
    let attacks: [(&str, Vec<u8>, bool); 3] = [
        ("a truncated frame", cut, true),
        (
            "bytes that are not a frame",
            grpc_prefixed(&[0xff; 12], 12),
            false,
        ),
        (
            "a frame over the size limit",
            grpc_prefixed(&[0; 16], test_support::MAX_FRAME_BYTES as u32 + 1),
            false,
        ),
    ];
    for (n, (what, bytes, end)) in attacks.into_iter().enumerate() {
        let mut peer = c.member_0_linked_to(0).await;
        peer.send_raw(bytes, end);
        let why = peer.closed().await;
        c.wait(&format!("{what}: member 0's link dropped"), |c| {
            !c.nodes[0].status().members[0].connected
        })
        .await;
        c.wait(&format!("{what}: counted"), |c| {
            c.refused(0) == (1, n as u64 + 1)
        })
        .await;
        eprintln!("{what}: link closed ({why})");
    }
    c.still_serving("after-frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_traffic_of_a_stale_term_or_from_a_non_leader_is_refused() {
    let c = Cluster::start([string_cache, string_cache]).await;
    let l = c.leader().unwrap();
    let f = 1 - l;
    let before = c.nodes[f].status();
    let term = before.term;
    let evil = || put("c", "evil", postcard::to_allocvec("injected").unwrap());
    let mut peer = c.member_0_linked_to(f).await;

    // A stale term: refused, and answered with the current term.
    let stale = append(
        term - 1,
        LogId::default(),
        vec![Entry {
            id: LogId::new(term - 1, 1),
            op: evil(),
            origin: None,
            request: None,
        }],
        1,
    );
    peer.send_core(&stale);
    let answer = peer
        .until(|k| match k {
            frame::Kind::Core(core) => match test_support::from_wire(core) {
                Ok(Message::AppendReply(AppendReply { term, ok, .. })) => Some((term, ok)),
                _ => None,
            },
            _ => None,
        })
        .await
        .expect("an answer to the stale Append");
    assert_eq!(answer, (term, false));

    // The current term, which member `l` leads: member 0 is not its leader.
    let last = before.applied_index;
    let s = c.nodes[f].status();
    let forged = append(
        s.term,
        LogId::new(s.term, last),
        vec![Entry {
            id: LogId::new(s.term, last + 1),
            op: evil(),
            origin: None,
            request: None,
        }],
        last + 1,
    );
    peer.send_core(&forged);
    c.wait("both refusals counted", |c| c.refused(f).1 >= 2)
        .await;
    let after = c.nodes[f].status();
    assert_eq!((after.term, after.leader), (term, before.leader));
    assert!(
        c.nodes[f]
            .cache::<String>("c")
            .unwrap()
            .get("evil")
            .is_none()
    );

    // The leader refuses another leader of its own term, too.
    let mut at_leader = c.member_0_linked_to(l).await;
    at_leader.send_core(&forged);
    c.wait("the leader's refusal counted", |c| c.refused(l).1 >= 1)
        .await;
    assert_eq!(c.nodes[l].status().role, Role::Leader);

    c.still_serving("after-forgery").await;
    for node in &c.nodes {
        assert!(node.cache::<String>("c").unwrap().get("evil").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_core_message_closes_the_link_and_is_counted() {
    let c = Cluster::start([string_cache, string_cache]).await;
    let mut peer = c.member_0_linked_to(0).await;
    // A Core frame with no message in it: no member sends that.
    peer.send_frame(frame::Kind::Core(redhac_proto::Core { msg: None }));
    peer.closed().await;
    c.wait("the malformed message counted", |c| c.refused(0).1 == 1)
        .await;
    // A second Hello on an open link.
    let mut peer = c.member_0_linked_to(0).await;
    peer.send_frame(frame::Kind::Hello(hello(0, &c.hosts)));
    peer.closed().await;
    c.wait("the handshake frame counted", |c| c.refused(0).1 == 2)
        .await;
    c.still_serving("after-malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_for_an_unknown_cache_or_an_undecodable_value_are_skipped() {
    // Member 1 has caches member 2 lacks ("only1") or holds as another type
    // ("typed"): what the leader orders still reaches member 2's log.
    let c = Cluster::start([
        |b| {
            string_cache(b)
                .cache::<String>("only1", CacheOptions::default())
                .cache::<String>("typed", CacheOptions::default())
        },
        |b| string_cache(b).cache::<bool>("typed", CacheOptions::default()),
    ])
    .await;
    let quorum = WriteOptions::default().ack(AckLevel::Quorum);
    let n1 = &c.nodes[0];
    n1.cache::<String>("only1")
        .unwrap()
        .put_with("k", "v".to_string(), quorum)
        .await
        .unwrap();
    n1.cache::<String>("typed")
        .unwrap()
        .put_with("k", "not a bool".to_string(), quorum)
        .await
        .unwrap();
    let target = n1.status().applied_index;
    c.wait("member 2 applied both", |c| {
        c.nodes[1].status().applied_index >= target
    })
    .await;
    assert!(c.nodes[1].cache::<String>("only1").is_err());
    assert_eq!(c.nodes[1].cache::<bool>("typed").unwrap().get("k"), None);
    c.still_serving("after-mismatch").await;
}
