//! Replication: appending, sending entries, matching a follower's log,
//! commit and apply.

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Output, Rejection};
use crate::faults::broken;
use crate::leading::Voters;
use crate::message::{Append, AppendReply, Message};
use crate::node::Node;
use crate::types::{Entry, Index, LogId, MemberId, NodeRole, Op, Request, Term};

/// Entry terms never decrease along a log and never exceed the term of the
/// leader that sends them.
fn terms_fit(a: &Append) -> bool {
    let mut last = a.prev.term;
    a.prev.term <= a.term
        && a.entries.iter().all(|e| {
            let ok = e.id.term >= last && e.id.term <= a.term;
            last = e.id.term;
            ok
        })
}

impl Node {
    /// Appends a new entry of this leader's term, the write `request` of
    /// `origin` (none for the leader's `Noop`).
    pub(crate) fn append_local(
        &mut self,
        op: Arc<Op>,
        origin: MemberId,
        request: Option<Request>,
    ) -> LogId {
        let id = LogId::new(self.term, self.log.last().index + 1);
        self.push_entry(Entry {
            id,
            op,
            origin: Some(origin),
            request,
        });
        self.advance_commit(); // a one-member cluster commits at once
        id
    }

    /// Sends what each follower lacks, a heartbeat when due or when the
    /// commit index moved, and snapshots to those behind the log's start.
    pub(crate) fn flush(&mut self) {
        let Some(lead) = self.leading.as_ref() else {
            return;
        };
        let peers: Vec<MemberId> = lead.progress.keys().copied().collect();
        let commit_moved = lead.commit_dirty;
        let lease = self.leader_lease().is_some_and(|u| self.now < u);
        for peer in peers {
            self.flush_to(peer, lease, commit_moved);
        }
        if let Some(lead) = self.leading.as_mut() {
            lead.commit_dirty = false;
        }
        self.maybe_hand_over();
    }

    /// Sends `peer` frames of entries up to the in-flight limit, or a
    /// snapshot, or else a heartbeat when one is due.
    fn flush_to(&mut self, peer: MemberId, lease: bool, commit_moved: bool) {
        // A peer receiving a snapshot gets nothing else of the log (its
        // chunks tell it the leader is alive) until it acks.
        let streaming = self.progress(peer).is_none_or(|p| p.streaming.is_some());
        if !self.links.contains_key(&peer) || streaming {
            return;
        }
        let mut sent = false;
        while let Some(p) = self.progress(peer) {
            let next = p.next;
            let probing = p.probing;
            // Before the frames-in-flight limit: with that reached (its
            // frames lost), a follower whose next entry was compacted could
            // otherwise not even get a heartbeat.
            // A follower whose caches were cleared gets the caches once
            // this leader applied as far as it did: an older snapshot is
            // refused (its log may have moved past that point), so until
            // then it gets entries like any follower, and their commit
            // moves this leader's applied index on (a new leader's first
            // entry may need its acknowledgement).
            let wanted = p.wants_snapshot && self.applied >= p.applied;
            if next - 1 < self.log.base().index || wanted {
                self.send_snapshot(peer);
                return;
            }
            if p.inflight >= self.timing.max_inflight || next > self.log.last().index {
                break;
            }
            let entries = self
                .log
                .slice(next, self.timing.max_batch, self.timing.max_batch_bytes);
            let count = entries.len() as Index;
            self.send_append(peer, next - 1, entries, lease);
            let Some(p) = self.progress_mut(peer) else {
                return;
            };
            p.sent_entries(next + count);
            sent = true;
            if probing {
                break;
            }
        }
        let Some(p) = self.progress(peer) else {
            return;
        };
        let heartbeat_due = self.now >= p.last_sent + self.timing.heartbeat;
        if !sent && (commit_moved || p.prompt || heartbeat_due) {
            let prev = p.next - 1;
            self.send_append(peer, prev, Vec::new(), lease);
        }
    }

    fn send_append(&mut self, peer: MemberId, prev: Index, entries: Vec<Entry>, lease: bool) {
        let Some(prev_term) = self.log.term_at(prev) else {
            return;
        };
        let (now, term, commit) = (self.now, self.term, self.commit);
        let Some(p) = self.progress_mut(peer) else {
            return;
        };
        p.sent(now);
        // A restarted member the others have not confirmed yet counts in no
        // majority: it gets no lease either, so it does not serve (and does
        // not turn ready) before it counts; a rollout that waits for it
        // then never takes down the member its confirmation needs.
        let lease = lease && p.counts();
        if lease && p.echo.is_some() {
            // The echoed stamp came with the latest reply.
            p.lease_from = p.lease_from.max(p.last_ack);
        }
        let msg = Message::Append(Append {
            term,
            prev: LogId::new(prev_term, prev),
            entries,
            commit,
            stamp: now,
            echo: p.echo,
            lease,
        });
        self.send(peer, msg);
    }

