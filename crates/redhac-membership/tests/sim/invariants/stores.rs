//! Snapshot and cache invariants: a snapshot starts at a committed entry
//! and holds only committed values, and so, at the end of a run, does every
//! node's caches.

use std::sync::Arc;

use redhac_membership::{LogId, MemberId, Op};

use super::{Checker, Store};
use crate::violation::Violation;
use crate::world::World;

impl Checker {
    /// Keeps a chunk's entries, cut when its sender had applied `applied`;
    /// the chunk carries their number.
    pub(crate) fn take_chunk(&mut self, part: Store, applied: u64) -> Arc<Vec<u8>> {
        self.chunks.push((part, applied));
        Arc::new((self.chunks.len() as u64 - 1).to_le_bytes().to_vec())
    }

    /// A chunk's entries and its sender's applied index when it was cut.
    pub(crate) fn chunk(&self, data: &[u8]) -> (Store, u64) {
        let i = u64::from_le_bytes(data.try_into().expect("8 bytes"));
        self.chunks[i as usize].clone()
    }

    /// Whether `key` held `value` at some committed index in `lo..=hi`.
    fn held_between(&self, key: &(String, String), value: &[u8], lo: u64, hi: u64) -> bool {
        if self.reference(lo).get(key).is_some_and(|v| v == value) {
            return true;
        }
        hi > lo
            && self.committed.range(lo + 1..=hi).any(|(_, (_, op))| {
                matches!(&**op, Op::Put { cache, key: k, value: v, .. }
                if *cache == key.0 && *k == key.1 && v == value)
            })
    }

    /// A node installed a snapshot chunk starting at `last`, cut when its
    /// sender had applied `cut`.
    pub(crate) fn installed(
        &mut self,
        w: &World,
        id: MemberId,
        last: LogId,
        cut: u64,
        part: &Store,
    ) {
        let found = self.snapshot_at_committed(id, last);
        self.report(w.now, found);
        let found = self.snapshot_holds_committed(id, last, cut, part);
        self.report(w.now, found);
    }

    /// Invariant: a snapshot starts at a committed entry.
    fn snapshot_at_committed(&self, id: MemberId, last: LogId) -> Result<(), Violation> {
        match self.committed.get(&last.index) {
            Some((cid, _)) if *cid != last => Err(Violation::SnapshotDiverged {
                node: id,
                last,
                committed: *cid,
            }),
            _ => Ok(()),
        }
    }

    /// Invariant: a snapshot chunk holds no value the committed log did not
    /// hold between the snapshot's start and when the chunk was cut.
    fn snapshot_holds_committed(
        &self,
        id: MemberId,
        last: LogId,
        cut: u64,
        part: &Store,
    ) -> Result<(), Violation> {
        let bad = part
            .iter()
            .find(|(k, v)| !self.held_between(k, v, last.index, cut));
        match bad {
            Some((k, v)) => Err(Violation::SnapshotNotCommitted {
                node: id,
                last,
                cut,
                value: format!("{k:?}={v:?}"),
            }),
            None => Ok(()),
        }
    }

    fn not_in_reference(&self, store: &Store, index: u64) -> Option<String> {
        let reference = self.reference(index);
        store
            .iter()
            .find(|(k, v)| reference.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?}={v:?} (reference {:?})", reference.get(k)))
    }

    /// At the end of a run: the caches of every node.
    pub(crate) fn check_stores(&mut self, w: &World) {
        for id in 0..w.nodes.len() as MemberId {
            let found = self.caches_committed(w, id);
            self.report(w.now, found);
        }
    }

    /// Invariant: a node's caches hold nothing the committed log does not
    /// (a node not serving mid-snapshot may hold newer values: skipped).
    fn caches_committed(&self, w: &World, id: MemberId) -> Result<(), Violation> {
        let n = &w.nodes[id as usize];
        let mid_snapshot = n.installing || n.applied < n.fuzzy_until;
        if n.node.is_none() || mid_snapshot && !w.serving(id) {
            return Ok(());
        }
        match self.not_in_reference(&n.store, n.applied) {
            Some(value) => Err(Violation::CacheNotCommitted {
                node: id,
                applied: n.applied,
                value,
            }),
            None => Ok(()),
        }
    }
}
