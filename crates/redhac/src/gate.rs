//! Whether this node may answer reads from its local copy, checked on the
//! read path itself.
//!
//! In HA mode a member serves only while it holds a read lease (see the core's crate docs);
//! the runtime publishes the lease's end here and every `get` compares it with
//! a monotonic clock reading, so a member resumed after a pause or a stall
//! answers no read before it notices its lease ran out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const CLOSED: u64 = 0;
const ALWAYS: u64 = u64::MAX;

/// The end of the current read lease, in nanoseconds after `origin`.
#[derive(Debug)]
pub(crate) struct ReadGate {
    origin: Instant,
    until: AtomicU64,
}

impl ReadGate {
    /// A gate that is always open (standalone mode).
    pub(crate) fn always_open() -> Self {
        Self {
            origin: Instant::now(),
            until: AtomicU64::new(ALWAYS),
        }
    }

    /// A closed gate (a cluster member before it holds a lease).
    pub(crate) fn closed() -> Self {
        Self {
            origin: Instant::now(),
            until: AtomicU64::new(CLOSED),
        }
    }

    /// Whether reads may be answered now.
    #[inline]
    pub(crate) fn open(&self) -> bool {
        match self.until.load(Ordering::Acquire) {
            ALWAYS => true,
            CLOSED => false,
            until => self.nanos(Instant::now()) < until,
        }
    }

    /// Serve reads until `until` (a lease end), unless closed again first.
    pub(crate) fn open_until(&self, until: Instant) {
        let nanos = self.nanos(until).clamp(CLOSED + 1, ALWAYS - 1);
        self.until.store(nanos, Ordering::Release);
    }

    /// Stop serving reads now.
    pub(crate) fn close(&self) {
        self.until.store(CLOSED, Ordering::Release);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(ALWAYS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_in_the_past_serves_nothing() {
        let gate = ReadGate::closed();
        assert!(!gate.open());
        gate.open_until(Instant::now() + Duration::from_secs(60));
        assert!(gate.open());
        gate.open_until(Instant::now() - Duration::from_millis(1));
        assert!(!gate.open());
        gate.close();
        assert!(!gate.open());
        assert!(ReadGate::always_open().open());
    }
}
