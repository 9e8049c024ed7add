//! Snapshots of caches, for the catch-up of new members.

use std::time::Duration;

use crate::Schema;

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The key.
    pub key: String,
    /// The value, postcard-encoded.
    pub value: Vec<u8>,
    /// Remaining time to live, if the entry has one.
    pub ttl: Option<Duration>,
}

/// The contents of one cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSnapshot {
    /// The cache's name.
    pub cache: String,
    /// The schema its values are encoded with.
    pub schema: Schema,
    /// Its live entries.
    pub entries: Vec<SnapshotEntry>,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Entries restored.
    pub restored: usize,
    /// Entries skipped because they did not decode.
    pub failed: usize,
}
