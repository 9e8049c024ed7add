//! The runtime task: owns the links and the cluster core.
//!
//! It feeds the core links going up and down, the frames that arrive, a tick
//! and the application's writes, and carries out the core's outputs: frames
//! to peers, entries applied to the store, writes resolved, the read gate
//! opened until the lease's end or closed, caches invalidated. It reads every
//! link's incoming stream itself. Frames to a peer go through that link's
//! bounded channel; what finds it full waits, in order, in the link's bounded
//! backlog, and a follower whose link to the leader holds any takes in no new
//! request until it drains. A peer that leaves the backlog full loses its link.
//! A snapshot waits in the backlog as a stream: its chunks are cut from the
//! caches only as the link takes them (at most `SNAPSHOT_AHEAD` in its
//! channel), and what is sent to that peer later waits behind it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redhac_membership::{
    self as core, Health as CoreHealth, Input, Message, Node, Op, Output, RequestId,
    Role as CoreRole,
};
use redhac_proto::{Frame, LookupRequest, LookupResponse, frame};
use redhac_store::{Origin, Store};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{StreamExt, StreamMap};

use super::wire::{self, SnapshotStream};
use super::{Request, WriteOp};
use crate::gate::ReadGate;
use crate::status::{Health, MemberStatus, Role, Status};
use crate::transport::link::{
    Held, HelloState, Inbound, InboundItem, LinkUp, PeerHello, malformed, stopped,
};
use crate::write::AckLevel;
use crate::{Error, Result};
use redhac_membership::HostEntry;

/// What the driver is built from.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) me: u32,
    pub(crate) members: Vec<HostEntry>,
    pub(crate) store: Store,
    pub(crate) gate: Arc<ReadGate>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) hello: watch::Sender<HelloState>,
    pub(crate) timing: core::Timing,
    pub(crate) seed: u64,
    /// Peer messages refused (read by `Cluster::status`).
    pub(crate) refused: Arc<AtomicU64>,
}

/// An authenticated link to a peer; dropping it (and its inbound stream)
/// closes the link.
#[derive(Debug)]
struct Link {
    id: u64,
    tx: mpsc::Sender<Frame>,
    /// Frames that found the channel full, with their encoded sizes, and
    /// snapshot streams, sent in order as room frees up.
    backlog: VecDeque<Queued>,
    /// The sum of those sizes.
    backlog_bytes: usize,
    _held: Held,
}

/// What waits in a link's backlog.
#[derive(Debug)]
enum Queued {
    /// A frame and its encoded size.
    Frame(Frame, usize),
    /// A snapshot, cut into chunks as the link takes them.
    Snapshot(Box<SnapshotStream>),
}

/// A snapshot's keys, listed off the runtime task, for stream `stream`.
#[derive(Debug)]
enum Listed {
    /// More keys of a cache.
    Keys {
        stream: u64,
        cache: String,
        keys: Vec<Arc<String>>,
    },
    /// Every key was listed.
    Done { stream: u64 },
}

/// Snapshot chunks a link's channel may hold at once: the leader's memory
/// for a snapshot is this many chunks (about 1 MiB each) and the key list.
const SNAPSHOT_AHEAD: usize = 4;

/// Frames, and bytes, a link may hold back before its peer counts as stuck
/// and the link is dropped. Request intake stops at the first frame held
/// back, so what gets here is a burst the core makes by itself (queued
/// writes re-routed to a new leader, a snapshot's chunks).
const MAX_BACKLOG: usize = 1 << 16;
const MAX_BACKLOG_BYTES: usize = 512 << 20;

/// What woke the runtime.
enum Woke {
    Link(LinkUp),
    Inbound(u32, InboundItem),
    /// A link with a backlog has room again (the next turn flushes it).
    Room,
    /// Keys of a snapshot were listed.
    Listed(Listed),
    Request(Request),
    Tick,
    Due,
    Stop,
}

/// A write waiting for the core.
#[derive(Debug)]
struct Waiting {
    reply: oneshot::Sender<Result<()>>,
    ack: AckLevel,
    started: Instant,
    timeout: Duration,
}

/// A remote lookup waiting for the leader: where its answer goes, the
/// cache and key asked for, and when it is given up.
type Lookup = (
    oneshot::Sender<Result<Option<Vec<u8>>>>,
    String,
    String,
    Instant,
);

