//! The in-memory log tail: a bounded ring of entries after a base position.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};

use crate::types::{Entry, Index, LogId, MemberId, Request};

/// Positions the request map may hold beyond twice the entries before it
/// is swept.
const PRUNE_SLACK: usize = 64;

/// Entries `base.index + 1 ..= last`, with the id of the entry just before
/// them (the snapshot point, or `(0, 0)`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    base: LogId,
    entries: VecDeque<Entry>,
    /// The entries' sizes by [`Op::size`](crate::Op::size), summed.
    bytes: usize,
    /// Where the entries that say which write made them are, pruned
    /// lazily: a position found here counts only while the log holds it
    /// ([`Log::find`]), and positions no longer held are swept out when
    /// they could outnumber the entries ([`Log::push`]). Forgetting an
    /// entry therefore touches no map, whose slots for old entries are
    /// cold by then.
    requests: HashMap<(MemberId, Request), LogId, RequestHashing>,
}

/// Hashing for the request map: a seeded folded multiply per word, far
/// cheaper than SipHash for three integers. The seed is random per log, so
/// ids that a peer picks cannot be aimed at one bucket.
#[derive(Debug, Clone)]
struct RequestHashing(u64);

impl Default for RequestHashing {
    fn default() -> Self {
        Self(RandomState::new().hash_one(0u64) | 1)
    }
}

impl BuildHasher for RequestHashing {
    type Hasher = RequestHasher;

    fn build_hasher(&self) -> RequestHasher {
        RequestHasher(self.0)
    }
}

struct RequestHasher(u64);

impl RequestHasher {
    fn mix(&mut self, word: u64) {
        // The high and low halves of a 64x64-bit product, folded: every
        // bit of the word reaches both the high bits (hashbrown's tags)
        // and the low ones (its bucket index).
        let product = u128::from(self.0 ^ word) * u128::from(0x9E37_79B9_7F4A_7C15_u64);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for RequestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Log {
    /// The id of the last entry (the base when empty).
    pub(crate) fn last(&self) -> LogId {
        self.entries.back().map_or(self.base, |e| e.id)
    }

    /// The position just before the first entry held.
    pub(crate) fn base(&self) -> LogId {
        self.base
    }

    /// The term of the entry at `index`, when known (the base's included).
    pub(crate) fn term_at(&self, index: Index) -> Option<u64> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        self.get(index).map(|e| e.id.term)
    }

    /// Whether the log holds `id` (or has it as its base).
    pub(crate) fn has(&self, id: LogId) -> bool {
        self.term_at(id.index) == Some(id.term)
    }

    /// Whether the entry `id` is held (not the base: that one is gone).
    fn holds(&self, id: LogId) -> bool {
        id.index > self.base.index && self.get(id.index).is_some_and(|e| e.id == id)
    }

    pub(crate) fn get(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.base.index + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.id.index, self.last().index + 1);
        self.bytes += entry.op.size();
        if let Some(key) = Self::request_key(&entry) {
            if self.requests.len() >= 2 * self.entries.len() + PRUNE_SLACK {
                self.prune_requests();
            }
            self.requests.insert(key, entry.id);
        }
        self.entries.push_back(entry);
    }

    /// Sweeps the positions no longer held out of the request map: one pass
    /// over it after as many pushes as entries held, so a constant cost per
    /// push and a map at most about twice the log.
    fn prune_requests(&mut self) {
        let mut requests = std::mem::take(&mut self.requests);
        requests.retain(|_, id| self.holds(*id));
        self.requests = requests;
    }

    /// The entry held that the write `request` of `origin` made, if any.
    /// Entries are never written twice at one position with one term, so a
    /// position the log holds with that term is the entry the map meant.
    pub(crate) fn find(&self, origin: MemberId, request: Request) -> Option<LogId> {
        self.requests
            .get(&(origin, request))
            .copied()
            .filter(|id| self.holds(*id))
    }

    fn request_key(e: &Entry) -> Option<(MemberId, Request)> {
        Some((e.origin?, e.request?))
    }

    /// `e` is no longer held (its request's position is pruned lazily).
    fn forget(&mut self, e: &Entry) {
        self.bytes -= e.op.size();
    }

    /// Removes the entries from `index` on and returns them.
    pub(crate) fn truncate_from(&mut self, index: Index) -> Vec<Entry> {
        let keep = index.saturating_sub(self.base.index + 1) as usize;
        if keep >= self.entries.len() {
            return Vec::new();
        }
        let gone: Vec<Entry> = self.entries.drain(keep..).collect();
        for e in &gone {
            self.forget(e);
        }
        gone
    }

