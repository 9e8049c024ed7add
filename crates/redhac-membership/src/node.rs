//! The node: its state, `step`, and what it tells the runtime about itself.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::NodeConfig;
use crate::election::Election;
use crate::events::{Input, Output, Rejection};
#[cfg(feature = "faults")]
use crate::faults::Faults;
use crate::faults::broken;
use crate::leading::{Leading, Voters};
use crate::lease::Lease;
use crate::log::Log;
use crate::membership::Configs;
use crate::message::{Message, PeerHello};
use crate::progress::Progress;
use crate::quorum;
use crate::rng::Rng;
use crate::snapshot::Install;
use crate::timing::Timing;
use crate::types::{Health, Index, LogId, MemberId, NodeRole, RequestId, Term};
use crate::writes::Pending;

/// One member's view, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The member.
    pub id: MemberId,
    /// Whether it votes (else it is a learner).
    pub voter: bool,
    /// Whether a link is up.
    pub connected: bool,
    /// On the leader: up to where it holds the leader's log.
    pub matched: Option<Index>,
    /// On the leader: up to where it applied.
    pub applied: Option<Index>,
    /// Links to it reset because they carried nothing for
    /// [`crate::Timing::silent_link`], since start.
    pub silent_resets: u64,
}

/// What a linked peer sent and owes, for silent links.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traffic {
    /// When it was last heard from (linked, or a message).
    pub(crate) heard: Duration,
    /// When it was first sent a message it answers since then.
    pub(crate) asked: Option<Duration>,
}

impl Traffic {
    pub(crate) fn new(now: Duration) -> Self {
        Self {
            heard: now,
            asked: None,
        }
    }

    fn heard(&mut self, now: Duration) {
        *self = Self::new(now);
    }

    fn asked(&mut self, now: Duration) {
        self.asked.get_or_insert(now);
    }

    /// Silence counts from `now` (this node was not stepped meanwhile).
    fn restart(&mut self, now: Duration) {
        self.heard = now;
        if let Some(at) = self.asked.as_mut() {
            *at = now;
        }
    }

    /// Since when it has been silent while it should not have been, if so:
    /// a follower's leader since it was last heard (it heartbeats), any
    /// other peer since it was first asked something.
    pub(crate) fn silent_since(&self, is_my_leader: bool) -> Option<Duration> {
        if is_my_leader {
            Some(self.heard)
        } else {
            self.asked
        }
    }
}

