//! The simulated world: nodes, a network with delays, resets and
//! partitions, per-node clocks, crashes, pauses and client writes, all drawn
//! from one seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{
    Ack, Append, Faults, Health, Input, LogId, MemberId, Message, Node, NodeConfig, NodeRole, Op,
    Output, RequestId, SnapshotChunk, Term, Timing,
};

use crate::invariants::Checker;

/// SplitMix64, for the world's own choices.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5555)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(lo * 1000 + self.below((hi - lo) * 1000))
    }
}

/// What the world schedules.
#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: MemberId,
        to: MemberId,
        epoch: u64,
        msg: Message,
    },
    Tick {
        node: MemberId,
        inc: u64,
    },
    Connect {
        a: MemberId,
        b: MemberId,
    },
    Fault,
    Write,
    Restart {
        node: MemberId,
    },
    /// A stalled link's keepalive expires: reset it if still blocked.
    Keepalive {
        a: MemberId,
        b: MemberId,
    },
    /// The next chunk of a snapshot stream is cut and sent.
    SnapshotChunk {
        stream: u64,
    },
}

/// Keys per snapshot chunk: streams of several chunks.
const CHUNK_KEYS: usize = 2;

/// A snapshot being streamed, as the runtime does it: the keys are listed
/// when it starts, each chunk reads their values when it is cut (so entries
/// applied meanwhile show: a fuzzy snapshot).
#[derive(Debug)]
struct Stream {
    from: MemberId,
    to: MemberId,
    epoch: u64,
    inc: u64,
    term: Term,
    last: LogId,
    keys: Vec<(String, String)>,
    seq: u64,
}

/// A simulated member: the core plus the caches it would keep.
pub(crate) struct SimNode {
    pub(crate) node: Option<Node>,
    pub(crate) inc: u64,
    /// This incarnation's clock reads global time plus this.
    pub(crate) offset: Duration,
    pub(crate) paused_until: Duration,
    pub(crate) store: BTreeMap<(String, String), Vec<u8>>,
    pub(crate) serving_until: Option<Duration>,
    /// The last index applied, as seen from its outputs.
    pub(crate) applied: u64,
    /// Between a snapshot's first and last chunks.
    pub(crate) installing: bool,
    /// A snapshot's `end`: its caches are exact again once applied reaches it.
    pub(crate) fuzzy_until: u64,
    next_id: RequestId,
    /// Writes in flight: id -> (op, ack, proposed at).
    pub(crate) writes: BTreeMap<RequestId, (Arc<Op>, Ack, Duration)>,
}

/// Link state of a pair.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    up: bool,
    epoch: u64,
    connecting: bool,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) nodes: usize,
    pub(crate) seed: u64,
    /// Every node gets the same timer seed (the original's hardest case).
    pub(crate) same_seed: bool,
    pub(crate) faults: Faults,
    /// Crash a voter right after its granted vote arrives, and restart it
    /// at once: crash and restart inside a running election.
    pub(crate) crash_voters: bool,
    /// How long faults are injected before the network heals.
    pub(crate) chaos: Duration,
    /// The log's capacity: small ones make followers need snapshots often.
    pub(crate) log_capacity: usize,
    pub(crate) trace: bool,
}

pub(crate) struct World {
    pub(crate) opts: Options,
    pub(crate) timing: Timing,
    pub(crate) now: Duration,
    pub(crate) rng: Rng,
    pub(crate) nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: BTreeMap<usize, Event>,
    seq: u64,
    links: BTreeMap<(MemberId, MemberId), Link>,
    /// `blocked[(a, b)]`: messages from a to b are dropped.
    blocked: BTreeMap<(MemberId, MemberId), bool>,
    /// FIFO per direction: no delivery before the previous one.
    last_delivery: BTreeMap<(MemberId, MemberId), Duration>,
    streams: BTreeMap<u64, Stream>,
    pub(crate) checker: Checker,
    pub(crate) healed: bool,
    /// Time of the first leader, and of each leader crash and the next leader.
    pub(crate) first_leader: Option<Duration>,
    pub(crate) crash_of_leader: Option<Duration>,
    pub(crate) failovers: Vec<Duration>,
}

