//! Workload W1 side by side: redhac against its baselines, in one run.
//!
//! `cargo bench -p redhac --bench compare`
//!
//! Prints one JSON object per system per line, then a table of ratios. The
//! baselines: a raw `moka::sync::Cache<String, Arc<Val>>`; the transport floor
//! (a tonic bidirectional-stream ping-pong over 127.0.0.1); Redis 7 with a
//! primary and two replicas on loopback, writing with `SET` then `WAIT 1`
//! (started and stopped here when `redis-server` is installed).
//!
//! Load generators run as tasks on a multi-thread runtime, as an application's
//! would. The transport floor is measured between redhac's write-latency runs
//! and raw moka's get between the follower's gets (three rounds, medians),
//! since this VM's speed drifts within minutes. Memory is measured in child processes (this binary re-executed).
//!
//! Quick looks while optimising: `REDHAC_PROBE_WRITES=1` measures only the
//! Quorum write latencies against the transport floor (three rounds);
//! `REDHAC_PROBE_GETS=1` compares gets on raw moka, standalone redhac and an
//! HA follower, fresh and after updates; `REDHAC_PROBE_HA_GET=1` loops
//! follower gets for a profiler; `REDHAC_PROBE_THROUGHPUT=1` measures write
//! throughput by the number of writers (1 to 256), Quorum and All;
//! `REDHAC_PROBE_TLS=1` runs plaintext and mutual TLS side by side (cold
//! start, write latency, 64-writer throughput; two rounds).
//! `REDHAC_PROBE_PROCS=1` runs only the three-process row (cold start,
//! failover by SIGKILL, write latency; a member per process);
//! `REDHAC_PROBE_LEARNERS=1` the learners row (3 voters and 0, 4 or 12
//! learners, a process each: Quorum and All write latency on the leader).

#![allow(missing_docs)]

#[path = "../common/cluster.rs"]
mod cluster;
mod floor;
mod ha;
mod procs;
mod redis_baseline;
mod tls;
#[path = "../common/w1.rs"]
mod value;
mod w1;

use serde_json::{Map, Value, json};

/// mimalloc instead of the system's allocator, for redhac and raw moka
/// alike (`RUSTFLAGS="--cfg redhac_bench_mimalloc"`): where a follower's
/// entries land in memory sets much of its get's cost.
#[cfg(redhac_bench_mimalloc)]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--rss-child") {
        w1::rss_child(args.get(pos + 1).map(String::as_str).unwrap_or(""));
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--member") {
        procs::member(&args[pos + 1..]);
        return;
    }
    if std::env::var("REDHAC_PROBE_PROCS").is_ok() {
        println!("{}", Value::Object(procs::row()));
        return;
    }
    if std::env::var("REDHAC_PROBE_LEARNERS").is_ok() {
        println!("{}", Value::Object(procs::learners_row()));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if std::env::var("REDHAC_PROBE_HA_GET").is_ok() {
        ha::probe_get(&rt);
        return;
    }
    if std::env::var("REDHAC_PROBE_GETS").is_ok() {
        ha::probe_gets(&rt);
        return;
    }
    if std::env::var("REDHAC_PROBE_TLS").is_ok() {
        tls::probe(&rt);
        return;
    }
    if std::env::var("REDHAC_PROBE_THROUGHPUT").is_ok() {
        ha::probe_throughput(&rt);
        return;
    }
    if std::env::var("REDHAC_PROBE_WRITES").is_ok() {
        ha::probe_writes(&rt);
        return;
    }
    let mut rows: Vec<Map<String, Value>> = Vec::new();

    eprintln!("== moka (raw)");
    rows.push(w1::moka_row(&rt));
    eprintln!("== redhac standalone (get and memory, for reference)");
    rows.push(w1::redhac_row(&rt));
    eprintln!("== redhac (3 members in this process, plaintext) and the transport floor");
    eprintln!("   (a tonic ping-pong, measured between redhac's write latency runs)");
    let (ha_rows, moka_get) = ha::rows(&rt);
    rows.extend(ha_rows);
    // The get ratio compares gets measured side by side.
    if let Some(moka) = rows.iter_mut().find(|r| r["system"] == "moka") {
        moka.insert("get_ns".into(), json!(moka_get));
    }
    eprintln!("== redhac (3 member processes on 127.0.0.1, plaintext)");
    rows.push(procs::row());
    eprintln!("== redis (primary + 2 replicas, SET + WAIT 1)");
    match rt.block_on(redis_baseline::row()) {
        Ok(row) => rows.push(row),
        Err(why) => eprintln!("redis skipped: {why}"),
    }

    for row in &rows {
        println!("{}", Value::Object(row.clone()));
    }
    print_ratios(&rows);
}

fn field(rows: &[Map<String, Value>], system: &str, key: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.get("system").and_then(Value::as_str) == Some(system))
        .and_then(|r| r.get(key))
        .and_then(Value::as_f64)
}

fn print_ratios(rows: &[Map<String, Value>]) {
    // (what, our system and field, their system and field)
    let pairs = [
        (
            "get: redhac / raw moka",
            ("redhac", "get_ns"),
            ("moka", "get_ns"),
        ),
        (
            "memory per entry: redhac / raw moka",
            ("redhac", "rss_per_entry_bytes"),
            ("moka", "rss_per_entry_bytes"),
        ),
        (
            "follower quorum write p50: redhac / transport rtt",
            ("redhac", "w_follower_p50_us"),
            ("transport-floor", "rtt_p50_us"),
        ),
        (
            "quorum write p50: redhac / redis",
            ("redhac", "w_leader_p50_us"),
            ("redis", "w_leader_p50_us"),
        ),
        (
            "quorum write p50: redhac / transport rtt",
            ("redhac", "w_leader_p50_us"),
            ("transport-floor", "rtt_p50_us"),
        ),
        (
            "write throughput: redhac / redis",
            ("redhac", "w_tput_ops"),
            ("redis", "w_tput_ops"),
        ),
        (
            "follower get: redhac / redis replica",
            ("redhac", "get_ns"),
            ("redis", "get_ns"),
        ),
    ];
    println!(
        "\n{:<42} {:>12} {:>12} {:>8}",
        "ratio", "ours", "theirs", "ratio"
    );
    for (name, (ours, ours_key), (theirs, theirs_key)) in pairs {
        match (field(rows, ours, ours_key), field(rows, theirs, theirs_key)) {
            (Some(a), Some(b)) if b > 0.0 => {
                println!("{name:<42} {a:>12.1} {b:>12.1} {:>8.2}", a / b)
            }
            _ => println!("{name:<42} {:>12} {:>12} {:>8}", "-", "-", "n/a"),
        }
    }
}

/// Percentiles of a set of durations in microseconds.
pub(crate) fn percentiles_us(mut samples: Vec<std::time::Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64 * 1e6;
    (at(0.5), at(0.99), mean)
}

/// The median of some figures.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn row(system: &str, fields: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("system".into(), json!(system));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    m
}
