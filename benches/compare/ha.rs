//! Workload W1 on a redhac cluster: three members in this process on
//! 127.0.0.1, plaintext, default timing (election timeout 2 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redhac::{AckLevel, Cache, CacheOptions, Redhac, WriteOptions};
use serde_json::{Map, Value, json};

use crate::cluster::{leader, shutdown, start_cluster};
use crate::w1::{KEYS, Val, key, val};

/// Sequential Quorum writes on one member: (p50, p99, mean) in µs.
pub(crate) async fn latency(cache: Cache<Val>) -> (f64, f64, f64) {
    tokio::spawn(async move {
        for i in 0..1_000 {
            cache
                .put(key(i % KEYS), val(i))
                .await
                .expect("warm-up write");
        }
        let mut samples = Vec::with_capacity(10_000);
        for i in 0..10_000 {
            let t = Instant::now();
            cache.put(key(i % KEYS), val(i)).await.expect("write");
            samples.push(t.elapsed());
        }
        crate::percentiles_us(samples)
    })
    .await
    .expect("the latency task")
}

/// 64 tasks writing at Quorum for 5 s, spread over `caches`: ops/s.
async fn throughput(caches: Vec<Cache<Val>>) -> f64 {
    writers_ops(caches, 64, AckLevel::Quorum, Duration::from_secs(5)).await
}

/// `writers` tasks writing at `ack` for `secs`, spread over `caches`: ops/s.
pub(crate) async fn writers_ops(
    caches: Vec<Cache<Val>>,
    writers: usize,
    ack: AckLevel,
    secs: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = WriteOptions::default().ack(ack);
    let tasks: Vec<_> = (0..writers)
        .map(|t| {
            let (cache, done, stop) =
                (caches[t % caches.len()].clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    if cache.put_with(key(i % KEYS), val(i), opts).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += writers;
                }
            })
        })
        .collect();
    let t = Instant::now();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    for task in tasks {
        task.await.expect("a writer");
    }
    n as f64 / secs
}

/// Three members with one leader, all serving: the members, the leader's
/// position and each member's "w1" cache.
fn steady_cluster(rt: &tokio::runtime::Runtime) -> (Vec<Redhac>, usize, Vec<Cache<Val>>) {
    let nodes = rt.block_on(start_cluster::<Val>(3));
    let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
    let caches = nodes
        .iter()
        .map(|n| n.cache::<Val>("w1").expect("cache"))
        .collect();
    (nodes, l, caches)
}

/// User and system CPU time this process has used, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100/s).
    (ticks(11) + ticks(12)) / 100.0
}

