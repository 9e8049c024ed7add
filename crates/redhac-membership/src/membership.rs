//! Who is in the cluster, and who of them votes.

use std::collections::BTreeSet;
use std::fmt;

use crate::quorum;
use crate::types::MemberId;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    voters: BTreeSet<MemberId>,
    learners: BTreeSet<MemberId>,
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

impl Membership {
    /// Members `0..members`, every one a voter (the static `HA_HOSTS` list).
    pub fn voters_only(members: usize) -> Self {
        Self {
            voters: (0..members.max(1) as MemberId).collect(),
            learners: BTreeSet::new(),
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
        Ok(Self { voters, learners })
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

    /// Never: a membership has at least one voter.
    pub fn is_empty(&self) -> bool {
        false
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
}
