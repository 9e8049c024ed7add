//! The node: its state, `step`, ticks, links, health and the serving state.

use std::collections::BTreeMap;
use std::time::Duration;

#[cfg(feature = "faults")]
use crate::faults::Faults;
use crate::faults::broken;
use crate::log::Log;
use crate::quorum;
use crate::rng::Rng;
use crate::timing::Timing;
use crate::types::{
    Health, Index, Input, LogId, MemberId, Message, Output, PeerHello, Rejection, RequestId, Role,
    Term,
};
use crate::writes::Pending;

/// What a node is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's index in the member list.
    pub me: MemberId,
    /// How many members the list has.
    pub members: usize,
    /// Timeouts and limits.
    pub timing: Timing,
    /// Seed of the node's random timeouts. Mixed with `me`, so members given
    /// the same seed still draw different timeouts.
    pub seed: u64,
    /// The lowest term this incarnation may vote or stand in: the wall clock
    /// at start in milliseconds times 1024 ([`Config::wall_clock_floor`]).
    /// Votes live in memory, so without it a restarted member could vote
    /// twice in a term, or a majority that restarted at once could reuse a
    /// term an older leader still holds entries of. With it, every term a
    /// restarted member takes part in is newer than any before its start,
    /// as long as the members' clocks agree within the time a restart takes.
    /// (A healthy leader that meets a restarted member's higher term stands
    /// again above it at once, so a restart costs a round trip, not an
    /// election timeout.)
    pub term_floor: Term,
    /// Rules to break on purpose, so the simulation can show it catches
    /// each broken invariant. All off by default; never set them otherwise.
    #[cfg(feature = "faults")]
    #[doc(hidden)]
    pub faults: Faults,
}

impl Config {
    /// A member `me` of `members`, with `timing` and a timer seed.
    pub fn new(me: MemberId, members: usize, timing: Timing, seed: u64) -> Self {
        Self {
            me,
            members,
            timing,
            seed,
            term_floor: 0,
            #[cfg(feature = "faults")]
            faults: Faults::default(),
        }
    }

    /// The floor for a member starting at `unix_millis` (wall clock).
    pub fn wall_clock_floor(unix_millis: u64) -> Term {
        unix_millis.saturating_mul(1024)
    }
}

/// The leader's view of one follower.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// The next index to send.
    pub(crate) next: Index,
    /// The follower holds the leader's log up to here.
    pub(crate) matched: Index,
    /// The follower applied up to here.
    pub(crate) applied: Index,
    /// Frames with entries sent and not yet answered.
    pub(crate) inflight: usize,
    /// After a rejection: one frame at a time until one is accepted.
    pub(crate) probing: bool,
    /// When the latest reply arrived (leader's clock).
    pub(crate) last_ack: Option<Duration>,
    /// The follower's own stamp from that reply, echoed back.
    pub(crate) echo: Option<Duration>,
    /// The latest leader stamp the follower echoed.
    pub(crate) stamp: Option<Duration>,
    /// The follower's caches were cleared: send it a snapshot.
    pub(crate) wants_snapshot: bool,
    /// When a snapshot last went out to it.
    pub(crate) snapshot_sent: Option<Duration>,
    /// The snapshot being streamed to it, until it acknowledges it: nothing
    /// else of the log goes to it meanwhile, and the log keeps what follows.
    pub(crate) streaming: Option<LogId>,
    /// Its first echo arrived: send at once, so its lease starts now rather
    /// than at the next heartbeat.
    pub(crate) prompt: bool,
    /// When the leader last sent this follower anything.
    pub(crate) last_sent: Duration,
}

impl Progress {
    /// Gives up on the snapshot streaming to this follower; it gets a
    /// newer one at the next flush.
    pub(crate) fn restart_snapshot(&mut self) {
        self.streaming = None;
        self.wants_snapshot = true;
    }

    pub(crate) fn new(next: Index, now: Duration) -> Self {
        Self {
            next,
            matched: 0,
            applied: 0,
            inflight: 0,
            probing: true,
            last_ack: None,
            echo: None,
            stamp: None,
            wants_snapshot: false,
            snapshot_sent: None,
            streaming: None,
            prompt: false,
            last_sent: now.saturating_sub(Duration::from_secs(3600)),
        }
    }
}

/// One member's view, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The member.
    pub id: MemberId,
    /// Whether a link is up.
    pub connected: bool,
    /// On the leader: up to where it holds the leader's log.
    pub matched: Option<Index>,
    /// On the leader: up to where it applied.
    pub applied: Option<Index>,
}

