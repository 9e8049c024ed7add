//! The metrics redhac records through the [`metrics`] facade.
//!
//! redhac installs no exporter: the application chooses one (the `node`
//! example uses `metrics-exporter-prometheus`). Handles are taken when a
//! [`crate::Cache`] handle is created, so install the recorder before
//! [`crate::Redhac::cache`] is called.

/// Counter: local reads that found a value, by `cache`.
pub const CACHE_HITS: &str = "redhac_cache_hits_total";
/// Counter: local reads that found nothing (or were refused while the member
/// does not serve), by `cache`.
pub const CACHE_MISSES: &str = "redhac_cache_misses_total";
