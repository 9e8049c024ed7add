//! Election: terms, pre-vote, votes, the guards that keep a cluster calm,
//! and standing at once when told to (a leader's handover).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::Output;
use crate::faults::broken;
use crate::leading::Leading;
use crate::message::Message;
use crate::node::Node;
use crate::progress::Progress;
use crate::quorum::{self, VoteResult};
use crate::types::{Index, LogId, MemberId, NodeRole, Op, Term};

/// What elections keep between inputs: this incarnation's start and floor,
/// the timer, the vote cast and the votes counted, and the leader heard.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    /// When this incarnation started: it forgot the leader it heard, so it
    /// votes only the vote guard after.
    started: Duration,
    /// This incarnation never votes or stands below this term.
    floor: Term,
    /// When to try an election, unless a leader is heard before.
    timer: Duration,
    /// The vote cast in the current term.
    voted_for: Option<MemberId>,
    /// Replies to the current pre-vote or vote: member -> granted.
    votes: BTreeMap<MemberId, bool>,
    /// The leader of the latest term one was known of, kept when its link
    /// drops: no one else may lead that term.
    term_leader: Option<(Term, MemberId)>,
    /// When the current leader was last heard (a message of its term).
    heard_leader: Option<Duration>,
    /// When this node last stood for election.
    stood: Duration,
    /// The leader (and its incarnation) whose `TimeoutNow` started this
    /// node's candidacy in that term: that incarnation serves no more reads,
    /// so if this node wins, its `All` writes need not wait for its lease.
    handed_over: Option<(Term, MemberId, u64)>,
}

impl Election {
    /// An incarnation started at `started`, above `floor`, whose first
    /// election is due at `timer`.
    pub(crate) fn new(started: Duration, floor: Term, timer: Duration) -> Self {
        Self {
            started,
            floor,
            timer,
            voted_for: None,
            votes: BTreeMap::new(),
            term_leader: None,
            heard_leader: None,
            handed_over: None,
            stood: Duration::ZERO,
        }
    }

    /// This incarnation's floor.
    pub(crate) fn floor(&self) -> Term {
        self.floor
    }

    /// When the next election is due, unless a leader is heard before.
    pub(crate) fn timer(&self) -> Duration {
        self.timer
    }

    /// Moves the next election to `at`.
    pub(crate) fn set_timer(&mut self, at: Duration) {
        self.timer = at;
    }

    /// The leader known for `term`, if `term` is the latest one known of.
    pub(crate) fn leader_of(&self, term: Term) -> Option<MemberId> {
        self.term_leader.filter(|(t, _)| *t == term).map(|(_, l)| l)
    }

    /// A new round of votes, this node's own granted when it counts (see
    /// `Node::may_stand`).
    fn count_from(&mut self, me: MemberId, counts: bool) {
        self.votes.clear();
        if counts {
            self.votes.insert(me, true);
        }
    }
}

impl Node {
    /// Whether this node may vote (for itself included) yet.
    ///
    /// A member that (re)started forgot when it last heard a leader, so it
    /// waits out the vote guard `G` from its start: a leader it heard before
    /// may still serve reads under its lease. A whole-cluster cold start,
    /// where no leader can exist, elects at once. (Terms start at a wall-clock
    /// floor, so forgotten votes cannot be cast twice: see `NodeConfig::term_floor`.)
    pub(crate) fn may_vote(&self) -> bool {
        if broken!(self, vote_delay_forever) {
            return self.cluster_is_cold();
        }
        self.now >= self.election.started + self.timing.vote_guard
            || self.cluster_is_cold()
            || broken!(self, no_vote_delay)
    }

    /// Every voter is linked and reported an empty log, as has this one
    /// and every linked learner: no leader exists (a leader is a voter, and
    /// its log holds at least its first entry), so none can be serving reads.
    pub(crate) fn cluster_is_cold(&self) -> bool {
        self.log.last() == LogId::default()
            && self
                .configs
                .current()
                .voters()
                .all(|v| v == self.me || self.links.contains_key(&v))
            && self.links.values().all(|h| h.last == LogId::default())
    }

