//! The leader's own state: it exists only while this node leads, created
//! when it wins an election and dropped when it steps down; and what only a
//! leader does on its own: check-quorum and the handover.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::faults::broken;
use crate::membership::Membership;
use crate::message::Message;
use crate::node::Node;
use crate::progress::Progress;
use crate::quorum;
use crate::types::{Index, MemberId, RequestId};

/// The members whose answers make up a leader's majorities, and how many
/// they are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Voters<'a> {
    membership: &'a Membership,
    /// This node.
    me: MemberId,
    /// Learners count too (a rule broken on purpose).
    learners_count: bool,
    pub(crate) count: usize,
}

impl<'a> Voters<'a> {
    /// The voters of `membership` (and its learners, when `learners_count`
    /// breaks the rule on purpose), as node `me` counts them.
    pub(crate) fn new(membership: &'a Membership, me: MemberId, learners_count: bool) -> Self {
        let count = if learners_count {
            membership.len()
        } else {
            membership.voter_count()
        };
        Self {
            membership,
            me,
            learners_count,
            count,
        }
    }

    pub(crate) fn counts(&self, id: MemberId) -> bool {
        self.learners_count || self.membership.is_voter(id)
    }

    /// Whether this node's own answer counts: a leader that is no voter in
    /// its latest membership (demoted by an entry not committed yet, see
    /// `Node::may_stand`) counts only the others.
    pub(crate) fn counts_me(&self) -> bool {
        self.counts(self.me)
    }
}

impl Node {
    /// Who makes up a leader's majorities: commit, its lease and
    /// check-quorum. Voters do; learners never.
    pub(crate) fn voters(&self) -> Voters<'_> {
        Voters::new(
            self.configs.current(),
            self.me,
            broken!(self, count_learners),
        )
    }
}

/// What only a leader keeps.
#[derive(Debug, Clone)]
pub(crate) struct Leading {
    /// Each linked follower's progress.
    pub(crate) progress: BTreeMap<MemberId, Progress>,
    /// When this node won its term.
    pub(crate) since: Duration,
    /// Index of the leader's first entry in its term; it serves after that
    /// entry is committed.
    pub(crate) term_start: Index,
    /// The commit index moved since the last flush: tell every follower.
    pub(crate) commit_dirty: bool,
    /// `All` writes waiting for every member: (origin, request, index);
    /// origin `None` is this node.
    pub(crate) awaiting_all: Vec<(Option<MemberId>, RequestId, Index)>,
    /// Scratch for the `All` writes answered in a turn (empty between turns).
    pub(crate) all_done: Vec<(Option<MemberId>, RequestId, Index)>,
    /// Handing leadership over, if it is.
    pub(crate) transfer: Option<Transfer>,
    /// Members removed while this node led, with the bound on their leases
    /// then (they were sent nothing since): `All` writes wait it out.
    pub(crate) departed: BTreeMap<MemberId, Duration>,
    /// Linked members told they were removed (the autopilot), with when:
    /// told again an election timeout later while they stay linked (word
    /// lost on a link left half-open, which nothing owed would reset), and
    /// at once on a new link.
    pub(crate) told_removed: BTreeMap<MemberId, Duration>,
}

/// A handover under way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer {
    /// The voter that is to stand.
    pub(crate) target: MemberId,
    /// When it is given up.
    pub(crate) deadline: Duration,
    /// This node goes on as a follower (`step_down`) rather than shutting
    /// down. Given up before `TimeoutNow` went out, it leads on: no voter
    /// skipped its guard for the target meanwhile.
    pub(crate) stays: bool,
}

impl Leading {
    /// Leading from `now`, its term starting at `term_start`, with each of
    /// `peers` probed from there. The election counts as contact with each,
    /// as grace for check-quorum.
    pub(crate) fn new(
        peers: impl Iterator<Item = MemberId>,
        term_start: Index,
        now: Duration,
    ) -> Self {
        let progress = peers
            .map(|p| {
                let mut pr = Progress::new(term_start, now);
                pr.last_ack = Some(now);
                (p, pr)
            })
            .collect();
        Self {
            progress,
            since: now,
            term_start,
            commit_dirty: false,
            awaiting_all: Vec::new(),
            all_done: Vec::new(),
            transfer: None,
            departed: BTreeMap::new(),
            told_removed: BTreeMap::new(),
        }
    }

