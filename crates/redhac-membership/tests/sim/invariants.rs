//! The invariants of DESIGN §6.2, one per function, checked after every
//! event, and the reference model every serving node is held against.
//!
//! Each event hook below runs the invariants that event can break; each
//! invariant returns the [`Violation`] it finds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{
    Ack, Entry, Health, LogId, MemberId, Node, NodeRole, Op, Rejection, RequestId, Term, Timing,
    WriteError, quorum,
};

use crate::violation::{Found, Violation};
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
    pub(crate) violations: Vec<Found>,
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

    /// Keeps what an invariant found (the first 20 of a run).
    fn report(&mut self, at: Duration, found: Result<(), Violation>) {
        if let Err(violation) = found
            && self.violations.len() < 20
        {
            self.violations.push(Found { at, violation });
        }
    }

    pub(crate) fn restarted(&mut self, id: MemberId) {
        self.incs[id as usize] += 1;
    }

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

    /// A node became leader.
    pub(crate) fn became_leader(&mut self, w: &World, id: MemberId) {
        let node = w.nodes[id as usize].node.as_ref().expect("alive");
        let s = node.status();
        let found = self.one_leader_per_term(id, s.term);
        self.report(w.now, found);
        let found = self.leader_complete(id, node);
        self.report(w.now, found);
    }

    /// Invariant: at most one leader per term (a restarted member is
    /// another incarnation).
    fn one_leader_per_term(&mut self, id: MemberId, term: Term) -> Result<(), Violation> {
        let me = (id, self.incs[id as usize]);
        match self.leaders.get(&term) {
            Some(other) if *other != me => Err(Violation::TwoLeaders {
                term,
                first: other.0,
                second: id,
            }),
            _ => {
                self.leaders.insert(term, me);
                Ok(())
            }
        }
    }

    /// Invariant (Raft's leader completeness): every leader of a later term
    /// holds every committed entry (a stale leader of an earlier term can
    /// neither commit nor get a lease).
    fn leader_complete(&self, id: MemberId, node: &Node) -> Result<(), Violation> {
        let s = node.status();
        let earlier = self
            .committed
            .values()
            .rev()
            .map(|(id, _)| *id)
            .find(|id| id.term < s.term);
        match earlier {
            Some(c) if !node.holds(c) => Err(Violation::LeaderIncomplete {
                node: id,
                term: s.term,
                missing: c,
                last: s.last,
            }),
            _ => Ok(()),
        }
    }

    /// A node refused a peer's message.
    pub(crate) fn rejected(
        &mut self,
        w: &World,
        id: MemberId,
        from: MemberId,
        what: &str,
        why: Rejection,
    ) {
        self.report(w.now, no_protocol_rejection(id, from, what, why));
    }

    /// A node applied an entry.
    pub(crate) fn applied(&mut self, w: &World, id: MemberId, e: &Entry) {
        let n = &w.nodes[id as usize];
        self.report(w.now, applies_in_order(id, e, n.applied));
        let leads = n
            .node
            .as_ref()
            .is_some_and(|n| n.status().role == NodeRole::Leader);
        let found = self.applies_committed(id, e, leads);
        self.report(w.now, found);
    }

    /// Invariant: two nodes never apply different entries at one index, and
    /// a follower applies only what a leader applied first (which this
    /// records as committed).
    fn applies_committed(&mut self, id: MemberId, e: &Entry, leads: bool) -> Result<(), Violation> {
        match self.committed.get(&e.id.index) {
            Some((cid, op)) if *cid != e.id || **op != *e.op => Err(Violation::AppliedDiverged {
                node: id,
                entry: e.id,
                committed: *cid,
            }),
            Some(_) => Ok(()),
            None if leads => {
                self.committed.insert(e.id.index, (e.id, Arc::clone(&e.op)));
                Ok(())
            }
            None => Err(Violation::AppliedUncommitted {
                node: id,
                entry: e.id,
            }),
        }
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

    /// A node resolved a write: counted by outcome, then checked.
    pub(crate) fn resolved(
        &mut self,
        w: &World,
        id: MemberId,
        req: RequestId,
        result: Result<Option<LogId>, WriteError>,
    ) {
        let Some((op, ack, _)) = w.nodes[id as usize].writes.get(&req).cloned() else {
            self.report(w.now, Err(Violation::UnknownWrite { node: id, req }));
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
            let found = self.resolves_where_committed(id, req, ack, at, &op);
            self.report(w.now, found);
            let Some(at) = at else {
                return;
            };
            if ack == Ack::All {
                self.all_index = self.all_index.max(at.index);
            } else {
                self.quorum.push_back((w.now, at.index));
            }
        }
    }

    /// Invariant: a write resolved at `Quorum` or `All` is committed where
    /// it says.
    fn resolves_where_committed(
        &self,
        id: MemberId,
        req: RequestId,
        ack: Ack,
        at: Option<LogId>,
        op: &Op,
    ) -> Result<(), Violation> {
        let committed = at.and_then(|at| self.committed.get(&at.index));
        match (at, committed) {
            (Some(at), Some((cid, cop))) if *cid == at && **cop == *op => Ok(()),
            _ => Err(Violation::ResolvedNotCommitted {
                node: id,
                req,
                ack,
                at,
                committed: committed.map(|(c, _)| *c),
            }),
        }
    }

    /// After every event: a node in Bad serves nothing; a serving node is not
    /// stale, nor mid-snapshot.
    pub(crate) fn check_all(&mut self, w: &World) {
        for id in 0..w.nodes.len() as MemberId {
            let Some(node) = w.nodes[id as usize].node.as_ref() else {
                continue;
            };
            if !w.serving(id) {
                continue;
            }
            let s = node.status();
            self.report(w.now, bad_serves_nothing(id, s.health));
            let found = self.not_stale(w.now, id, w.nodes[id as usize].applied);
            self.report(w.now, found);
            self.report(w.now, not_mid_snapshot(w, id));
        }
    }

    /// Invariant: no member serves a value older than the newest completed
    /// `All` write, nor, more than the lease after it, a completed `Quorum`
    /// write.
    fn not_stale(&mut self, now: Duration, id: MemberId, applied: u64) -> Result<(), Violation> {
        let cutoff = now.saturating_sub(self.lease);
        while let Some((t, i)) = self.quorum.front().copied()
            && t <= cutoff
        {
            self.quorum_index = self.quorum_index.max(i);
            self.quorum.pop_front();
        }
        let need = self.all_index.max(self.quorum_index);
        if applied < need {
            return Err(Violation::StaleRead {
                node: id,
                applied,
                completed: need,
            });
        }
        Ok(())
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

/// Invariant: honest members never send what a node must refuse as a
/// protocol violation (malformed, or leader traffic from a non-leader).
fn no_protocol_rejection(
    id: MemberId,
    from: MemberId,
    what: &str,
    why: Rejection,
) -> Result<(), Violation> {
    if why.is_violation() {
        return Err(Violation::ProtocolRejection {
            node: id,
            from,
            what: what.to_owned(),
            why,
        });
    }
    Ok(())
}

/// Invariant: entries apply in order.
fn applies_in_order(id: MemberId, e: &Entry, applied: u64) -> Result<(), Violation> {
    if e.id.index != applied + 1 {
        return Err(Violation::AppliedOutOfOrder {
            node: id,
            entry: e.id,
            after: applied,
        });
    }
    Ok(())
}

/// Invariant: a node in health Bad serves nothing.
fn bad_serves_nothing(id: MemberId, health: Health) -> Result<(), Violation> {
    if health == Health::Bad {
        return Err(Violation::ServesInBad { node: id });
    }
    Ok(())
}

/// Invariant: a node serves nothing while it installs a snapshot, nor
/// before it has applied past the snapshot's end: its caches are exact only
/// then.
fn not_mid_snapshot(w: &World, id: MemberId) -> Result<(), Violation> {
    let n = &w.nodes[id as usize];
    if n.installing || n.applied < n.fuzzy_until {
        return Err(Violation::ServesMidSnapshot {
            node: id,
            installing: n.installing,
            applied: n.applied,
            end: n.fuzzy_until,
        });
    }
    Ok(())
}
