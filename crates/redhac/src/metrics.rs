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
/// Counter: links refused at the handshake (TLS, token, member list,
/// version, member index, limits).
pub const LINKS_REFUSED: &str = "redhac_links_refused_total";
/// Counter: peer messages refused, by `reason` (`malformed`,
/// `not_the_leader`, `stale_term`, `not_linked`, `out_of_sequence`,
/// `older_snapshot`).
pub const MESSAGES_REFUSED: &str = "redhac_messages_refused_total";
/// Counter: links that passed the handshake (connects and reconnects), by `peer`.
pub const LINKS_UP: &str = "redhac_links_up_total";
/// Counter, by `peer`: links reset because they carried nothing for half
/// an election timeout while an answer or a leader's heartbeat was due.
pub const LINKS_SILENT: &str = "redhac_links_silent_total";
/// Gauge: members this one has a link to.
pub const LINKS_CONNECTED: &str = "redhac_links_connected";
/// Gauge: health by links: 2 Good, 1 Degraded, 0 Bad.
pub const HEALTH: &str = "redhac_health";
/// Counter: writes asked of the cluster, by `ack` level.
pub const WRITES: &str = "redhac_writes_total";
/// Histogram: seconds from a write's call to its resolution, by `ack` level.
pub const WRITE_SECONDS: &str = "redhac_write_seconds";
/// Counter: values a loader (`get_or_insert_with` and friends) produced but
/// the cache could not store (no quorum, a timeout, a value too large); the
/// caller got the value all the same. By `cache` and `reason`.
pub const LOADER_WRITES_FAILED: &str = "redhac_loader_writes_failed_total";
/// Counter: values of a cache written by a member with another schema of it
/// (another release of the application, during a roll), refused rather than
/// decoded (their keys read as misses here), by `cache`. Replicated writes,
/// snapshot entries and remote lookup answers count.
pub const SCHEMA_MISMATCHES: &str = "redhac_schema_mismatch_total";
/// Counter: elections this member stood in.
pub const ELECTIONS: &str = "redhac_elections_total";
/// Gauge: the current term.
pub const TERM: &str = "redhac_term";
/// Gauge: on the leader, the most entries a member has yet to apply.
pub const REPLICATION_LAG: &str = "redhac_replication_lag_entries";
/// Gauge: entries held in every cache of this member.
pub const CACHE_ENTRIES: &str = "redhac_cache_entries";
/// Counter: bytes of frames received from peers (after the handshake).
pub const BYTES_IN: &str = "redhac_bytes_in_total";
/// Counter: bytes of frames queued to peers.
pub const BYTES_OUT: &str = "redhac_bytes_out_total";