    /// Whether it orders new writes: not while handing over.
    pub(crate) fn takes_writes(&self) -> bool {
        self.transfer.is_none()
    }

    /// The largest index a majority of the voters holds, the leader's log
    /// ending at `last`.
    pub(crate) fn quorum_matched(&self, last: Index, voters: Voters<'_>) -> Option<Index> {
        let mut matched: Vec<Index> = self
            .counted(voters)
            .filter(|p| p.linked)
            .map(|p| p.matched)
            .collect();
        if voters.counts_me() {
            matched.push(last);
        }
        quorum::quorum_value(&mut matched, voters.count)
    }

    /// The latest time by which a majority of the voters was heard, the
    /// leader now.
    pub(crate) fn quorum_heard(&self, now: Duration, voters: Voters<'_>) -> Option<Duration> {
        let mut acks: Vec<Duration> = self.counted(voters).filter_map(|p| p.last_ack).collect();
        if voters.counts_me() {
            acks.push(now);
        }
        quorum::quorum_value(&mut acks, voters.count)
    }

    /// The newest leader stamp a majority of the voters echoed, the
    /// leader's own now.
    pub(crate) fn quorum_stamp(&self, now: Duration, voters: Voters<'_>) -> Option<Duration> {
        let mut stamps: Vec<Duration> = self.counted(voters).filter_map(|p| p.stamp).collect();
        if voters.counts_me() {
            stamps.push(now);
        }
        quorum::quorum_value(&mut stamps, voters.count)
    }

    /// The followers that count in majorities: voters, confirmed.
    fn counted(&self, voters: Voters<'_>) -> impl Iterator<Item = &Progress> {
        self.progress
            .iter()
            .filter(move |(id, p)| voters.counts(**id) && p.counts())
            .map(|(_, p)| p)
    }

    /// Confirms the relinked followers that a majority without them has
    /// echoed a stamp sent after their link came up: this leader still led
    /// its term then, so no newer term had a majority, and no vote a
    /// follower forgot in a restart can have elected anyone. From then on
    /// what it forgot no longer matters: it counts again.
    pub(crate) fn confirm_relinked(&mut self, now: Duration, voters: Voters<'_>) {
        let relinked: Vec<(MemberId, Duration)> = self
            .progress
            .iter()
            .filter_map(|(id, p)| Some((*id, p.relinked_at?)))
            .collect();
        for (peer, since) in relinked {
            let mut stamps: Vec<Duration> = self
                .progress
                .iter()
                .filter(|(id, p)| **id != peer && voters.counts(**id) && p.counts())
                .filter_map(|(_, p)| p.stamp)
                .collect();
            stamps.push(now);
            if quorum::quorum_value(&mut stamps, voters.count).is_some_and(|s| s >= since)
                && let Some(p) = self.progress.get_mut(&peer)
            {
                p.relinked_at = None;
            }
        }
    }

    /// The start of the oldest snapshot still streaming.
    pub(crate) fn oldest_stream(&self) -> Option<Index> {
        self.progress
            .values()
            .filter_map(|p| p.streaming)
            .map(|s| s.index)
            .min()
    }
}

impl Node {
    /// Leaves leadership without a new term (check-quorum, Bad, handover).
    pub(crate) fn step_down(&mut self) {
        self.become_follower(self.term, None);
        let at = self.now + self.random_timeout();
        self.election.set_timer(at);
    }

    /// Heartbeats, check-quorum and the handover.
    pub(crate) fn leader_tick(&mut self) {
        let Some(lead) = self.leading.as_ref() else {
            return;
        };
        let heard = lead.quorum_heard(self.now, self.voters());
        if heard.is_none_or(|t| self.now >= t + self.timing.election_timeout) {
            self.step_down();
            return;
        }
        self.restart_stalled_streams();
        self.hand_over_if_demoted();
        self.autopilot_tick();
        if let Some(t) = self.leading.as_ref().and_then(|l| l.transfer)
            && self.now >= t.deadline
        {
            if t.stays {
                // Gave up a step-down: lead on, taking writes and serving.
                if let Some(l) = self.leading.as_mut() {
                    l.transfer = None;
                }
            } else {
                // Gave up a shutdown's handover: the end of the turn says it
                // leaves.
                self.step_down();
            }
        }
    }

