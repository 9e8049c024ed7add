//! Log invariants: entries apply in order and only once committed, the
//! same entry at an index everywhere; a write resolved at `Quorum` or
//! `All` is committed where it says.

use std::sync::Arc;

use redhac_membership::{Ack, Entry, LogId, MemberId, NodeRole, Op, RequestId, Term, WriteError};

use super::Checker;
use crate::violation::Violation;
use crate::world::World;

impl Checker {
    /// A node applied an entry.
    pub(crate) fn applied(&mut self, w: &World, id: MemberId, e: &Entry) {
        let n = &w.nodes[id as usize];
        self.report(w.now, applies_in_order(id, e, n.applied));
        // The term of the leader applying it: it commits it.
        let leads = match w.leader_stepping {
            Some((l, term)) if l == id => Some(term),
            _ => n
                .node
                .as_ref()
                .map(|n| n.status())
                .filter(|s| s.role == NodeRole::Leader)
                .map(|s| s.term),
        };
        let found = self.applies_committed(id, e, leads);
        self.report(w.now, found);
    }

    /// Invariant: two nodes never apply different entries at one index, and
    /// a follower applies only what a leader applied first (which this
    /// records as committed).
    fn applies_committed(
        &mut self,
        id: MemberId,
        e: &Entry,
        leads: Option<Term>,
    ) -> Result<(), Violation> {
        match self.committed.get(&e.id.index) {
            Some((cid, op)) if *cid != e.id || **op != *e.op => Err(Violation::AppliedDiverged {
                node: id,
                entry: e.id,
                committed: *cid,
            }),
            Some(_) => Ok(()),
            None if let Some(term) = leads => {
                self.committed.insert(e.id.index, (e.id, Arc::clone(&e.op)));
                self.committed_in.insert(e.id.index, term);
                // Invariant: a write is committed once by the leader it was
                // made on (ordered again after a later write to its key, it
                // would undo that write). A write forwarded again after a lost
                // answer may still be ordered twice when its first entry left
                // the dedup window (the log tail): counted, not asserted.
                let op = Arc::as_ptr(&e.op) as usize;
                match self.committed_ops.insert(op, e.id) {
                    Some(first) if e.origin == Some(id) => {
                        Err(Violation::CommittedTwice { first, again: e.id })
                    }
                    Some(_) => {
                        *self.resolved.entry("forwarded_twice").or_insert(0) += 1;
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            None => Err(Violation::AppliedUncommitted {
                node: id,
                entry: e.id,
            }),
        }
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
            (Err(WriteError::Membership(_)), _) => "change_refused",
            (Ok(_), Ack::Quorum) if matches!(&*op, Op::Membership(_)) => "change",
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
