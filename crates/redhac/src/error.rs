//! The facade's error type.

use std::time::Duration;

pub use redhac_store::StoreError;

/// Everything that can go wrong in redhac.
///
/// Two families: [`Error::NoQuorum`], [`Error::Timeout`] and
/// [`Error::ShutDown`] are conditions of the moment ([`Error::is_retryable`]
/// tells); the others mean the call or the configuration is wrong and
/// retrying will not help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid. The message names the variable and the fix.
    #[error("configuration: {0}")]
    Config(String),
    /// A cache operation was refused: unknown cache, wrong value type, a value
    /// that cannot be encoded, an invalid TTL.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key that cannot be used.
    #[error("invalid key ({len} bytes): {reason}")]
    InvalidKey {
        /// The key's length in bytes.
        len: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The encoded value is larger than [`crate::Config::max_value_size`];
    /// nothing was written. (HTTP services answer 413.)
    #[error("value too large: {size} bytes encoded, the limit is {max} (CACHE_MAX_VALUE_SIZE)")]
    ValueTooLarge {
        /// The encoded value's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// This member cannot reach a majority of the cluster; writes are refused
    /// until it can. Retry later or on another member.
    #[error("no quorum: this member cannot reach a majority of the cluster; retry later")]
    NoQuorum,
    /// The write did not reach its ack level in time. It may still apply.
    #[error("timed out after {0:?}; the write may still apply")]
    Timeout(Duration),
    /// The node was shut down.
    #[error("redhac was shut down")]
    ShutDown,
    /// [`crate::Redhac::step_down`] could not hand leadership over; the
    /// message says why. This member still leads.
    #[error("leadership was not handed over: {0}")]
    Handover(String),
    /// A membership change ([`crate::Redhac::add_learner`],
    /// [`crate::Redhac::promote`], [`crate::Redhac::remove`]) was refused:
    /// not the leader, another change in flight, a learner not caught up, a
    /// change that would leave too few voters answering, or the static mode.
    /// The message says which.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The loader of `get_or_insert_with` failed; nothing was cached.
    #[error("loader failed: {0}")]
    Loader(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// True for conditions that may pass: no quorum, a timeout, a shutdown
    /// (retry on another member).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NoQuorum | Self::Timeout(_) | Self::ShutDown)
    }
}

/// Result of redhac operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