    /// A leader elected as a voter that a change not committed then demoted
    /// or removed (see `Node::may_stand`): once its term's first entry
    /// committed, and the change with it, it hands leadership to a voter and
    /// goes on as a member of what it is now (a step-down: it waits until
    /// the target can win, and leads on meanwhile).
    pub(crate) fn hand_over_if_demoted(&mut self) {
        let idle = self
            .leading
            .as_ref()
            .is_some_and(|l| l.transfer.is_none() && self.commit >= l.term_start);
        if idle && !self.is_voter() && !self.shutting_down {
            self.begin_transfer(true);
        }
    }

    /// After the leader's last entries reached the transfer target, tell it
    /// to stand at once, and stop leading.
    pub(crate) fn maybe_hand_over(&mut self) {
        let Some(Transfer { target, stays, .. }) = self.leading.as_ref().and_then(|l| l.transfer)
        else {
            return;
        };
        let caught_up = self
            .progress(target)
            .is_some_and(|p| p.matched == self.log.last().index);
        // A step-down has no hurry: it waits until the target can win. (A
        // shutdown does not: its leader goes anyway.)
        let electable = !stays || self.electable(target);
        if caught_up && electable && self.links.contains_key(&target) {
            let term = self.term;
            self.send(target, Message::TimeoutNow { term, stays });
            if stays {
                // A follower from now on; the new leader's appends renew its
                // lease as any follower's.
                self.step_down();
                return;
            }
            // Whoever wins, not only the target, skips this one's lease.
            self.announce_leaving(Some(target));
            self.step_down();
            self.ready_to_stop();
        }
    }

    /// Whether `target` and a majority of the voters (it among them) are
    /// past their vote guard, as far as this leader can tell: a member's
    /// guard runs from its start, which came before this leader first saw
    /// that incarnation. Sooner, the target would refuse `TimeoutNow`, or
    /// win no votes, and a step-down would leave the cluster leaderless
    /// until an ordinary election.
    fn electable(&self, target: MemberId) -> bool {
        let g = self.timing.vote_guard;
        let bound = g + crate::Timing::drift_margin(g);
        let past = |v: MemberId| {
            if v == self.me {
                self.may_vote()
            } else {
                self.links.contains_key(&v)
                    && self
                        .incarnations
                        .get(&v)
                        .is_some_and(|(_, seen)| self.now >= *seen + bound)
            }
        };
        let voters = self.configs.current().voters().filter(|&v| past(v)).count();
        past(target) && voters >= quorum::majority(self.electorate())
    }

    /// The voter to hand leadership over to: linked, and the furthest in
    /// the log (the lowest id among equals).
    pub(crate) fn handover_target(&self) -> Option<MemberId> {
        self.leading
            .as_ref()?
            .progress
            .iter()
            .filter(|(id, _)| self.links.contains_key(id) && self.configs.current().is_voter(**id))
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// [`Input::StepDown`](crate::Input::StepDown): hands leadership over and
    /// goes on as a follower. Ignored unless leading and not already
    /// handing over or shutting down; given up after an election timeout.
    pub(crate) fn request_step_down(&mut self) {
        if !self.shutting_down && self.leading.as_ref().is_some_and(|l| l.transfer.is_none()) {
            self.begin_transfer(true);
        }
    }

    /// Starts handing leadership over (this node staying a member when
    /// `stays`), to be given up after an election timeout; false when
    /// there is no voter to hand it to.
    pub(crate) fn begin_transfer(&mut self, stays: bool) -> bool {
        let Some(target) = self.handover_target() else {
            return false;
        };
        let deadline = self.now + self.timing.election_timeout;
        let Some(l) = self.leading.as_mut() else {
            return false;
        };
        l.transfer = Some(Transfer {
            target,
            deadline,
            stays,
        });
        true
    }
}