/// A node's state, for status pages and the runtime's Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This member.
    pub me: MemberId,
    /// Whether it votes (else it is a learner).
    pub voter: bool,
    /// The term.
    pub term: Term,
    /// The role.
    pub role: NodeRole,
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
    // Fixed at construction and read by every concern; kept loose rather
    // than behind a settings type that would own nothing.
    pub(crate) me: MemberId,
    pub(crate) incarnation: u64,
    /// The leader's autopilot, when on (see [`crate::autopilot`]).
    pub(crate) autopilot: Option<crate::Autopilot>,
    #[cfg(feature = "faults")]
    pub(crate) faults: Faults,
    /// Who is in the cluster and who votes: the latest membership in the
    /// log (see [`crate::membership`]).
    pub(crate) configs: Configs,
    /// The newest membership this node knows was committed (the one it
    /// was started with, or one its log committed): no candidate whose
    /// membership is older holds everything committed.
    pub(crate) known_config: Index,
    pub(crate) timing: Timing,
    /// Draws every random timeout, so a seed replays a run.
    pub(crate) rng: Rng,
    /// The latest time an input brought.
    pub(crate) now: Duration,

    // Who leads: read by every concern, changed by the election's rules.
    pub(crate) term: Term,
    pub(crate) role: NodeRole,
    pub(crate) leader: Option<MemberId>,
    /// Timer, votes and the leader heard (see [`crate::election`]).
    pub(crate) election: Election,

    // The log and how far it is committed and applied.
    pub(crate) log: Log,
    pub(crate) commit: Index,
    pub(crate) applied: Index,
    /// The follower's side of snapshots (see [`crate::snapshot`]).
    pub(crate) install: Install,

    /// The peers linked now, with what each said of itself.
    pub(crate) links: BTreeMap<MemberId, PeerHello>,
    /// Each linked peer's traffic, for silent links.
    pub(crate) traffic: BTreeMap<MemberId, Traffic>,
    /// Links reset for silence, by peer.
    pub(crate) silent_resets: BTreeMap<MemberId, u64>,
    /// Each peer's incarnation when last linked, and when this node first
    /// saw it; kept when the link drops.
    pub(crate) incarnations: BTreeMap<MemberId, (u64, Duration)>,
    /// Health by links (see [`crate::links`]).
    pub(crate) health: Health,

    /// The leader's own state: `Some` exactly while `role` is Leader.
    pub(crate) leading: Option<Leading>,
    /// The read lease (see [`crate::lease`]).
    pub(crate) lease: Lease,

    /// Writes made here and not yet resolved (see [`crate::writes`]).
    pub(crate) pending: BTreeMap<RequestId, Pending>,
    /// [`Input::Shutdown`] came: refuse writes and votes (in the dynamic
    /// mode, votes only once removed), stand for nothing.
    pub(crate) shutting_down: bool,
    /// When [`Input::Shutdown`] came (see [`Node::waits_for_removal`]).
    pub(crate) shutdown_at: Option<Duration>,
    /// Its peers were told it leaves (`Message::Leaving`).
    pub(crate) leaving_announced: bool,
    /// `ShutdownReady` was reported.
    pub(crate) stop_reported: bool,
    /// The leader said this member was removed (`Output::Removed`).
    pub(crate) removed: bool,
    /// While it is in no formed cluster (the dynamic mode's bootstrap; see
    /// [`crate::bootstrap`]).
    pub(crate) boot: Option<crate::bootstrap::Boot>,
    /// What this step tells the runtime, in order.
    pub(crate) out: Vec<Output>,
}

impl Node {
    /// A node that starts now, with an empty log at term 0, knowing no leader.
    pub fn new(config: NodeConfig, now: Duration) -> Self {
        let timing = config.timing;
        let mut rng = Rng::new(config.seed, config.me);
        let floor = if broken!(config, no_term_floor) {
            0
        } else {
            config.term_floor
        };
        let election_at = now + rng.between(timing.election_timeout, timing.election_timeout * 2);
        let mut node = Self {
            me: config.me,
            incarnation: config.incarnation,
            autopilot: config.autopilot,
            #[cfg(feature = "faults")]
            faults: config.faults,
            timing,
            rng,
            now,
            // Term 0, not the floor: a restarted member follows the live
            // leader's term without forcing an election; the floor keeps it
            // from voting or standing in any term it may have voted in.
            term: 0,
            role: NodeRole::Follower,
            leader: None,
            election: Election::new(now, floor, election_at),
            log: Log::default(),
            commit: 0,
            applied: 0,
            install: Install::default(),
            links: BTreeMap::new(),
            traffic: BTreeMap::new(),
            silent_resets: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            health: Health::Bad,
            leading: None,
            lease: Lease::default(),
            pending: BTreeMap::new(),
            shutting_down: false,
            shutdown_at: None,
            leaving_announced: false,
            stop_reported: false,
            removed: false,
            boot: config
                .bootstrap_expect
                .map(|n| crate::bootstrap::Boot::new(n, now)),
            out: Vec::new(),
            configs: if config.bootstrap_expect.is_some() {
                Configs::new(crate::membership::Membership::unformed(), 0)
            } else {
                Configs::new(config.membership, config.membership_index)
            },
            known_config: config.membership_index,
        };
        node.health = node.health_by_links();
        node
    }

    /// Whether this node votes (and may stand); a learner does neither.
    pub(crate) fn is_voter(&self) -> bool {
        self.configs.current().is_voter(self.me)
    }

