//! Election invariants: one leader per term, and every leader holds what
//! was committed before its term.

use redhac_membership::{MemberId, Node, Term};

use super::Checker;
use crate::violation::Violation;
use crate::world::World;

impl Checker {
    /// A node became leader.
    pub(crate) fn became_leader(&mut self, w: &World, id: MemberId) {
        let node = w.nodes[id as usize].node.as_ref().expect("alive");
        let s = node.status();
        // Its term's first entry (more may follow in the step that
        // elected it: writes forwarded meanwhile).
        let first = (1..=s.last.index)
            .rev()
            .take_while(|i| node.entry(*i).is_some_and(|e| e.id.term == s.term))
            .last()
            .unwrap_or(s.last.index);
        self.term_starts.insert(id, (s.term, first));
        let found = self.one_leader_per_term(id, s.term);
        self.report(w.now, found);
        let found = self.leader_complete(id, node);
        self.report(w.now, found);
        let found = self.one_cluster(id, node.membership().cluster());
        self.report(w.now, found);
    }

    /// Invariant: every leader is of one cluster (no two bootstrapped).
    fn one_cluster(&mut self, id: MemberId, cluster: u64) -> Result<(), Violation> {
        match self.cluster {
            Some(first) if first != cluster => Err(Violation::TwoClusters {
                first,
                second: cluster,
                node: id,
            }),
            _ => {
                self.cluster = Some(cluster);
                Ok(())
            }
        }
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
    /// holds every entry committed in an earlier term (a stale leader of an
    /// earlier term can neither commit nor get a lease; an entry of term 3
    /// committed by the leader of term 5 need not be held by the leader of
    /// term 4).
    fn leader_complete(&self, id: MemberId, node: &Node) -> Result<(), Violation> {
        let s = node.status();
        let earlier = self
            .committed
            .iter()
            .rev()
            .filter(|(index, _)| self.committed_in.get(index).is_some_and(|t| *t < s.term))
            .map(|(_, (id, _))| *id)
            .next();
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
}