/// Optimising aid: write throughput by the number of concurrent writers, on
/// the leader and spread over the members, at Quorum and All, 2 s each
/// (`REDHAC_PROBE_THROUGHPUT=1`; `REDHAC_PROBE_WRITERS=1,64` picks counts).
pub(crate) fn probe_throughput(rt: &tokio::runtime::Runtime) {
    let counts: Vec<usize> = std::env::var("REDHAC_PROBE_WRITERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16, 64, 256]);
    let (nodes, l, caches) = steady_cluster(rt);
    let secs = Duration::from_secs(2);
    // Throughput drifts with this VM's speed; the CPU time the whole
    // process (three members and the writers) spends per write drifts less.
    let run = |caches: Vec<Cache<Val>>, n, ack| {
        let cpu = cpu_seconds();
        let ops = rt.block_on(writers_ops(caches, n, ack, secs));
        let us = (cpu_seconds() - cpu) * 1e6 / (ops * secs.as_secs_f64());
        (ops, us)
    };
    eprintln!("writers  ack     leader ops/s (CPU µs/write)  spread ops/s (CPU µs/write)");
    for ack in [AckLevel::Quorum, AckLevel::All] {
        for &n in &counts {
            let (lead, lead_us) = run(vec![caches[l].clone()], n, ack);
            let (spread, spread_us) = run(caches.clone(), n, ack);
            eprintln!(
                "{n:>7}  {:<6} {lead:>13.0} ({lead_us:>5.1})  {spread:>13.0} ({spread_us:>5.1})",
                format!("{ack:?}")
            );
        }
    }
    rt.block_on(shutdown(nodes));
}

/// The redhac row, the transport floor's (measured interleaved with
/// redhac's write latencies) and raw moka's get (interleaved with the
/// follower's gets).
pub(crate) fn rows(rt: &tokio::runtime::Runtime) -> ([Map<String, Value>; 2], f64) {
    let mut cold = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let nodes = rt.block_on(start_cluster::<Val>(3));
        rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        cold.push(t.elapsed());
        rt.block_on(shutdown(nodes));
    }
    let (cold_p50, cold_p99, _) = crate::percentiles_us(cold);
    eprintln!("   cold start p50 {:.1} ms", cold_p50 / 1e3);

    let mut failover = Vec::new();
    for _ in 0..10 {
        let mut nodes = rt.block_on(start_cluster::<Val>(3));
        let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        let survivor = nodes[(l + 1) % 3].cache::<Val>("w1").expect("cache");
        let t = Instant::now();
        drop(nodes.remove(l)); // a crash: no handover
        rt.block_on(async {
            let opts = WriteOptions::default().timeout(Duration::from_millis(500));
            while survivor.put_with("failover", val(0), opts).await.is_err() {}
        });
        failover.push(t.elapsed());
        rt.block_on(shutdown(nodes));
    }
    let (failover_p50, _, _) = crate::percentiles_us(failover);
    eprintln!("   failover p50 {:.1} ms", failover_p50 / 1e3);

    let (nodes, l, caches) = steady_cluster(rt);
    let (lead, follow) = (caches[l].clone(), caches[(l + 1) % 3].clone());
    // The floor and both write latencies interleaved, three rounds, medians
    // of each: this VM's speed drifts by tens of percent within minutes, and
    // a ratio means something only between numbers measured side by side.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let floor = rt.block_on(crate::floor::row());
        let rtt = |k: &str| floor.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let (rtt_p50, rtt_p99) = (rtt("rtt_p50_us"), rtt("rtt_p99_us"));
        let (w_p50, w_p99, w_mean) = rt.block_on(latency(lead.clone()));
        let (f_p50, f_p99, _) = rt.block_on(latency(follow.clone()));
        eprintln!(
            "   rtt p50 {rtt_p50:.1} µs; leader write p50 {w_p50:.1} µs; follower write p50 {f_p50:.1} µs"
        );
        rounds.push([rtt_p50, rtt_p99, w_p50, w_p99, w_mean, f_p50, f_p99]);
    }
    let median = |i: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [rtt_p50, rtt_p99, w_p50, w_p99, w_mean, f_p50, f_p99] = std::array::from_fn(median);
    // Reads on the follower, its moka housekeeping caught up first (it
    // defers write bookkeeping to later reads).
    follow.run_pending_tasks();
    // Raw moka's get, interleaved with the follower's (three rounds,
    // medians), for the same reason as the floor above.
    let moka = crate::w1::moka_filled();
    let mut gets = Vec::new();
    for _ in 0..3 {
        let (m, reader) = (moka.clone(), follow.clone());
        let raw = crate::w1::get_ns(rt, Arc::new(move |k| m.get(k).is_some()));
        let ours = crate::w1::get_ns(rt, Arc::new(move |k| reader.get(k).is_some()));
        eprintln!("   get: raw moka {raw:.1} ns, follower {ours:.1} ns");
        gets.push((raw, ours));
    }
    let moka_get = crate::median(gets.iter().map(|g| g.0).collect());
    let get = crate::median(gets.iter().map(|g| g.1).collect());
    let tput = rt.block_on(throughput(vec![lead]));
    let spread = rt.block_on(throughput(caches.clone()));
    eprintln!("   throughput {tput:.0} ops/s on the leader, {spread:.0} spread");
    rt.block_on(shutdown(nodes));
    let floor = crate::row(
        "transport-floor",
        json!({ "rtt_p50_us": rtt_p50, "rtt_p99_us": rtt_p99 }),
    );
    let redhac = crate::row(
        "redhac",
        json!({
            "mode": "3 members in one process, plaintext",
            "cold_start_p50_ms": cold_p50 / 1e3,
            "cold_start_p99_ms": cold_p99 / 1e3,
            "failover_p50_ms": failover_p50 / 1e3,
            "w_leader_p50_us": w_p50,
            "w_leader_p99_us": w_p99,
            "w_leader_mean_us": w_mean,
            "w_follower_p50_us": f_p50,
            "w_follower_p99_us": f_p99,
            "w_tput_ops": tput,
            "w_tput_spread_ops": spread,
            "get_ns": get,
            "rss_per_entry_bytes": crate::w1::rss_per_entry("redhac"),
        }),
    );
    ([redhac, floor], moka_get)
}

/// Profiling aid: follower gets in a loop for 20 s (`REDHAC_PROBE_HA_GET=1`).
pub(crate) fn probe_get(rt: &tokio::runtime::Runtime) {
    let nodes = rt.block_on(start_cluster::<Val>(3));
    let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
    let lead = nodes[l].cache::<Val>("w1").expect("cache");
    rt.block_on(async {
        for i in 0..KEYS {
            lead.put(key(i), val(i)).await.expect("put");
        }
    });
    let follow = nodes[(l + 1) % 3].cache::<Val>("w1").expect("cache");
    // `REDHAC_PROBE_HA_GET=moka`: raw moka's gets instead, the cluster
    // running alike, for a profile to set beside the follower's.
    let get: Arc<dyn Fn(&str) -> bool + Send + Sync> =
        if std::env::var("REDHAC_PROBE_HA_GET").is_ok_and(|v| v == "moka") {
            let moka = crate::w1::moka_filled();
            Arc::new(move |k| moka.get(k).is_some())
        } else {
            Arc::new(move |k| follow.get(k).is_some())
        };
    eprintln!("probing gets for 20 s, pid {}", std::process::id());
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let ns = crate::w1::get_ns(rt, get.clone());
        eprintln!("  {ns:.1} ns/get");
    }
}

