//! Workload W1's value and keys, shared by the benchmarks.

use serde::{Deserialize, Serialize};

/// The W1 value: a 64-character name, a number and 32 bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Val {
    pub(crate) name: String,
    pub(crate) n: u64,
    pub(crate) blob: Vec<u8>,
}

/// W1's key space: `key-{i}`, i below this.
pub(crate) const KEYS: usize = 10_000;

pub(crate) fn val(i: usize) -> Val {
    Val {
        name: format!("{i:064}"),
        n: i as u64,
        blob: vec![(i % 251) as u8; 32],
    }
}

pub(crate) fn key(i: usize) -> String {
    format!("key-{i}")
}

/// The order gets visit the keys: as inserted, or shuffled when
/// `REDHAC_GET_ORDER=random` (a fixed permutation).
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) fn get_order() -> Vec<usize> {
    let mut keys: Vec<usize> = (0..KEYS).collect();
    if std::env::var("REDHAC_GET_ORDER").is_ok_and(|o| o == "random") {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in (1..keys.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }
    keys
}
