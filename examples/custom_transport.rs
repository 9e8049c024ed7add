//! Bring your own transport: three members of a redhac cluster wired by
//! in-process tokio channels, using only the sans-IO core
//! (`redhac-membership`) and the caches (`redhac-store`), no gRPC.
//!
//! Each member is a task that owns a `Node` and a `Store`: it feeds the node
//! links, messages, ticks and writes, and carries out every output in order.
//! A router task delivers messages between members, in order per pair. A
//! leader is elected, a follower writes at `Ack::Quorum`, and every member's
//! cache then holds the value.
//!
//! Run from the repository root: `cargo run --example custom_transport`.
//! Exits 0 on success, 1 with a message on failure.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redhac_membership::{
    Ack, Input, LogId, MemberId, Message, Node, NodeConfig, NodeRole, NodeStatus, Op, Output,
    PeerHello, SnapshotChunk, Timing, WriteError,
};
use redhac_store::{CacheOptions, Origin, Schema, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

const MEMBERS: usize = 3;
const CACHE: &str = "sessions";
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
}

type WriteResult = Result<Option<LogId>, WriteError>;

/// What a member's task receives: a message from the router, or a write.
#[derive(Debug)]
enum Cmd {
    /// A message from a peer, delivered in order.
    Receive(MemberId, Message),
    /// A write from the application, with its ack level.
    Propose(Op, Ack, oneshot::Sender<WriteResult>),
}

/// A message on the wire: (from, to, message).
type Packet = (MemberId, MemberId, Message);

/// A snapshot on the wire: (cache, its schema, key, postcard value, remaining TTL).
type SnapshotData = Vec<(String, u64, String, Vec<u8>, Option<Duration>)>;

/// What a member publishes after every step: the node's status, and its read
/// gate (reads are answered until that instant).
#[derive(Debug, Clone)]
struct View {
    status: NodeStatus,
    gate: Option<Instant>,
}

impl View {
    fn serving(&self) -> bool {
        self.gate.is_some_and(|until| Instant::now() < until)
    }
}

struct Member {
    me: MemberId,
    node: Node,
    store: Store,
    epoch: Instant,
    net: mpsc::UnboundedSender<Packet>,
    writes: HashMap<u64, oneshot::Sender<WriteResult>>,
    view: watch::Sender<View>,
}

impl Member {
    /// Links to every peer come up first (with the hello each peer sent),
    /// then messages and writes as they come, a tick every `tick` and one
    /// at the node's next deadline.
    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Cmd>,
        hellos: Vec<PeerHello>,
        tick: Duration,
    ) {
        let me = self.me;
        for (peer, hello) in (0..).zip(hellos).filter(|(p, _)| *p != me) {
            self.step(Input::Connected { peer, hello });
        }
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Each input gets a number; a write uses it as its request id.
        for id in 1.. {
            let due = tokio::time::Instant::from_std(self.epoch + self.node.next_deadline());
            let input = tokio::select! {
                cmd = inbox.recv() => match cmd {
                    Some(Cmd::Receive(from, msg)) => Input::Receive { from, msg },
                    Some(Cmd::Propose(op, ack, reply)) => {
                        self.writes.insert(id, reply);
                        let deadline = self.epoch.elapsed() + WRITE_TIMEOUT;
                        Input::Propose { id, op: Arc::new(op), ack, deadline }
                    }
                    None => return,
                },
                _ = ticker.tick() => Input::Tick,
                () = tokio::time::sleep_until(due) => Input::Tick,
            };
            self.step(input);
        }
    }

    fn step(&mut self, input: Input) {
        for out in self.node.step(self.epoch.elapsed(), input) {
            self.carry_out(out);
        }
        let status = self.node.status();
        self.view.send_modify(|v| v.status = status);
    }

    /// Carries out one output, before the next input.
    fn carry_out(&mut self, out: Output) {
        match out {
            // Every link is up here; a real transport drops what has no link.
            Output::Send { to, msg } => {
                let _ = self.net.send((self.me, to, msg));
            }
            Output::Apply(entry) => apply(&self.store, &entry.op),
            Output::InstallChunk { first, data, .. } => install(&self.store, first, &data),
            // A network transport streams chunks as its link takes them (see
            // `SendSnapshot`); in memory, one chunk of everything will do.
            Output::SendSnapshot {
                to,
                term,
                last,
                membership,
            } => {
                let chunk = SnapshotChunk {
                    term,
                    last,
                    seq: 0,
                    end: Some(self.node.applied()),
                    data: Arc::new(encode_store(&self.store)),
                    membership: Some(membership),
                };
                let _ = self.net.send((self.me, to, Message::Snapshot(chunk)));
            }
            Output::Resolve { id, result } => {
                if let Some(reply) = self.writes.remove(&id) {
                    let _ = reply.send(result);
                }
            }
            Output::InvalidateAll => self.store.clear_all(Origin::Local),
            Output::InvalidateKeys(keys) => {
                for (cache, key) in keys {
                    let Ok(c) = self.store.erased(&cache) else {
                        continue;
                    };
                    match key {
                        Some(k) => _ = c.apply_delete(&k, Origin::Local),
                        None => c.apply_clear(Origin::Local),
                    }
                }
            }
            Output::Serving(until) => {
                let gate = until.map(|u| self.epoch + u);
                self.view.send_modify(|v| v.gate = gate);
            }
            // A real transport logs these (a warning for violations).
            Output::Rejected { from, what, why } => {
                eprintln!(
                    "member {}: refused {what} from {from}: {}",
                    self.me,
                    why.as_str()
                );
            }
            // A network transport closes that link and dials the peer again
            // (stepping `Connected` once it is up). In memory, nothing here
            // goes silent but a member stalled for half an election timeout:
            // it stays out of this demo's cluster.
            Output::ResetLink { peer } => {
                eprintln!(
                    "member {}: link to {peer} silent; a transport would redial",
                    self.me
                );
            }
            // Only a leader with the autopilot on removes members; this
            // demo's membership is static.
            Output::State { .. } | Output::Health(_) | Output::ShutdownReady | Output::Removed => {}
        }
    }
}

