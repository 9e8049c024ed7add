//! Election: terms, pre-vote, votes, the guards that keep a cluster calm,
//! check-quorum and leadership transfer.

use std::time::Duration;

use crate::events::Output;
use crate::faults::broken;
use crate::leading::Leading;
use crate::message::Message;
use crate::node::Node;
use crate::quorum::{self, VoteResult};
use crate::types::{LogId, MemberId, NodeRole, Op, Term};

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
        self.now >= self.started + self.timing.vote_guard
            || self.cluster_is_cold()
            || broken!(self, no_vote_delay)
    }

    /// Every member is linked and reported an empty log, as has this one: no
    /// leader exists (a leader's log holds at least its first entry), so
    /// none can be serving reads.
    pub(crate) fn cluster_is_cold(&self) -> bool {
        self.log.last() == LogId::default()
            && self.links.len() + 1 == self.members
            && self.links.values().all(|h| h.last == LogId::default())
    }

    /// The term this node would stand in: above its own and its floor.
    pub(crate) fn next_term(&self) -> Term {
        (self.term + 1).max(self.floor)
    }

    /// Heard the leader less than the vote guard ago (or leads): the leader
    /// may still serve reads, so vote for no one else.
    pub(crate) fn leader_guard(&self) -> bool {
        self.role == NodeRole::Leader
            || self
                .heard_leader
                .is_some_and(|t| self.now < t + self.timing.vote_guard)
    }

    /// An open link to a leader that was heard within the election timeout:
    /// the pre-vote's live-leader rule. One lost link never unseats a leader.
    fn live_leader(&self) -> bool {
        self.role == NodeRole::Leader
            || (self.leader.is_some_and(|l| self.links.contains_key(&l))
                && self
                    .heard_leader
                    .is_some_and(|t| self.now < t + self.timing.election_timeout))
    }

    fn up_to_date(&self, last: LogId) -> bool {
        last >= self.log.last() || broken!(self, skip_up_to_date)
    }

    /// The timer fired: pre-vote, unless a guard says not yet.
    pub(crate) fn try_election(&mut self) {
        if self.shutting_down {
            self.election_at = self.now + self.timing.election_timeout;
            return;
        }
        let mut earliest = self.now;
        if !self.may_vote() {
            earliest = earliest.max(self.started + self.timing.vote_guard);
        }
        if let Some(heard) = self.heard_leader {
            earliest = earliest.max(heard + self.timing.vote_guard);
        }
        if earliest > self.now {
            let jitter = self.rng.between(Duration::ZERO, self.timing.fast_election);
            self.election_at = earliest + jitter;
            return;
        }
        self.election_at = self.now + self.random_timeout();
        if self.links.len() + 1 < quorum::majority(self.members) {
            return; // cannot win; health is Bad and stays quiet
        }
        if self.role != NodeRole::PreCandidate {
            self.role = NodeRole::PreCandidate;
            self.report_state();
        }
        self.votes.clear();
        self.votes.insert(self.me, true);
        let (term, last) = (self.next_term(), self.log.last());
        let peers: Vec<MemberId> = self.links.keys().copied().collect();
        for p in peers {
            self.send(p, Message::PreVote { term, last });
        }
        self.count_pre_votes();
    }

    pub(crate) fn on_pre_vote(&mut self, from: MemberId, term: Term, last: LogId) {
        if term < self.floor {
            // Below this incarnation's floor: say so, so the candidate stands
            // higher next time.
            let floor = self.floor;
            self.send(
                from,
                Message::PreVoteReply {
                    term: floor,
                    granted: false,
                },
            );
            return;
        }
        let granted = term > self.term
            && self.up_to_date(last)
            && !self.live_leader()
            && !self.leader_guard()
            && self.may_vote()
            && !self.shutting_down;
        self.send(from, Message::PreVoteReply { term, granted });
    }

    pub(crate) fn on_pre_vote_reply(&mut self, from: MemberId, term: Term, granted: bool) {
        if !granted && term > self.next_term() {
            // A voter's floor: stand at least there.
            self.floor = self.floor.max(term);
        }
        if self.role != NodeRole::PreCandidate || term != self.next_term() {
            return;
        }
        self.votes.insert(from, granted);
        self.count_pre_votes();
    }

    /// Counts the replies; a member without a link was never asked and
    /// cannot answer, so it counts as a refusal (a split vote with a crashed
    /// member is then known lost at once, not after a whole timeout).
    fn tally(&self) -> VoteResult {
        let granted = self.votes.values().filter(|g| **g).count();
        let unreachable = (0..self.members as MemberId)
            .filter(|m| !self.votes.contains_key(m) && !self.links.contains_key(m))
            .count();
        quorum::vote_result(
            granted,
            self.votes.len() - granted + unreachable,
            self.members,
        )
    }

    fn count_pre_votes(&mut self) {
        match self.tally() {
            VoteResult::Won => self.start_candidacy(false),
            VoteResult::Lost => {
                self.role = NodeRole::Follower;
                self.report_state();
            }
            VoteResult::Pending => {}
        }
    }

    /// A real election in a new term.
    pub(crate) fn start_candidacy(&mut self, transfer: bool) {
        self.term = self.next_term();
        self.voted_for = Some(self.me);
        self.role = NodeRole::Candidate;
        self.leader = None;
        self.heard_leader = None;
        self.drop_lease();
        self.election_at = self.now + self.random_timeout();
        self.votes.clear();
        self.votes.insert(self.me, true);
        self.report_state();
        let (term, last) = (self.term, self.log.last());
        let peers: Vec<MemberId> = self.links.keys().copied().collect();
        for p in peers {
            self.send(
                p,
                Message::Vote {
                    term,
                    last,
                    transfer,
                },
            );
        }
        if self.tally() == VoteResult::Won {
            self.become_leader();
        }
    }

    pub(crate) fn on_vote(&mut self, from: MemberId, term: Term, last: LogId, transfer: bool) {
        let refuse = term < self.term
            || term < self.floor
            || (!transfer && self.leader_guard())
            || !self.may_vote()
            || self.shutting_down;
        if refuse {
            let reply = Message::VoteReply {
                term: self.term.max(self.floor),
                granted: false,
            };
            self.send(from, reply);
            return;
        }
        if term > self.term {
            self.become_follower(term, None);
        }
        let granted = (self.voted_for.is_none_or(|v| v == from) || broken!(self, vote_twice))
            && self.up_to_date(last)
            && self.role != NodeRole::Leader;
        if granted {
            self.voted_for = Some(from);
            self.election_at = self.now + self.random_timeout();
            self.drop_lease();
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
            self.floor = self.floor.max(term);
        }
        if self.role != NodeRole::Candidate || term < self.term || (granted && term != self.term) {
            return;
        }
        self.votes.insert(from, granted);
        match self.tally() {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                // A split vote: try again soon, after a random pause that
                // makes another tie unlikely, rather than a whole timeout.
                self.role = NodeRole::Follower;
                let f = self.timing.fast_election;
                self.election_at = self.now + self.rng.between(f, f * 6);
                self.report_state();
            }
            VoteResult::Pending => {}
        }
    }

    fn become_leader(&mut self) {
        self.role = NodeRole::Leader;
        // Its caches are what the cluster has now; no one can send it more.
        self.needs_snapshot = false;
        // A half-installed snapshot may hold a key at an older value than
        // the entries this node applied before it: no replay from here
        // would fix that. Empty caches only miss.
        if self.installing.take().is_some() {
            self.out.push(Output::InvalidateAll);
        }
        self.leader = Some(self.me);
        self.term_leader = Some((self.term, self.me));
        self.heard_leader = None;
        // Raft: committing an entry of the new term commits every earlier
        // one; the leader serves reads only after that.
        let next = self.log.last().index + 1;
        self.leading = Some(Leading::new(self.links.keys().copied(), next, self.now));
        self.append_local(std::sync::Arc::new(Op::Noop), self.me);
        self.report_state();
    }

    /// Follows `term` (newer or equal), with `leader` when known.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<MemberId>) {
        let changed = term != self.term || self.role != NodeRole::Follower || self.leader != leader;
        if term > self.term {
            self.term = term;
            self.voted_for = None;
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

    /// Leaves leadership without a new term (check-quorum, Bad, handover).
    pub(crate) fn step_down(&mut self) {
        self.become_follower(self.term, None);
        self.election_at = self.now + self.random_timeout();
    }

    /// Heartbeats, check-quorum and the handover.
    pub(crate) fn leader_tick(&mut self) {
        let Some(lead) = self.leading.as_ref() else {
            return;
        };
        let heard = lead.quorum_heard(self.now, self.members);
        if heard.is_none_or(|t| self.now >= t + self.timing.election_timeout) {
            self.step_down();
            return;
        }
        self.restart_stalled_streams();
        if let Some((_, deadline)) = self.leading.as_ref().and_then(|l| l.transfer)
            && self.now >= deadline
        {
            self.step_down();
            self.out.push(Output::ShutdownReady);
        }
    }

    /// After the leader's last entries reached the transfer target, tell it
    /// to stand at once, and stop leading.
    pub(crate) fn maybe_hand_over(&mut self) {
        let Some((target, _)) = self.leading.as_ref().and_then(|l| l.transfer) else {
            return;
        };
        let caught_up = self
            .progress(target)
            .is_some_and(|p| p.matched == self.log.last().index);
        if caught_up && self.links.contains_key(&target) {
            let term = self.term;
            self.send(target, Message::TimeoutNow { term });
            self.step_down();
            self.out.push(Output::ShutdownReady);
        }
    }

    pub(crate) fn on_timeout_now(&mut self, from: MemberId, term: Term) {
        if term == self.term && self.leader == Some(from) && self.may_vote() && !self.shutting_down
        {
            self.start_candidacy(true);
        }
    }
}
