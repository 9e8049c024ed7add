//! The invariants of docs/architecture.md §6, one per function, checked after every
//! event, and the reference model every serving node is held against.
//!
//! Here: the checker and its reference (the committed log as leaders
//! applied it). Each event hook runs the invariants that event can break;
//! hooks and invariants live by family in the submodules. Each invariant
//! returns the [`Violation`] it finds.

mod elections;
mod log;
mod reads;
mod stores;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{LogId, MemberId, Node, Op, Rejection, Term, Timing};

use crate::violation::{Found, Violation};
use crate::world::World;

type Store = BTreeMap<(String, String), Vec<u8>>;

/// The reference: the committed log as leaders applied it, and the writes
/// that resolved, with when.
#[derive(Debug)]
pub(crate) struct Checker {
    lease: Duration,
    committed: BTreeMap<u64, (LogId, Arc<Op>)>,
    /// The term of the leader that committed each index (an entry of an
    /// earlier term may be committed by a later leader).
    committed_in: BTreeMap<u64, Term>,
    /// Where each client write (its op, by identity: every write's op is
    /// a value of its own) was committed.
    committed_ops: BTreeMap<usize, LogId>,
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
    /// Each leader's term and the index of its first entry (its noop).
    pub(crate) term_starts: BTreeMap<MemberId, (Term, u64)>,
    /// The cluster of the first leader.
    cluster: Option<u64>,
    pub(crate) violations: Vec<Found>,
    pub(crate) resolved: BTreeMap<&'static str, u64>,
}

impl Checker {
    pub(crate) fn new(members: usize, timing: Timing) -> Self {
        Self {
            lease: timing.read_lease,
            committed: BTreeMap::new(),
            committed_in: BTreeMap::new(),
            committed_ops: BTreeMap::new(),
            leaders: BTreeMap::new(),
            all_index: 0,
            quorum: VecDeque::new(),
            quorum_index: 0,
            chunks: Vec::new(),
            incs: vec![0; members],
            term_starts: BTreeMap::new(),
            cluster: None,
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
        let i = id as usize;
        if i >= self.incs.len() {
            self.incs.resize(i + 1, 0);
        }
        self.incs[i] += 1;
    }

    /// The latest membership committed, if any was, with its index.
    pub(crate) fn committed_membership(&self) -> Option<(u64, redhac_membership::Membership)> {
        self.committed
            .values()
            .rev()
            .find_map(|(id, op)| match &**op {
                Op::Membership(m) => Some((id.index, m.clone())),
                _ => None,
            })
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
                Op::Noop | Op::Membership(_) => {}
            }
        }
        s
    }

    /// Crash only while, in the membership last committed and in every
    /// leader's (which may be newer; every member's that could lead, when
    /// members never come back), a majority of the voters other than
    /// the victim run and hold every committed entry: the guarantees are
    /// for a surviving majority. (Learners count in no majority.)
    ///
    /// Before anything is committed any crash may go (the member comes
    /// back), unless members never come back (fresh identities): then a
    /// majority of the first voters must stay, or no cluster could form.
    pub(crate) fn may_crash(&self, w: &World, victim: MemberId) -> bool {
        let c = self.max_committed();
        if c.is_none() && !w.fresh_identities() {
            return true;
        }
        // A member shutting down is as good as gone when it will not come
        // back under its id.
        let fresh = w.fresh_identities();
        let holds = |i: MemberId| {
            let n = &w.nodes[i as usize];
            i != victim
                && !(fresh && n.leaving)
                && n.node
                    .as_ref()
                    .is_some_and(|n| c.is_none_or(|c| n.holds(c)))
        };
        let committed = self
            .committed_membership()
            .map_or_else(|| w.membership(), |(_, m)| m);
        // When members never come back, the membership of any member that
        // could still lead (it holds everything committed) may be
        // committed later, and one lost is lost to it for good.
        let leaders = w
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .filter(|n| {
                n.status().role == redhac_membership::NodeRole::Leader
                    || (fresh && c.is_none_or(|c| n.holds(c)))
            })
            .map(|n| n.membership().clone());
        std::iter::once(committed)
            .chain(leaders)
            .all(|m| m.voters().filter(|v| holds(*v)).count() >= m.majority())
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
}