    /// Entries from `from` on: up to `max` of them and, past the first, up
    /// to `max_bytes` in all by [`Op::size`](crate::Op::size). The first is
    /// always included, however large, so a frame never holds none.
    pub(crate) fn slice(&self, from: Index, max: usize, max_bytes: usize) -> Vec<Entry> {
        let Some(offset) = from.checked_sub(self.base.index + 1) else {
            return Vec::new();
        };
        let mut bytes = 0usize;
        self.entries
            .iter()
            .skip(offset as usize)
            .take(max)
            .take_while(|e| {
                let first = bytes == 0;
                bytes = bytes.saturating_add(e.op.size());
                first || bytes <= max_bytes
            })
            .cloned()
            .collect()
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries' sizes by [`Op::size`](crate::Op::size), summed.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets applied entries, oldest first, while more than `capacity`
    /// entries or `capacity_bytes` bytes are held.
    pub(crate) fn compact(&mut self, applied: Index, capacity: usize, capacity_bytes: usize) {
        while self.entries.len() > capacity || self.bytes > capacity_bytes {
            match self.entries.front() {
                Some(e) if e.id.index <= applied => {
                    self.base = e.id;
                    if let Some(e) = self.entries.pop_front() {
                        self.forget(&e);
                    }
                }
                _ => break,
            }
        }
    }

    /// Restarts the log at a snapshot point, keeping the entries after it
    /// when the log holds that point; whether it did.
    pub(crate) fn reset_to(&mut self, base: LogId) -> bool {
        let kept = self.has(base) && base.index >= self.base.index;
        if kept {
            let drop = (base.index - self.base.index) as usize;
            let gone: Vec<Entry> = self.entries.drain(..drop).collect();
            for e in &gone {
                self.forget(e);
            }
        } else {
            self.entries.clear();
            self.bytes = 0;
            self.requests.clear();
        }
        self.base = base;
        kept
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::types::Op;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            id: LogId::new(term, index),
            op: Arc::new(Op::Noop),
            origin: None,
            request: None,
        }
    }

    fn log(ids: &[(u64, u64)]) -> Log {
        let mut log = Log::default();
        for (t, i) in ids {
            log.push(entry(*t, *i));
        }
        log
    }

    #[test]
    fn positions_and_terms() {
        let l = log(&[(1, 1), (1, 2), (2, 3)]);
        assert_eq!(l.last(), LogId::new(2, 3));
        assert_eq!(l.term_at(0), Some(0));
        assert_eq!(l.term_at(2), Some(1));
        assert_eq!(l.term_at(4), None);
        assert!(l.has(LogId::new(2, 3)) && !l.has(LogId::new(1, 3)));
        assert_eq!(l.slice(2, 10, usize::MAX).len(), 2);
        assert_eq!(l.slice(4, 10, usize::MAX).len(), 0);
    }

    fn put(index: u64, value: usize) -> Entry {
        Entry {
            id: LogId::new(1, index),
            op: Arc::new(Op::Put {
                cache: "c".into(),
                key: "k".into(),
                value: vec![0; value],
                ttl_ms: None,
                schema: None,
            }),
            origin: None,
            request: None,
        }
    }

    #[test]
    fn slices_are_bounded_by_bytes_with_at_least_one_entry() {
        let mut l = Log::default();
        for (i, size) in [(1, 1000), (2, 1000), (3, 5000), (4, 10)].into_iter() {
            l.push(put(i, size));
        }
        let one = Op::FRAMING + 2; // framing, cache and key names
        let indexes = |from, max_bytes| {
            l.slice(from, 10, max_bytes)
                .iter()
                .map(|e| e.id.index)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            indexes(1, 2 * (1000 + one)),
            vec![1, 2],
            "exactly the budget"
        );
        assert_eq!(indexes(1, 2 * (1000 + one) - 1), vec![1]);
        assert_eq!(
            indexes(3, 100),
            vec![3],
            "one entry over the budget still goes"
        );
        assert_eq!(indexes(1, 0), vec![1]);
        assert_eq!(indexes(1, usize::MAX), vec![1, 2, 3, 4]);
        assert_eq!(
            l.slice(1, 2, usize::MAX).len(),
            2,
            "the count bound holds too"
        );
    }

