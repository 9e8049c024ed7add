//! Per cache options.

use std::time::Duration;

use crate::{Result, StoreError};

/// The longest TTL accepted: anything longer is treated as a mistake.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a cache bounds its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capacity {
    /// No bound (the default). Entries leave only by TTL, TTI, delete or clear.
    #[default]
    Unbounded,
    /// At most this many entries.
    Entries(u64),
    /// At most this many bytes, counting each entry as its key length plus the
    /// length of its encoded (postcard) value.
    Bytes(u64),
}

/// Options of one cache: capacity, time to live, time to idle.
///
/// ```
/// use std::time::Duration;
/// use redhac_store::CacheOptions;
///
/// let opts = CacheOptions::default()
///     .max_capacity(100_000)
///     .time_to_live(Duration::from_secs(900));
/// assert_eq!(opts.time_to_live, Some(Duration::from_secs(900)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Size bound. Default: [`Capacity::Unbounded`].
    pub capacity: Capacity,
    /// Every entry expires this long after it was written. Default: none.
    pub time_to_live: Option<Duration>,
    /// Every entry expires this long after it was last read or written. Default: none.
    pub time_to_idle: Option<Duration>,
    /// How many change events a subscriber may fall behind before it is told
    /// it lagged. Default: 1024.
    pub event_buffer: usize,
    /// Whether subscribers hear of entries that expire or are evicted; see
    /// [`CacheOptions::eviction_events`]. Default: false.
    pub eviction_events: bool,
    /// The version of the value type's encoding; see
    /// [`CacheOptions::schema_version`]. Default: none (0).
    pub schema_version: Option<u32>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            capacity: Capacity::Unbounded,
            time_to_live: None,
            time_to_idle: None,
            event_buffer: 1024,
            eviction_events: false,
            schema_version: None,
        }
    }
}

impl CacheOptions {
    /// Bounds the cache to `entries` entries (least recently and frequently
    /// used go first). Replaces a byte bound.
    #[must_use]
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.capacity = Capacity::Entries(entries);
        self
    }

    /// Bounds the cache to `bytes` of keys plus encoded values. Replaces an
    /// entry bound.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.capacity = Capacity::Bytes(bytes);
        self
    }

    /// Expires every entry `ttl` after it was written. Default: never.
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Expires every entry `tti` after it was last read or written. Default: never.
    #[must_use]
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// Sets how many events a subscriber may fall behind. Default: 1024.
    #[must_use]
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events;
        self
    }

    /// Makes subscribers hear of entries that expire (`Expired`) or are
    /// evicted for size (`Evicted`), besides puts, deletes and clears, which
    /// they always hear of. Off by default: it roughly doubles the cost of
    /// every write into the cache (each insert then takes a per-key lock so
    /// that removals are reported in order), on every member.
    #[must_use]
    pub fn eviction_events(mut self, on: bool) -> Self {
        self.eviction_events = on;
        self
    }

    /// Sets the version of the value type's encoding. Bump it in the release
    /// that changes the type's serde shape (a field added, removed, renamed,
    /// reordered or retyped; a variant added...): members of different
    /// releases then never decode each other's values for this cache, and a
    /// key written by the other release reads as a miss until the roll is
    /// over. redhac also fingerprints the shape where it can trace it (see
    /// [`crate::Schema`]), but only the version sees a change it cannot trace,
    /// such as a hand-written `Deserialize`. Default: none (version 0).
    ///
    /// ```
    /// use redhac_store::{CacheOptions, Schema};
    ///
    /// // Release 2 added `admin` to the session type: version 2.
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Session { user: String, admin: bool }
    ///
    /// let options = CacheOptions::default().schema_version(2);
    /// assert_eq!(options.schema_version, Some(2));
    /// ```
    #[must_use]
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`StoreError::InvalidOptions`] for a zero capacity, a zero or huge
    /// TTL/TTI, or a zero event buffer.
    pub fn validate(&self, cache: &str) -> Result<()> {
        let bad = |reason: &str| {
            Err(StoreError::InvalidOptions {
                cache: cache.to_owned(),
                reason: reason.to_owned(),
            })
        };
        match self.capacity {
            Capacity::Entries(0) => return bad("max_capacity is 0; use at least 1 entry"),
            Capacity::Bytes(0) => return bad("max_bytes is 0; use at least 1 byte"),
            _ => {}
        }
        for (what, d) in [
            ("time_to_live", self.time_to_live),
            ("time_to_idle", self.time_to_idle),
        ] {
            if let Some(d) = d
                && (d.is_zero() || d > MAX_TTL)
            {
                return bad(&format!("{what} is {d:?}; use between 1 ns and 100 years"));
            }
        }
        if self.event_buffer == 0 {
            return bad("event_buffer is 0; use at least 1");
        }
        Ok(())
    }
}

/// Checks a per-entry TTL: between 1 ns and [`MAX_TTL`].
///
/// # Errors
/// [`StoreError::InvalidTtl`].
pub fn check_ttl(ttl: Option<Duration>) -> Result<()> {
    match ttl {
        Some(d) if d.is_zero() || d > MAX_TTL => Err(StoreError::InvalidTtl(d)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_nonsense() {
        assert!(CacheOptions::default().validate("c").is_ok());
        assert!(
            CacheOptions::default()
                .max_capacity(0)
                .validate("c")
                .is_err()
        );
        assert!(CacheOptions::default().max_bytes(0).validate("c").is_err());
        assert!(
            CacheOptions::default()
                .time_to_live(Duration::ZERO)
                .validate("c")
                .is_err()
        );
        assert!(
            CacheOptions::default()
                .time_to_idle(MAX_TTL * 2)
                .validate("c")
                .is_err()
        );
        assert!(
            CacheOptions::default()
                .event_buffer(0)
                .validate("c")
                .is_err()
        );
        let e = CacheOptions::default()
            .max_capacity(0)
            .validate("sessions")
            .unwrap_err();
        assert!(e.to_string().contains("sessions"), "{e}");
    }

    #[test]
    fn last_bound_wins() {
        let o = CacheOptions::default().max_capacity(5).max_bytes(10);
        assert_eq!(o.capacity, Capacity::Bytes(10));
    }
}
