//! The simulated world: nodes, a network with delays, resets and
//! partitions, per-node clocks, crashes, pauses and client writes, all drawn
//! from one seed. Here: the world, its event queue and what it reports of
//! itself; each concern in a submodule.

mod chaos;
mod member;
mod network;
mod streams;
mod trace;
mod workload;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use redhac_membership::{
    Faults, Health, MemberId, Membership, Message, Node, NodeRole, Term, Timing,
};

use crate::invariants::Checker;
use member::SimNode;
use network::Link;
use streams::Stream;

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
    /// A node that shut down gracefully exits (its process ends).
    Exit {
        node: MemberId,
        inc: u64,
    },
    /// A node reset its link (of that epoch) to a peer that fell silent.
    Reset {
        a: MemberId,
        b: MemberId,
        epoch: u64,
    },
    /// The next chunk of a snapshot stream is cut and sent.
    SnapshotChunk {
        stream: u64,
    },
    /// An operator changes the membership (and will again, when `again`).
    Reconfigure {
        again: bool,
    },
    /// The application asks the leader to step down (and will again).
    StepDown,
    /// A member the leader said was removed stops; a new one starts in
    /// its place.
    Removed {
        node: MemberId,
        inc: u64,
    },
    /// A member of the first ones starts (a bootstrap's members start at
    /// different moments).
    Start {
        node: MemberId,
    },
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
    /// Of `nodes`, the last `spares` are not members at first, the
    /// `learners` before them learners; the others vote.
    pub(crate) learners: usize,
    pub(crate) spares: usize,
    /// An operator changes the membership while faults go on.
    pub(crate) changes: bool,
    /// The application makes leaders step down while faults go on.
    pub(crate) step_downs: bool,
    /// Every start is a new member (the dynamic mode: a member's id is
    /// drawn per incarnation). A crashed member never comes back: a new
    /// one starts in its place knowing only the first member list (nothing
    /// the cluster could tell it), and the leaders' autopilot adds it,
    /// promotes learners and removes the members gone.
    pub(crate) fresh_identities: bool,
    /// A member restarted under its old id knows only the first list, as
    /// the runtime's would: what fresh identities exist to avoid (only for
    /// the test that shows it).
    pub(crate) restart_blind: bool,
    /// With fresh identities: no member knows a membership at first; the
    /// first ones start within 2 s of each other and bootstrap a cluster
    /// of `AUTOPILOT_VOTERS` (`NodeConfig::bootstrap_expect`), each member
    /// appearing in discovery up to `discovery_lag` after it started; no
    /// member crashes or exits before a membership was committed.
    pub(crate) bootstrap: bool,
    pub(crate) discovery_lag: Duration,
    /// Faults begin at once (else after an election timeout).
    pub(crate) early_faults: bool,
    /// Each pair's link is cut from the start with this chance.
    pub(crate) start_cut: f64,
    pub(crate) trace: bool,
}