    #[test]
    fn compaction_bounds_bytes_too_but_keeps_what_is_not_applied() {
        let mut l = Log::default();
        for i in 1..=4 {
            l.push(put(i, 1000));
        }
        let one = put(1, 1000).op.size();
        assert_eq!(l.bytes(), 4 * one);
        l.compact(4, 100, 2 * one);
        assert_eq!((l.base().index, l.bytes()), (2, 2 * one));
        l.compact(3, 100, 0);
        assert_eq!(l.base().index, 3, "entry 4 is not applied: kept");
        l.truncate_from(4);
        assert_eq!(l.bytes(), 0);
        l.push(put(4, 10));
        l.reset_to(LogId::new(1, 4));
        assert_eq!((l.bytes(), l.last().index), (0, 4));
    }

    #[test]
    fn truncates_a_suffix() {
        let mut l = log(&[(1, 1), (1, 2), (2, 3)]);
        let gone = l.truncate_from(2);
        assert_eq!(
            gone.iter().map(|e| e.id.index).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(l.last(), LogId::new(1, 1));
        assert!(l.truncate_from(5).is_empty());
    }

    #[test]
    fn compacts_only_applied_entries() {
        let mut l = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]);
        l.compact(2, 1, usize::MAX);
        assert_eq!(l.base(), LogId::new(1, 2));
        assert_eq!(l.slice(1, 10, usize::MAX).len(), 0, "behind the base");
        assert_eq!(l.slice(3, 10, usize::MAX).len(), 2);
        assert_eq!(l.term_at(2), Some(1));
        assert_eq!(l.term_at(1), None);
    }

    #[test]
    fn reset_keeps_a_matching_tail() {
        let mut l = log(&[(1, 1), (1, 2), (1, 3)]);
        l.reset_to(LogId::new(1, 2));
        assert_eq!((l.base(), l.last()), (LogId::new(1, 2), LogId::new(1, 3)));
        l.reset_to(LogId::new(5, 9));
        assert_eq!((l.base(), l.last()), (LogId::new(5, 9), LogId::new(5, 9)));
    }

    fn written(term: u64, index: u64, id: u64) -> Entry {
        Entry {
            origin: Some(7),
            request: Some(Request { incarnation: 1, id }),
            ..entry(term, index)
        }
    }

    #[test]
    fn finds_a_request_only_while_its_entry_is_held() {
        let req = |id| Request { incarnation: 1, id };
        let mut l = Log::default();
        for i in 1..=4 {
            l.push(written(1, i, i));
        }
        assert_eq!(l.find(7, req(2)), Some(LogId::new(1, 2)));
        assert_eq!(l.find(8, req(2)), None, "another origin's write");
        l.compact(4, 2, usize::MAX);
        assert_eq!(l.base().index, 2);
        assert_eq!(l.find(7, req(2)), None, "the base is no longer held");
        assert_eq!(l.find(7, req(3)), Some(LogId::new(1, 3)));
        l.truncate_from(4);
        assert_eq!(l.find(7, req(4)), None, "truncated");
        l.push(written(2, 4, 9));
        assert_eq!(l.find(7, req(4)), None, "another entry at its position");
        assert_eq!(l.find(7, req(9)), Some(LogId::new(2, 4)));
        l.reset_to(LogId::new(3, 10));
        assert_eq!(l.find(7, req(3)), None, "reset past it");
    }

    #[test]
    fn the_request_map_stays_within_twice_the_log() {
        let mut l = Log::default();
        for i in 1..=10_000 {
            l.push(written(1, i, i));
            l.compact(i, 100, usize::MAX);
            assert!(l.requests.len() <= 2 * l.len() + PRUNE_SLACK);
        }
        assert_eq!(l.len(), 100);
        let held = (9_901..=10_000).all(|i| {
            l.find(
                7,
                Request {
                    incarnation: 1,
                    id: i,
                },
            ) == Some(LogId::new(1, i))
        });
        assert!(held, "every held entry's request is found");
    }

    #[test]
    fn request_hashing_spreads_neighbouring_ids() {
        use std::hash::BuildHasher;
        let hashing = RequestHashing::default();
        let hashes: std::collections::HashSet<u64> = (0..10_000u64)
            .map(|id| hashing.hash_one((7u32, Request { incarnation: 1, id })))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128, "every 7-bit tag is used");
    }
}