/// Applies a committed entry to the caches, synchronously.
fn apply(store: &Store, op: &Op) {
    let Some((name, _)) = op.touches() else {
        return; // a Noop changes nothing
    };
    let Ok(cache) = store.erased(name) else {
        eprintln!("  an entry for an unknown cache {name:?}");
        return;
    };
    match op {
        Op::Put {
            key,
            value,
            ttl_ms,
            schema,
            ..
        } => {
            let ttl = ttl_ms.map(Duration::from_millis);
            // The writer's schema: a member decodes only values of its own.
            let schema = schema.map_or_else(|| cache.schema(), Schema::from_id);
            if let Err(e) = cache.apply_put(key.clone(), value, schema, ttl, Origin::Peer) {
                eprintln!("  a value was not applied: {e}");
            }
        }
        Op::Delete { key, .. } => _ = cache.apply_delete(key, Origin::Peer),
        Op::Clear { .. } => cache.apply_clear(Origin::Peer),
        Op::Noop | Op::Membership(_) => {}
    }
}

/// Encodes every cache, for a follower too far behind the leader's log.
fn encode_store(store: &Store) -> Vec<u8> {
    let mut data = SnapshotData::new();
    for snap in store.caches().filter_map(|c| c.snapshot().ok()) {
        for e in snap.entries {
            data.push((snap.cache.clone(), snap.schema.id(), e.key, e.value, e.ttl));
        }
    }
    postcard::to_allocvec(&data).expect("strings, bytes and durations always encode")
}

/// Puts a snapshot chunk from the leader into the caches, cleared first
/// by the first chunk.
fn install(store: &Store, first: bool, data: &[u8]) {
    if first {
        store.clear_all(Origin::Peer);
    }
    let entries = postcard::from_bytes::<SnapshotData>(data).unwrap_or_else(|e| {
        eprintln!("  a snapshot did not decode ({e}); caches left empty");
        Vec::new()
    });
    for (cache, schema, key, value, ttl) in entries {
        if let Ok(c) = store.erased(&cache) {
            let _ = c.apply_put(key, &value, Schema::from_id(schema), ttl, Origin::Peer);
        }
    }
}

/// The transport: one queue in, one inbox per member out, so every pair's
/// messages arrive in the order they were sent. (A network transport would
/// bound its queues and drop the link, with `Disconnected`, when one fills.)
async fn route(mut net: mpsc::UnboundedReceiver<Packet>, inboxes: Vec<mpsc::UnboundedSender<Cmd>>) {
    while let Some((from, to, msg)) = net.recv().await {
        let _ = inboxes[to as usize].send(Cmd::Receive(from, msg));
    }
}