    /// Whether this node may stand: a voter may, and so may a voter of the
    /// membership at its commit index that a later entry, not committed
    /// yet, demoted or removed. Such a member may hold the longest log (the
    /// leader that appended the change reached it alone, then failed); the
    /// other voters cannot be elected without its vote, which goes to no
    /// shorter log, so were it not to stand no one could. It counts the
    /// votes of its latest membership's voters, its own not among them
    /// (any majority of it meets any majority of the one before: a single
    /// change); leading, it counts itself in no majority, and once its
    /// term's first entry commits (and with it the change) it hands
    /// leadership to a voter (`Node::hand_over_if_demoted`).
    pub(crate) fn may_stand(&self) -> bool {
        self.is_voter() || self.configs.at(self.commit).1.is_voter(self.me)
    }

    /// Whether `id` counts in elections: voters do, learners never.
    pub(crate) fn counts_in_majority(&self, id: MemberId) -> bool {
        self.electors().counts(id)
    }

    /// How many members make up an election's majority: the voters.
    pub(crate) fn electorate(&self) -> usize {
        self.electors().count
    }

    /// Who elects.
    fn electors(&self) -> Voters<'_> {
        Voters::new(
            self.configs.current(),
            self.me,
            broken!(self, learners_vote),
        )
    }

    /// The voters this node reaches: the linked ones, and itself when it
    /// votes.
    pub(crate) fn voters_reached(&self) -> usize {
        self.reached(self.electors())
    }

    /// How many of `voters` this node reaches, itself included.
    fn reached(&self, voters: Voters<'_>) -> usize {
        self.links.keys().filter(|id| voters.counts(**id)).count()
            + usize::from(voters.counts(self.me))
    }

    /// Health by links: Good linked with every member, Degraded reaching a
    /// majority of the voters, Bad otherwise.
    pub(crate) fn health_by_links(&self) -> Health {
        let voters = self.voters();
        let members = self.configs.current();
        if members.is_empty() {
            // In no cluster yet (see `crate::bootstrap`).
            return Health::Bad;
        }
        let linked = self.links.keys().filter(|p| members.contains(**p)).count();
        quorum::health(
            linked + usize::from(members.contains(self.me)),
            members.len(),
            self.reached(voters),
            voters.count,
        )
    }

    /// Feeds one input at time `now` (this node's monotonic clock; a value
    /// smaller than an earlier one is taken as the earlier one) and returns
    /// what the runtime must do, in order.
    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Output> {
        self.step_batch(now, [input])
    }

    /// Feeds several inputs at time `now` as one turn: each is taken in
    /// order, then writes are settled and the followers sent what they lack
    /// once for all of them. A leader given many writes in one turn appends
    /// them all and sends each follower one frame (group commit) where
    /// `step` per write would send a frame per write.
    pub fn step_batch(
        &mut self,
        now: Duration,
        inputs: impl IntoIterator<Item = Input>,
    ) -> Vec<Output> {
        if now > self.now + self.timing.silent_link / 2 {
            // This node was not stepped for a while (a pause, a stalled
            // runtime): what it did not hear meanwhile says nothing of its
            // links; silence counts from now.
            for t in self.traffic.values_mut() {
                t.restart(now);
            }
        }
        self.now = self.now.max(now);
        for input in inputs {
            self.take(input);
        }
        if self.shutting_down && self.leading.is_none() && !self.stop_reported {
            // Shutting down and not leading (a follower, a leader with no
            // one to hand over to or whose handover timed out, or one that
            // lost its leadership meanwhile): nothing to hand over.
            if !self.leaving_announced {
                self.leaving_announced = true;
                self.announce_leaving(None);
            }
            if !self.waits_for_removal() {
                self.ready_to_stop();
            }
        }
        self.bootstrap_step();
        self.settle();
        if self.role == NodeRole::Leader {
            self.flush();
        }
        self.report_serving();
        std::mem::take(&mut self.out)
    }

    /// Gives back the vector a step returned, emptied, so the next step
    /// pushes its outputs into a buffer already grown (optional). A buffer
    /// grown past 1,024 outputs by a burst is let go.
    pub fn recycle(&mut self, mut outputs: Vec<Output>) {
        outputs.clear();
        if self.out.is_empty()
            && outputs.capacity() > self.out.capacity()
            && outputs.capacity() <= 1024
        {
            self.out = outputs;
        }
    }

    fn take(&mut self, input: Input) {
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
            Input::Discovered { peers } => self.discovered(peers),
            Input::StepDown => self.request_step_down(),
        }
    }

    /// The node's state now.
    pub fn status(&self) -> NodeStatus {
        let peers = self
            .configs
            .current()
            .all()
            .filter(|&id| id != self.me)
            .map(|id| {
                let p = self.progress(id);
                PeerStatus {
                    id,
                    voter: self.configs.current().is_voter(id),
                    connected: self.links.contains_key(&id),
                    matched: p.map(|p| p.matched),
                    applied: p.map(|p| p.applied),
                    silent_resets: self.silent_resets.get(&id).copied().unwrap_or(0),
                }
            })
            .collect();
        NodeStatus {
            me: self.me,
            voter: self.is_voter(),
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
            incarnation: self.incarnation,
            floor: self.election.floor(),
        }
    }

    /// When the core next needs a `Tick` (this node's clock): the runtime may
    /// tick more often, but ticking at this time keeps elections prompt.
    pub fn next_deadline(&self) -> Duration {
        if self.role == NodeRole::Leader {
            self.now + self.timing.heartbeat / 2
        } else {
            self.election.timer().max(self.now)
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
        self.install.caches_through(self.applied)
    }

    /// The membership in force here: the latest in this node's log,
    /// committed or not.
    pub fn membership(&self) -> &crate::Membership {
        self.configs.current()
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
            if msg.expects_answer()
                && let Some(t) = self.traffic.get_mut(&to)
            {
                t.asked(self.now);
            }
            self.out.push(Output::Send { to, msg });
        }
    }

    pub(crate) fn random_timeout(&mut self) -> Duration {
        let t = self.timing.election_timeout;
        self.rng.between(t, t * 2)
    }

    fn tick(&mut self) {
        self.reset_silent_links();
        self.forget_gone_peers();
        if self.role == NodeRole::Leader {
            self.leader_tick();
        } else if self.now >= self.election.timer() {
            self.try_election();
        }
    }

    /// Forgets what it keeps per peer (incarnation, silent resets) of
    /// members neither linked nor in a membership it knows: the dynamic mode
    /// starts every member under a new id, so without this one entry stays
    /// per member ever seen. One forgotten that links again counts as
    /// restarted (in no majority until confirmed), which is only safer.
    fn forget_gone_peers(&mut self) {
        let known = self.links.len() + self.configs.current().len() + 1;
        if self.incarnations.len().max(self.silent_resets.len()) <= known {
            return;
        }
        let committed = self.configs.at(self.commit).1;
        let (links, current) = (&self.links, self.configs.current());
        let keep = |id: &MemberId| {
            links.contains_key(id) || current.contains(*id) || committed.contains(*id)
        };
        self.incarnations.retain(|id, _| keep(id));
        self.silent_resets.retain(|id, _| keep(id));
    }

    fn receive(&mut self, from: MemberId, msg: Message) {
        if from == self.me || !self.links.contains_key(&from) {
            self.reject(from, msg.name(), Rejection::NotLinked);
            return;
        }
        if self.stop_reported && self.autopilot.is_some() {
            // Dynamic mode: it reported `ShutdownReady` and may be gone any
            // moment, never to come back under this id. Whatever it would
            // acknowledge or vote now nothing could count on.
            return;
        }
        if let Some(t) = self.traffic.get_mut(&from) {
            t.heard(self.now);
        }
        match msg {
            Message::PreVote {
                term,
                last,
                config,
                cluster,
                first,
            } => {
                self.adopt_choice(&first, cluster);
                self.on_pre_vote(from, term, last, config, cluster);
            }
            Message::PreVoteReply { term, granted } => self.on_pre_vote_reply(from, term, granted),
            Message::Vote {
                term,
                last,
                transfer,
                config,
                cluster,
            } => self.on_vote(from, term, last, transfer, (config, cluster)),
            Message::VoteReply { term, granted } => self.on_vote_reply(from, term, granted),
            Message::Append(a) => self.on_append(from, a),
            Message::AppendReply(r) => self.on_append_reply(from, r),
            Message::Snapshot(chunk) => self.on_snapshot(from, chunk),
            Message::Forward { id, op, ack } => self.on_forward(from, id, op, ack),
            Message::Accepted { id, at } => self.on_accepted(from, id, at),
            Message::Refused { id } => self.on_refused(id),
            Message::AwaitAll { id, index } => {
                if let Some(lead) = self.leading.as_mut() {
                    lead.awaiting_all.push((Some(from), id, index));
                }
            }
            Message::AllDone { id, index } => self.on_all_done(id, index),
            Message::TimeoutNow { term, stays } => self.on_timeout_now(from, term, stays),
            Message::Leaving { term } => self.on_leaving(from, term),
            Message::Removed { term } => self.on_removed(from, term),
        }
    }

    pub(crate) fn shutdown(&mut self) {
        self.shutting_down = true;
        self.shutdown_at.get_or_insert(self.now);
        if self.leading.is_none() {
            // A follower stops serving for good; the end of the turn tells
            // its leader, whose `All` writes then stop waiting for its lease.
            if !broken!(self, serve_after_leaving) {
                self.drop_lease();
            }
            if self.role != NodeRole::Follower {
                // A pre-vote or vote under way ends: it stands for nothing.
                self.become_follower(self.term, None);
            }
            return;
        }
        if !self.begin_transfer(false) {
            // No one to hand over to: the end of the turn says it leaves.
            self.step_down();
        }
    }

    /// In the dynamic mode a listed member that shuts down stays one,
    /// acknowledging entries and voting (serving no reads, standing for
    /// nothing), until the leader removes it ([`Message::Removed`]), for at
    /// most the autopilot's `leave_timeout`. An identity lives one process:
    /// a voter that just left would stay listed, gone for good, until the
    /// autopilot removes it; were another voter gone already (one the
    /// autopilot is replacing), the two would be half of the voters and no
    /// leader could be elected again. A learner waits too: the leader may
    /// have promoted it before it heard the member leaves (its vote then
    /// counts). A member listed in no membership it knows leaves at once;
    /// from then on it answers nothing (see `Node::receive`), so no
    /// promotion can count on it.
    pub(crate) fn waits_for_removal(&self) -> bool {
        let Some(pilot) = self.autopilot else {
            return false;
        };
        let me = self.me;
        let listed =
            self.configs.current().contains(me) || self.configs.at(self.commit).1.contains(me);
        let waited = self
            .shutdown_at
            .is_some_and(|at| self.now >= at + pilot.leave_timeout);
        listed && !self.removed && !waited
    }

    /// Whether shutting down keeps this node from voting: always in the
    /// static mode; in the dynamic mode only once removed (see
    /// [`Node::waits_for_removal`]).
    pub(crate) fn refuses_votes_leaving(&self) -> bool {
        self.shutting_down && (self.autopilot.is_none() || self.removed)
    }

    /// Reports, once, that the runtime may stop.
    pub(crate) fn ready_to_stop(&mut self) {
        if !self.stop_reported {
            self.stop_reported = true;
            self.out.push(Output::ShutdownReady);
        }
    }

    /// The leader's view of `peer`.
    pub(crate) fn progress(&self, peer: MemberId) -> Option<&Progress> {
        self.leading.as_ref()?.progress.get(&peer)
    }

    /// The leader's view of `peer`, to update.
    pub(crate) fn progress_mut(&mut self, peer: MemberId) -> Option<&mut Progress> {
        self.leading.as_mut()?.progress.get_mut(&peer)
    }

    pub(crate) fn report_state(&mut self) {
        self.out.push(Output::State {
            term: self.term,
            role: self.role,
            leader: self.leader,
        });
    }
}
