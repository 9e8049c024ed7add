//! The metrics redhac records through the [`metrics`] facade.
//!
//! redhac installs no exporter: the application chooses one (the `node`
//! example uses `metrics-exporter-prometheus`). Handles are taken when a
//! [`crate::Cache`] handle is created, so install the recorder before
//! [`crate::Redhac::cache`] is called. Starting a node describes every metric
//! (help text and unit) to the recorder installed then; one installed later
//! can be given them with [`describe`].
//!
//! Write durations are recorded as a histogram: with the Prometheus exporter,
//! the buckets of [`WRITE_SECONDS_BUCKETS`] cover a same-zone cluster's writes
//! (0.1-1 ms) to a write that waited out an election (about the election
//! timeout); without buckets the exporter publishes a summary, and
//! `histogram_quantile` finds no `_bucket` series.

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
/// Gauge: 1 while this member leads, else 0.
pub const LEADER: &str = "redhac_is_leader";
/// Gauge: 1 while this member answers reads (readiness), else 0.
pub const SERVING: &str = "redhac_serving";
/// Gauge: the members `HA_HOSTS` and `HA_LEARNERS` list (this one included).
pub const MEMBERS: &str = "redhac_members";
/// Counter: writes asked of the cluster, by `ack` level.
pub const WRITES: &str = "redhac_writes_total";
/// Histogram: seconds from a write reaching the runtime to its resolution, by
/// `ack` level and `outcome` (`ok`, `no_quorum`, `timeout`, `shut_down`).
pub const WRITE_SECONDS: &str = "redhac_write_duration_seconds";

/// Recommended buckets of [`WRITE_SECONDS`], in seconds.
pub const WRITE_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
/// Counter: values a loader (`get_or_insert_with` and friends) produced but
/// the cache could not store (no quorum, a timeout, a value too large); the
/// caller got the value all the same. By `cache` and `reason`.
pub const LOADER_WRITES_FAILED: &str = "redhac_loader_writes_failed_total";
/// Counter: values of a cache written by a member with another schema of it
/// (another release of the application, during a roll), refused rather than
/// decoded (their keys read as misses here), by `cache`. Replicated writes,
/// snapshot entries and remote lookup answers count.
pub const SCHEMA_MISMATCHES: &str = "redhac_schema_mismatch_total";
/// Counter: values received that did not decode with this member's codec
/// (replicated writes, snapshot entries, answers to remote lookups), by
/// `cache`; their keys read as misses here. A count that grows means two
/// releases disagree on a value type without a new schema version.
pub const DECODE_ERRORS: &str = "redhac_decode_errors_total";
/// Counter: snapshots this member sent whole to a peer that was too far
/// behind for the log (a new, restarted or long-cut member).
pub const SNAPSHOTS_SENT: &str = "redhac_snapshots_sent_total";
/// Counter: snapshots this member installed (its caches replaced by the
/// leader's).
pub const SNAPSHOTS_INSTALLED: &str = "redhac_snapshots_installed_total";
/// Counter: elections this member stood in.
pub const ELECTIONS: &str = "redhac_elections_total";
/// Gauge: the current term.
pub const TERM: &str = "redhac_term";
/// Gauge: on the leader, the most entries a member has yet to apply.
pub const REPLICATION_LAG: &str = "redhac_replication_lag_entries";
/// Gauge: entries held in every cache of this member.
pub const CACHE_ENTRIES: &str = "redhac_cache_entries";
/// Counter: bytes of frames received from peers (after the handshake).
pub const BYTES_IN: &str = "redhac_received_bytes_total";
/// Counter: bytes of frames queued to peers.
pub const BYTES_OUT: &str = "redhac_sent_bytes_total";

/// Describes every metric above (help text and unit) to the installed
/// recorder. [`crate::Builder::start`] calls it; call it again after
/// installing a recorder later.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Local reads that found a value, by cache."
    );
    describe_counter!(
        CACHE_MISSES,
        Unit::Count,
        "Local reads that found nothing or were refused while not serving, by cache."
    );
    describe_counter!(
        LINKS_REFUSED,
        Unit::Count,
        "Links refused at the handshake."
    );
    describe_counter!(
        MESSAGES_REFUSED,
        Unit::Count,
        "Peer messages refused, by reason."
    );
    describe_counter!(
        LINKS_UP,
        Unit::Count,
        "Links that passed the handshake, by peer."
    );
    describe_counter!(
        LINKS_SILENT,
        Unit::Count,
        "Links reset because nothing came while an answer or a heartbeat was due, by peer."
    );
    describe_gauge!(
        LINKS_CONNECTED,
        Unit::Count,
        "Members this one has a link to."
    );
    describe_gauge!(HEALTH, "Health by links: 2 Good, 1 Degraded, 0 Bad.");
    describe_gauge!(LEADER, "1 while this member leads.");
    describe_gauge!(SERVING, "1 while this member answers reads (readiness).");
    describe_gauge!(
        MEMBERS,
        Unit::Count,
        "Members the cluster is configured with."
    );
    describe_counter!(
        WRITES,
        Unit::Count,
        "Writes asked of the cluster, by ack level."
    );
    describe_histogram!(
        WRITE_SECONDS,
        Unit::Seconds,
        "Time from a write reaching the runtime to its resolution, by ack and outcome."
    );
    describe_counter!(
        LOADER_WRITES_FAILED,
        Unit::Count,
        "Loaded values the cache could not store, by cache and reason."
    );
    describe_counter!(
        SCHEMA_MISMATCHES,
        Unit::Count,
        "Values written with another schema of their cache, refused, by cache."
    );
    describe_counter!(
        DECODE_ERRORS,
        Unit::Count,
        "Values received that did not decode, by cache; read as misses."
    );
    describe_counter!(
        SNAPSHOTS_SENT,
        Unit::Count,
        "Snapshots sent whole to a peer too far behind for the log."
    );
    describe_counter!(
        SNAPSHOTS_INSTALLED,
        Unit::Count,
        "Snapshots installed (the caches replaced by the leader's)."
    );
    describe_counter!(ELECTIONS, Unit::Count, "Elections this member stood in.");
    describe_gauge!(TERM, "The current term.");
    describe_gauge!(
        REPLICATION_LAG,
        Unit::Count,
        "On the leader: the most entries a member has yet to apply."
    );
    describe_gauge!(
        CACHE_ENTRIES,
        Unit::Count,
        "Entries held in every cache of this member."
    );
    describe_counter!(
        BYTES_IN,
        Unit::Bytes,
        "Bytes of frames received from peers."
    );
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes of frames queued to peers.");
}

/// The `peer` label of a per-link metric: the member's id in the static
/// mode; in the dynamic mode, where every start draws a new random id,
/// `dynamic` (one series, not one per member ever started).
pub(crate) fn peer_label(dynamic: bool, peer: u32) -> String {
    if dynamic {
        "dynamic".to_owned()
    } else {
        peer.to_string()
    }
}