pub(crate) struct World {
    opts: Options,
    pub(crate) timing: Timing,
    pub(crate) now: Duration,
    rng: Rng,
    pub(crate) nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: BTreeMap<usize, Event>,
    seq: u64,
    links: BTreeMap<(MemberId, MemberId), Link>,
    /// `blocked[(a, b)]`: messages from a to b are dropped.
    blocked: BTreeMap<(MemberId, MemberId), bool>,
    /// `stalled[(a, b)] == epoch`: that link was up while a to b was
    /// blocked; as a half-open connection, that direction delivers nothing
    /// more, even once the network heals, until an end resets the link.
    stalled: BTreeMap<(MemberId, MemberId), u64>,
    /// FIFO per direction: no delivery before the previous one.
    last_delivery: BTreeMap<(MemberId, MemberId), Duration>,
    streams: BTreeMap<u64, Stream>,
    pub(crate) checker: Checker,
    healed: bool,
    /// Time of the first leader, and of each leader crash and the next leader.
    pub(crate) first_leader: Option<Duration>,
    crash_of_leader: Option<Duration>,
    /// The node being stepped, when it led at the start of the step.
    pub(crate) leader_stepping: Option<(MemberId, Term)>,
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
            stalled: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            streams: BTreeMap::new(),
            checker: Checker::new(opts.nodes, timing),
            healed: false,
            first_leader: None,
            crash_of_leader: None,
            leader_stepping: None,
            failovers: Vec::new(),
            rng: Rng::new(0),
            opts,
        };
        for i in 0..w.opts.nodes {
            let offset = rng.millis(0, 1_000_000);
            w.nodes.push(SimNode::new(offset));
            if w.opts.bootstrap {
                let at = rng.millis(0, 2000);
                w.schedule(
                    at,
                    Event::Start {
                        node: i as MemberId,
                    },
                );
            } else {
                w.start(i as MemberId);
            }
        }
        if w.opts.start_cut > 0.0 {
            // A partial partition from the start: each pair cut with some
            // chance, so members see different sets of others (until the
            // chaos clears it).
            for a in 0..w.opts.nodes as MemberId {
                for b in a + 1..w.opts.nodes as MemberId {
                    if rng.chance(w.opts.start_cut) {
                        w.blocked.insert((a, b), true);
                        w.blocked.insert((b, a), true);
                    }
                }
            }
        }
        w.rng = rng;
        for a in 0..w.opts.nodes as MemberId {
            for b in a + 1..w.opts.nodes as MemberId {
                w.links.insert((a, b), Link::default());
                w.schedule(Duration::ZERO, Event::Connect { a, b });
            }
        }
        let first_fault = if w.opts.early_faults {
            Duration::from_millis(50)
        } else {
            w.timing.election_timeout
        };
        w.schedule(first_fault, Event::Fault);
        if w.opts.changes {
            w.schedule(
                w.timing.election_timeout * 2,
                Event::Reconfigure { again: true },
            );
        }
        if w.opts.step_downs {
            w.schedule(w.timing.election_timeout * 2, Event::StepDown);
        }
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

    fn schedule(&mut self, after: Duration, event: Event) {
        self.schedule_at(self.now + after, event);
    }

    fn schedule_at(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        let key = self.seq as usize;
        self.events.insert(key, event);
        self.queue.push(Reverse((at, self.seq, key)));
    }

    fn alive(&self, n: MemberId) -> bool {
        self.nodes[n as usize].node.is_some()
    }

    /// Whether every start is a new member.
    pub(crate) fn fresh_identities(&self) -> bool {
        self.opts.fresh_identities
    }

    /// Whether members start in no cluster and bootstrap one.
    pub(crate) fn bootstraps(&self) -> bool {
        self.opts.bootstrap
    }

    /// Whether a member may crash or exit now: in a bootstrap, not before a
    /// membership was committed (the bootstrap is safe while fewer than
    /// twice `bootstrap_expect` members start before it; a crashed member's
    /// replacement is one more).
    fn may_go(&self) -> bool {
        !self.opts.bootstrap || self.checker.committed_membership().is_some()
    }

    /// How many members other than `id` discovery lists now: those running
    /// that started long enough ago (each appears after a lag of its own).
    fn discovered(&self, id: MemberId) -> usize {
        (0..self.nodes.len() as MemberId)
            .filter(|&p| p != id && self.alive(p))
            .filter(|&p| self.nodes[p as usize].discoverable <= self.now)
            .count()
    }

    /// The members running now.
    fn running(&self) -> Vec<MemberId> {
        (0..self.nodes.len() as MemberId)
            .filter(|&i| self.alive(i))
            .collect()
    }

    /// A new member (a new id) starts and dials every running member.
    fn join(&mut self) {
        let id = self.nodes.len() as MemberId;
        let offset = self.rng.millis(0, 1_000_000);
        self.nodes.push(SimNode::new(offset));
        for other in 0..id {
            self.links.insert((other, id), Link::default());
        }
        self.start(id);
        self.reconnect_all();
        *self.checker.resolved.entry("joined").or_insert(0) += 1;
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
            Event::Tick { node, inc } => self.tick(node, inc),
            Event::Deliver {
                from,
                to,
                epoch,
                msg,
            } => self.deliver(from, to, epoch, msg),
            Event::Connect { a, b } => self.connect(a, b),
            Event::Reset { a, b, epoch } => {
                if self.links[&Self::pair(a, b)].epoch == epoch {
                    self.reset(a, b);
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Exit { node, inc } => self.exit(node, inc),
            Event::Fault => self.fault(),
            Event::SnapshotChunk { stream } => self.cut_chunk(stream),
            Event::Write => self.write(),
            Event::Reconfigure { again } => self.reconfigure(again),
            Event::StepDown => self.step_down(),
            Event::Removed { node, inc } => self.removed(node, inc),
            Event::Start { node } => {
                self.start(node);
                self.reconnect_all();
            }
        }
    }

    /// Whether node `id` votes by its own membership (the latest in its
    /// log); a node not running does not.
    pub(crate) fn is_voter(&self, id: MemberId) -> bool {
        self.nodes[id as usize]
            .node
            .as_ref()
            .is_some_and(|n| n.membership().is_voter(id))
    }

    /// Who is in the cluster and who votes at first.
    pub(crate) fn membership(&self) -> Membership {
        let listed = (self.opts.nodes - self.opts.spares) as MemberId;
        let voters = listed - self.opts.learners as MemberId;
        Membership::new(0..voters, voters..listed).expect("valid")
    }

    /// Whether node `id` serves reads now.
    pub(crate) fn serving(&self, id: MemberId) -> bool {
        let n = &self.nodes[id as usize];
        n.node.is_some()
            && n.paused_until <= self.now
            && n.serving_until.is_some_and(|u| self.local(id) < u)
    }

    /// The settled state: one leader, every member of its membership
    /// running, Good, following it with the same membership, and serving
    /// (and with fresh identities, as many voters as the autopilot keeps).
    pub(crate) fn settled(&self) -> bool {
        let running: Vec<&Node> = self.nodes.iter().filter_map(|n| n.node.as_ref()).collect();
        let leaders: Vec<&Node> = running
            .iter()
            .copied()
            .filter(|n| n.status().role == NodeRole::Leader)
            .collect();
        let [leader] = leaders.as_slice() else {
            return false;
        };
        let (membership, leader) = (leader.membership(), leader.status());
        let members: Vec<&Node> = running
            .iter()
            .copied()
            .filter(|n| membership.contains(n.status().me))
            .collect();
        if members.len() != membership.len() {
            return false;
        }
        // The autopilot has made up its voters again.
        if self.opts.fresh_identities && membership.voter_count() != member::AUTOPILOT_VOTERS {
            return false;
        }
        // Every member serves, too: a link that carries nothing any more
        // (left half-open by a partition) would keep one from it.
        members.iter().all(|n| {
            let s = n.status();
            n.membership() == membership
                && s.health == Health::Good
                && s.term == leader.term
                && s.leader == Some(leader.me)
                && s.serving_until.is_some_and(|u| self.local(s.me) < u)
        })
    }
}
