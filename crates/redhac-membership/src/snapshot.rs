//! Snapshots: streaming the caches to a follower behind the log's start,
//! keeping the log for it meanwhile, and installing one chunk by chunk.

use std::time::Duration;

use crate::events::{Output, Rejection};
use crate::leading::Leading;
use crate::message::SnapshotChunk;
use crate::node::Node;
use crate::types::{LogId, MemberId};

impl Node {
    /// Starts streaming the caches to `peer`, from the entries applied.
    pub(crate) fn send_snapshot(&mut self, peer: MemberId) {
        // The applied entry is always in the log or is its base; should that
        // ever fail, send nothing rather than a snapshot with a wrong id.
        let Some(term) = self.log.term_at(self.applied) else {
            return;
        };
        let last = LogId::new(term, self.applied);
        let now = self.now;
        let Some(p) = self.progress_mut(peer) else {
            return;
        };
        p.snapshot_started(last, now);
        self.out.push(Output::SendSnapshot {
            to: peer,
            term: self.term,
            last,
        });
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
            self.drop_lease_for_install();
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

    /// Forgets applied entries beyond the log's capacity, except those after
    /// a snapshot still streaming (its follower replays them), up to four
    /// times the capacity: beyond that, a stream whose entries go ends, and
    /// its follower gets a newer snapshot at once.
    pub(crate) fn compact(&mut self) {
        let (capacity, bytes) = (self.timing.log_capacity, self.timing.log_capacity_bytes);
        let hold = self
            .leading
            .as_ref()
            .and_then(Leading::oldest_stream)
            .filter(|_| {
                self.log.len() < capacity.saturating_mul(4)
                    && self.log.bytes() < bytes.saturating_mul(4)
            });
        let upto = hold.map_or(self.applied, |h| h.min(self.applied));
        self.log.compact(upto, capacity, bytes);
        let base = self.log.base().index;
        let Some(lead) = self.leading.as_mut() else {
            return;
        };
        for p in lead.progress.values_mut() {
            if p.streaming.is_some_and(|s| s.index < base) {
                p.restart_snapshot();
            }
        }
    }

    /// Restarts the streams whose follower stopped answering.
    pub(crate) fn restart_stalled_streams(&mut self) {
        let (now, t) = (self.now, self.timing.election_timeout);
        let Some(lead) = self.leading.as_mut() else {
            return;
        };
        for p in lead.progress.values_mut() {
            if p.stream_stalled(now, t) {
                p.restart_snapshot();
            }
        }
    }
}
