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
