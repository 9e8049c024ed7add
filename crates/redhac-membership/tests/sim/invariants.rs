//! The invariants of DESIGN §6.2, one per function, checked after every
//! event, and the reference model every serving node is held against.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{
    Ack, Entry, Health, LogId, MemberId, Op, Rejection, RequestId, Role, Term, Timing, WriteError,
    quorum,
};

use crate::world::World;

type Store = BTreeMap<(String, String), Vec<u8>>;

/// The reference: the committed log as leaders applied it, and the writes
/// that resolved, with when.
#[derive(Debug)]
pub(crate) struct Checker {
    members: usize,
    lease: Duration,
    committed: BTreeMap<u64, (LogId, Arc<Op>)>,
    leaders: BTreeMap<Term, (MemberId, u64)>,
    /// The highest index of a resolved `All` write.
    all_index: u64,
    /// (resolved at, index) of `Quorum` writes.
    quorum: VecDeque<(Duration, u64)>,
    /// The highest index of a `Quorum` write resolved more than `L` ago.
    quorum_index: u64,
    /// Snapshot chunks cut: (entries, the sender's applied index then).
    chunks: Vec<(Store, u64)>,
    incs: Vec<u64>,
    pub(crate) violations: Vec<String>,
    pub(crate) resolved: BTreeMap<&'static str, u64>,
}

impl Checker {
    pub(crate) fn new(members: usize, timing: Timing) -> Self {
        Self {
            members,
            lease: timing.read_lease,
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            all_index: 0,
            quorum: VecDeque::new(),
            quorum_index: 0,
            chunks: Vec::new(),
            incs: vec![0; members],
            violations: Vec::new(),
            resolved: BTreeMap::new(),
        }
    }

    fn violation(&mut self, now: Duration, what: String) {
        if self.violations.len() < 20 {
            self.violations
                .push(format!("at {:.3} ms: {what}", now.as_secs_f64() * 1e3));
        }
    }

    pub(crate) fn restarted(&mut self, id: MemberId) {
        self.incs[id as usize] += 1;
    }

    pub(crate) fn crashed(&mut self, _id: MemberId) {}

    fn max_committed(&self) -> Option<LogId> {
        self.committed.values().next_back().map(|(id, _)| *id)
    }

    /// The caches a node must hold (at most: invalidation may drop keys)
    /// after applying the committed log up to `index`.
    pub(crate) fn reference(&self, index: u64) -> Store {
        let mut s = Store::new();
        for (_, (_, op)) in self.committed.range(..=index) {
            match &**op {
                Op::Put {
                    cache, key, value, ..
                } => {
                    s.insert((cache.clone(), key.clone()), value.clone());
                }
                Op::Delete { cache, key } => {
                    s.remove(&(cache.clone(), key.clone()));
                }
                Op::Clear { cache } => s.retain(|(c, _), _| c != cache),
                Op::Noop => {}
            }
        }
        s
    }

