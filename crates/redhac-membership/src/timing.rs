//! Timeouts and limits, all derived from the election timeout by default.

use std::time::Duration;

/// The core's timeouts and limits.
///
/// ```
/// use std::time::Duration;
/// use redhac_membership::Timing;
///
/// let t = Timing::new(Duration::from_secs(2));
/// assert_eq!(t.heartbeat, Duration::from_millis(25));
/// assert_eq!(t.read_lease, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// `T`: a follower that hears no leader for a random time in `[T, 2T)`
    /// starts an election; a leader that hears no majority for `T` steps down.
    pub election_timeout: Duration,
    /// How often the leader sends an empty append when it has nothing else
    /// to send (`T / 80`: the leader's own lease, `G` less the drift margin,
    /// spans three).
    pub heartbeat: Duration,
    /// `G`: a member that heard the leader less than `G` ago votes for no one
    /// else, and the leader serves reads until the latest heartbeat a majority
    /// echoed plus `G` less the drift margin (`T / 24`). Short, so a crashed
    /// leader (its links closed) is replaced within about `G` (p50 92 ms at
    /// `T` = 2 s, a process killed).
    pub vote_guard: Duration,
    /// `L`: how long a follower serves reads after the ack its lease counts
    /// from (`T / 2`). A `Quorum` write is invisible on a lagging member for
    /// at most this long.
    pub read_lease: Duration,
    /// The random delay before a pre-vote when no leader is known and a
    /// majority is linked, or the leader's links just closed (`T / 100`).
    pub fast_election: Duration,
    /// A link that should carry traffic (a leader hears each follower's
    /// replies to its heartbeats; a follower hears its leader) and carried
    /// none for this long is reset, to be dialled afresh (`T / 2`): a
    /// connection left half-open by a partition would otherwise hold
    /// messages back for the transport's retransmission back-off or
    /// keepalive (seconds) after the network heals.
    pub silent_link: Duration,
    /// Frames with entries in flight per follower.
    pub max_inflight: usize,
    /// Entries per frame.
    pub max_batch: usize,
    /// Bytes of entries per frame, by [`crate::Op::size`] (4 MiB). A frame
    /// holds at least one entry, so it is at most the larger of this and
    /// the largest entry: the transport's frame limit must allow both.
    pub max_batch_bytes: usize,
    /// Applied entries kept for followers that fall behind; one further
    /// behind gets a snapshot.
    pub log_capacity: usize,
    /// The same, in bytes by [`crate::Op::size`] (256 MiB): whichever
    /// bound is reached first. A snapshot streaming to a follower holds up
    /// to four times both.
    pub log_capacity_bytes: usize,
}

impl Timing {
    /// Defaults derived from the election timeout `T`.
    ///
    /// # Panics
    /// Never; a zero `T` is raised to 10 ms.
    pub fn new(election_timeout: Duration) -> Self {
        let t = election_timeout.max(Duration::from_millis(10));
        Self {
            election_timeout: t,
            heartbeat: t / 80,
            vote_guard: t / 24,
            read_lease: t / 2,
            fast_election: t / 100,
            silent_link: t / 2,
            max_inflight: 4,
            max_batch: 512,
            max_batch_bytes: 4 << 20,
            log_capacity: 16_384,
            log_capacity_bytes: 256 << 20,
        }
    }

    /// How often the runtime should tick the core.
    pub fn tick(&self) -> Duration {
        self.heartbeat / 2
    }

    /// Lasts for `d` measured on another member's clock are shortened (or
    /// bounds lengthened) by this much, for clock-rate drift.
    pub fn drift_margin(d: Duration) -> Duration {
        d / 16
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::new(Duration::from_secs(2))
    }
}
