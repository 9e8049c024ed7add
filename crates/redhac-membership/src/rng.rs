//! A small seeded RNG (SplitMix64): the core draws its random timeouts from
//! it, never from a global source, so a seed replays a run exactly.

use std::time::Duration;

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded with `seed` mixed with the member id: members given the same
    /// seed still draw different sequences.
    pub(crate) fn new(seed: u64, me: u32) -> Self {
        let mut rng = Self(seed ^ (u64::from(me) + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        rng.next();
        rng
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)` (`low` when the range is empty).
    pub(crate) fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_nanos() as u64;
        if span == 0 {
            return low;
        }
        low + Duration::from_nanos(self.next() % span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_different_members_differ() {
        let (mut a, mut b) = (Rng::new(7, 0), Rng::new(7, 1));
        assert_ne!(a.next(), b.next());
        let (mut c, mut d) = (Rng::new(7, 0), Rng::new(7, 0));
        assert_eq!(c.next(), d.next());
    }

    #[test]
    fn between_stays_in_range() {
        let mut r = Rng::new(1, 0);
        let (lo, hi) = (Duration::from_millis(100), Duration::from_millis(200));
        for _ in 0..1000 {
            let d = r.between(lo, hi);
            assert!(d >= lo && d < hi);
        }
        assert_eq!(r.between(hi, lo), hi);
    }
}
