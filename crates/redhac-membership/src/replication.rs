//! Replication: appending, sending entries and snapshots, matching a
//! follower's log, commit, apply, and the follower's read lease.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::broken;
use crate::node::Node;
use crate::quorum;
use crate::types::{
    Append, AppendReply, Entry, Index, LogId, MemberId, Message, Op, Output, Rejection, Role,
    SnapshotChunk, Term,
};

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
    /// Appends a new entry of this leader's term, written on `origin`.
    pub(crate) fn append_local(&mut self, op: Arc<Op>, origin: MemberId) -> LogId {
        let id = LogId::new(self.term, self.log.last().index + 1);
        self.log.push(Entry {
            id,
            op,
            origin: Some(origin),
        });
        self.advance_commit(); // a one-member cluster commits at once
        id
    }

    /// Sends what each follower lacks, a heartbeat when due or when the
    /// commit index moved, and snapshots to those behind the log's start.
    pub(crate) fn flush(&mut self) {
        let peers: Vec<MemberId> = self.progress.keys().copied().collect();
        let heartbeat_due = |last: Duration, now: Duration, h: Duration| now >= last + h;
        let lease = self.leader_lease().is_some_and(|u| self.now < u);
        for peer in peers {
            // A peer receiving a snapshot gets nothing else of the log
            // (its chunks tell it the leader is alive) until it acks.
            if !self.links.contains_key(&peer) || self.progress[&peer].streaming.is_some() {
                continue;
            }
            let mut sent = false;
            loop {
                let p = &self.progress[&peer];
                let next = p.next;
                let probing = p.probing;
                // Before the frames-in-flight limit: with that reached (its
                // frames lost), a follower whose next entry was compacted
                // could otherwise not even get a heartbeat.
                if next - 1 < self.log.base().index || p.wants_snapshot {
                    self.send_snapshot(peer);
                    sent = true;
                    break;
                }
                if p.inflight >= self.timing.max_inflight {
                    break;
                }
                if next > self.log.last().index {
                    break;
                }
                let entries =
                    self.log
                        .slice(next, self.timing.max_batch, self.timing.max_batch_bytes);
                let count = entries.len() as Index;
                self.send_append(peer, next - 1, entries, lease);
                let Some(p) = self.progress.get_mut(&peer) else {
                    break; // listed above, in this same step
                };
                p.next = next + count;
                p.inflight += 1;
                sent = true;
                if probing {
                    break;
                }
            }
            let p = &self.progress[&peer];
            if !sent
                && (self.commit_dirty
                    || p.prompt
                    || heartbeat_due(p.last_sent, self.now, self.timing.heartbeat))
            {
                let prev = p.next - 1;
                self.send_append(peer, prev, Vec::new(), lease);
            }
        }
        self.commit_dirty = false;
        self.maybe_hand_over();
    }

    fn send_append(&mut self, peer: MemberId, prev: Index, entries: Vec<Entry>, lease: bool) {
        let Some(prev_term) = self.log.term_at(prev) else {
            return;
        };
        let Some(p) = self.progress.get_mut(&peer) else {
            return;
        };
        p.last_sent = self.now;
        p.prompt = false;
        let msg = Message::Append(Append {
            term: self.term,
            prev: LogId::new(prev_term, prev),
            entries,
            commit: self.commit,
            stamp: self.now,
            echo: p.echo,
            lease,
        });
        self.send(peer, msg);
    }

    fn send_snapshot(&mut self, peer: MemberId) {
        // The applied entry is always in the log or is its base; should that
        // ever fail, send nothing rather than a snapshot with a wrong id.
        let Some(term) = self.log.term_at(self.applied) else {
            return;
        };
        let last = LogId::new(term, self.applied);
        let Some(p) = self.progress.get_mut(&peer) else {
            return;
        };
        p.next = last.index + 1;
        p.wants_snapshot = false;
        p.snapshot_sent = Some(self.now);
        p.streaming = Some(last);
        p.inflight += 1;
        p.probing = false;
        p.last_sent = self.now;
        self.out.push(Output::SendSnapshot {
            to: peer,
            term: self.term,
            last,
        });
    }

    pub(crate) fn on_append(&mut self, from: MemberId, a: Append) {
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
        for e in a.entries {
            if e.id.index <= self.log.base().index {
                continue; // committed and compacted here: equal by Raft's rules
            }
            match self.log.term_at(e.id.index) {
                Some(t) if t == e.id.term => {}
                Some(_) => {
                    self.truncate_from(e.id.index);
                    self.log.push(e);
                }
                None => self.log.push(e),
            }
        }
        let commit = a.commit.min(matched);
        if commit > self.commit {
            self.commit = commit;
            self.apply_committed();
        }
        // The read lease: renewed only by a leader that held its own lease,
        // only once everything it had committed is applied here (and, after
        // a snapshot, past its end: the caches are exact only then; a leader
        // that took an old stream's answer for a newer one's may send
        // appends committing less), never mid-install, and counted from when
        // this node sent the reply the leader echoes, so the leader's bound
        // (that reply's arrival plus L) holds.
        if a.lease
            && (self.applied >= a.commit || broken!(self, renew_when_lagging))
            && (self.installing.is_none() && self.applied >= self.fuzzy_end
                || broken!(self, keep_lease_while_installing))
            && let Some(echo) = a.echo.filter(|e| *e <= self.now)
        {
            let until = echo + self.timing.read_lease;
            self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
        }
        self.reply(from, a.stamp, true, matched, batch);
    }

    /// Whether `from` may lead this node in `term`; if so, this node
    /// follows it. A stale term is answered with this node's term; leader
    /// traffic from someone other than the leader this node knows for that
    /// term (itself included) is refused: a term has one leader.
    fn may_lead(
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
        if matches!(self.term_leader, Some((t, l)) if t == term && l != from) {
            self.reject(from, what, Rejection::NotTheLeader);
            return false;
        }
        self.heard_from_leader(from, term);
        true
    }

    fn heard_from_leader(&mut self, from: MemberId, term: Term) {
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.term_leader = Some((term, from));
        self.heard_leader = Some(self.now);
        self.election_at = self.now + self.random_timeout();
    }

    fn reply(&mut self, to: MemberId, stamp: Duration, ok: bool, last: Index, batch: bool) {
        let msg = Message::AppendReply(AppendReply {
            term: self.term,
            ok,
            last,
            applied: self.applied,
            needs_snapshot: self.needs_snapshot,
            stamp,
            own: self.now,
            batch,
        });
        self.send(to, msg);
    }

    /// Drops entries from `index` on. Entries already applied cannot be
    /// undone (there is no old value), so their keys are invalidated.
    fn truncate_from(&mut self, index: Index) {
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

    /// A chunk of the leader's caches. The first clears them and drops
    /// this node's lease; the last makes `last` this node's applied index.
    /// The log is kept meanwhile: it still counts in elections.
    pub(crate) fn on_snapshot(&mut self, from: MemberId, c: SnapshotChunk) {
        if c.last.index == 0 && c.last.term != 0 || c.last.term > c.term {
            self.reject(from, "snapshot", Rejection::Malformed);
            return;
        }
        let done = c.end.is_some();
        // Only the last chunk counts as a frame in flight for the leader.
        if !self.may_lead(from, c.term, Duration::ZERO, done, "snapshot") {
            return;
        }
        let first = c.seq == 0;
        if !first && self.installing != Some((c.term, c.last, Some(c.seq))) {
            // A chunk was lost (a link may lose messages) or this stream was
            // never begun here: wait for the leader's next snapshot. What
            // was installed so far stays unserved until a whole one: the
            // install stays open, and no later chunk of it matches.
            if let Some(i) = self.installing.as_mut() {
                i.2 = None;
            }
            self.reject(from, "snapshot", Rejection::OutOfSequence);
            return;
        }
        if first {
            self.needs_snapshot = true;
            if !broken!(self, keep_lease_while_installing) {
                self.lease_until = None;
            }
        }
        self.installing = Some((c.term, c.last, c.seq.checked_add(1)));
        self.out.push(Output::InstallChunk {
            first,
            done,
            last: c.last,
            data: c.data,
        });
        if !done {
            // Tells the leader the stream is arriving (it gives up on one
            // it hears nothing of); it asks for a snapshot until the last.
            self.reply(from, Duration::ZERO, false, self.log.last().index, false);
            return;
        }
        self.installing = None;
        self.needs_snapshot = false;
        self.fuzzy_end = c.end.unwrap_or(c.last.index);
        self.log.reset_to(c.last);
        self.applied = c.last.index;
        self.commit = c.last.index;
        self.reply(from, Duration::ZERO, true, c.last.index, true);
    }

    pub(crate) fn on_append_reply(&mut self, from: MemberId, r: AppendReply) {
        if r.term > self.term {
            self.higher_term_seen(r.term);
            return;
        }
        if self.role != Role::Leader || r.term < self.term {
            return;
        }
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        if r.batch {
            p.inflight = p.inflight.saturating_sub(1);
        }
        p.last_ack = Some(self.now);
        p.prompt |= p.echo.is_none();
        p.echo = Some(r.own);
        if r.stamp > Duration::ZERO {
            p.stamp = Some(p.stamp.map_or(r.stamp, |s| s.max(r.stamp)));
        }
        p.applied = r.applied;
        if let Some(s) = p.streaming {
            // Until the follower acknowledges the snapshot (a reply with no
            // stamp: it answers no append), replies to what was sent before
            // it neither end the stream nor ask for another.
            if r.ok && r.stamp.is_zero() && r.last >= s.index && !r.needs_snapshot {
                p.streaming = None;
            }
        } else if r.needs_snapshot
            && p.snapshot_sent
                .is_none_or(|t| self.now >= t + self.timing.election_timeout)
        {
            p.wants_snapshot = true;
        }
        if r.ok {
            p.matched = p.matched.max(r.last);
            p.next = p.next.max(r.last + 1);
            p.probing = false;
        } else {
            p.next = (r.last + 1).max(p.matched + 1).min(p.next);
            p.probing = true;
            p.inflight = 0;
        }
        self.advance_commit();
    }

    /// The leader's commit index: the largest index a majority holds, once
    /// that entry is of the current term.
    pub(crate) fn advance_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.last().index);
        let members = if broken!(self, commit_without_majority) {
            1
        } else {
            self.members
        };
        let Some(q) = quorum::quorum_value(&mut matched, members) else {
            return;
        };
        if q > self.commit && self.log.term_at(q) == Some(self.term) {
            self.commit = q;
            self.commit_dirty = true;
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