/// The runtime task's state.
#[derive(Debug)]
pub(crate) struct Driver {
    parts: Parts,
    node: Node,
    epoch: Instant,
    links: BTreeMap<u32, Link>,
    /// Every link's incoming frames, by peer.
    inbound: StreamMap<u32, Inbound>,
    /// The snapshot being installed: entries restored, entries that did
    /// not decode, since when.
    installing: Option<(u64, u64, Instant)>,
    /// Snapshot key lists made off this task come back here.
    listed: (mpsc::Sender<Listed>, mpsc::Receiver<Listed>),
    /// The id of the next snapshot stream.
    next_stream: u64,
    next_id: RequestId,
    writes: HashMap<RequestId, Waiting>,
    lookups: HashMap<u64, Lookup>,
    shutdown: Vec<oneshot::Sender<()>>,
    health: Health,
    role: CoreRole,
}

fn health_of(h: CoreHealth) -> Health {
    match h {
        CoreHealth::Good => Health::Good,
        CoreHealth::Degraded => Health::Degraded,
        CoreHealth::Bad => Health::Bad,
    }
}

fn ack_of(ack: AckLevel) -> core::Ack {
    match ack {
        AckLevel::None => core::Ack::None,
        AckLevel::Leader => core::Ack::Leader,
        AckLevel::Quorum => core::Ack::Quorum,
        AckLevel::All => core::Ack::All,
    }
}

fn ack_label(ack: AckLevel) -> &'static str {
    match ack {
        AckLevel::None => "none",
        AckLevel::Leader => "leader",
        AckLevel::Quorum => "quorum",
        AckLevel::All => "all",
    }
}

fn op_of(op: WriteOp) -> Op {
    match op {
        WriteOp::Put {
            cache,
            key,
            value,
            ttl,
        } => Op::Put {
            cache,
            key,
            value,
            ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        },
        WriteOp::Delete { cache, key } => Op::Delete { cache, key },
        WriteOp::Clear { cache } => Op::Clear { cache },
    }
}

impl Driver {
    pub(crate) fn new(parts: Parts) -> Self {
        let epoch = Instant::now();
        let mut config = core::Config::new(parts.me, parts.members.len(), parts.timing, parts.seed);
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        config.term_floor = core::Config::wall_clock_floor(wall_ms);
        let node = Node::new(config, Duration::ZERO);
        let health = health_of(node.status().health);
        parts.health.send_replace(health);
        let driver = Self {
            parts,
            node,
            epoch,
            links: BTreeMap::new(),
            inbound: StreamMap::new(),
            installing: None,
            listed: mpsc::channel(4),
            next_stream: 1,
            next_id: 1,
            writes: HashMap::new(),
            lookups: HashMap::new(),
            shutdown: Vec::new(),
            health,
            role: CoreRole::Follower,
        };
        driver.publish_status();
        driver
    }

