//! The network between members: gRPC links with an authenticated handshake.

pub(crate) mod accept;
pub(crate) mod auth;
pub(crate) mod dial;
pub(crate) mod discover;
pub(crate) mod handshake;
pub(crate) mod link;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
pub(crate) mod tls;
#[cfg(test)]
mod tls_tests;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts a refused link, in `counter` (tests read it) and in the metrics.
pub(crate) fn count_refused(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(crate::metrics::LINKS_REFUSED).increment(1);
}