/// A node's state, for status pages and the runtime's Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This member.
    pub me: MemberId,
    /// The term.
    pub term: Term,
    /// The role.
    pub role: Role,
    /// The leader, when known.
    pub leader: Option<MemberId>,
    /// Health by links.
    pub health: Health,
    /// The last entry in the log.
    pub last: LogId,
    /// The commit index known here.
    pub commit: Index,
    /// Entries applied to the caches.
    pub applied: Index,
    /// Serving local reads until this time.
    pub serving_until: Option<Duration>,
    /// Every other member.
    pub peers: Vec<PeerStatus>,
}

/// One member's cluster core. See the crate docs for the protocol.
#[derive(Debug)]
pub struct Node {
    pub(crate) me: MemberId,
    #[cfg(feature = "faults")]
    pub(crate) faults: Faults,
    pub(crate) members: usize,
    pub(crate) timing: Timing,
    pub(crate) rng: Rng,
    pub(crate) now: Duration,
    pub(crate) started: Duration,

    pub(crate) term: Term,
    pub(crate) voted_for: Option<MemberId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<MemberId>,
    /// The leader of the latest term one was known of, kept when its link
    /// drops: no one else may lead that term.
    pub(crate) term_leader: Option<(Term, MemberId)>,
    /// When the current leader was last heard (a message of its term).
    pub(crate) heard_leader: Option<Duration>,
    /// When to try an election, unless a leader is heard before.
    pub(crate) election_at: Duration,
    /// This incarnation never votes or stands below this term.
    pub(crate) floor: Term,
    /// Replies to the current pre-vote or vote: member -> granted.
    pub(crate) votes: BTreeMap<MemberId, bool>,

    pub(crate) log: Log,
    pub(crate) commit: Index,
    pub(crate) applied: Index,
    /// The caches were cleared (health Bad): ask the leader for a snapshot.
    pub(crate) needs_snapshot: bool,
    /// The snapshot being installed: (term, last, next chunk; `None` once a
    /// chunk was missed). From its first chunk until its last, the caches
    /// are neither the old state nor the new one: no lease is renewed.
    pub(crate) installing: Option<(Term, LogId, Option<u64>)>,
    /// The `end` of the latest snapshot installed: until the log replays
    /// past it, the caches may show entries beyond `applied`.
    pub(crate) fuzzy_end: Index,

    pub(crate) links: BTreeMap<MemberId, PeerHello>,
    pub(crate) health: Health,

    // Leader state.
    pub(crate) progress: BTreeMap<MemberId, Progress>,
    pub(crate) leader_since: Duration,
    /// Index of the leader's first entry in its term; it serves after that
    /// entry is committed.
    pub(crate) term_start: Index,
    pub(crate) commit_dirty: bool,
    /// `All` writes waiting for every member: (origin, request, index);
    /// origin `None` is this node.
    pub(crate) awaiting_all: Vec<(Option<MemberId>, RequestId, Index)>,
    /// Handing over to (member, deadline).
    pub(crate) transfer: Option<(MemberId, Duration)>,

    // Follower read lease (this node's clock).
    pub(crate) lease_until: Option<Duration>,
    pub(crate) reported_serving: Option<Duration>,

    pub(crate) pending: BTreeMap<RequestId, Pending>,
    pub(crate) shutting_down: bool,
    pub(crate) out: Vec<Output>,
}

impl Node {
    /// A node that starts now, with an empty log at term 0, knowing no leader.
    pub fn new(config: Config, now: Duration) -> Self {
        let timing = config.timing;
        let mut rng = Rng::new(config.seed, config.me);
        let members = config.members.max(1);
        let floor = if broken!(config, no_term_floor) {
            0
        } else {
            config.term_floor
        };
        let election_at = now + rng.between(timing.election_timeout, timing.election_timeout * 2);
        Self {
            me: config.me,
            #[cfg(feature = "faults")]
            faults: config.faults,
            members,
            timing,
            rng,
            now,
            started: now,
            term: floor,
            voted_for: None,
            role: Role::Follower,
            leader: None,
            term_leader: None,
            heard_leader: None,
            election_at,
            floor,
            votes: BTreeMap::new(),
            log: Log::default(),
            commit: 0,
            applied: 0,
            needs_snapshot: false,
            installing: None,
            fuzzy_end: 0,
            links: BTreeMap::new(),
            health: quorum::health(1, members),
            progress: BTreeMap::new(),
            leader_since: now,
            term_start: 0,
            commit_dirty: false,
            awaiting_all: Vec::new(),
            transfer: None,
            lease_until: None,
            reported_serving: None,
            pending: BTreeMap::new(),
            shutting_down: false,
            out: Vec::new(),
        }
    }

