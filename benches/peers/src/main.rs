//! Workload W1 on the embedded systems a user would pick instead of redhac:
//! redhac 0.10.5 and hiqlite 0.15 (its cache), both from crates.io.
//!
//! From the repository root:
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml
//! REDHAC_PEERS_ONLY=hiqlite cargo run --release --manifest-path benches/peers/Cargo.toml
//! ```
//!
//! `REDHAC_PEERS_ONLY` is `redhac` (0.10.5), `hiqlite` (its cache with the
//! Raft log and snapshots in memory) or `hiqlite-disk` (its default storage:
//! the Raft log in WAL files, in a temporary directory removed afterwards);
//! without it all three rows run (about 15 minutes). `REDHAC_PEERS_NO_RSS=1`
//! skips the memory children. Prints one JSON object per system per line on
//! stdout, with the keys of benches/compare (`system`, `mode`,
//! `cold_start_p50_ms`, `w_leader_p50_us`, ...) and a few of its own
//! (`failover_p99_ms`, `stranded_writes`, `failover_errors_after_stop`,
//! `failover_runs`, `failover_unrecovered_runs`, `notes`, and for hiqlite
//! `raft_running_after` and `get_on`); progress goes to stderr.
//!
//! This package is its own Cargo workspace (an empty `[workspace]` table in
//! its Cargo.toml, its own Cargo.lock and target directory): the root
//! workspace (`members = ["crates/*"]`) never builds it, so
//! `cargo test --workspace` does not compile either peer.
//!
//! # What is measured
//!
//! Three members of each system in this one process on 127.0.0.1, plaintext,
//! each system's default timing, on a multi-thread tokio runtime with 2
//! worker threads (as benches/compare); W1's value and keys from
//! benches/common/w1.rs. Per system: cold start (10 runs, each on a fresh
//! 2-worker runtime, from starting the members until one leader and one
//! write through each member succeeded); write latency (1,000 warm-up then
//! 10,000 sequential writes of `key(i % KEYS)` = `val(i)`, through the
//! leader and through a follower); throughput (64 writer tasks for 5 s on the
//! leader, then spread round-robin over the three); a get of a present key
//! on a follower (5 rounds of 100,000, median; the peers' get APIs take an
//! owned `String` key, so a key clone is in each get); failover (5 runs, each
//! member on its own 1-worker runtime and the leader's runtime dropped, a
//! crash; from the stop to the first success of probe writes, 500 ms timeout
//! each and retried, through both survivors, capped at 30 s and then counted
//! in `failover_unrecovered_runs`; meanwhile 4 writers with a 10 s timeout
//! per write give `stranded_writes`, their writes in flight at the stop that
//! failed or hung, summed over the runs); memory per entry with 1,000,000
//! entries in a child process (redhac 0.10.5 standalone, hiqlite a
//! one-member in-memory cluster).
//!
//! # What a write acknowledges, what a get reads
//!
//! Paths below are in each crate's source (`~/.cargo/registry/src/*/`).
//!
//! **redhac 0.10.5**, `cache_insert(.., AckLevel::Quorum)`. On the leader,
//! `insert_from_leader` (redhac-0.10.5/src/lib.rs:966-1075) sends the put to
//! every connected follower and onto the leader's own cache channel, then
//! waits, with no timeout, for `QUORUM` positive acks, `QUORUM` being
//! `hosts / 2` = 1 of the 2 followers (src/lib.rs:418-422, 1014-1056). A
//! follower acks once it has *queued* the put on its cache task's unbounded
//! channel (`send_async(CacheReq::Put ..)` then `PutAck`,
//! src/server.rs:291-305), not after applying it; the leader's own put is
//! likewise only queued. When the acks cannot come (no follower connected)
//! `insert_from_leader` returns `Ok(false)`, which `cache_insert` drops on
//! the leader (the `.await?` at src/lib.rs:888-898): the call returns
//! `Ok(())` anyway. Through a follower, the insert goes to the leader as an
//! `RpcRequest::Insert` (src/lib.rs:922-940), the leader runs
//! `insert_from_leader` and answers; the follower's call waits on that answer
//! with no timeout (src/lib.rs:949-959), so it hangs if the leader dies
//! first. A get (`cache_get!` → `cache_get_value`, src/lib.rs:691-771) asks
//! the member's own cache task over a channel and deserializes with bincode:
//! a local read, no leader or lease check, only `QuorumHealth` not `Bad`.
//!
//! **hiqlite 0.15** (0.15.3, openraft 0.9.25), `Client::put`. On the leader,
//! `cache_req` calls `client_write_local` (hiqlite-0.15.3/src/client/
//! cache.rs:515-517, src/client/helpers.rs:61-75: openraft's `client_write`
//! with a 30 s timeout), which returns once the entry is committed (appended
//! to the logs of 2 of 3 members, in memory or, in the disk variant, written
//! to the WAL without fsync) and applied to the leader's state machine; the
//! followers apply it later. Through a follower the request goes over the
//! member's API stream to the leader (src/client/cache.rs:519-539) and is
//! retried once after a leader-change error (src/client/cache.rs:486-508).
//! A get (`Client::get` → `get_bytes`, src/client/cache.rs:76-128) asks the
//! member's own cache handler task over a channel
//! (src/store/state_machine/memory/kv_handler.rs:169): a local read of what
//! that member has applied, with no lease or read index, so it can be stale
//! on a follower.
//!
//! # Known problems met
//!
//! - hiqlite's in-memory Raft log (`cache_storage_disk = false`) panics in
//!   `LogStoreMemory::purge` (src/store/logs/memory.rs:238-246, "range end
//!   index 10000 out of range") when the first snapshot (after 10,000 log
//!   entries, the default policy) is purged on a member whose log is shorter
//!   than the range; that member's Raft stops. The row's
//!   `raft_running_after` says which members were still running after each
//!   phase; the disk-WAL row is there for comparison.
//! - hiqlite's cold start takes about 11 s at default settings: member 1
//!   initialises a one-member Raft and the others join it over HTTP, first
//!   as learners then as voters, polling with 500 ms and 1 s sleeps
//!   (`become_cluster_member`, src/init.rs:247-430).
//! - redhac 0.10.5's exit task unwraps a send to its quorum task
//!   (src/lib.rs:1486) and panics when the last `CacheConfig` is dropped
//!   after that task is gone; the bench never drops the configs of members
//!   whose runtime it dropped. When a leader crashes, the survivors' server
//!   stream task for it panics on its next ack (`expect`, src/server.rs:307);
//!   tokio catches it and the member goes on. In about 1 run in 5 the
//!   survivors do not accept a write within 30 s of the leader's crash.
//! - hiqlite-wal's reader threads (std threads, not tasks) of a disk-WAL
//!   cluster whose runtime was dropped panic on a closed channel
//!   (hiqlite-wal-0.15.1/src/reader.rs:123,135); they belong to clusters
//!   already torn down.
//!
//! These panics print backtraces on stderr; none ends the bench.