impl World {
    pub(crate) fn new(opts: Options) -> Self {
        let mut timing = Timing::new(Duration::from_secs(2));
        timing.log_capacity = opts.log_capacity;
        let mut rng = Rng::new(opts.seed);
        let mut w = Self {
            timing,
            now: Duration::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            links: BTreeMap::new(),
            blocked: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            streams: BTreeMap::new(),
            checker: Checker::new(opts.nodes, timing),
            healed: false,
            first_leader: None,
            crash_of_leader: None,
            failovers: Vec::new(),
            rng: Rng::new(0),
            opts,
        };
        for i in 0..w.opts.nodes {
            let offset = rng.millis(0, 1_000_000);
            w.nodes.push(SimNode {
                node: None,
                inc: 0,
                offset,
                paused_until: Duration::ZERO,
                store: BTreeMap::new(),
                serving_until: None,
                applied: 0,
                installing: false,
                fuzzy_until: 0,
                next_id: 1,
                writes: BTreeMap::new(),
            });
            w.start(i as MemberId);
        }
        w.rng = rng;
        for a in 0..w.opts.nodes as MemberId {
            for b in a + 1..w.opts.nodes as MemberId {
                w.links.insert((a, b), Link::default());
                w.schedule(Duration::ZERO, Event::Connect { a, b });
            }
        }
        w.schedule(w.timing.election_timeout, Event::Fault);
        w.schedule(w.timing.election_timeout / 4, Event::Write);
        w
    }

    /// Runs `f` with the checker and a view of the world.
    pub(crate) fn check<R>(&mut self, f: impl FnOnce(&mut Checker, &World) -> R) -> R {
        let mut c = std::mem::replace(&mut self.checker, Checker::new(0, self.timing));
        let r = f(&mut c, self);
        self.checker = c;
        r
    }

    fn local(&self, node: MemberId) -> Duration {
        self.now + self.nodes[node as usize].offset
    }

    fn start(&mut self, id: MemberId) {
        let seed = if self.opts.same_seed {
            self.opts.seed
        } else {
            self.opts.seed ^ (u64::from(id) << 32)
        };
        let mut config = NodeConfig::new(id, self.opts.nodes, self.timing, seed);
        config.faults = self.opts.faults;
        // Wall clocks agree within a few milliseconds (less than a restart).
        let skew = self.rng.below(5);
        let wall_ms = (self.now.as_millis() as u64 + skew).saturating_sub(2);
        config.term_floor = NodeConfig::wall_clock_floor(wall_ms);
        let n = &mut self.nodes[id as usize];
        n.inc += 1;
        n.store.clear();
        n.serving_until = None;
        n.applied = 0;
        n.installing = false;
        n.fuzzy_until = 0;
        n.writes.clear();
        let local = self.now + n.offset;
        n.node = Some(Node::new(config, local));
        let inc = n.inc;
        self.checker.restarted(id);
        self.schedule(Duration::ZERO, Event::Tick { node: id, inc });
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        self.schedule_at(self.now + after, event);
    }

    fn schedule_at(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        let key = self.seq as usize;
        self.events.insert(key, event);
        self.queue.push(Reverse((at, self.seq, key)));
    }

    fn pair(a: MemberId, b: MemberId) -> (MemberId, MemberId) {
        (a.min(b), a.max(b))
    }

    fn alive(&self, n: MemberId) -> bool {
        self.nodes[n as usize].node.is_some()
    }

    fn can_connect(&self, a: MemberId, b: MemberId) -> bool {
        self.alive(a)
            && self.alive(b)
            && !self.blocked.get(&(a, b)).copied().unwrap_or(false)
            && !self.blocked.get(&(b, a)).copied().unwrap_or(false)
    }

