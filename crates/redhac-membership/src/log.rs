//! The in-memory log tail: a bounded ring of entries after a base position.

use std::collections::{HashMap, VecDeque};

use crate::types::{Entry, Index, LogId, MemberId, Request};

/// Entries `base.index + 1 ..= last`, with the id of the entry just before
/// them (the snapshot point, or `(0, 0)`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    base: LogId,
    entries: VecDeque<Entry>,
    /// The entries' sizes by [`Op::size`](crate::Op::size), summed.
    bytes: usize,
    /// Where each entry held that says which write made it is.
    requests: HashMap<(MemberId, Request), LogId>,
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

    pub(crate) fn get(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.base.index + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.id.index, self.last().index + 1);
        self.bytes += entry.op.size();
        if let Some(key) = Self::request_key(&entry) {
            self.requests.insert(key, entry.id);
        }
        self.entries.push_back(entry);
    }

    /// The entry held that the write `request` of `origin` made, if any.
    pub(crate) fn find(&self, origin: MemberId, request: Request) -> Option<LogId> {
        self.requests.get(&(origin, request)).copied()
    }

    fn request_key(e: &Entry) -> Option<(MemberId, Request)> {
        Some((e.origin?, e.request?))
    }

    /// `e` is no longer held.
    fn forget(&mut self, e: &Entry) {
        self.bytes -= e.op.size();
        if let Some(key) = Self::request_key(e)
            && self.requests.get(&key) == Some(&e.id)
        {
            self.requests.remove(&key);
        }
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
}