    /// Crash only while a majority of the other live nodes still hold every
    /// committed entry: the guarantees are for a surviving majority.
    pub(crate) fn may_crash(&self, w: &World, victim: MemberId) -> bool {
        let Some(c) = self.max_committed() else {
            return true;
        };
        let holders = w
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                *i as MemberId != victim && n.node.as_ref().is_some_and(|n| n.holds(c))
            })
            .count();
        holders >= quorum::majority(self.members)
    }

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

    /// Invariant: at most one leader per term; and the leader holds every
    /// committed entry (leader completeness).
    pub(crate) fn became_leader(&mut self, w: &World, id: MemberId) {
        let node = w.nodes[id as usize].node.as_ref().expect("alive");
        let s = node.status();
        let me = (id, self.incs[id as usize]);
        match self.leaders.get(&s.term) {
            Some(other) if *other != me => {
                self.violation(
                    w.now,
                    format!("two leaders in term {}: n{} and n{id}", s.term, other.0),
                );
            }
            _ => {
                self.leaders.insert(s.term, me);
            }
        }
        // Raft's leader completeness: every leader of a later term holds
        // every committed entry (a stale leader of an earlier term can
        // neither commit nor get a lease).
        let earlier = self
            .committed
            .values()
            .rev()
            .map(|(id, _)| *id)
            .find(|id| id.term < s.term);
        if let Some(c) = earlier
            && !node.holds(c)
        {
            self.violation(
                w.now,
                format!(
                    "n{id} leads term {} without committed entry {c} (last {})",
                    s.term, s.last
                ),
            );
        }
    }

    /// Invariant: honest members never send what a node must refuse as a
    /// protocol violation (malformed, or leader traffic from a non-leader).
    pub(crate) fn rejected(
        &mut self,
        w: &World,
        id: MemberId,
        from: MemberId,
        what: &str,
        why: Rejection,
    ) {
        if why.is_violation() {
            self.violation(w.now, format!("n{id} refused {what} from n{from}: {why:?}"));
        }
    }

    /// Invariant: entries apply in order, and two nodes never apply
    /// different entries at one index.
    pub(crate) fn applied(&mut self, w: &World, id: MemberId, e: &Entry) {
        let n = &w.nodes[id as usize];
        if e.id.index != n.applied + 1 {
            self.violation(w.now, format!("n{id} applied {} after {}", e.id, n.applied));
        }
        match self.committed.get(&e.id.index) {
            Some((cid, op)) if *cid != e.id || **op != *e.op => {
                let cid = *cid;
                self.violation(
                    w.now,
                    format!("n{id} applied {} where {cid} was committed", e.id),
                );
            }
            Some(_) => {}
            None => {
                let leads = n
                    .node
                    .as_ref()
                    .is_some_and(|n| n.status().role == Role::Leader);
                if leads {
                    self.committed.insert(e.id.index, (e.id, Arc::clone(&e.op)));
                } else {
                    self.violation(
                        w.now,
                        format!("n{id} applied {} that no leader committed", e.id),
                    );
                }
            }
        }
    }

    /// A snapshot chunk holds no value the committed log did not hold
    /// between the snapshot's start and when the chunk was cut.
    pub(crate) fn installed(
        &mut self,
        w: &World,
        id: MemberId,
        last: LogId,
        cut: u64,
        part: &Store,
    ) {
        if let Some((cid, _)) = self.committed.get(&last.index)
            && *cid != last
        {
            self.violation(
                w.now,
                format!("n{id} installed a snapshot at {last}, committed {cid}"),
            );
        }
        let bad = part
            .iter()
            .find(|(k, v)| !self.held_between(k, v, last.index, cut))
            .map(|(k, v)| format!("{k:?}={v:?}"));
        if let Some(bad) = bad {
            self.violation(
                w.now,
                format!("n{id} installed a snapshot at {last} (cut at {cut}) holding {bad}"),
            );
        }
    }

    fn not_in_reference(&self, store: &Store, index: u64) -> Option<String> {
        let reference = self.reference(index);
        store
            .iter()
            .find(|(k, v)| reference.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?}={v:?} (reference {:?})", reference.get(k)))
    }

    /// Invariant: a write resolved at `Quorum` or `All` is committed where
    /// it says.
    pub(crate) fn resolved(
        &mut self,
        w: &World,
        id: MemberId,
        req: RequestId,
        result: Result<Option<LogId>, WriteError>,
    ) {
        let Some((op, ack, _)) = w.nodes[id as usize].writes.get(&req).cloned() else {
            self.violation(w.now, format!("n{id} resolved unknown write {req}"));
            return;
        };
        let key = match (&result, ack) {
            (Err(WriteError::NoQuorum), _) => "no_quorum",
            (Err(WriteError::Timeout), _) => "timeout",
            (Err(WriteError::ShuttingDown), _) => "shutting_down",
            (Ok(_), Ack::None) => "none",
            (Ok(_), Ack::Leader) => "leader",
            (Ok(_), Ack::Quorum) => "quorum",
            (Ok(_), Ack::All) => "all",
        };
        *self.resolved.entry(key).or_default() += 1;
        if let (Ok(at), Ack::Quorum | Ack::All) = (result, ack) {
            let Some(at) = at else {
                self.violation(
                    w.now,
                    format!("n{id} resolved {ack:?} write {req} without a position"),
                );
                return;
            };
            match self.committed.get(&at.index) {
                Some((cid, cop)) if *cid == at && **cop == *op => {}
                other => {
                    let other = other.map(|(c, _)| *c);
                    self.violation(
                        w.now,
                        format!(
                            "n{id} resolved {ack:?} write {req} at {at}, committed there: {other:?}"
                        ),
                    );
                }
            }
            if ack == Ack::All {
                self.all_index = self.all_index.max(at.index);
            } else {
                self.quorum.push_back((w.now, at.index));
            }
        }
    }

    /// After every event: a node in Bad serves nothing; a serving node is not
    /// stale.
    pub(crate) fn check_all(&mut self, w: &World) {
        for id in 0..w.nodes.len() as MemberId {
            let Some(node) = w.nodes[id as usize].node.as_ref() else {
                continue;
            };
            if !w.serving(id) {
                continue;
            }
            let s = node.status();
            self.bad_serves_nothing(w, id, s.health);
            self.not_stale(w, id, w.nodes[id as usize].applied);
            self.not_mid_snapshot(w, id);
        }
    }

    fn bad_serves_nothing(&mut self, w: &World, id: MemberId, health: Health) {
        if health == Health::Bad {
            self.violation(w.now, format!("n{id} serves reads in health Bad"));
        }
    }

    /// A node serves nothing while it installs a snapshot, nor before it
    /// has applied past the snapshot's end: its caches are exact only then.
    fn not_mid_snapshot(&mut self, w: &World, id: MemberId) {
        let n = &w.nodes[id as usize];
        if n.installing || n.applied < n.fuzzy_until {
            let what = format!(
                "n{id} serves mid-snapshot: installing {}, applied {}, snapshot end {}",
                n.installing, n.applied, n.fuzzy_until
            );
            self.violation(w.now, what);
        }
    }

    /// No member serves a value older than the newest completed `All`
    /// write, nor, more than the lease after it, a completed `Quorum` write.
    fn not_stale(&mut self, w: &World, id: MemberId, applied: u64) {
        let cutoff = w.now.saturating_sub(self.lease);
        while let Some((t, i)) = self.quorum.front().copied()
            && t <= cutoff
        {
            self.quorum_index = self.quorum_index.max(i);
            self.quorum.pop_front();
        }
        let quorum = self.quorum_index;
        let need = self.all_index.max(quorum);
        if applied < need {
            self.violation(
                w.now,
                format!(
                    "n{id} serves stale reads: applied {applied}, a completed write is at {need}"
                ),
            );
        }
    }

    /// The caches of every node hold nothing the committed log does not
    /// (a node not serving mid-snapshot may hold newer values: skipped).
    pub(crate) fn check_stores(&mut self, w: &World) {
        for (id, n) in w.nodes.iter().enumerate() {
            let mid_snapshot = n.installing || n.applied < n.fuzzy_until;
            if n.node.is_none() || mid_snapshot && !w.serving(id as MemberId) {
                continue;
            }
            if let Some(bad) = self.not_in_reference(&n.store, n.applied) {
                self.violation(
                    w.now,
                    format!("n{id} caches {bad} at applied {}", n.applied),
                );
            }
        }
    }
}
