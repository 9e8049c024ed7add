//! The leader's autopilot (the dynamic mode): it keeps a number of voters,
//! replaces a voter gone silent with a caught-up learner, removes members
//! gone for long, and adds new members as learners. Every change goes
//! through the same admission as an operator's (`Node::admit_change`): one
//! at a time, after the leader committed an entry of its term, a promoted
//! learner caught up, and a majority of the new voters answering.

use std::sync::Arc;
use std::time::Duration;

use crate::membership::Membership;
use crate::message::Message;
use crate::node::Node;
use crate::types::{MemberId, Op};

/// What the autopilot keeps (see [`NodeConfig::autopilot`]).
///
/// [`NodeConfig::autopilot`]: crate::NodeConfig::autopilot
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autopilot {
    /// How many voters to keep (3 or 5: an even number adds no fault
    /// tolerance; 0 counts as 1). Learners are promoted while fewer voters
    /// were heard from within `replace_after`, and extra voters demoted
    /// while none was silent that long.
    pub voters: usize,
    /// A voter the leader has not heard from this long is replaced: a
    /// caught-up learner is promoted in its place (it stays a voter until
    /// removed).
    pub replace_after: Duration,
    /// A voter that shuts down waits this long at most for the leader to
    /// remove it before it reports [`Output::ShutdownReady`]; it goes on
    /// voting meanwhile (see `Node::waits_for_removal`).
    ///
    /// [`Output::ShutdownReady`]: crate::Output::ShutdownReady
    pub leave_timeout: Duration,
    /// A member the leader has not heard from this long is removed. Make it
    /// longer than `replace_after`, or a silent voter is removed before a
    /// learner takes its place.
    pub remove_after: Duration,
}

impl Autopilot {
    /// Keeps `voters` voters; replaces a voter silent for `election_timeout`
    /// times 5, removes a member silent for 30 times; a voter shutting down
    /// waits 10 times at most to be removed.
    pub fn new(voters: usize, election_timeout: Duration) -> Self {
        Self {
            voters,
            replace_after: election_timeout * 5,
            remove_after: election_timeout * 30,
            leave_timeout: election_timeout * 10,
        }
    }
}

impl Node {
    /// Whether `id` answers this leader now: linked, not leaving, and
    /// replied to it within the election timeout (its election alone
    /// does not count). The leader itself does.
    pub(crate) fn answers(&self, id: MemberId) -> bool {
        if id == self.me {
            return self.leading.is_some();
        }
        let (now, timeout) = (self.now, self.timing.election_timeout);
        self.leading
            .as_ref()
            .and_then(|lead| lead.progress.get(&id))
            .is_some_and(|p| {
                p.linked
                    && !p.left
                    && p.echo.is_some()
                    && p.last_ack
                        .is_some_and(|at| now.saturating_sub(at) < timeout)
            })
    }

    /// How long this leader has not heard from `id`: since its last reply,
    /// else since it began tracking it, else since the election (never, for
    /// itself).
    fn silent_for(&self, id: MemberId) -> Duration {
        let Some(lead) = self.leading.as_ref().filter(|_| id != self.me) else {
            return Duration::ZERO;
        };
        let heard = lead
            .progress
            .get(&id)
            .map_or(lead.since, |p| p.last_ack.unwrap_or(p.created));
        self.now.saturating_sub(heard.max(lead.since))
    }

    /// On the leader's tick: the one change the autopilot makes now, if
    /// any, appended as the leader's own entry.
    pub(crate) fn autopilot_tick(&mut self) {
        let Some(pilot) = self.autopilot else {
            return;
        };
        // Only a leader that takes writes and committed an entry of its
        // term: its log then holds every committed change.
        let ready = self
            .leading
            .as_ref()
            .is_some_and(|l| l.takes_writes() && self.commit >= l.term_start);
        if !ready || self.shutting_down {
            return;
        }
        self.tell_removed();
        let admitted = self
            .autopilot_changes(&pilot)
            .into_iter()
            .find(|next| self.admit_change(next).is_ok());
        if let Some(next) = admitted {
            self.append_local(Arc::new(Op::Membership(next)), self.me, None);
        }
    }

    /// Tells each linked peer that is listed in neither the committed nor
    /// the current membership and is no new member (its hello, when it
    /// linked, reported entries; or this leader removed it), once per link
    /// and election timeout, that it was removed: it leaves, and joins again
    /// as a new member. A member whose removal is not committed yet is told
    /// once it is.
    fn tell_removed(&mut self) {
        let Some(lead) = self.leading.as_ref() else {
            return;
        };
        let (now, again) = (self.now, self.timing.election_timeout);
        let (_, committed) = self.configs.at(self.commit);
        let current = self.configs.current();
        let gone: Vec<MemberId> = self
            .links
            .iter()
            .filter(|(id, hello)| {
                let new = hello.last.index == 0 && !lead.departed.contains_key(id);
                !current.contains(**id)
                    && !committed.contains(**id)
                    && !new
                    && lead
                        .told_removed
                        .get(id)
                        .is_none_or(|at| now >= *at + again)
            })
            .map(|(id, _)| *id)
            .collect();
        // Only under its lease: no newer leader can have been elected (and
        // added the member back) meanwhile.
        let leased = self.leader_lease().is_some_and(|until| self.now < until);
        if gone.is_empty() || !leased {
            return;
        }
        let term = self.term;
        for id in gone {
            self.send(id, Message::Removed { term });
            if let Some(lead) = self.leading.as_mut() {
                lead.told_removed.insert(id, now);
            }
        }
    }

    /// The changes to make, the most needed first: promote a caught-up
    /// learner while fewer than `voters` voters are not long silent; remove
    /// a member silent past `remove_after`; add a new member (linked, not
    /// listed, its log empty, not removed by this leader) as a learner;
    /// demote a voter beyond `voters` while none is long silent.
    fn autopilot_changes(&self, pilot: &Autopilot) -> Vec<Membership> {
        let Some(lead) = self.leading.as_ref() else {
            return Vec::new();
        };
        // Nothing to weigh while a change is in flight (admission would
        // refuse every one); the caller checked the term's commit.
        if self.configs.last_index().is_some_and(|i| i > self.commit) {
            return Vec::new();
        }
        let m = self.configs.current();
        let target = pilot.voters.max(1);
        // A member shutting down goes first: a voter waits for it to leave.
        let mut changes: Vec<Membership> = m
            .all()
            .filter(|id| lead.progress.get(id).is_some_and(|p| p.left))
            .map(|id| m.without(id))
            .collect();
        let staying = m
            .voters()
            .filter(|v| self.silent_for(*v) < pilot.replace_after)
            .count();
        if staying < target {
            changes.extend(
                m.learners()
                    .filter(|l| {
                        self.answers(*l)
                            && lead
                                .progress
                                .get(l)
                                .is_some_and(|p| p.matched >= self.commit)
                    })
                    .map(|l| m.promoted(l)),
            );
        }
        changes.extend(
            m.all()
                .filter(|id| *id != self.me && self.silent_for(*id) >= pilot.remove_after)
                .map(|id| m.without(id)),
        );
        changes.extend(
            self.links
                .iter()
                .filter(|(id, hello)| {
                    !m.contains(**id) && hello.last.index == 0 && !lead.departed.contains_key(id)
                })
                .map(|(id, _)| m.with_learner(*id)),
        );
        if m.voter_count() > target && staying == m.voter_count() {
            changes.extend(
                m.voters()
                    .filter(|v| *v != self.me)
                    .last()
                    .map(|v| m.demoted(v)),
            );
        }
        changes
    }
}