#[path = "../../common/w1.rs"]
mod value;

mod common;
mod hql;
mod r010;

use serde_json::Value;

const RSS_ENTRIES: usize = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--rss-child") {
        rss_child(args.get(pos + 1).map(String::as_str).unwrap_or(""));
        return;
    }
    let only = std::env::var("REDHAC_PEERS_ONLY").unwrap_or_default();
    let rt = common::runtime(2);
    if only.is_empty() || only == "redhac" {
        eprintln!("redhac 0.10.5 …");
        println!("{}", Value::Object(r010::row(&rt)));
    }
    if only.is_empty() || only == "hiqlite" {
        eprintln!("hiqlite 0.15, in memory …");
        println!("{}", Value::Object(hql::row(&rt, hql::Storage::Memory)));
    }
    if only.is_empty() || only == "hiqlite-disk" {
        eprintln!("hiqlite 0.15, its default disk WAL …");
        println!("{}", Value::Object(hql::row(&rt, hql::Storage::Disk)));
        hql::remove_data();
    }
    // Leftover member tasks (the steady clusters) end with the runtime.
    rt.shutdown_background();
}

/// Resident bytes per entry, measured in a fresh child process (this binary
/// with `--rss-child SYSTEM`); `null` when skipped or failed.
pub(crate) fn rss_per_entry(system: &str) -> Option<f64> {
    if std::env::var("REDHAC_PEERS_NO_RSS").is_ok() {
        return None;
    }
    eprintln!("   memory child for {system} ({RSS_ENTRIES} entries) …");
    let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args(["--rss-child", system])
        // redhac 0.10.5's memory child runs standalone: not the HA variables
        // this process set for its clusters.
        .env_remove("HA_MODE")
        .env_remove("HA_HOSTS")
        .output()
        .expect("the memory child runs");
    let parsed = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    if parsed.is_none() {
        eprintln!(
            "   the memory child printed no number: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parsed
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    pages * 4096
}

/// In the child: fill 1,000,000 W1 entries and print resident bytes per entry.
fn rss_child(system: &str) {
    let before = rss_bytes();
    let keep = match system {
        "redhac-0.10.5" => r010::rss_fill(RSS_ENTRIES),
        "hiqlite-0.15" => hql::rss_fill(RSS_ENTRIES),
        other => panic!("unknown system {other:?}"),
    };
    let after = rss_bytes();
    println!(
        "{:.1}",
        (after.saturating_sub(before)) as f64 / RSS_ENTRIES as f64
    );
    // Exit without tearing the system down.
    std::mem::forget(keep);
    std::process::exit(0);
}