    /// Whether a candidate of `cluster` is of this node's cluster (see
    /// `crate::bootstrap`; 0 for both in the static mode).
    fn same_cluster(&self, cluster: u64) -> bool {
        cluster == self.configs.current().cluster()
    }

    /// The linked members whose votes count, to ask for them.
    fn linked_voters(&self) -> Vec<MemberId> {
        self.links
            .keys()
            .copied()
            .filter(|p| self.counts_in_majority(*p))
            .collect()
    }

    /// The term this node would stand in: above its own and its floor.
    pub(crate) fn next_term(&self) -> Term {
        (self.term + 1).max(self.election.floor)
    }

    /// Heard the leader less than the vote guard ago (or leads): the leader
    /// may still serve reads, so vote for no one else.
    pub(crate) fn leader_guard(&self) -> bool {
        self.role == NodeRole::Leader
            || self
                .election
                .heard_leader
                .is_some_and(|t| self.now < t + self.timing.vote_guard)
    }

    /// An open link to a leader that was heard within the election timeout:
    /// the pre-vote's live-leader rule. One lost link never unseats a leader.
    fn live_leader(&self) -> bool {
        self.role == NodeRole::Leader
            || (self.leader.is_some_and(|l| self.links.contains_key(&l))
                && self
                    .election
                    .heard_leader
                    .is_some_and(|t| self.now < t + self.timing.election_timeout))
    }

    /// Whether a candidate whose log ends at `last`, with the membership of
    /// version `config`, may have this node's vote: its log is at least as
    /// up to date as this node's, and its membership is no older than the
    /// newest this node knows was committed. (A member restarted with its
    /// log lost, and given the committed membership, must not elect one
    /// whose older membership made it a voter: that candidate may lack what
    /// the newer voters committed.)
    fn up_to_date(&self, last: LogId, config: Index) -> bool {
        let config_ok = config >= self.committed_config() || broken!(self, ignore_known_config);
        let log_ok = last >= self.log.last() || broken!(self, skip_up_to_date);
        log_ok && (config_ok || broken!(self, skip_up_to_date))
    }

    /// The version of the newest membership this node knows was committed.
    pub(crate) fn committed_config(&self) -> Index {
        self.known_config.max(self.configs.at(self.commit).0)
    }

    /// The timer fired: pre-vote, unless a guard says not yet.
    pub(crate) fn try_election(&mut self) {
        if self.shutting_down || !self.may_stand() {
            // A learner never stands: it waits for a leader to hear from.
            self.election.timer = self.now + self.timing.election_timeout;
            return;
        }
        let mut earliest = self.now;
        if !self.may_vote() {
            earliest = earliest.max(self.election.started + self.timing.vote_guard);
        }
        if let Some(heard) = self.election.heard_leader {
            earliest = earliest.max(heard + self.timing.vote_guard);
        }
        if earliest > self.now {
            let jitter = self.rng.between(Duration::ZERO, self.timing.fast_election);
            self.election.timer = earliest + jitter;
            return;
        }
        self.election.timer = self.now + self.random_timeout();
        if self.voters_reached() < quorum::majority(self.electorate()) {
            return; // cannot win; health is Bad and stays quiet
        }
        if self.role != NodeRole::PreCandidate {
            self.role = NodeRole::PreCandidate;
            self.report_state();
        }
        self.election.count_from(self.me, self.is_voter());
        let (term, last, config) = (self.next_term(), self.log.last(), self.configs.version());
        let cluster = self.configs.current().cluster();
        let first = self.final_choice();
        for p in self.linked_voters() {
            self.send(
                p,
                Message::PreVote {
                    term,
                    last,
                    config,
                    cluster,
                    first: first.clone(),
                },
            );
        }
        self.count_pre_votes();
    }

