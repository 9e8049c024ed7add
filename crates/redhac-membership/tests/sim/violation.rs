//! The invariants the simulation checks, as values: one variant per
//! invariant, carrying what broke it, so tests match on the kind.

use std::fmt;
use std::time::Duration;

use redhac_membership::{Ack, LogId, MemberId, Rejection, RequestId, Term};

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Leaders of two clusters: two bootstrapped at once.
    TwoClusters {
        first: u64,
        second: u64,
        node: MemberId,
    },
    /// Two incarnations led one term.
    TwoLeaders {
        term: Term,
        first: MemberId,
        second: MemberId,
    },
    /// A leader lacks an entry committed in an earlier term.
    LeaderIncomplete {
        node: MemberId,
        term: Term,
        missing: LogId,
        last: LogId,
    },
    /// A node refused a message only a faulty member sends.
    ProtocolRejection {
        node: MemberId,
        from: MemberId,
        what: String,
        why: Rejection,
    },
    /// A node applied an entry out of order.
    AppliedOutOfOrder {
        node: MemberId,
        entry: LogId,
        after: u64,
    },
    /// A node applied another entry than the one committed at its index.
    AppliedDiverged {
        node: MemberId,
        entry: LogId,
        committed: LogId,
    },
    /// A follower applied an entry no leader applied first.
    AppliedUncommitted { node: MemberId, entry: LogId },
    /// One client write committed at two positions.
    CommittedTwice { first: LogId, again: LogId },
    /// A snapshot starts at an entry other than the committed one.
    SnapshotDiverged {
        node: MemberId,
        last: LogId,
        committed: LogId,
    },
    /// A snapshot chunk holds a value the committed log never held between
    /// the snapshot's start and the chunk's cut.
    SnapshotNotCommitted {
        node: MemberId,
        last: LogId,
        cut: u64,
        value: String,
    },
    /// A node resolved a write it was never given.
    UnknownWrite { node: MemberId, req: RequestId },
    /// A `Quorum` or `All` write resolved without a position, or where
    /// another entry (or none) was committed.
    ResolvedNotCommitted {
        node: MemberId,
        req: RequestId,
        ack: Ack,
        at: Option<LogId>,
        committed: Option<LogId>,
    },
    /// A node in health Bad serves reads.
    ServesInBad { node: MemberId },
    /// A node serves while installing a snapshot, or before it applied past
    /// the snapshot's end.
    ServesMidSnapshot {
        node: MemberId,
        installing: bool,
        applied: u64,
        end: u64,
    },
    /// A serving node has not applied a completed `All` write, or a
    /// `Quorum` write completed more than the lease ago.
    StaleRead {
        node: MemberId,
        applied: u64,
        completed: u64,
    },
    /// A node's caches hold a value the committed log does not.
    CacheNotCommitted {
        node: MemberId,
        applied: u64,
        value: String,
    },
    /// A leader holds two membership changes not committed.
    ChangesOverlap { node: MemberId, entries: Vec<LogId> },
    /// A leader appended a membership change before committing an entry
    /// of its term.
    ChangeBeforeTermCommitted {
        node: MemberId,
        change: LogId,
        commit: u64,
    },
    /// A learner stood for election.
    LearnerVoted { node: MemberId, what: String },
    /// A member was sent word that it was removed while the committed
    /// membership, or a leader's, still lists it.
    RemovedWhileListed { node: MemberId, by: String },
    /// No single leader with every node Good and serving soon after the
    /// network healed.
    NotSettled { states: Vec<String> },
}

/// A violation and when it was found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) at: Duration,
    pub(crate) violation: Violation,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {:.3} ms: {}",
            self.at.as_secs_f64() * 1e3,
            self.violation
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TwoLeaders {
                term,
                first,
                second,
            } => write!(f, "two leaders in term {term}: n{first} and n{second}"),
            Self::LeaderIncomplete {
                node,
                term,
                missing,
                last,
            } => write!(
                f,
                "n{node} leads term {term} without committed entry {missing} (last {last})"
            ),
            Self::ProtocolRejection {
                node,
                from,
                what,
                why,
            } => write!(f, "n{node} refused {what} from n{from}: {why:?}"),
            Self::AppliedOutOfOrder { node, entry, after } => {
                write!(f, "n{node} applied {entry} after {after}")
            }
            Self::AppliedDiverged {
                node,
                entry,
                committed,
            } => write!(f, "n{node} applied {entry} where {committed} was committed"),
            Self::AppliedUncommitted { node, entry } => {
                write!(f, "n{node} applied {entry} that no leader committed")
            }
            Self::SnapshotDiverged {
                node,
                last,
                committed,
            } => write!(
                f,
                "n{node} installed a snapshot at {last}, committed {committed}"
            ),
            Self::SnapshotNotCommitted {
                node,
                last,
                cut,
                value,
            } => write!(
                f,
                "n{node} installed a snapshot at {last} (cut at {cut}) holding {value}"
            ),
            Self::UnknownWrite { node, req } => write!(f, "n{node} resolved unknown write {req}"),
            Self::CommittedTwice { first, again } => {
                write!(
                    f,
                    "a write committed at {first} was committed again at {again}"
                )
            }
            Self::ResolvedNotCommitted {
                node,
                req,
                ack,
                at: None,
                ..
            } => write!(f, "n{node} resolved {ack:?} write {req} without a position"),
            Self::ResolvedNotCommitted {
                node,
                req,
                ack,
                at: Some(at),
                committed,
            } => write!(
                f,
                "n{node} resolved {ack:?} write {req} at {at}, committed there: {committed:?}"
            ),
            Self::ServesInBad { node } => write!(f, "n{node} serves reads in health Bad"),
            Self::ServesMidSnapshot {
                node,
                installing,
                applied,
                end,
            } => write!(
                f,
                "n{node} serves mid-snapshot: installing {installing}, applied {applied}, \
                 snapshot end {end}"
            ),
            Self::StaleRead {
                node,
                applied,
                completed,
            } => write!(
                f,
                "n{node} serves stale reads: applied {applied}, a completed write is at {completed}"
            ),
            Self::CacheNotCommitted {
                node,
                applied,
                value,
            } => write!(f, "n{node} caches {value} at applied {applied}"),
            Self::LearnerVoted { node, what } => write!(f, "learner n{node}: {what}"),
            Self::TwoClusters {
                first,
                second,
                node,
            } => write!(
                f,
                "n{node} leads cluster {second:x} while cluster {first:x} had a leader"
            ),
            Self::RemovedWhileListed { node, by } => {
                write!(f, "n{node} told it was removed while {by} lists it")
            }
            Self::ChangesOverlap { node, entries } => {
                write!(f, "leader n{node} holds uncommitted changes {entries:?}")
            }
            Self::ChangeBeforeTermCommitted {
                node,
                change,
                commit,
            } => write!(
                f,
                "leader n{node} appended change {change} with commit {commit}, before its term's first entry"
            ),
            Self::NotSettled { states } => write!(
                f,
                "no single leader with every node Good and serving within 10 election timeouts \
                 of healing: \
                 {states:#?}"
            ),
        }
    }
}