impl Checker {
    /// `id` is told it was removed (when it is sent: delivered late, to a
    /// member paused meanwhile, it may find itself added back, which costs
    /// a learner that never answered, no more: on the same link the news
    /// comes before anything the later leader sends).
    pub(crate) fn told_removed(&mut self, w: &World, id: MemberId) {
        self.report(w.now, removed_is_unlisted(self, w, id));
    }
}

/// Invariant: a member is told it was removed only while it is listed
/// neither in the membership last committed nor in any leader's.
fn removed_is_unlisted(c: &Checker, w: &World, id: MemberId) -> Result<(), Violation> {
    let listed = |by: String| Violation::RemovedWhileListed { node: id, by };
    if c.committed_membership()
        .is_some_and(|(_, m)| m.contains(id))
    {
        return Err(listed("the committed membership".into()));
    }
    for n in w.nodes.iter().filter_map(|n| n.node.as_ref()) {
        let s = n.status();
        if s.role == redhac_membership::NodeRole::Leader && n.membership().contains(id) {
            return Err(listed(format!("leader n{}", s.me)));
        }
    }
    Ok(())
}

/// Invariant: a learner never stands (pre-candidate, candidate or leader):
/// only a voter of its own latest membership does, or a member that a
/// committed membership (or the first one) made a voter: one demoted or
/// removed since may hold the longest log (see `Node::may_stand`).
pub(crate) fn learner_never_stands(
    c: &Checker,
    w: &World,
    id: MemberId,
    role: redhac_membership::NodeRole,
) -> Result<(), Violation> {
    let was_voter = || {
        (!w.bootstraps() && w.membership().is_voter(id))
            || c.committed
                .values()
                .any(|(_, op)| matches!(&**op, Op::Membership(m) if m.is_voter(id)))
    };
    if role != redhac_membership::NodeRole::Follower && !w.is_voter(id) && !was_voter() {
        return Err(Violation::LearnerVoted {
            node: id,
            what: format!("became {role:?}"),
        });
    }
    Ok(())
}

impl Checker {
    /// A node was stepped and now has `role`.
    pub(crate) fn stepped(&mut self, w: &World, id: MemberId, role: redhac_membership::NodeRole) {
        self.report(w.now, learner_never_stands(self, w, id, role));
        if role == redhac_membership::NodeRole::Leader
            && let Some(node) = w.nodes[id as usize].node.as_ref()
        {
            let start = self
                .term_starts
                .get(&id)
                .filter(|(t, _)| *t == node.status().term)
                .map(|(_, i)| *i);
            self.report(w.now, one_change_in_flight(id, node, start));
        }
    }
}

/// Invariants of membership changes on a leader's log: at most one
/// membership entry is not committed, and one of the leader's own term
/// follows an entry of its term it had committed (Raft's rule for
/// single-server changes: a new leader commits first, so its change
/// cannot overlap one an earlier leader began).
fn one_change_in_flight(
    id: MemberId,
    node: &Node,
    term_start: Option<u64>,
) -> Result<(), Violation> {
    let s = node.status();
    let changes: Vec<LogId> = (s.commit + 1..=s.last.index)
        .filter_map(|i| node.entry(i))
        .filter(|e| matches!(&*e.op, Op::Membership(_)))
        .map(|e| e.id)
        .collect();
    if changes.len() > 1 {
        return Err(Violation::ChangesOverlap {
            node: id,
            entries: changes,
        });
    }
    // The term's first entry itself may be a membership: a bootstrapped
    // cluster's first leader's is its first membership.
    match (changes.first(), term_start) {
        (Some(c), Some(start)) if c.term == s.term && s.commit < start && c.index != start => {
            Err(Violation::ChangeBeforeTermCommitted {
                node: id,
                change: *c,
                commit: s.commit,
            })
        }
        _ => Ok(()),
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