    pub(crate) fn on_pre_vote(
        &mut self,
        from: MemberId,
        term: Term,
        last: LogId,
        config: Index,
        cluster: u64,
    ) {
        if term < self.election.floor {
            // Below this incarnation's floor: say so, so the candidate stands
            // higher next time.
            let floor = self.election.floor;
            self.send(
                from,
                Message::PreVoteReply {
                    term: floor,
                    granted: false,
                },
            );
            return;
        }
        // Granted whatever this node's own membership says (Raft's rule): it
        // may lag (a new or restarted member); the candidate counts only the
        // voters of its own.
        let granted = term > self.term
            && self.same_cluster(cluster)
            && self.up_to_date(last, config)
            && !self.live_leader()
            && !self.leader_guard()
            && self.may_vote()
            && !self.refuses_votes_leaving();
        // Refused for a term this node is already in: say which, as for a
        // floor, so the candidate stands above it next time. Otherwise one
        // with the longer log, behind in terms, would ask below the term of
        // a voter that can never win (its log is shorter) for ever.
        let term = if !granted && term <= self.term {
            self.term + 1
        } else {
            term
        };
        self.send(from, Message::PreVoteReply { term, granted });
    }

    pub(crate) fn on_pre_vote_reply(&mut self, from: MemberId, term: Term, granted: bool) {
        if !granted && term > self.next_term() {
            // A voter's floor: stand at least there. Ask again at once (a
            // pre-vote changes nothing on the voters), rather than a whole
            // election timeout later: members that start a few
            // milliseconds apart have floors that far apart, and this is
            // how a starting cluster finds a term they all vote in.
            self.election.floor = self.election.floor.max(term);
            if self.role == NodeRole::PreCandidate && !self.shutting_down {
                self.try_election();
                return;
            }
        }
        // A node that began shutting down mid pre-vote stands for nothing;
        // a learner's answer counts for nothing.
        if self.role != NodeRole::PreCandidate
            || term != self.next_term()
            || self.shutting_down
            || !self.counts_in_majority(from)
        {
            return;
        }
        self.election.votes.insert(from, granted);
        self.count_pre_votes();
    }

    /// Counts the voters' replies; a voter without a link was never asked
    /// and cannot answer, so it counts as a refusal (a split vote with a
    /// crashed member is then known lost at once, not after a whole timeout).
    fn tally(&self) -> VoteResult {
        let granted = self.election.votes.values().filter(|g| **g).count();
        let unreachable = self
            .configs
            .current()
            .all()
            .filter(|m| self.counts_in_majority(*m))
            .filter(|m| !self.election.votes.contains_key(m) && !self.links.contains_key(m))
            .count();
        let refused = self.election.votes.len() - granted + unreachable;
        if self.first_election() {
            // Every voter, not a majority (see `crate::bootstrap`).
            return if granted >= self.electorate() {
                VoteResult::Won
            } else if refused > 0 {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            };
        }
        quorum::vote_result(granted, refused, self.electorate())
    }

    fn count_pre_votes(&mut self) {
        match self.tally() {
            VoteResult::Won => self.start_candidacy(false),
            VoteResult::Lost => {
                self.role = NodeRole::Follower;
                // With no leader known, the refusals were most likely of
                // members still in their vote guard (a cluster whose members
                // start at different moments): ask again soon, not a whole
                // election timeout later. Pre-votes change nothing on voters.
                if self.leader.is_none() {
                    let f = self.timing.fast_election;
                    let soon = self.now + self.rng.between(f, f * 6);
                    self.election.timer = self.election.timer.min(soon);
                }
                self.report_state();
            }
            VoteResult::Pending => {}
        }
    }

    /// A real election in a new term.
    pub(crate) fn start_candidacy(&mut self, transfer: bool) {
        self.term = self.next_term();
        self.election.stood = self.now;
        self.election.voted_for = Some(self.me);
        self.role = NodeRole::Candidate;
        self.leader = None;
        self.election.heard_leader = None;
        self.drop_lease();
        self.election.timer = self.now + self.random_timeout();
        self.election.count_from(self.me, self.is_voter());
        self.report_state();
        let (term, last, config) = (self.term, self.log.last(), self.configs.version());
        let cluster = self.configs.current().cluster();
        for p in self.linked_voters() {
            self.send(
                p,
                Message::Vote {
                    term,
                    last,
                    transfer,
                    config,
                    cluster,
                },
            );
        }
        if self.tally() == VoteResult::Won {
            self.become_leader();
        }
    }