    /// Feeds one input at time `now` (this node's monotonic clock; a value
    /// smaller than an earlier one is taken as the earlier one) and returns
    /// what the runtime must do, in order.
    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Output> {
        self.now = self.now.max(now);
        match input {
            Input::Tick => self.tick(),
            Input::Connected { peer, hello } => self.connected(peer, hello),
            Input::Disconnected { peer } => self.disconnected(peer),
            Input::Receive { from, msg } => self.receive(from, msg),
            Input::Propose {
                id,
                op,
                ack,
                deadline,
            } => self.propose(id, op, ack, deadline),
            Input::Shutdown => self.shutdown(),
        }
        self.settle();
        if self.role == Role::Leader {
            self.flush();
        }
        self.report_serving();
        std::mem::take(&mut self.out)
    }

    /// The node's state now.
    pub fn status(&self) -> NodeStatus {
        let peers = (0..self.members as MemberId)
            .filter(|&id| id != self.me)
            .map(|id| {
                let p = self.progress.get(&id);
                PeerStatus {
                    id,
                    connected: self.links.contains_key(&id),
                    matched: p.map(|p| p.matched),
                    applied: p.map(|p| p.applied),
                }
            })
            .collect();
        NodeStatus {
            me: self.me,
            term: self.term,
            role: self.role,
            leader: self.leader,
            health: self.health,
            last: self.log.last(),
            commit: self.commit,
            applied: self.applied,
            serving_until: self.serving_until(),
            peers,
        }
    }

    /// What this node says about itself in a Hello.
    pub fn hello(&self) -> PeerHello {
        PeerHello {
            term: self.term,
            last: self.log.last(),
        }
    }

    /// When the core next needs a `Tick` (this node's clock): the runtime may
    /// tick more often, but ticking at this time keeps elections prompt.
    pub fn next_deadline(&self) -> Duration {
        if self.role == Role::Leader {
            self.now + self.timing.heartbeat / 2
        } else {
            self.election_at.max(self.now)
        }
    }

    /// The entry at `index`, while the log tail holds it.
    pub fn entry(&self, index: Index) -> Option<&crate::types::Entry> {
        self.log.get(index)
    }

    /// Up to where this node has applied entries (cheaper than
    /// [`Node::status`]).
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The highest index whose effects the caches may show: the applied
    /// index, or, while the log replays after a fuzzy snapshot, that
    /// snapshot's end. A snapshot streamed from here ends there.
    pub fn caches_through(&self) -> Index {
        self.applied.max(self.fuzzy_end)
    }

    /// The leader this node follows or is, when known (cheaper than
    /// [`Node::status`] on a hot path).
    pub fn leader(&self) -> Option<MemberId> {
        self.leader
    }

    /// Whether this node's log holds `id`, or compacted it after applying
    /// (an entry a node applied was committed).
    pub fn holds(&self, id: LogId) -> bool {
        self.log.has(id) || (id.index < self.log.base().index && id.index <= self.applied)
    }

    /// Whether this node serves local reads at `now`.
    pub fn serving(&self, now: Duration) -> bool {
        self.serving_until().is_some_and(|until| now < until)
    }

    /// Reports a message the core did not act on.
    pub(crate) fn reject(&mut self, from: MemberId, what: &'static str, why: Rejection) {
        self.out.push(Output::Rejected { from, what, why });
    }

    pub(crate) fn send(&mut self, to: MemberId, msg: Message) {
        if self.links.contains_key(&to) {
            self.out.push(Output::Send { to, msg });
        }
    }

    pub(crate) fn random_timeout(&mut self) -> Duration {
        let t = self.timing.election_timeout;
        self.rng.between(t, t * 2)
    }

    fn tick(&mut self) {
        if self.role == Role::Leader {
            self.leader_tick();
        } else if self.now >= self.election_at {
            self.try_election();
        }
    }

    fn connected(&mut self, peer: MemberId, hello: PeerHello) {
        if peer == self.me || peer as usize >= self.members {
            return;
        }
        let before = self.links.len();
        self.links.insert(peer, hello);
        if self.role == Role::Leader {
            // A new link: what was in flight on the old one is lost, and
            // the peer may be a new incarnation with an empty log.
            let mut p = Progress::new(self.log.last().index + 1, self.now);
            if let Some(old) = self.progress.get(&peer) {
                p.last_ack = old.last_ack;
                p.stamp = old.stamp;
            }
            self.progress.insert(peer, p);
        }
        self.update_health();
        // Fast start: no leader known and a majority just linked, or every
        // member (a cold cluster may then vote at once).
        let majority = quorum::majority(self.members);
        let just_majority = before + 1 < majority && self.links.len() + 1 >= majority;
        let just_all = self.links.len() + 1 == self.members && before < self.links.len();
        let fast = self.timing.fast_election;
        if self.leader.is_none()
            && self.role == Role::Follower
            && (just_majority || just_all)
            && self.election_at > self.now + fast
        {
            // One draw: a second one would bunch the members' starts together.
            self.election_at = self.now + self.rng.between(Duration::ZERO, fast);
        }
    }