    pub(crate) fn on_append(&mut self, from: MemberId, mut a: Append) {
        let batch = !a.entries.is_empty();
        if a.prev.index == 0 && a.prev.term != 0 || !terms_fit(&a) {
            self.reject(from, "append", Rejection::Malformed);
            return;
        }
        if !self.may_lead(from, a.term, a.stamp, batch, "append") {
            return;
        }
        let base = self.log.base().index;
        if a.prev.index >= base && !self.log.has(a.prev) {
            // A gap, or a conflicting entry at prev: drop from prev on and
            // tell the leader where to resume.
            if a.prev.index <= self.log.last().index {
                self.truncate_from(a.prev.index);
            }
            let hint = self.log.last().index.min(a.prev.index.saturating_sub(1));
            self.reply(from, a.stamp, false, hint, batch);
            return;
        }
        let matched = a.prev.index + a.entries.len() as Index;
        for e in std::mem::take(&mut a.entries) {
            if e.id.index <= self.log.base().index {
                continue; // committed and compacted here: equal by Raft's rules
            }
            match self.log.term_at(e.id.index) {
                Some(t) if t == e.id.term => {}
                Some(_) => {
                    self.truncate_from(e.id.index);
                    self.push_entry(e);
                }
                None => self.push_entry(e),
            }
        }
        let commit = a.commit.min(matched);
        if commit > self.commit {
            self.commit = commit;
            self.apply_committed();
        }
        self.renew_lease(&a);
        self.reply(from, a.stamp, true, matched, batch);
    }

    /// Whether `from` may lead this node in `term`; if so, this node
    /// follows it. A stale term is answered with this node's term; leader
    /// traffic from someone other than the leader this node knows for that
    /// term (itself included) is refused: a term has one leader.
    pub(crate) fn may_lead(
        &mut self,
        from: MemberId,
        term: Term,
        stamp: Duration,
        batch: bool,
        what: &'static str,
    ) -> bool {
        if term < self.term {
            self.reject(from, what, Rejection::StaleTerm);
            self.reply(from, stamp, false, self.log.last().index, batch);
            return false;
        }
        if self.election.leader_of(term).is_some_and(|l| l != from) {
            self.reject(from, what, Rejection::NotTheLeader);
            return false;
        }
        self.heard_from_leader(from, term);
        true
    }

    pub(crate) fn reply(
        &mut self,
        to: MemberId,
        stamp: Duration,
        ok: bool,
        last: Index,
        batch: bool,
    ) {
        let msg = Message::AppendReply(AppendReply {
            term: self.term,
            ok,
            last,
            applied: self.applied,
            needs_snapshot: self.install.needed(),
            leaving: self.shutting_down,
            stamp,
            own: self.now,
            batch,
        });
        self.send(to, msg);
    }

    /// Appends `e` to the log; a membership entry takes effect at once.
    fn push_entry(&mut self, e: Entry) {
        let index = e.id.index;
        let membership = match &*e.op {
            Op::Membership(m) => Some(m.clone()),
            _ => None,
        };
        self.log.push(e);
        if let Some(m) = membership {
            self.configs.logged(index, m);
            self.membership_changed();
        }
    }

    /// Drops entries from `index` on. Entries already applied cannot be
    /// undone (there is no old value), so their keys are invalidated; a
    /// membership entry dropped no longer counts.
    fn truncate_from(&mut self, index: Index) {
        if self.configs.last_index().is_some_and(|i| i >= index) {
            self.configs.truncated_from(index);
            self.membership_changed();
        }
        if index <= self.log.base().index {
            // Even a compacted (applied) entry conflicts: this member lost
            // state the cluster did not (a restart of a majority). Start over
            // from an empty log; the leader will send a snapshot.
            self.out.push(Output::InvalidateAll);
            self.log = crate::log::Log::default();
            self.applied = 0;
            self.commit = 0;
            return;
        }
        let removed = self.log.truncate_from(index);
        if index <= self.applied {
            let keys = removed
                .iter()
                .filter(|e| e.id.index <= self.applied)
                .filter_map(|e| e.op.touches())
                .map(|(c, k)| (c.to_owned(), k.map(str::to_owned)))
                .collect();
            self.out.push(Output::InvalidateKeys(keys));
            self.applied = index - 1;
        }
        self.commit = self.commit.min(index - 1);
    }

    pub(crate) fn on_append_reply(&mut self, from: MemberId, r: AppendReply) {
        if r.term > self.term {
            self.higher_term_seen(r.term);
            return;
        }
        if self.role != NodeRole::Leader || r.term < self.term {
            return;
        }
        let (now, retry) = (self.now, self.timing.election_timeout);
        let Some(p) = self.progress_mut(from) else {
            return;
        };
        p.on_reply(&r, now, retry);
        let voters = Voters::new(
            self.configs.current(),
            self.me,
            broken!(self, count_learners),
        );
        if let Some(lead) = self.leading.as_mut() {
            lead.confirm_relinked(now, voters);
        }
        self.advance_commit();
    }

    /// The leader's commit index: the largest index a majority holds, once
    /// that entry is of the current term.
    pub(crate) fn advance_commit(&mut self) {
        let mut voters = Voters::new(
            self.configs.current(),
            self.me,
            broken!(self, count_learners),
        );
        if broken!(self, commit_without_majority) {
            voters.count = 1;
        }
        let last = self.log.last().index;
        let Some(lead) = self.leading.as_mut() else {
            return;
        };
        let Some(q) = lead.quorum_matched(last, voters) else {
            return;
        };
        if q > self.commit && self.log.term_at(q) == Some(self.term) {
            self.commit = q;
            lead.commit_dirty = true;
            self.apply_committed();
        }
    }

    /// Applies committed entries in order.
    pub(crate) fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let Some(e) = self.log.get(self.applied + 1) else {
                break;
            };
            self.out.push(Output::Apply(e.clone()));
            self.applied += 1;
        }
    }
}