    pub(crate) fn on_vote(
        &mut self,
        from: MemberId,
        term: Term,
        last: LogId,
        transfer: bool,
        (config, cluster): (Index, u64),
    ) {
        // Whatever this node's own membership says, as for pre-votes.
        let refuse = term < self.term
            || !self.same_cluster(cluster)
            || term < self.election.floor
            || (!transfer && self.leader_guard())
            || !self.may_vote()
            || self.refuses_votes_leaving();
        if refuse {
            let reply = Message::VoteReply {
                term: self.term.max(self.election.floor),
                granted: false,
            };
            self.send(from, reply);
            return;
        }
        if term > self.term {
            self.become_follower(term, None);
        }
        let granted = (self.election.voted_for.is_none_or(|v| v == from)
            || broken!(self, vote_twice))
            && self.up_to_date(last, config)
            && self.role != NodeRole::Leader;
        if granted {
            self.election.voted_for = Some(from);
            self.election.timer = self.now + self.random_timeout();
            self.drop_lease();
            if last.index == 0 {
                // A first election (see `crate::bootstrap`).
                self.lock_choice();
            }
        }
        let term = self.term;
        self.send(from, Message::VoteReply { term, granted });
    }

    pub(crate) fn on_vote_reply(&mut self, from: MemberId, term: Term, granted: bool) {
        if term > self.term && !granted {
            // The voter is past this term, or this term is below the floor
            // of a voter that started later: a refusal, and a floor for the
            // next candidacy. Not a reason to give up a term already won: the
            // voter follows this leader if it never took part in a higher
            // term, and otherwise its replies depose it.
            self.election.floor = self.election.floor.max(term);
        }
        if self.role != NodeRole::Candidate
            || term < self.term
            || (granted && term != self.term)
            || !self.counts_in_majority(from)
        {
            return;
        }
        self.election.votes.insert(from, granted);
        match self.tally() {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                // A split vote: try again soon, after a random pause that
                // makes another tie unlikely, rather than a whole timeout.
                self.role = NodeRole::Follower;
                let f = self.timing.fast_election;
                self.election.timer = self.now + self.rng.between(f, f * 6);
                self.report_state();
            }
            VoteResult::Pending => {}
        }
    }

    fn become_leader(&mut self) {
        self.role = NodeRole::Leader;
        // Its caches are what the cluster has now; no one can send it more.
        // A half-installed snapshot may hold a key at an older value than
        // the entries this node applied before it: no replay from here
        // would fix that. Empty caches only miss.
        if self.install.abandon() {
            self.out.push(Output::InvalidateAll);
        }
        self.leader = Some(self.me);
        self.election.term_leader = Some((self.term, self.me));
        self.election.heard_leader = None;
        // Raft: committing an entry of the new term commits every earlier
        // one; the leader serves reads only after that.
        let next = self.log.last().index + 1;
        let members = self.configs.current();
        let linked = self.links.keys().copied().filter(|p| members.contains(*p));
        let mut leading = Leading::new(linked, next, self.now);
        // A member that restarted after this node stood may have voted,
        // before its restart, in a newer term it forgot: it counts in no
        // majority until confirmed (see `Leading::confirm_relinked`).
        for (peer, p) in &mut leading.progress {
            let restarted = self
                .incarnations
                .get(peer)
                .is_none_or(|(_, seen)| *seen >= self.election.stood);
            if restarted && !broken!(self, count_restarted) {
                p.relinked_at = Some(self.now);
            }
        }
        // The leader that handed over stopped serving reads when it did: its
        // lease is over, even if its link closed before this election ended
        // (it shut down right after), which left it no progress to mark.
        if let Some((term, from, incarnation)) = self.election.handed_over
            && term == self.term
            && self.incarnations.get(&from).map(|(i, _)| *i) == Some(incarnation)
        {
            let p = leading.progress.entry(from).or_insert_with(|| {
                let mut p = Progress::new(next, self.now);
                p.link_lost();
                p
            });
            p.left = true;
        }
        self.leading = Some(leading);
        // A bootstrapped cluster's first entry is its first membership: every
        // member added later learns it (and its cluster id) from the log.
        let first = if self.boot.is_some() && self.log.last().index == 0 {
            Op::Membership(self.configs.current().clone())
        } else {
            Op::Noop
        };
        self.append_local(std::sync::Arc::new(first), self.me, None);
        self.report_state();
    }

    /// Follows `term` (newer or equal), with `leader` when known.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<MemberId>) {
        let changed = term != self.term || self.role != NodeRole::Follower || self.leader != leader;
        if term > self.term {
            self.term = term;
            self.election.voted_for = None;
            self.drop_lease();
        }
        self.leading = None;
        self.role = NodeRole::Follower;
        self.leader = leader;
        if changed {
            self.report_state();
        }
    }

    /// A peer is in a newer term. A follower or candidate follows it. A
    /// healthy leader usually meets one because a member restarted (its
    /// terms start at its floor): rather than leave the cluster leaderless
    /// for an election timeout, it stands again at once above that term, as
    /// its own handover (voters skip the live-leader guard; this leader
    /// stopped serving when it stepped down).
    pub(crate) fn higher_term_seen(&mut self, term: Term) {
        let reelect = self
            .leading
            .as_ref()
            .is_some_and(|l| self.commit >= l.term_start)
            && !self.shutting_down
            && self.health != crate::types::Health::Bad;
        self.become_follower(term, None);
        if reelect {
            self.start_candidacy(true);
        }
    }

    /// `from` leads `term`, as a message of it shows: follow it, and wait
    /// a whole timeout before standing.
    pub(crate) fn heard_from_leader(&mut self, from: MemberId, term: Term) {
        if term > self.term || self.role != NodeRole::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.election.term_leader = Some((term, from));
        self.election.heard_leader = Some(self.now);
        self.election.timer = self.now + self.random_timeout();
    }

    /// Tells every linked peer but `except` that this node serves no more
    /// reads (it shuts down): the leader, whichever it is, stops waiting for
    /// its lease.
    pub(crate) fn announce_leaving(&mut self, except: Option<MemberId>) {
        let term = self.term;
        let peers: Vec<MemberId> = self.links.keys().copied().collect();
        for p in peers.into_iter().filter(|p| Some(*p) != except) {
            self.send(p, Message::Leaving { term });
        }
    }

    /// A follower of this leader shuts down: it serves no more reads. (Heard
    /// by a follower, it says nothing: a newer incarnation may hold a lease
    /// from the leader of the time before this node leads.)
    pub(crate) fn on_leaving(&mut self, from: MemberId, term: Term) {
        if term == self.term
            && let Some(p) = self.progress_mut(from)
        {
            p.left = true;
        }
    }

    /// The leader says this member was removed: it leaves as a follower
    /// that shuts down does (no reads, writes or votes), and says so once.
    pub(crate) fn on_removed(&mut self, from: MemberId, term: Term) {
        // Only a leader says so (a removed member is sent nothing else, so
        // it may not know the leader's term yet): not one of an older term,
        // nor another than the leader it follows in this term.
        let other = term == self.term && self.leader.is_some_and(|l| l != from);
        if term < self.term || other || self.leading.is_some() || self.removed {
            return;
        }
        if term > self.term {
            self.become_follower(term, Some(from));
        }
        self.removed = true;
        self.shutdown();
        self.out.push(Output::Removed);
    }

    pub(crate) fn on_timeout_now(&mut self, from: MemberId, term: Term, stays: bool) {
        if term == self.term
            && self.leader == Some(from)
            && self.is_voter()
            && self.may_vote()
            && !self.shutting_down
        {
            let incarnation = self.incarnations.get(&from).map_or(0, |(i, _)| *i);
            // Stand above every linked voter's floor: one restarted since
            // this term began would refuse a lower term, and the handover
            // would fall back to an ordinary election (a vote guard later,
            // and its `All` writes waiting out the old leader's lease).
            let floors = self.links.values().map(|h| h.floor).max().unwrap_or(0);
            self.election.floor = self.election.floor.max(floors);
            // A leader that shuts down serves no more; one that steps down
            // will follow this one, and its lease is bounded like any.
            self.election.handed_over = (!stays || broken!(self, stayer_left)).then_some((
                self.next_term(),
                from,
                incarnation,
            ));
            self.start_candidacy(true);
        }
    }
}
