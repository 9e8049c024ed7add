//! Who is in the cluster, and who of them votes.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::faults::broken;
use crate::node::Node;
use crate::progress::Progress;
use crate::quorum;
use crate::types::{Index, MemberId};

/// The members of a cluster: voters, which elect the leader and make up
/// every majority (commit, read lease, check-quorum), and learners, which
/// receive the log and snapshots, serve reads under the same lease as a
/// follower and forward writes, but never vote, never stand and count in no
/// majority. Every member, learners included, counts for `All` writes and
/// for health `Good`.
///
/// ```
/// use redhac_membership::Membership;
///
/// let m = Membership::new(0..3, 3..5).unwrap();
/// assert!(m.is_voter(2) && !m.is_voter(3) && m.contains(4));
/// assert_eq!((m.len(), m.majority()), (5, 2));
/// assert!(Membership::new([0, 1], [1]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Membership {
    voters: BTreeSet<MemberId>,
    learners: BTreeSet<MemberId>,
    /// A member was removed at some point: one no longer listed may still
    /// serve under a lease an earlier leader granted it, so a new leader's
    /// `All` writes wait out every such lease (a read lease after its
    /// election).
    removed_any: bool,
    /// The cluster this membership belongs to: 0 for a static list, else
    /// the id of the first membership a cluster bootstrapped with
    /// ([`Membership::bootstrap`]), kept by every change. Votes carry it; a
    /// member votes only for a candidate of its own cluster.
    cluster: u64,
}

/// Why a membership is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipError {
    /// No member votes: no one could ever be elected.
    NoVoter,
    /// A member is listed as both voter and learner.
    VoterAndLearner(MemberId),
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVoter => f.write_str("a cluster needs at least one voter"),
            Self::VoterAndLearner(id) => {
                write!(f, "member {id} is listed as both a voter and a learner")
            }
        }
    }
}

impl std::error::Error for MembershipError {}

/// Why the leader refused a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeError {
    /// Only the leader changes the membership; ask it.
    NotLeader,
    /// The new leader has not committed an entry of its term yet: until it
    /// has, a change could conflict with one an earlier leader began.
    NotReady,
    /// The previous change is not committed yet: one change at a time.
    InFlight,
    /// The proposed membership is not the current one changed once (add a
    /// learner, promote a learner, demote or remove one member); the
    /// membership may have changed meanwhile.
    NotOneChange,
    /// The change would remove or demote the leader: hand over first.
    Leader,
    /// A learner to promote must hold the log up to the commit index.
    NotCaughtUp,
    /// Too few of the new membership's voters answer the leader for a
    /// majority of them: the change itself could never commit, and the
    /// cluster would stop until the silent ones came back.
    NoMajority,
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotLeader => "only the leader changes the membership",
            Self::NotReady => "the leader has not committed an entry of its term yet; retry",
            Self::InFlight => "another membership change is not committed yet; retry after it",
            Self::NotOneChange => {
                "the proposed membership is not the current one changed once; read it again"
            }
            Self::Leader => "the change would remove or demote the leader; hand over first",
            Self::NotCaughtUp => "the learner does not hold the log yet; retry once it caught up",
            Self::NoMajority => {
                "too few of the new voters answer the leader for a majority; \
                 bring members back or remove the gone ones first"
            }
        })
    }
}

impl std::error::Error for ChangeError {}

impl Membership {
    /// Members `0..members`, every one a voter (the static `HA_HOSTS` list).
    pub fn voters_only(members: usize) -> Self {
        Self {
            voters: (0..members.max(1) as MemberId).collect(),
            learners: BTreeSet::new(),
            removed_any: false,
            cluster: 0,
        }
    }

    /// `voters` and `learners`, which must not overlap.
    ///
    /// # Errors
    /// No voter, or a member in both sets.
    pub fn new(
        voters: impl IntoIterator<Item = MemberId>,
        learners: impl IntoIterator<Item = MemberId>,
    ) -> Result<Self, MembershipError> {
        let voters: BTreeSet<MemberId> = voters.into_iter().collect();
        let learners: BTreeSet<MemberId> = learners.into_iter().collect();
        if voters.is_empty() {
            return Err(MembershipError::NoVoter);
        }
        if let Some(both) = voters.intersection(&learners).next() {
            return Err(MembershipError::VoterAndLearner(*both));
        }
        Ok(Self {
            voters,
            learners,
            removed_any: false,
            cluster: 0,
        })
    }

