//! Whether this node may answer reads from its local copy, checked on the
//! read path itself.
//!
//! In HA mode a member serves only while it holds a read lease (see the core's crate docs);
//! the runtime publishes the lease's end here and every `get` compares it with
//! a monotonic clock reading, so a member resumed after a pause or a stall
//! answers no read before it notices its lease ran out.
//!
//! The reading is cheap where it can be: on Linux a get first reads the
//! kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, about 2 ns
//! against about 20 ns for the precise clock), the precise clock's value at
//! the kernel's last tick, so behind it by at most a few ticks (the lag
//! allowed for: eight). While a lease ends later than the coarse reading
//! plus that lag, the precise clock is before the lease's end too and the
//! read is served; nearer the end the precise clock decides. Both clocks
//! are the kernel's, kept by it whether or not this process runs, so a
//! process resumed after a pause reads the pause in both. (A whole virtual
//! machine frozen and thawed may read a coarse clock still behind by the
//! freeze until the kernel's next tick.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const CLOSED: u64 = 0;
const ALWAYS: u64 = u64::MAX;

/// The end of the current read lease, in nanoseconds of the monotonic clock.
#[derive(Debug)]
pub(crate) struct ReadGate {
    until: AtomicU64,
    /// How far the coarse clock may be behind the precise one.
    lag: u64,
}

impl ReadGate {
    /// A gate that is always open (standalone mode).
    pub(crate) fn always_open() -> Self {
        Self::new(ALWAYS)
    }

    /// A closed gate (a cluster member before it holds a lease).
    pub(crate) fn closed() -> Self {
        Self::new(CLOSED)
    }

    fn new(until: u64) -> Self {
        Self {
            until: AtomicU64::new(until),
            lag: clock::coarse_lag(),
        }
    }

    /// Whether reads may be answered now.
    #[inline]
    pub(crate) fn open(&self) -> bool {
        self.open_at(clock::coarse, clock::precise)
    }

    /// [`ReadGate::open`] with the clocks given.
    #[inline]
    fn open_at(&self, coarse: impl Fn() -> u64, precise: impl Fn() -> u64) -> bool {
        match self.until.load(Ordering::Acquire) {
            ALWAYS => true,
            CLOSED => false,
            until => coarse().saturating_add(self.lag) < until || precise() < until,
        }
    }

    /// Serve reads until `until` (a lease end), unless closed again first.
    pub(crate) fn open_until(&self, until: Instant) {
        // The monotonic clock is read before `Instant::now()`, so the end
        // published is never later than `until` (earlier by the time
        // between the two readings).
        let now = clock::precise();
        let left = until.saturating_duration_since(Instant::now());
        let nanos = u64::try_from(left.as_nanos())
            .unwrap_or(ALWAYS)
            .saturating_add(now)
            .clamp(CLOSED + 1, ALWAYS - 1);
        self.until.store(nanos, Ordering::Release);
    }

    /// Stop serving reads now.
    pub(crate) fn close(&self) {
        self.until.store(CLOSED, Ordering::Release);
    }
}

#[cfg(target_os = "linux")]
mod clock {
    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    /// Bounds of the lag allowed for (a tick is 1 to 10 ms).
    const LAG_MIN: u64 = 8_000_000;
    const LAG_MAX: u64 = 100_000_000;

    fn nanos(t: Timespec) -> u64 {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let sub = u64::try_from(t.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(sub)
    }

    /// The monotonic clock (as `Instant`), in nanoseconds.
    #[inline]
    pub(super) fn precise() -> u64 {
        nanos(clock_gettime(ClockId::Monotonic))
    }

    /// The monotonic clock as of the kernel's last tick, in nanoseconds.
    #[inline]
    pub(super) fn coarse() -> u64 {
        nanos(clock_gettime(ClockId::MonotonicCoarse))
    }

    /// How far behind the precise clock the coarse one may be: eight of
    /// its ticks (its resolution: 4 ms at the common `HZ=250`, so 32 ms).
    /// The kernel moves the coarse clock at every tick of the CPU that
    /// keeps time, and another CPU takes that over once the ticks stalled
    /// for five (a timekeeping CPU descheduled by a hypervisor).
    pub(super) fn coarse_lag() -> u64 {
        let tick = nanos(clock_getres(ClockId::MonotonicCoarse));
        tick.saturating_mul(8).clamp(LAG_MIN, LAG_MAX)
    }
}

/// Elsewhere the precise clock decides every read.
#[cfg(not(target_os = "linux"))]
mod clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    static ORIGIN: OnceLock<Instant> = OnceLock::new();

    #[inline]
    pub(super) fn precise() -> u64 {
        let origin = *ORIGIN.get_or_init(Instant::now);
        // Nanoseconds after the first reading, never 0 (the closed gate).
        u64::try_from(origin.elapsed().as_nanos()).map_or(u64::MAX - 1, |n| n + 1)
    }

    /// No coarse clock: a reading that never serves on its own.
    #[inline]
    pub(super) fn coarse() -> u64 {
        u64::MAX
    }

    pub(super) fn coarse_lag() -> u64 {
        0
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
        // Ending well beyond the coarse clock's lag: served from it.
        gate.open_until(Instant::now() + Duration::from_secs(1));
        assert!(gate.open());
        gate.close();
        assert!(!gate.open());
        assert!(ReadGate::always_open().open());
    }

    /// A gate whose lease ends at 1,000 ms with a lag of 30 ms, read with a
    /// precise clock at `precise` and a coarse one `behind` it.
    fn serves(precise: u64, behind: u64, lag: u64) -> bool {
        const MS: u64 = 1_000_000;
        let gate = ReadGate {
            until: AtomicU64::new(1_000 * MS),
            lag: lag * MS,
        };
        gate.open_at(|| (precise - behind) * MS, || precise * MS)
    }

    #[test]
    fn the_coarse_clock_serves_only_with_its_lag_to_spare() {
        // Well before the end, with the coarse clock at any lag up to its
        // bound: served (by the coarse clock alone, or by the precise one).
        for behind in [0, 10, 30] {
            assert!(serves(900, behind, 30));
            assert!(serves(999, behind, 30));
        }
        // At or past the end, with the coarse clock up to its bound behind:
        // never served.
        for precise in [1_000, 1_001, 1_020, 1_029, 5_000] {
            for behind in [0, 1, 15, 30] {
                assert!(!serves(precise, behind, 30), "{precise} {behind}");
            }
        }
    }

    #[test]
    fn broken_rule_a_coarse_clock_trusted_without_its_lag_serves_past_the_lease() {
        // The rule the gate keeps: the coarse reading counts only with the
        // lag added. Without it a coarse clock 20 ms behind serves 10 ms
        // after the lease ended.
        assert!(serves(1_010, 20, 0));
        assert!(!serves(1_010, 20, 30));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_is_behind_the_precise_one_by_less_than_its_lag() {
        let lag = clock::coarse_lag();
        assert!((8_000_000..=100_000_000).contains(&lag));
        for _ in 0..10_000 {
            // Read between two precise readings: a pause anywhere here
            // only moves the coarse reading later.
            let before = clock::precise();
            let coarse = clock::coarse();
            let after = clock::precise();
            assert!(coarse <= after, "the coarse clock is ahead");
            assert!(coarse + lag > before, "behind by {} ns", before - coarse);
        }
    }
}
