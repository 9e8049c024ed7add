//! Snapshot streams as the runtime cuts them: the keys listed when the
//! stream starts, their values read chunk by chunk from the sender's caches.

use std::collections::BTreeMap;
use std::sync::Arc;

use redhac_membership::{LogId, MemberId, Membership, Message, Node, SnapshotChunk, Term};

use super::{Event, World};

/// Keys per snapshot chunk: streams of several chunks.
const CHUNK_KEYS: usize = 2;

/// A snapshot being streamed, as the runtime does it: the keys are listed
/// when it starts, each chunk reads their values when it is cut (so entries
/// applied meanwhile show: a fuzzy snapshot).
#[derive(Debug)]
pub(super) struct Stream {
    from: MemberId,
    to: MemberId,
    epoch: u64,
    inc: u64,
    term: Term,
    last: LogId,
    membership: (u64, Arc<Membership>),
    keys: Vec<(String, String)>,
    seq: u64,
}

impl World {
    /// Starts streaming `id`'s caches to `to`, as the snapshot of `term`
    /// from `last` (when the membership was `membership`).
    pub(super) fn start_stream(
        &mut self,
        id: MemberId,
        to: MemberId,
        term: Term,
        last: LogId,
        membership: (u64, Arc<Membership>),
    ) {
        let n = &self.nodes[id as usize];
        let stream = Stream {
            from: id,
            to,
            epoch: self.links[&Self::pair(id, to)].epoch,
            inc: n.inc,
            term,
            last,
            membership,
            keys: n.store.keys().rev().cloned().collect(),
            seq: 0,
        };
        self.seq += 1;
        let key = self.seq;
        self.streams.insert(key, stream);
        let after = self.rng.millis(0, 3);
        self.schedule(after, Event::SnapshotChunk { stream: key });
    }

    /// Cuts and sends a stream's next chunk, from the sender's caches now.
    pub(super) fn cut_chunk(&mut self, key: u64) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        let (from, to) = (s.from, s.to);
        let n = &self.nodes[from as usize];
        let link = self.links[&Self::pair(from, to)];
        if n.node.is_none() || n.inc != s.inc || !link.up || link.epoch != s.epoch {
            self.streams.remove(&key); // the stream ends with its link
            return;
        }
        if n.paused_until > self.now {
            let at = n.paused_until;
            self.schedule_at(at, Event::SnapshotChunk { stream: key });
            return;
        }
        let mut part = BTreeMap::new();
        for _ in 0..CHUNK_KEYS {
            let Some(k) = s.keys.pop() else { break };
            if let Some(v) = n.store.get(&k) {
                part.insert(k, v.clone());
            }
        }
        let done = s.keys.is_empty();
        let end = n.node.as_ref().map_or(n.applied, Node::caches_through);
        let chunk = SnapshotChunk {
            term: s.term,
            last: s.last,
            seq: s.seq,
            end: done.then_some(end),
            data: self.checker.take_chunk(part, end),
            membership: done.then(|| (s.membership.0, Arc::clone(&s.membership.1))),
        };
        s.seq += 1;
        if done {
            self.streams.remove(&key);
        } else {
            let after = self.rng.millis(1, 30);
            self.schedule(after, Event::SnapshotChunk { stream: key });
        }
        self.transmit(from, to, Message::Snapshot(chunk));
    }
}