    fn disconnected(&mut self, peer: MemberId) {
        if self.links.remove(&peer).is_none() {
            return;
        }
        if let Some(p) = self.progress.get_mut(&peer) {
            p.inflight = 0;
            p.probing = true;
            p.streaming = None; // the stream ended with its link
        }
        self.requeue_forwarded_to(peer);
        if self.leader == Some(peer) && self.role != Role::Leader {
            // Its link closed: it may have crashed. Look for a new leader
            // as soon as the vote guard allows, not a whole timeout later.
            self.leader = None;
            let at = self.now + self.rng.between(Duration::ZERO, self.timing.fast_election);
            self.election_at = self.election_at.min(at);
            self.report_state();
        }
        self.update_health();
    }

    fn receive(&mut self, from: MemberId, msg: Message) {
        if from == self.me || from as usize >= self.members || !self.links.contains_key(&from) {
            self.reject(from, msg.name(), Rejection::NotLinked);
            return;
        }
        match msg {
            Message::PreVote { term, last } => self.on_pre_vote(from, term, last),
            Message::PreVoteReply { term, granted } => self.on_pre_vote_reply(from, term, granted),
            Message::Vote {
                term,
                last,
                transfer,
            } => self.on_vote(from, term, last, transfer),
            Message::VoteReply { term, granted } => self.on_vote_reply(from, term, granted),
            Message::Append(a) => self.on_append(from, a),
            Message::AppendReply(r) => self.on_append_reply(from, r),
            Message::Snapshot(chunk) => self.on_snapshot(from, chunk),
            Message::Forward { id, op, ack } => self.on_forward(from, id, op, ack),
            Message::Accepted { id, at } => self.on_accepted(from, id, at),
            Message::Refused { id } => self.on_refused(id),
            Message::AwaitAll { id, index } => {
                if self.role == Role::Leader {
                    self.awaiting_all.push((Some(from), id, index));
                }
            }
            Message::AllDone { id, index } => self.on_all_done(id, index),
            Message::TimeoutNow { term } => self.on_timeout_now(from, term),
        }
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        if self.role != Role::Leader {
            self.out.push(Output::ShutdownReady);
            return;
        }
        let target = self
            .progress
            .iter()
            .filter(|(id, _)| self.links.contains_key(id))
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        match target {
            Some(t) => {
                self.transfer = Some((t, self.now + self.timing.election_timeout));
            }
            None => {
                self.step_down();
                self.out.push(Output::ShutdownReady);
            }
        }
    }

    /// Health by links; Bad clears the caches and stops serving.
    pub(crate) fn update_health(&mut self) {
        let health = quorum::health(self.links.len() + 1, self.members);
        if health == self.health {
            return;
        }
        self.health = health;
        self.out.push(Output::Health(health));
        if health == Health::Bad {
            // Cut off from a majority: nothing here can be proven current.
            // The log stays (it still counts in elections); the caches go,
            // and refill from entries applied from now on.
            self.out.push(Output::InvalidateAll);
            self.needs_snapshot = true;
            if !broken!(self, serve_when_bad) {
                self.lease_until = None;
            }
            if self.role == Role::Leader {
                self.step_down();
            }
        }
    }

    /// Until when this node serves local reads.
    pub(crate) fn serving_until(&self) -> Option<Duration> {
        if self.health == Health::Bad && !broken!(self, serve_when_bad) {
            return None;
        }
        match self.role {
            Role::Leader => self.leader_lease(),
            Role::Follower => self.lease_until,
            Role::PreCandidate | Role::Candidate => None,
        }
    }

    fn report_serving(&mut self) {
        let until = self.serving_until().filter(|&u| u > self.now);
        if until != self.reported_serving {
            self.reported_serving = until;
            self.out.push(Output::Serving(until));
        }
    }

    pub(crate) fn report_state(&mut self) {
        self.out.push(Output::State {
            term: self.term,
            role: self.role,
            leader: self.leader,
        });
    }
}
