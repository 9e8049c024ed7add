//! Options of a write.

use std::time::Duration;

/// How far a write must have gone before it returns. In standalone mode every
/// level is met once the local cache holds the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckLevel {
    /// Queued to the leader, fire and forget (still ordered by the leader).
    None,
    /// The leader applied it.
    Leader,
    /// A majority applied it; other members serve the old value for at most
    /// the read lease. The default.
    #[default]
    Quorum,
    /// Every member applied it or provably stopped serving: after it returns
    /// no member serves the old value.
    All,
}

impl AckLevel {
    /// The level's name in metrics labels.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Leader => "leader",
            Self::Quorum => "quorum",
            Self::All => "all",
        }
    }
}

/// Default time a write may take to reach its ack level.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of a put, delete or clear.
///
/// ```
/// use std::time::Duration;
/// use redhac::{AckLevel, WriteOptions};
///
/// let opts = WriteOptions::default().ttl(Duration::from_secs(60)).ack(AckLevel::All);
/// assert_eq!(opts.ack, AckLevel::All);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Time to live of the written entry (puts only); the cache's own TTL
    /// still applies when it is shorter. Default: none.
    pub ttl: Option<Duration>,
    /// The ack level. Default: [`AckLevel::Quorum`].
    pub ack: AckLevel,
    /// How long the write may take before [`crate::Error::Timeout`].
    /// Default: [`DEFAULT_WRITE_TIMEOUT`].
    pub timeout: Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            ttl: None,
            ack: AckLevel::default(),
            timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

impl WriteOptions {
    /// Sets the entry's time to live (puts only). Default: none.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the ack level. Default: [`AckLevel::Quorum`].
    #[must_use]
    pub fn ack(mut self, ack: AckLevel) -> Self {
        self.ack = ack;
        self
    }

    /// Sets the timeout. Default: [`DEFAULT_WRITE_TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