    /// Runs until `end` (simulated time), then returns.
    pub(crate) fn run_until(&mut self, end: Duration) {
        while let Some(Reverse((at, _, key))) = self.queue.peek().copied() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&key).expect("scheduled");
            self.handle(event);
            self.check(|c, w| c.check_all(w));
        }
        self.now = end;
        self.check(|c, w| c.check_all(w));
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, inc } => {
                let n = &self.nodes[node as usize];
                if n.inc != inc || n.node.is_none() {
                    return;
                }
                let next = self.timing.tick() + self.rng.millis(0, 2);
                if n.paused_until > self.now {
                    let at = n.paused_until;
                    self.schedule_at(at, Event::Tick { node, inc });
                    return;
                }
                self.schedule(next, Event::Tick { node, inc });
                self.step(node, Input::Tick);
            }
            Event::Deliver {
                from,
                to,
                epoch,
                msg,
            } => {
                let link = self.links[&Self::pair(from, to)];
                if !link.up || link.epoch != epoch {
                    return;
                }
                let paused = self.nodes[to as usize].paused_until;
                if paused > self.now {
                    self.schedule_at(
                        paused,
                        Event::Deliver {
                            from,
                            to,
                            epoch,
                            msg,
                        },
                    );
                    return;
                }
                let granted = matches!(msg, Message::VoteReply { granted: true, .. });
                self.step(to, Input::Receive { from, msg });
                if granted && self.opts.crash_voters && !self.healed && self.rng.chance(0.3) {
                    self.crash(from);
                }
            }
            Event::Connect { a, b } => {
                let p = Self::pair(a, b);
                self.links.get_mut(&p).expect("pair").connecting = false;
                if self.links[&p].up {
                    return;
                }
                if !self.can_connect(a, b) {
                    return; // retried when healed or restarted
                }
                let l = self.links.get_mut(&p).expect("pair");
                l.up = true;
                l.epoch += 1;
                let (ha, hb) = (self.hello(a), self.hello(b));
                self.step(a, Input::Connected { peer: b, hello: hb });
                self.step(b, Input::Connected { peer: a, hello: ha });
            }
            Event::Keepalive { a, b } => {
                if self.links[&Self::pair(a, b)].up && !self.can_connect(a, b) {
                    self.reset(a, b);
                }
            }
            Event::Restart { node } => {
                if !self.alive(node) {
                    self.start(node);
                    self.reconnect_all();
                }
            }
            Event::Fault => {
                if self.now < self.opts.chaos {
                    self.inject_fault();
                    let next = self.rng.millis(50, 3000);
                    self.schedule(next, Event::Fault);
                }
            }
            Event::SnapshotChunk { stream } => self.cut_chunk(stream),
            Event::Write => {
                self.client_write();
                let next = self.rng.millis(5, 250);
                self.schedule(next, Event::Write);
            }
        }
    }

    fn hello(&self, n: MemberId) -> redhac_membership::PeerHello {
        self.nodes[n as usize].node.as_ref().expect("alive").hello()
    }

    /// Steps a node and carries out its outputs.
    pub(crate) fn step(&mut self, id: MemberId, input: Input) {
        let local = self.local(id);
        let trace = self.opts.trace;
        if trace {
            println!(
                "{:>10.3}ms n{id} <- {}",
                self.now.as_secs_f64() * 1e3,
                describe_input(&input)
            );
        }
        let Some(node) = self.nodes[id as usize].node.as_mut() else {
            return;
        };
        let was_leader = node.status().role == NodeRole::Leader;
        let outputs = node.step(local, input);
        let status = node.status();
        for out in outputs {
            if trace {
                println!(
                    "{:>10.3}ms n{id} -> {}",
                    self.now.as_secs_f64() * 1e3,
                    describe_output(&out)
                );
            }
            self.carry_out(id, out);
        }
        if status.role == NodeRole::Leader && !was_leader {
            self.check(|c, w| c.became_leader(w, id));
            if self.first_leader.is_none() {
                self.first_leader = Some(self.now);
            }
            if let Some(crash) = self.crash_of_leader.take() {
                self.failovers.push(self.now - crash);
            }
        }
    }

    fn carry_out(&mut self, id: MemberId, out: Output) {
        match out {
            Output::Send { to, msg } => self.transmit(id, to, msg),
            Output::Apply(entry) => {
                self.check(|c, w| c.applied(w, id, &entry));
                let n = &mut self.nodes[id as usize];
                n.applied = entry.id.index;
                match &*entry.op {
                    Op::Put {
                        cache, key, value, ..
                    } => {
                        n.store.insert((cache.clone(), key.clone()), value.clone());
                    }
                    Op::Delete { cache, key } => {
                        n.store.remove(&(cache.clone(), key.clone()));
                    }
                    Op::Clear { cache } => n.store.retain(|(c, _), _| c != cache),
                    Op::Noop => {}
                }
            }
            Output::InstallChunk {
                first,
                done,
                last,
                data,
            } => {
                let (part, end) = self.checker.chunk(&data);
                self.check(|c, w| c.installed(w, id, last, end, &part));
                let n = &mut self.nodes[id as usize];
                if first {
                    n.store.clear();
                }
                n.store.extend(part);
                n.installing = !done;
                if done {
                    n.applied = last.index;
                    n.fuzzy_until = end;
                }
            }
            Output::SendSnapshot { to, term, last } => {
                let n = &self.nodes[id as usize];
                let stream = Stream {
                    from: id,
                    to,
                    epoch: self.links[&Self::pair(id, to)].epoch,
                    inc: n.inc,
                    term,
                    last,
                    keys: n.store.keys().rev().cloned().collect(),
                    seq: 0,
                };
                self.seq += 1;
                let key = self.seq;
                self.streams.insert(key, stream);
                let after = self.rng.millis(0, 3);
                self.schedule(after, Event::SnapshotChunk { stream: key });
            }
            Output::Resolve { id: req, result } => {
                self.check(|c, w| c.resolved(w, id, req, result));
                self.nodes[id as usize].writes.remove(&req);
            }
            Output::InvalidateAll => {
                // Empty caches hold nothing half-installed.
                let n = &mut self.nodes[id as usize];
                n.store.clear();
                n.installing = false;
            }
            Output::InvalidateKeys(keys) => {
                let n = &mut self.nodes[id as usize];
                for (cache, key) in keys {
                    match key {
                        Some(k) => {
                            n.store.remove(&(cache, k));
                        }
                        None => n.store.retain(|(c, _), _| *c != cache),
                    }
                }
                n.applied = n.node.as_ref().expect("alive").status().applied;
            }
            Output::Serving(until) => self.nodes[id as usize].serving_until = until,
            Output::Rejected { from, what, why } => {
                self.check(|c, w| c.rejected(w, id, from, what, why));
            }
            Output::Health(_) | Output::State { .. } | Output::ShutdownReady => {}
        }
    }

    fn transmit(&mut self, from: MemberId, to: MemberId, msg: Message) {
        let link = self.links[&Self::pair(from, to)];
        if !link.up || self.blocked.get(&(from, to)).copied().unwrap_or(false) {
            return;
        }
        // Mostly sub-millisecond, sometimes a spike.
        let delay = if self.rng.chance(0.02) {
            self.rng.millis(5, 60)
        } else {
            self.rng.millis(0, 2)
        };
        let dir = (from, to);
        let at = (self.now + delay).max(self.last_delivery.get(&dir).copied().unwrap_or_default());
        self.last_delivery.insert(dir, at);
        self.schedule_at(
            at,
            Event::Deliver {
                from,
                to,
                epoch: link.epoch,
                msg,
            },
        );
    }

    /// Cuts and sends a stream's next chunk, from the sender's caches now.
    fn cut_chunk(&mut self, key: u64) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        let (from, to) = (s.from, s.to);
        let n = &self.nodes[from as usize];
        let link = self.links[&Self::pair(from, to)];
        if n.node.is_none() || n.inc != s.inc || !link.up || link.epoch != s.epoch {
            self.streams.remove(&key); // the stream ends with its link
            return;
        }
        if n.paused_until > self.now {
            let at = n.paused_until;
            self.schedule_at(at, Event::SnapshotChunk { stream: key });
            return;
        }
        let mut part = BTreeMap::new();
        for _ in 0..CHUNK_KEYS {
            let Some(k) = s.keys.pop() else { break };
            if let Some(v) = n.store.get(&k) {
                part.insert(k, v.clone());
            }
        }
        let done = s.keys.is_empty();
        let end = n.node.as_ref().map_or(n.applied, Node::caches_through);
        let chunk = SnapshotChunk {
            term: s.term,
            last: s.last,
            seq: s.seq,
            end: done.then_some(end),
            data: self.checker.take_chunk(part, end),
        };
        s.seq += 1;
        if done {
            self.streams.remove(&key);
        } else {
            let after = self.rng.millis(1, 30);
            self.schedule(after, Event::SnapshotChunk { stream: key });
        }
        self.transmit(from, to, Message::Snapshot(chunk));
    }

    /// Closes a link: in-flight messages are lost and both ends are told.
    fn reset(&mut self, a: MemberId, b: MemberId) {
        let p = Self::pair(a, b);
        let link = self.links.get_mut(&p).expect("pair");
        if !link.up {
            return;
        }
        link.up = false;
        link.epoch += 1;
        for (x, y) in [(a, b), (b, a)] {
            if self.alive(x) {
                self.step(x, Input::Disconnected { peer: y });
            }
        }
        self.redial(a, b);
    }

    fn redial(&mut self, a: MemberId, b: MemberId) {
        let p = Self::pair(a, b);
        let link = self.links.get_mut(&p).expect("pair");
        if !link.connecting {
            link.connecting = true;
            let after = self.rng.millis(5, 60);
            self.schedule(after, Event::Connect { a, b });
        }
    }

    fn reconnect_all(&mut self) {
        let pairs: Vec<_> = self.links.keys().copied().collect();
        for (a, b) in pairs {
            if !self.links[&(a, b)].up && self.can_connect(a, b) {
                self.redial(a, b);
            }
        }
    }

    /// Heals every partition and pause and restarts crashed nodes.
    pub(crate) fn heal(&mut self) {
        self.healed = true;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            self.nodes[i].paused_until = self.nodes[i].paused_until.min(self.now);
            if !self.alive(i as MemberId) {
                self.start(i as MemberId);
            }
        }
        self.reconnect_all();
    }

    fn inject_fault(&mut self) {
        let n = self.nodes.len() as u64;
        let a = self.rng.below(n) as MemberId;
        let b = ((u64::from(a) + 1 + self.rng.below(n - 1)) % n) as MemberId;
        match self.rng.below(10) {
            0 | 1 => self.reset(a, b),
            2 => {
                // Symmetric partition: a random side against the rest. Links
                // stall (no reset) until their keepalive expires.
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for x in 0..n as MemberId {
                    for y in 0..n as MemberId {
                        if x != y && side[x as usize] != side[y as usize] {
                            self.blocked.insert((x, y), true);
                            if x < y {
                                self.stall(x, y);
                            }
                        }
                    }
                }
            }
            3 => {
                // One-sided: a stops hearing b; the link stalls until its
                // keepalive expires.
                self.blocked.insert((b, a), true);
                self.stall(a, b);
            }
            4 | 5 => {
                self.blocked.clear();
                self.reconnect_all();
            }
            6 => self.crash(a),
            7 => {
                // A pause (or a clock jump): the node stops, then resumes
                // with its clock moved on.
                let pause = self.rng.millis(10, 5000);
                let node = &mut self.nodes[a as usize];
                node.paused_until = node.paused_until.max(self.now + pause);
            }
            _ => {
                if self.nodes.iter().any(|n| n.node.is_none()) {
                    let dead: Vec<_> = (0..n as MemberId).filter(|&i| !self.alive(i)).collect();
                    let pick = dead[self.rng.below(dead.len() as u64) as usize];
                    self.schedule(Duration::ZERO, Event::Restart { node: pick });
                } else {
                    self.reset(a, b);
                }
            }
        }
    }

    fn stall(&mut self, a: MemberId, b: MemberId) {
        let keepalive = self.timing.election_timeout + self.rng.millis(0, 3000);
        self.schedule(keepalive, Event::Keepalive { a, b });
    }

    /// Crashes a node, if a majority of live nodes still holds every
    /// committed entry afterwards (the guarantee is for a surviving majority).
    fn crash(&mut self, victim: MemberId) {
        if !self.alive(victim) || !self.checker.may_crash(self, victim) {
            return;
        }
        let was_leader = self.nodes[victim as usize]
            .node
            .as_ref()
            .is_some_and(|n| n.status().role == NodeRole::Leader);
        if self.opts.trace {
            println!("{:>10.3}ms n{victim} CRASH", self.now.as_secs_f64() * 1e3);
        }
        self.nodes[victim as usize].node = None;
        self.nodes[victim as usize].serving_until = None;
        if was_leader {
            self.crash_of_leader = Some(self.now);
        }
        let others: Vec<MemberId> = (0..self.nodes.len() as MemberId)
            .filter(|&x| x != victim)
            .collect();
        for o in others {
            self.reset(victim, o);
        }
        let after = if self.opts.crash_voters {
            self.rng.millis(1, 50)
        } else {
            self.rng.millis(100, 6000)
        };
        self.schedule(after, Event::Restart { node: victim });
    }

    fn client_write(&mut self) {
        let n = self.nodes.len() as u64;
        let at = self.rng.below(n) as MemberId;
        if !self.alive(at) || self.nodes[at as usize].paused_until > self.now {
            return;
        }
        let key = format!("k{}", self.rng.below(8));
        let value = self.seq.to_le_bytes().to_vec();
        let op = match self.rng.below(20) {
            0 => Op::Clear { cache: "c".into() },
            1..=4 => Op::Delete {
                cache: "c".into(),
                key,
            },
            _ => Op::Put {
                cache: "c".into(),
                key,
                value,
                ttl_ms: None,
            },
        };
        let ack = match self.rng.below(4) {
            0 => Ack::None,
            1 => Ack::Leader,
            2 => Ack::Quorum,
            _ => Ack::All,
        };
        let node = &mut self.nodes[at as usize];
        let id = node.next_id;
        node.next_id += 1;
        let op = Arc::new(op);
        node.writes.insert(id, (Arc::clone(&op), ack, self.now));
        let deadline = self.local(at) + self.timing.election_timeout * 3;
        self.step(
            at,
            Input::Propose {
                id,
                op,
                ack,
                deadline,
            },
        );
    }

    /// Whether node `id` serves reads now.
    pub(crate) fn serving(&self, id: MemberId) -> bool {
        let n = &self.nodes[id as usize];
        n.node.is_some()
            && n.paused_until <= self.now
            && n.serving_until.is_some_and(|u| self.local(id) < u)
    }

    /// The settled state: one leader, everyone Good and following it.
    pub(crate) fn settled(&self) -> bool {
        let statuses: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref().map(Node::status))
            .collect();
        if statuses.len() != self.nodes.len() {
            return false;
        }
        let leaders: Vec<_> = statuses
            .iter()
            .filter(|s| s.role == NodeRole::Leader)
            .collect();
        let [leader] = leaders.as_slice() else {
            return false;
        };
        statuses.iter().all(|s| {
            s.health == Health::Good && s.term == leader.term && s.leader == Some(leader.me)
        })
    }
}

fn describe_input(i: &Input) -> String {
    match i {
        Input::Receive { from, msg } => format!("from n{from}: {}", short(msg)),
        other => format!("{other:?}"),
    }
}

fn describe_output(o: &Output) -> String {
    match o {
        Output::Send { to, msg } => format!("to n{to}: {}", short(msg)),
        Output::Apply(e) => format!("apply {} {:?}", e.id, e.op),
        other => format!("{other:?}"),
    }
}

fn short(m: &Message) -> String {
    match m {
        Message::Append(Append {
            term,
            prev,
            entries,
            commit,
            lease,
            ..
        }) => format!(
            "append t{term} prev {prev} n={} commit {commit} lease {lease}",
            entries.len()
        ),
        Message::Snapshot(c) => format!(
            "snapshot t{} last {} chunk {} end {:?}",
            c.term, c.last, c.seq, c.end
        ),
        other => format!("{other:?}"),
    }
}
