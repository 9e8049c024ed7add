//! Quorum arithmetic as small pure functions.

use crate::types::Health;

/// Members needed for a majority of `members`.
pub const fn majority(members: usize) -> usize {
    members / 2 + 1
}

/// Health by links: linked with `linked_with_me` of `members` (itself
/// included), and so reaching `voters_reached` of `voters` (itself included
/// when it votes).
pub const fn health(
    linked_with_me: usize,
    members: usize,
    voters_reached: usize,
    voters: usize,
) -> Health {
    if linked_with_me >= members {
        Health::Good
    } else if voters_reached >= majority(voters) {
        Health::Degraded
    } else {
        Health::Bad
    }
}

/// The largest value that at least a majority of `members` reach, given one
/// value per member heard from (members not listed count as reaching
/// nothing). The commit index from match indexes, the leader's lease from
/// echoed stamps, check-quorum from ack times all use it.
pub fn quorum_value<T: Ord + Copy>(values: &mut [T], members: usize) -> Option<T> {
    let need = majority(members);
    if values.len() < need {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    Some(values[need - 1])
}

/// The outcome of counting votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority can no longer be reached.
    Lost,
    /// Still open.
    Pending,
}

/// Counts `granted` and `rejected` votes (the candidate's own included in
/// `granted`) among `members`.
pub const fn vote_result(granted: usize, rejected: usize, members: usize) -> VoteResult {
    let need = majority(members);
    if granted >= need {
        VoteResult::Won
    } else if members - rejected < need {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_table() {
        for (n, m) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)] {
            assert_eq!(majority(n), m, "{n}");
        }
    }

    #[test]
    fn health_table() {
        for (linked, members, h) in [
            (1, 1, Health::Good),
            (3, 3, Health::Good),
            (2, 3, Health::Degraded),
            (1, 3, Health::Bad),
            (5, 5, Health::Good),
            (3, 5, Health::Degraded),
            (2, 5, Health::Bad),
            (2, 4, Health::Bad),
            (3, 4, Health::Degraded),
        ] {
            assert_eq!(
                health(linked, members, linked, members),
                h,
                "{linked} of {members}"
            );
        }
        // Learners: Good needs every member, a majority is of voters only.
        // (linked, members, voters reached, voters)
        for (linked, members, reached, voters, h) in [
            (5, 5, 3, 3, Health::Good),
            (4, 5, 3, 3, Health::Degraded),
            (4, 5, 2, 3, Health::Degraded),
            (4, 5, 1, 3, Health::Bad),
            (2, 7, 2, 3, Health::Degraded),
        ] {
            assert_eq!(
                health(linked, members, reached, voters),
                h,
                "{linked}/{reached}"
            );
        }
    }

    #[test]
    fn quorum_value_table() {
        // (values, members, expected)
        let cases: &[(&[u64], usize, Option<u64>)] = &[
            (&[5], 1, Some(5)),
            (&[5, 3, 9], 3, Some(5)),
            (&[5, 3], 3, Some(3)),
            (&[5], 3, None),
            (&[1, 2, 3, 4, 5], 5, Some(3)),
            (&[7, 7, 1, 1], 5, Some(1)),
            (&[7, 7, 1], 5, Some(1)),
            (&[7, 7], 5, None),
            (&[4, 4, 4, 0], 4, Some(4)),
        ];
        for (values, members, want) in cases {
            let mut v = values.to_vec();
            assert_eq!(
                quorum_value(&mut v, *members),
                *want,
                "{values:?} of {members}"
            );
        }
    }

    #[test]
    fn vote_result_table() {
        // (granted, rejected, members, result)
        for (g, r, n, want) in [
            (1, 0, 1, VoteResult::Won),
            (1, 0, 3, VoteResult::Pending),
            (2, 0, 3, VoteResult::Won),
            (1, 1, 3, VoteResult::Pending),
            (1, 2, 3, VoteResult::Lost),
            (2, 2, 5, VoteResult::Pending),
            (2, 3, 5, VoteResult::Lost),
            (3, 2, 5, VoteResult::Won),
            (2, 1, 4, VoteResult::Pending),
            (2, 2, 4, VoteResult::Lost),
        ] {
            assert_eq!(vote_result(g, r, n), want, "{g}+ {r}- of {n}");
        }
    }
}