    /// Runs until shutdown.
    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<LinkUp>,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(self.parts.timing.tick());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Besides the steady tick, wake exactly when the core's next
            // timer is due (an election after the leader's link closed).
            let due = tokio::time::Instant::from_std(self.epoch + self.node.next_deadline());
            // Move what links held back into their channels while there is
            // room, then wake on room in the first link still holding some
            // (the others drain at the next turn, a tick at most away).
            self.flush_backlogs();
            let backlogged = self
                .links
                .values()
                .find_map(|l| Some((l.tx.clone(), Self::room_needed(l)?)));
            let intake = !self.leader_link_backlogged();
            // Links' frames are read here, not by a task per link: each
            // frame reaches the core without a hand-off between tasks.
            let woke = tokio::select! {
                Some((peer, item)) = self.inbound.next(), if !self.inbound.is_empty() => {
                    Woke::Inbound(peer, item)
                }
                Some(up) = events.recv() => Woke::Link(up),
                // The permit is dropped at once: only this task sends on a
                // link, so the slot is still free when the next turn flushes.
                Ok(_) = async {
                    match backlogged {
                        Some((tx, n)) => tx.reserve_many(n).await.map(drop),
                        None => std::future::pending().await,
                    }
                } => Woke::Room,
                Some(request) = requests.recv(), if intake => Woke::Request(request),
                Some(listed) = self.listed.1.recv() => Woke::Listed(listed),
                _ = ticker.tick() => Woke::Tick,
                () = tokio::time::sleep_until(due) => Woke::Due,
                () = stopped(&mut stop) => Woke::Stop,
            };
            match woke {
                Woke::Inbound(peer, item) => self.on_inbound(peer, item),
                Woke::Link(up) => self.on_link(up),
                Woke::Room => {}
                Woke::Listed(listed) => self.on_listed(listed),
                Woke::Request(request) => self.on_request(request),
                Woke::Tick => self.on_tick(),
                Woke::Due => self.step(Input::Tick),
                Woke::Stop => break,
            }
        }
        self.inbound.clear();
        self.links.clear();
        self.parts.gate.close();
        for (_, w) in self.writes.drain() {
            let _ = w.reply.send(Err(Error::ShutDown));
        }
        tracing::info!("cluster runtime stopped");
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn step(&mut self, input: Input) {
        let outputs = self.node.step(self.now(), input);
        let before = self.health;
        for out in outputs {
            self.carry_out(out);
        }
        if self.health != before {
            // Only now, with every output of the step carried out (caches
            // cleared, gate closed): whoever wakes on the health watch sees
            // a member that already behaves as it says, and a status that
            // agrees with it.
            self.publish_status();
            self.parts.health.send_replace(self.health);
        }
    }

    fn on_tick(&mut self) {
        self.step(Input::Tick);
        let now = Instant::now();
        for (_, (reply, ..)) in self
            .lookups
            .extract_if(|_, (.., deadline)| *deadline <= now)
        {
            let _ = reply.send(Err(Error::Timeout(super::LOOKUP_TIMEOUT)));
        }
        self.publish_status();
        let s = self.node.status();
        metrics::gauge!(crate::metrics::TERM).set(s.term as f64);
        if s.role == CoreRole::Leader {
            let lag = s
                .peers
                .iter()
                .filter_map(|p| p.applied)
                .map(|a| s.commit.saturating_sub(a))
                .max()
                .unwrap_or(0);
            metrics::gauge!(crate::metrics::REPLICATION_LAG).set(lag as f64);
        }
        let entries: u64 = self.parts.store.caches().map(|c| c.entry_count()).sum();
        metrics::gauge!(crate::metrics::CACHE_ENTRIES).set(entries as f64);
    }

    fn on_link(&mut self, up: LinkUp) {
        let LinkUp {
            peer,
            link,
            hello,
            tx,
            inbound,
            held,
        } = up;
        let new = Link {
            id: link,
            tx,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            _held: held,
        };
        if let Some(old) = self.links.insert(peer, new) {
            tracing::debug!(
                peer,
                old = old.id,
                new = link,
                "a newer link replaces the old one"
            );
        }
        self.inbound.insert(peer, inbound);
        self.step(Input::Connected {
            peer,
            hello: peer_hello(&hello),
        });
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(self.links.len() as f64);
    }

    /// What a link's stream gave: a frame, an error, or its end.
    fn on_inbound(&mut self, peer: u32, item: InboundItem) {
        match item {
            Some(Ok(f @ Frame { kind: Some(_) })) => {
                let bytes = prost::Message::encoded_len(&f) as u64;
                metrics::counter!(crate::metrics::BYTES_IN).increment(bytes);
                if let Some(kind) = f.kind {
                    self.on_frame(peer, kind);
                }
            }
            Some(Ok(Frame { kind: None })) => {
                self.refuse(
                    peer,
                    "Frame",
                    "malformed",
                    "an empty frame; closing the link",
                    true,
                );
                self.drop_link(peer);
            }
            Some(Err(status)) if malformed(&status) => {
                let detail = format!("{}; closing the link", status.message());
                self.refuse(peer, "Frame", "malformed", &detail, true);
                self.drop_link(peer);
            }
            Some(Err(status)) => {
                tracing::info!(peer, error = status.message(), "link down: stream error");
                self.drop_link(peer);
            }
            None => {
                tracing::info!(peer, "link down: closed by the peer");
                self.drop_link(peer);
            }
        }
    }

    fn drop_link(&mut self, peer: u32) {
        self.inbound.remove(&peer);
        if self.links.remove(&peer).is_some() {
            metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(self.links.len() as f64);
            self.step(Input::Disconnected { peer });
        }
    }

    fn on_frame(&mut self, peer: u32, frame: frame::Kind) {
        match frame {
            frame::Kind::Core(c) => match wire::from_wire(c) {
                Ok(msg) => self.step(Input::Receive { from: peer, msg }),
                Err(reason) => {
                    self.refuse(peer, "Core", "malformed", reason, true);
                    self.drop_link(peer);
                }
            },
            frame::Kind::LookupRequest(r) => {
                let local = self.lookup_local(&r.cache, &r.key);
                let response = LookupResponse {
                    id: r.id,
                    applied: local.is_some().then(|| self.node.applied()),
                    value: local.flatten().map(Into::into),
                };
                self.send_frame(peer, frame::Kind::LookupResponse(response));
            }
            frame::Kind::LookupResponse(r) => {
                if let Some((reply, cache, key, _)) = self.lookups.remove(&r.id) {
                    let _ = reply.send(self.fetched(&cache, &key, r));
                }
            }
            frame::Kind::Hello(_) | frame::Kind::Auth(_) => {
                let why = "a handshake frame on an open link; closing the link";
                self.refuse(peer, "Hello/Auth", "malformed", why, true);
                self.drop_link(peer);
            }
        }
    }

    /// Logs and counts a peer message this member did not act on.
    fn refuse(&self, peer: u32, what: &str, reason: &'static str, detail: &str, warn: bool) {
        self.parts.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::MESSAGES_REFUSED, "reason" => reason).increment(1);
        if warn {
            tracing::warn!(
                peer,
                message = what,
                reason,
                detail,
                "refused a peer's message"
            );
        } else {
            tracing::debug!(
                peer,
                message = what,
                reason,
                detail,
                "refused a peer's message"
            );
        }
    }

    /// The encoded value this member serves for `key`; `None` when it
    /// serves no reads now.
    fn lookup_local(&self, cache: &str, key: &str) -> Option<Option<Vec<u8>>> {
        if !self.parts.gate.open() {
            return None;
        }
        Some(
            self.parts
                .store
                .erased(cache)
                .ok()
                .and_then(|c| c.get_encoded(key).ok().flatten()),
        )
    }

    /// What a lookup answers once the leader replied. The leader's value is
    /// its state as of the index it had applied; when this member has
    /// applied that far too (entries apply in this same task, so nothing
    /// can slip in between), its own copy is as new and is what it answers:
    /// a key deleted or expired here since is not brought back. Nothing
    /// fetched is ever stored: values enter the caches only through the
    /// log, with their TTL.
    fn fetched(&self, cache: &str, key: &str, r: LookupResponse) -> Result<Option<Vec<u8>>> {
        let Some(at) = r.applied else {
            return Err(Error::NoQuorum); // the leader serves no reads now
        };
        let mine = self.node.applied();
        if mine >= at
            && let Some(local) = self.lookup_local(cache, key)
        {
            // A local miss may be an eviction here: the leader's value holds
            // unless an entry applied here since touched the key.
            if local.is_some() || self.touched(cache, key, at, mine) {
                return Ok(local);
            }
        }
        Ok(r.value.map(|value| value.to_vec()))
    }

    /// Whether an entry in `after + 1..=upto` (as far as the log still
    /// holds them, and not too many to look at) may have changed `key`.
    fn touched(&self, cache: &str, key: &str, after: core::Index, upto: core::Index) -> bool {
        if upto - after > 4096 {
            return true; // too far to look: trust this member's copy
        }
        (after + 1..=upto).any(|i| match self.node.entry(i) {
            Some(e) => {
                e.op.touches()
                    .is_some_and(|(c, k)| c == cache && k.is_none_or(|k| k == key))
            }
            None => true, // compacted: cannot tell
        })
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Write {
                op,
                ack,
                timeout,
                reply,
            } => {
                let cache = match &op {
                    WriteOp::Put { cache, .. }
                    | WriteOp::Delete { cache, .. }
                    | WriteOp::Clear { cache } => cache,
                };
                if let Err(e) = self.parts.store.erased(cache) {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                metrics::counter!(crate::metrics::WRITES, "ack" => ack_label(ack)).increment(1);
                let id = self.next_id;
                self.next_id += 1;
                let op = Arc::new(op_of(op));
                self.writes.insert(
                    id,
                    Waiting {
                        reply,
                        ack,
                        started: Instant::now(),
                        timeout,
                    },
                );
                let deadline = self.now() + timeout;
                self.step(Input::Propose {
                    id,
                    op,
                    ack: ack_of(ack),
                    deadline,
                });
            }
            Request::Lookup { cache, key, reply } => {
                if let Err(e) = self.parts.store.erased(&cache) {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                let leader = self.node.leader();
                match leader.filter(|l| *l != self.parts.me && self.links.contains_key(l)) {
                    Some(leader) if self.health != Health::Bad => {
                        let id = self.next_id;
                        self.next_id += 1;
                        let deadline = Instant::now() + super::LOOKUP_TIMEOUT;
                        let request = LookupRequest {
                            id,
                            cache: cache.clone(),
                            key: key.clone(),
                        };
                        self.lookups.insert(id, (reply, cache, key, deadline));
                        self.send_frame(leader, frame::Kind::LookupRequest(request));
                    }
                    // The leader itself answers from its copy while it
                    // serves; anyone else without a leader to ask fails.
                    _ => {
                        let local = (leader == Some(self.parts.me))
                            .then(|| self.lookup_local(&cache, &key))
                            .flatten();
                        let _ = reply.send(match local {
                            Some(value) => Ok(value),
                            None => Err(Error::NoQuorum),
                        });
                    }
                }
            }
            Request::Shutdown { reply } => {
                self.shutdown.push(reply);
                self.step(Input::Shutdown);
            }
        }
    }

    fn carry_out(&mut self, out: Output) {
        match out {
            Output::Send { to, msg } => self.send(to, &msg),
            Output::Apply(entry) => self.apply(&entry),
            Output::InstallChunk {
                first,
                done,
                last,
                data,
            } => self.install_chunk(first, done, last, &data),
            Output::SendSnapshot { to, term, last } => self.start_snapshot(to, term, last),
            Output::Resolve { id, result } => self.resolve(id, result),
            Output::InvalidateAll => {
                tracing::warn!(
                    links = self.links.len(),
                    members = self.parts.members.len(),
                    "invalidating every cache: this member lost its majority (health Bad) \
                     or holds state it cannot trust; reads miss until it rejoins"
                );
                self.parts.store.clear_all(Origin::Local);
            }
            Output::InvalidateKeys(keys) => {
                for (cache, key) in keys {
                    if let Ok(c) = self.parts.store.erased(&cache) {
                        match key {
                            Some(k) => {
                                c.apply_delete(&k, Origin::Local);
                            }
                            None => c.apply_clear(Origin::Local),
                        }
                    }
                }
            }
            Output::Health(h) => {
                let health = health_of(h);
                tracing::info!(from = ?self.health, to = ?health, links = self.links.len(), "health changed");
                self.health = health;
                metrics::gauge!(crate::metrics::HEALTH).set(match health {
                    Health::Good => 2.0,
                    Health::Degraded => 1.0,
                    Health::Bad => 0.0,
                });
            }
            Output::Serving(until) => {
                let was = self.parts.gate.open();
                match until {
                    Some(until) => self.parts.gate.open_until(self.epoch + until),
                    None => self.parts.gate.close(),
                }
                if was != self.parts.gate.open() {
                    self.publish_status(); // readiness follows at once
                }
            }
            Output::State { term, role, leader } => {
                self.drop_streams(term, role == CoreRole::Leader);
                if role == CoreRole::Candidate {
                    metrics::counter!(crate::metrics::ELECTIONS).increment(1);
                }
                if role != self.role {
                    tracing::info!(term, ?role, ?leader, "role changed");
                }
                self.role = role;
                self.publish_status();
            }
            Output::Rejected { from, what, why } => {
                self.refuse(from, what, why.as_str(), "", why.is_violation());
            }
            Output::ShutdownReady => {
                for reply in self.shutdown.drain(..) {
                    let _ = reply.send(());
                }
            }
        }
        let hello = self.node.hello();
        let state = HelloState {
            term: hello.term,
            last_log_term: hello.last.term,
            last_log_index: hello.last.index,
        };
        self.parts.hello.send_if_modified(|h| {
            let changed = *h != state;
            *h = state;
            changed
        });
    }

    fn apply(&mut self, entry: &core::Entry) {
        let origin = if entry.origin == Some(self.parts.me) {
            Origin::Local
        } else {
            Origin::Peer
        };
        let store = &self.parts.store;
        let result = match &*entry.op {
            Op::Put {
                cache,
                key,
                value,
                ttl_ms,
            } => store.erased(cache).map(|c| {
                if let Err(e) = c.apply_put(
                    key.clone(),
                    value,
                    ttl_ms.map(Duration::from_millis),
                    origin,
                ) {
                    tracing::warn!(cache, key, error = %e, "a replicated value was not applied");
                }
            }),
            Op::Delete { cache, key } => store.erased(cache).map(|c| {
                c.apply_delete(key, origin);
            }),
            Op::Clear { cache } => store.erased(cache).map(|c| c.apply_clear(origin)),
            Op::Noop => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "an entry for a cache this member does not have");
        }
    }

    /// Puts a snapshot chunk's entries into the caches (cleared first by
    /// the first chunk). The core serves nothing meanwhile.
    fn install_chunk(&mut self, first: bool, done: bool, last: core::LogId, data: &[u8]) {
        if first {
            // The core closes the gate at the end of this step; readers must
            // not see the caches half cleared or half installed before.
            self.parts.gate.close();
            self.parts.store.clear_all(Origin::Peer);
            self.installing = Some((0, 0, Instant::now()));
            tracing::info!(%last, "installing a snapshot");
        }
        let (mut restored, mut failed, started) = self.installing.unwrap_or((0, 0, Instant::now()));
        match wire::decode_chunk(data) {
            Ok(caches) => {
                for snap in caches {
                    let Ok(c) = self.parts.store.erased(&snap.cache) else {
                        tracing::warn!(cache = snap.cache, "snapshot of an unknown cache");
                        continue;
                    };
                    for e in snap.entries {
                        let ttl = e.ttl_ms.map(Duration::from_millis);
                        match c.apply_put(e.key, &e.value, ttl, Origin::Peer) {
                            Ok(()) => restored += 1,
                            Err(_) => failed += 1,
                        }
                    }
                }
            }
            // Nothing is served before a whole snapshot; what is missing
            // here is a miss, never a wrong value.
            Err(reason) => tracing::error!(%last, reason, "a snapshot chunk did not decode"),
        }
        self.installing = Some((restored, failed, started));
        if done {
            self.installing = None;
            let ms = started.elapsed().as_millis();
            tracing::info!(%last, restored, failed, ms, "installed a snapshot");
        }
    }

    /// Queues a snapshot for `to` (in place of one already queued for it):
    /// cut into chunks as its link takes them, its keys listed meanwhile.
    fn start_snapshot(&mut self, to: u32, term: core::Term, last: core::LogId) {
        let Some(link) = self.links.get_mut(&to) else {
            return;
        };
        link.backlog.retain(|q| !matches!(q, Queued::Snapshot(_)));
        let id = self.next_stream;
        self.next_stream += 1;
        let stream = SnapshotStream::new(id, term, last);
        let wanted = stream.wanted();
        link.backlog.push_back(Queued::Snapshot(Box::new(stream)));
        // Listing every key scans the caches (about a microsecond a key):
        // not on this task, which keeps applying entries meanwhile, and in
        // batches, so chunks flow from the first one. It is not paced by the
        // stream: pacing it (4 batches ahead) measured worse, writes' p99
        // during a catch-up of 1,000,000 keys 20-22 ms against 9-14 ms when
        // the scan runs at once (about 2 s; the keys cost 8 bytes each).
        let caches: Vec<_> = self.parts.store.caches().cloned().collect();
        let tx = self.listed.0.clone();
        tokio::task::spawn_blocking(move || {
            let all = wire::list_keys(&caches, |cache, keys| {
                wanted.load(Ordering::Relaxed)
                    && tx
                        .blocking_send(Listed::Keys {
                            stream: id,
                            cache,
                            keys,
                        })
                        .is_ok()
            });
            if all {
                let _ = tx.blocking_send(Listed::Done { stream: id });
            }
        });
        tracing::info!(peer = to, %last, "streaming a snapshot");
    }

    /// Keys listed for a snapshot stream (gone if its link or term ended).
    fn on_listed(&mut self, listed: Listed) {
        let id = match &listed {
            Listed::Keys { stream, .. } | Listed::Done { stream } => *stream,
        };
        let stream = self.links.iter_mut().find_map(|(peer, l)| {
            l.backlog.iter_mut().find_map(|q| match q {
                Queued::Snapshot(s) if s.id == id => Some((*peer, s)),
                _ => None,
            })
        });
        let Some((peer, s)) = stream else {
            return;
        };
        match listed {
            Listed::Keys { cache, keys, .. } => s.add_keys(cache, keys),
            Listed::Done { .. } => {
                s.all_listed();
                let ms = s.started.elapsed().as_millis() as u64;
                tracing::info!(peer, listed_in_ms = ms, "snapshot keys listed");
            }
        }
    }

    /// Drops the snapshot streams of another term than `term`, or every
    /// one when this member no longer leads: their followers get a new
    /// leader's snapshot.
    fn drop_streams(&mut self, term: core::Term, leading: bool) {
        for link in self.links.values_mut() {
            link.backlog
                .retain(|q| !matches!(q, Queued::Snapshot(s) if !leading || s.term != term));
        }
    }

    fn resolve(
        &mut self,
        id: RequestId,
        result: std::result::Result<Option<core::LogId>, core::WriteError>,
    ) {
        let Some(w) = self.writes.remove(&id) else {
            return;
        };
        metrics::histogram!(crate::metrics::WRITE_SECONDS, "ack" => ack_label(w.ack))
            .record(w.started.elapsed().as_secs_f64());
        let result = match result {
            Ok(_) => Ok(()),
            Err(core::WriteError::NoQuorum) => Err(Error::NoQuorum),
            Err(core::WriteError::Timeout) => Err(Error::Timeout(w.timeout)),
            Err(core::WriteError::ShuttingDown) => Err(Error::ShutDown),
        };
        let _ = w.reply.send(result);
    }

    fn send(&mut self, to: u32, msg: &Message) {
        self.send_frame(to, frame::Kind::Core(wire::to_wire(msg)));
    }

    /// Sends in order without waiting: what finds the channel full waits in
    /// the link's backlog; a peer that leaves `MAX_BACKLOG` frames or
    /// `MAX_BACKLOG_BYTES` unread loses its link instead of being buffered
    /// for without end.
    fn send_frame(&mut self, peer: u32, kind: frame::Kind) -> bool {
        let Some(link) = self.links.get_mut(&peer) else {
            return false;
        };
        let frame = Frame { kind: Some(kind) };
        let bytes = prost::Message::encoded_len(&frame);
        metrics::counter!(crate::metrics::BYTES_OUT).increment(bytes as u64);
        if !link.backlog.is_empty() {
            link.backlog.push_back(Queued::Frame(frame, bytes));
        } else {
            match link.tx.try_send(frame) {
                Ok(()) => return true,
                Err(TrySendError::Full(frame)) => {
                    link.backlog.push_back(Queued::Frame(frame, bytes))
                }
                Err(TrySendError::Closed(_)) => {
                    self.drop_link(peer);
                    return false;
                }
            }
        }
        link.backlog_bytes += bytes;
        if link.backlog.len() > MAX_BACKLOG || link.backlog_bytes > MAX_BACKLOG_BYTES {
            tracing::warn!(
                peer,
                frames = link.backlog.len(),
                bytes = link.backlog_bytes,
                "peer does not keep up with its link; dropping the link"
            );
            self.drop_link(peer);
            return false;
        }
        true
    }

    /// Moves every link's backlog into its channel while there is room,
    /// cutting snapshot chunks as they go (at most `SNAPSHOT_AHEAD` of them
    /// in a channel).
    fn flush_backlogs(&mut self) {
        let mut closed = Vec::new();
        let (store, applied) = (&self.parts.store, self.node.caches_through());
        for (peer, link) in &mut self.links {
            // One chunk a turn: cutting one takes about a millisecond, and
            // writes and frames are served between two.
            let mut cut = false;
            while let Some(queued) = link.backlog.pop_front() {
                let (frame, bytes) = match queued {
                    Queued::Frame(frame, bytes) => (frame, bytes),
                    Queued::Snapshot(mut stream) => {
                        if stream.done() {
                            tracing::info!(
                                peer,
                                entries = stream.entries,
                                bytes = stream.bytes,
                                ms = stream.started.elapsed().as_millis() as u64,
                                "snapshot sent"
                            );
                            continue;
                        }
                        let in_channel = link.tx.max_capacity() - link.tx.capacity();
                        let chunk = if in_channel < SNAPSHOT_AHEAD && !cut {
                            stream.next_chunk(store, applied)
                        } else {
                            None
                        };
                        link.backlog.push_front(Queued::Snapshot(stream));
                        let Some(chunk) = chunk else {
                            break; // no room for a chunk, one was cut, or not ready
                        };
                        cut = true;
                        let frame = Frame {
                            kind: Some(frame::Kind::Core(redhac_proto::Core {
                                msg: Some(redhac_proto::core::Msg::Snapshot(chunk)),
                            })),
                        };
                        let bytes = prost::Message::encoded_len(&frame);
                        metrics::counter!(crate::metrics::BYTES_OUT).increment(bytes as u64);
                        // Counted as held back until it leaves, like a frame.
                        link.backlog_bytes += bytes;
                        (frame, bytes)
                    }
                };
                link.backlog_bytes -= bytes;
                match link.tx.try_send(frame) {
                    Ok(()) => {}
                    Err(TrySendError::Full(frame)) => {
                        link.backlog_bytes += bytes;
                        link.backlog.push_front(Queued::Frame(frame, bytes));
                        break;
                    }
                    Err(TrySendError::Closed(_)) => {
                        closed.push(*peer);
                        break;
                    }
                }
            }
        }
        for peer in closed {
            self.drop_link(peer);
        }
    }

    /// How many free slots wake the runtime for `link`'s backlog: one for a
    /// frame; for a snapshot, enough that fewer than `SNAPSHOT_AHEAD`
    /// chunks are left in the channel. `None`: nothing to wait for (an empty
    /// backlog, or a snapshot whose keys are still being listed).
    fn room_needed(link: &Link) -> Option<usize> {
        match link.backlog.front()? {
            Queued::Snapshot(s) if !s.ready() => None,
            Queued::Snapshot(_) => Some(
                (link.tx.max_capacity() + 1)
                    .saturating_sub(SNAPSHOT_AHEAD)
                    .max(1),
            ),
            Queued::Frame(..) => Some(1),
        }
    }

    /// Whether this follower's link to its leader holds frames back: then
    /// it takes in no new request (the callers wait) until the link drains.
    fn leader_link_backlogged(&self) -> bool {
        self.role != CoreRole::Leader
            && self
                .node
                .leader()
                .and_then(|l| self.links.get(&l))
                .is_some_and(|l| !l.backlog.is_empty())
    }

    fn publish_status(&self) {
        let s = self.node.status();
        let members = self
            .parts
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let id = i as u32;
                let peer = s.peers.iter().find(|p| p.id == id);
                MemberStatus {
                    id,
                    address: m.to_string(),
                    connected: id == s.me || peer.is_some_and(|p| p.connected),
                    lag: peer
                        .and_then(|p| p.applied)
                        .map(|a| s.commit.saturating_sub(a)),
                }
            })
            .collect();
        self.parts.status.send_replace(Status {
            me: s.me,
            term: s.term,
            role: match s.role {
                CoreRole::Leader => Role::Leader,
                CoreRole::Candidate | CoreRole::PreCandidate => Role::Candidate,
                CoreRole::Follower => Role::Follower,
            },
            leader: s.leader,
            health: health_of(s.health),
            serving: self.parts.gate.open(),
            members,
            applied_index: s.applied,
            commit_index: s.commit,
            // Filled in by `Cluster::status` from the shared counters.
            links_refused: 0,
            messages_refused: 0,
        });
    }
}

fn peer_hello(h: &PeerHello) -> core::PeerHello {
    core::PeerHello {
        term: h.state.term,
        last: core::LogId::new(h.state.last_log_term, h.state.last_log_index),
    }
}