    /// The first membership of a cluster that bootstraps with `voters`,
    /// its cluster id derived from them (the same on every member that
    /// chose the same voters).
    ///
    /// # Errors
    /// No voter.
    pub fn bootstrap(voters: impl IntoIterator<Item = MemberId>) -> Result<Self, MembershipError> {
        let mut m = Self::new(voters, [])?;
        m.cluster = cluster_id(&m.voters);
        Ok(m)
    }

    /// No cluster yet: a member waiting to bootstrap one or to be added to
    /// one. No one votes, so no one stands; only the core makes it.
    pub(crate) fn unformed() -> Self {
        Self {
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            removed_any: false,
            cluster: 0,
        }
    }

    /// The cluster this membership belongs to (0: a static list).
    pub fn cluster(&self) -> u64 {
        self.cluster
    }

    /// This membership with [`Membership::cluster`] as given (a transport
    /// decoding one).
    #[must_use]
    pub fn with_cluster(mut self, cluster: u64) -> Self {
        self.cluster = cluster;
        self
    }

    /// This membership with `id` added as a learner.
    #[must_use]
    pub fn with_learner(&self, id: MemberId) -> Self {
        let mut m = self.clone();
        if !m.voters.contains(&id) {
            m.learners.insert(id);
        }
        m
    }

    /// This membership with learner `id` made a voter.
    #[must_use]
    pub fn promoted(&self, id: MemberId) -> Self {
        let mut m = self.clone();
        if m.learners.remove(&id) {
            m.voters.insert(id);
        }
        m
    }

    /// This membership with voter `id` made a learner (never the last voter).
    #[must_use]
    pub fn demoted(&self, id: MemberId) -> Self {
        let mut m = self.clone();
        if m.voters.len() > 1 && m.voters.remove(&id) {
            m.learners.insert(id);
        }
        m
    }

    /// This membership without `id` (never the last voter).
    #[must_use]
    pub fn without(&self, id: MemberId) -> Self {
        let mut m = self.clone();
        let gone = m.learners.remove(&id) || (m.voters.len() > 1 && m.voters.remove(&id));
        m.removed_any |= gone;
        m
    }

    /// Whether a member was ever removed: one no longer listed may still
    /// serve under a lease an earlier leader granted it, so a new leader's
    /// `All` writes wait a read lease after its election.
    pub fn removed_any(&self) -> bool {
        self.removed_any
    }

    /// This membership with [`Membership::removed_any`] as given (a
    /// transport decoding one).
    #[must_use]
    pub fn with_removed_any(mut self, removed_any: bool) -> Self {
        self.removed_any = removed_any;
        self
    }