/// Optimising aid: Quorum write latency on the leader and on a follower
/// against the transport floor, three rounds (`REDHAC_PROBE_WRITES=1`).
pub(crate) fn probe_writes(rt: &tokio::runtime::Runtime) {
    let nodes = rt.block_on(start_cluster::<Val>(3));
    let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
    let cache = |i: usize| nodes[i].cache::<Val>("w1").expect("cache");
    for round in 1..=3 {
        let floor = rt.block_on(crate::floor::row());
        let rtt = floor
            .get("rtt_p50_us")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let (lp50, lp99, _) = rt.block_on(latency(cache(l)));
        eprint!(
            "round {round}: rtt p50 {rtt:.1} µs; leader {l} p50 {lp50:.1} p99 {lp99:.1} µs ({:.2}x)",
            lp50 / rtt
        );
        for f in [(l + 1) % 3, (l + 2) % 3] {
            let (fp50, fp99, _) = rt.block_on(latency(cache(f)));
            eprint!(
                "; follower {f} p50 {fp50:.1} p99 {fp99:.1} µs ({:.2}x)",
                fp50 / rtt
            );
        }
        eprintln!();
    }
    rt.block_on(shutdown(nodes));
}

/// Where a follower's get time goes (`REDHAC_PROBE_GETS=1`): the W1 keys in
/// raw moka, in standalone redhac and on an HA follower, each fresh (one
/// insert per key) and after three more writes per key, three rounds.
pub(crate) fn probe_gets(rt: &tokio::runtime::Runtime) {
    use crate::w1::get_ns;
    for round in 1..=3 {
        let moka: moka::sync::Cache<String, Arc<Val>> =
            moka::sync::Cache::builder().max_capacity(100_000).build();
        let fill = |from: usize, to: usize| {
            for i in from..to {
                moka.insert(key(i % KEYS), Arc::new(val(i)));
            }
            moka.run_pending_tasks();
        };
        fill(0, KEYS);
        let m = moka.clone();
        let moka_fresh = get_ns(rt, Arc::new(move |k| m.get(k).is_some()));
        fill(KEYS, 4 * KEYS);
        let m = moka.clone();
        let moka_updated = get_ns(rt, Arc::new(move |k| m.get(k).is_some()));
        // The same with a per-entry expiry policy that never expires: what
        // moka's Expiry costs a get.
        struct Never;
        impl moka::Expiry<String, Arc<Val>> for Never {}
        let expiring: moka::sync::Cache<String, Arc<Val>> = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .expire_after(Never)
            .build();
        for i in 0..KEYS {
            expiring.insert(key(i), Arc::new(val(i)));
        }
        expiring.run_pending_tasks();
        let moka_expiry = get_ns(rt, Arc::new(move |k| expiring.get(k).is_some()));

        let redhac = |caches: Vec<Cache<Val>>, writer: usize| {
            let write = caches[writer].clone();
            let run = |from: usize, to: usize| {
                let write = write.clone();
                rt.block_on(async move {
                    for i in from..to {
                        write.put(key(i % KEYS), val(i)).await.expect("put");
                    }
                });
                let read = caches.last().expect("a reader").clone();
                read.run_pending_tasks();
                get_ns(rt, Arc::new(move |k| read.get(k).is_some()))
            };
            (run(0, KEYS), run(KEYS, 4 * KEYS))
        };
        let standalone = rt.block_on(async {
            Redhac::builder()
                .cache::<Val>("w1", CacheOptions::default().max_capacity(100_000))
                .start()
                .await
                .expect("start")
        });
        let (sa_fresh, sa_updated) = redhac(vec![standalone.cache("w1").expect("cache")], 0);
        let nodes = rt.block_on(start_cluster::<Val>(3));
        let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        let caches = vec![
            nodes[l].cache::<Val>("w1").expect("cache"),
            nodes[(l + 1) % 3].cache::<Val>("w1").expect("cache"),
        ];
        let (f_fresh, f_updated) = redhac(caches.clone(), 0);
        // The same follower's gets on a thread of their own, off the
        // runtime's two workers (which run the three members).
        let read = caches.last().expect("a reader").clone();
        let f_thread =
            std::thread::spawn(move || crate::w1::get_rounds(&|k| read.get(k).is_some()))
                .join()
                .expect("the reading thread");
        rt.block_on(shutdown(nodes));
        eprintln!(
            "round {round}: ns/get fresh / after 3 writes per key: raw moka {moka_fresh:.0} / \
             {moka_updated:.0} (with an Expiry {moka_expiry:.0}); standalone {sa_fresh:.0} / {sa_updated:.0}; \
             HA follower {f_fresh:.0} / {f_updated:.0} (on a thread of its own: {f_thread:.0})"
        );
    }
}
