//! Snapshots: streaming the caches to a follower behind the log's start,
//! keeping the log for it meanwhile, and installing one chunk by chunk.

use std::time::Duration;

use crate::events::{Output, Rejection};
use crate::faults::broken;
use crate::leading::Leading;
use crate::message::SnapshotChunk;
use crate::node::Node;
use crate::types::{Index, LogId, MemberId, Term};

/// A follower's side of snapshots: whether its caches wait for one, the
/// one being installed, and how far the last one reached.
#[derive(Debug, Clone, Default)]
pub(crate) struct Install {
    /// The caches were cleared (health Bad): ask the leader for a snapshot.
    needed: bool,
    /// The snapshot being installed: (term, last, next chunk; `None` once a
    /// chunk was missed). From its first chunk until its last, the caches
    /// are neither the old state nor the new one: no lease is renewed.
    installing: Option<(Term, LogId, Option<u64>)>,
    /// The `end` of the latest snapshot installed: until the log replays
    /// past it, the caches may show entries beyond `applied`.
    fuzzy_end: Index,
}

impl Install {
    /// Whether to ask the leader for a snapshot.
    pub(crate) fn needed(&self) -> bool {
        self.needed
    }

    /// The caches were cleared: only a snapshot refills them.
    pub(crate) fn caches_cleared(&mut self) {
        self.needed = true;
    }

    /// This node leads now: no one sends it a snapshot. Whether one was
    /// half installed.
    pub(crate) fn abandon(&mut self) -> bool {
        self.needed = false;
        self.installing.take().is_some()
    }

    /// Whether the caches, `applied` entries in, are exactly the log's:
    /// no snapshot half installed, and the last one's end replayed.
    pub(crate) fn caches_exact(&self, applied: Index) -> bool {
        self.installing.is_none() && applied >= self.fuzzy_end
    }

    /// The highest index whose effects the caches may show, `applied`
    /// entries in.
    pub(crate) fn caches_through(&self, applied: Index) -> Index {
        applied.max(self.fuzzy_end)
    }

    /// Takes chunk `seq` of the snapshot of `term` from `last`, if it is the
    /// next one (a first chunk always is). A chunk out of sequence closes
    /// the install to its later chunks.
    fn take(&mut self, term: Term, last: LogId, seq: u64) -> bool {
        if seq != 0 && self.installing != Some((term, last, Some(seq))) {
            if let Some(i) = self.installing.as_mut() {
                i.2 = None;
            }
            return false;
        }
        if seq == 0 {
            self.needed = true;
        }
        self.installing = Some((term, last, seq.checked_add(1)));
        true
    }

    /// The last chunk arrived: the caches hold the snapshot, up to `end`.
    fn finish(&mut self, end: Index) {
        self.installing = None;
        self.needed = false;
        self.fuzzy_end = end;
    }
}

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
        let membership = self.configs.at(last.index);
        self.out.push(Output::SendSnapshot {
            to: peer,
            term: self.term,
            last,
            membership,
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
        // A stream begun before a newer one that this node installed, or
        // whose point its log moved past: its state is older than what
        // this node holds and acknowledged (the leader counted those
        // entries towards commits). Nothing to install; the reply ends the
        // stream on the leader.
        let older = c.last.index < self.log.base().index
            || (c.last.index <= self.applied && !self.install.needed());
        if c.seq == 0 && older && !broken!(self, install_older_snapshots) {
            self.reject(from, "snapshot", Rejection::OlderSnapshot);
            self.reply(from, Duration::ZERO, true, c.last.index, done);
            return;
        }
        if !self.install.take(c.term, c.last, c.seq) {
            // A chunk was lost (a link may lose messages) or this stream was
            // never begun here: wait for the leader's next snapshot. What
            // was installed so far stays unserved until a whole one: the
            // install stays open, and no later chunk of it matches.
            self.reject(from, "snapshot", Rejection::OutOfSequence);
            return;
        }
        let first = c.seq == 0;
        if first {
            self.drop_lease_for_install();
        }
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
        self.install.finish(c.end.unwrap_or(c.last.index));
        let kept = self.log.reset_to(c.last);
        self.configs.reset_to(c.last.index, c.membership, kept);
        self.membership_changed();
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
        self.configs.compacted_to(base);
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