    /// The one member whose place differs between `self` and `next`, when
    /// `next` is `self` changed exactly once by one of the methods above.
    pub fn one_change_to(&self, next: &Self) -> Option<MemberId> {
        let differing: Vec<MemberId> = self
            .all()
            .chain(next.all())
            .filter(|id| {
                self.is_voter(*id) != next.is_voter(*id) || self.contains(*id) != next.contains(*id)
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let [id] = differing.as_slice() else {
            return None;
        };
        let expected = if next.is_voter(*id) {
            self.promoted(*id)
        } else if next.learners.contains(id) && self.is_voter(*id) {
            self.demoted(*id)
        } else if next.learners.contains(id) {
            self.with_learner(*id)
        } else {
            self.without(*id)
        };
        (expected == *next).then_some(*id)
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: MemberId) -> bool {
        self.voters.contains(&id)
    }

    /// Whether `id` is a member (voter or learner).
    pub fn contains(&self, id: MemberId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// The voters, in order.
    pub fn voters(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.voters.iter().copied()
    }

    /// The learners, in order.
    pub fn learners(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.learners.iter().copied()
    }

    /// Every member, voters first.
    pub fn all(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.voters().chain(self.learners())
    }

    /// How many members (voters and learners).
    pub fn len(&self) -> usize {
        self.voters.len() + self.learners.len()
    }

    /// Whether no one is listed: only before a cluster formed (a member in
    /// the dynamic mode waiting to bootstrap or to be added).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many voters.
    pub fn voter_count(&self) -> usize {
        self.voters.len()
    }

    /// Voters needed for a majority.
    pub fn majority(&self) -> usize {
        quorum::majority(self.voters.len())
    }
}

/// A bootstrapped cluster's id: FNV-1a over its first voters, in order
/// (stable across builds and platforms), never 0.
fn cluster_id(voters: &BTreeSet<MemberId>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in voters {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h.max(1)
}

/// The membership in force: the latest in the log, committed or not
/// (Raft's rule), else the one as of the log's base.
#[derive(Debug, Clone)]
pub(crate) struct Configs {
    /// As of the log's base: the initial one, a snapshot's, or the latest
    /// compacted away; with the index of its entry (its version).
    base: (Index, Arc<Membership>),
    /// Membership entries in the log, by index, ascending.
    logged: Vec<(Index, Arc<Membership>)>,
}

impl Configs {
    /// Starting from `initial`, the membership of the entry at `version`
    /// (0: the static list).
    pub(crate) fn new(initial: Membership, version: Index) -> Self {
        Self {
            base: (version, Arc::new(initial)),
            logged: Vec::new(),
        }
    }

    /// The membership in force.
    pub(crate) fn current(&self) -> &Membership {
        self.logged.last().map_or(&self.base.1, |(_, m)| m)
    }

    /// The version (index of its entry) of the membership in force.
    pub(crate) fn version(&self) -> Index {
        self.logged.last().map_or(self.base.0, |(i, _)| *i)
    }

    /// The membership as of `index` (the log holds it, or it is the base),
    /// with its version.
    pub(crate) fn at(&self, index: Index) -> (Index, Arc<Membership>) {
        self.logged
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or_else(
                || (self.base.0, Arc::clone(&self.base.1)),
                |(i, m)| (*i, Arc::clone(m)),
            )
    }

    /// The index of the latest membership entry, if the log holds one.
    pub(crate) fn last_index(&self) -> Option<Index> {
        self.logged.last().map(|(i, _)| *i)
    }

    /// A membership entry was appended at `index`.
    pub(crate) fn logged(&mut self, index: Index, m: Membership) {
        self.logged.push((index, Arc::new(m)));
    }

    /// The log lost its entries from `index` on.
    pub(crate) fn truncated_from(&mut self, index: Index) {
        self.logged.retain(|(i, _)| *i < index);
    }

    /// The log's base moved to `base`: entries up to it are gone.
    pub(crate) fn compacted_to(&mut self, base: Index) {
        let gone = self.logged.iter().take_while(|(i, _)| *i <= base).count();
        if let Some(newest) = self.logged.drain(..gone).next_back() {
            self.base = newest;
        }
    }

    /// The log restarts at a snapshot of `index` whose membership is
    /// `base` (when the sender said), keeping the entries after it when
    /// `kept`.
    pub(crate) fn reset_to(
        &mut self,
        index: Index,
        base: Option<(Index, Arc<Membership>)>,
        kept: bool,
    ) {
        let base = base.unwrap_or_else(|| self.at(index));
        if kept {
            self.logged.retain(|(i, _)| *i > index);
        } else {
            self.logged.clear();
        }
        self.base = base;
    }
}

impl Node {
    /// Whether this leader may append `next` now: Raft's single-server
    /// changes, one at a time, once it committed an entry of its term, and
    /// only to voters of whom a majority answer it.
    pub(crate) fn admit_change(&self, next: &Membership) -> Result<(), ChangeError> {
        let lead = self.leading.as_ref().ok_or(ChangeError::NotLeader)?;
        if self.commit < lead.term_start && !broken!(self, change_before_term_commit) {
            return Err(ChangeError::NotReady);
        }
        if self.configs.last_index().is_some_and(|i| i > self.commit)
            && !broken!(self, overlapping_changes)
        {
            return Err(ChangeError::InFlight);
        }
        let current = self.configs.current();
        let changed = current
            .one_change_to(next)
            .ok_or(ChangeError::NotOneChange)?;
        if changed == self.me && !next.is_voter(self.me) {
            return Err(ChangeError::Leader);
        }
        if next.is_voter(changed) && !current.is_voter(changed) {
            let caught_up = lead
                .progress
                .get(&changed)
                .is_some_and(|p| p.linked && p.matched >= self.commit);
            if !caught_up {
                return Err(ChangeError::NotCaughtUp);
            }
        }
        // The new voters that answer the leader now must be a majority of
        // them: else the change stops the cluster (a demoted or removed
        // voter that answers, the others gone).
        let answering = next.voters().filter(|id| self.answers(*id)).count();
        if answering < next.majority() && !broken!(self, changes_without_majority) {
            return Err(ChangeError::NoMajority);
        }
        Ok(())
    }

    /// The membership in force changed (an entry appended or truncated
    /// away, a snapshot installed). A leader stops replicating to members
    /// no longer listed, noting how long their leases may run, and starts
    /// on new members it is linked to; health is counted anew.
    pub(crate) fn membership_changed(&mut self) {
        let members = self.configs.current().clone();
        let (now, lease, next) = (self.now, self.timing.read_lease, self.log.last().index + 1);
        if let Some(lead) = self.leading.as_mut() {
            let gone: Vec<MemberId> = lead
                .progress
                .keys()
                .copied()
                .filter(|id| !members.contains(*id))
                .collect();
            for id in gone {
                let bound = lead.lease_bound(id, lease);
                lead.progress.remove(&id);
                // Removed, added again and removed once more: the lease
                // from its first time may outlast what the second knew.
                let kept = lead.departed.entry(id).or_insert(bound);
                *kept = (*kept).max(bound);
            }
            for peer in self.links.keys().filter(|p| members.contains(**p)) {
                lead.progress.entry(*peer).or_insert_with(|| {
                    // New here: it counts in no majority until confirmed,
                    // as a restarted member (it may have voted before).
                    let mut p = Progress::new(next, now);
                    p.relinked_at = Some(now);
                    p
                });
            }
        }
        self.update_health();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_only_is_the_static_list() {
        let m = Membership::voters_only(3);
        assert_eq!(m.all().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(m.learners().count(), 0);
        assert_eq!(m.majority(), 2);
        assert!(!m.contains(3));
    }

    #[test]
    fn refuses_no_voter_and_overlap() {
        assert_eq!(Membership::new([], [0, 1]), Err(MembershipError::NoVoter));
        assert_eq!(
            Membership::new([0, 1, 2], [2, 3]),
            Err(MembershipError::VoterAndLearner(2))
        );
        let m = Membership::new([0, 1, 2], [5, 3]).unwrap();
        assert_eq!(m.all().collect::<Vec<_>>(), [0, 1, 2, 3, 5]);
    }

    #[test]
    fn one_change_at_a_time() {
        let m = Membership::new([0, 1, 2], [3]).unwrap();
        for (next, changed) in [
            (m.with_learner(4), Some(4)),
            (m.promoted(3), Some(3)),
            (m.demoted(1), Some(1)),
            (m.without(3), Some(3)),
            (m.without(2), Some(2)),
            (m.clone(), None),
            (m.with_learner(4).with_learner(5), None),
            (m.promoted(3).without(0), None),
            // The promotion, written out.
            (Membership::new([0, 1, 2, 3], []).unwrap(), Some(3)),
        ] {
            assert_eq!(m.one_change_to(&next), changed, "{next:?}");
        }
        assert!(m.without(3).removed_any() && !m.promoted(3).removed_any());
        // A removal marks the result, so the flag alone is no change.
        let mut flagged = m.clone();
        flagged.removed_any = true;
        assert_eq!(m.one_change_to(&flagged), None);
        // The last voter stays.
        let one = Membership::voters_only(1);
        assert_eq!(one.without(0), one);
        assert_eq!(one.demoted(0), one);
    }

    #[test]
    fn configs_follow_the_log() {
        let m0 = Membership::voters_only(3);
        let m1 = m0.with_learner(3);
        let m2 = m1.promoted(3);
        let mut c = Configs::new(m0.clone(), 0);
        c.logged(5, m1.clone());
        c.logged(9, m2.clone());
        assert_eq!((c.current(), c.version()), (&m2, 9));
        assert_eq!(c.at(8), (5, Arc::new(m1.clone())));
        assert_eq!(c.at(4), (0, Arc::new(m0.clone())));
        c.truncated_from(9);
        assert_eq!((c.current(), c.version()), (&m1, 5));
        c.logged(9, m2.clone());
        c.compacted_to(7);
        assert_eq!(c.at(7), (5, Arc::new(m1.clone())));
        assert_eq!(c.current(), &m2);
        c.reset_to(12, None, false);
        assert_eq!((c.current(), c.last_index(), c.version()), (&m2, None, 9));
        c.logged(13, m1.clone());
        c.reset_to(12, Some((11, Arc::new(m0.clone()))), true);
        assert_eq!((c.current(), c.at(12)), (&m1, (11, Arc::new(m0.clone()))));
    }
}