/// Polls `check` every millisecond until it answers, or fails after `limit`.
async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let until = Instant::now() + limit;
    loop {
        if let Some(t) = check() {
            return Ok(t);
        }
        if Instant::now() > until {
            return Err(format!("{what}: not within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let timing = Timing::new(Duration::from_secs(1));
    let epoch = Instant::now();
    let t = timing.election_timeout;
    println!("1. three members linked by in-process channels, T = {t:?}");
    let (net, net_rx) = mpsc::unbounded_channel();
    let mut members = Vec::new();
    let wall_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_millis() as u64;
    for me in 0..MEMBERS as MemberId {
        // Any seed that differs between starts will do; the core mixes in `me`.
        let mut config = NodeConfig::new(me, MEMBERS, timing, wall_ms);
        // Votes live in memory: a restarted member must not reuse a term.
        config.term_floor = NodeConfig::wall_clock_floor(wall_ms);
        // Differs at every start, so a leader knows a member restarted.
        config.incarnation = wall_ms ^ u64::from(me);
        let node = Node::new(config, Duration::ZERO);
        let mut store = Store::builder();
        store.add::<Session>(CACHE, CacheOptions::default().max_capacity(10_000))?;
        let (store, net, writes) = (store.build(), net.clone(), HashMap::new());
        let status = node.status();
        let view = watch::Sender::new(View { status, gate: None });
        members.push(Member {
            me,
            node,
            store,
            epoch,
            net,
            writes,
            view,
        });
    }
    let stores: Vec<Store> = members.iter().map(|m| m.store.clone()).collect();
    let views: Vec<_> = members.iter().map(|m| m.view.subscribe()).collect();
    // What each member will say about itself when its links come up.
    let hellos: Vec<PeerHello> = members.iter().map(|m| m.node.hello()).collect();
    let mut inboxes = Vec::new();
    for member in members {
        let (tx, rx) = mpsc::unbounded_channel();
        inboxes.push(tx);
        tokio::spawn(member.run(rx, hellos.clone(), timing.tick()));
    }
    tokio::spawn(route(net_rx, inboxes.clone()));

    let what = "one leader that every member follows, all serving";
    let (leader, term) = wait_for(what, Duration::from_secs(10), || {
        let v: Vec<View> = views.iter().map(|r| r.borrow().clone()).collect();
        let leaders: Vec<&View> = v
            .iter()
            .filter(|x| x.status.role == NodeRole::Leader)
            .collect();
        let [l] = leaders.as_slice() else { return None };
        let (me, term) = (l.status.me, l.status.term);
        let agreed = v
            .iter()
            .all(|x| x.status.leader == Some(me) && x.status.term == term && x.serving());
        agreed.then_some((me, term))
    })
    .await?;
    let ms = epoch.elapsed().as_millis();
    println!("2. member {leader} leads term {term} after {ms} ms; every member serves reads");

    let follower = (leader as usize + 1) % MEMBERS;
    let session = Session {
        user: "alice".into(),
        roles: vec!["admin".into()],
    };
    let sessions = stores
        .iter()
        .map(|s| s.typed::<Session>(CACHE))
        .collect::<Result<Vec<_>, _>>()?;
    let value = sessions[follower].encode(&session)?;
    let op = Op::Put {
        cache: CACHE.into(),
        key: "sid-1".into(),
        value,
        ttl_ms: None,
        schema: Some(sessions[follower].schema().id()),
    };
    let (reply, answer) = oneshot::channel();
    let started = Instant::now();
    inboxes[follower].send(Cmd::Propose(op, Ack::Quorum, reply))?;
    let at = answer
        .await?
        .map_err(|e| format!("the write failed: {e}"))?;
    let us = started.elapsed().as_micros();
    let at = at.map_or("?".into(), |id| id.to_string());
    println!("3. member {follower} (a follower) wrote sid-1 at Quorum: ordered at {at}, {us} µs");
    if sessions[follower].get("sid-1").as_deref() != Some(&session) {
        return Err("a Quorum write is not readable on the member that wrote it".into());
    }

    println!("4. every member applies it and serves it");
    for (i, cache) in sessions.iter().enumerate() {
        let what = format!("member {i} serving sid-1");
        let applied = wait_for(&what, Duration::from_secs(5), || {
            let view = views[i].borrow();
            let hit = cache.get("sid-1").is_some_and(|v| *v == session);
            (hit && view.serving()).then_some(view.status.applied)
        })
        .await?;
        println!("  member {i}: sid-1 = {session:?} (applied up to index {applied})");
    }
    println!("done: a custom transport carried the election and a Quorum write");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_transport FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
