//! Write-ack latency and Quorum throughput on a redhac cluster in this process.
//!
//! `cargo bench -p redhac --bench writes`
//!
//! - `write_ack/{3,5}n/{none,leader,quorum,all}/{on_leader,on_follower}`: one
//!   write at a time, W1's value, waiting for its ack level;
//! - `quorum_throughput/3n/{1,16,64}_writers`: that many tasks writing at
//!   Quorum on the leader at once (criterion reports writes per second);
//! - `learners/3v+{0,4,12}l/{quorum,all}`: one write at a time on the leader
//!   of 3 voters with that many learners (`HA_LEARNERS`): what each
//!   learner's replication stream costs.
//!
//! Writers are tasks spawned on a 2-worker multi-thread runtime, as an
//! application's would be, never code on the `block_on` thread: on a 2-core
//! machine a cross-thread wake-up is tens of microseconds, which a `block_on`
//! caller would add to every write.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/w1.rs"]
mod w1;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redhac::{AckLevel, Cache, WriteOptions};

use cluster::{leader, shutdown, start_cluster, start_cluster_with_learners};
use w1::{KEYS, Val, key, val};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// `iters` writes by `writers` spawned tasks at once; the wall time.
fn timed_writes(
    rt: &tokio::runtime::Runtime,
    cache: &Cache<Val>,
    ack: AckLevel,
    writers: u64,
    iters: u64,
) -> Duration {
    let opts = WriteOptions::default().ack(ack);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let cache = cache.clone();
                let n = iters / writers + u64::from(w < iters % writers);
                tokio::spawn(async move {
                    for i in 0..n {
                        let k = ((w * n + i) % KEYS as u64) as usize;
                        cache.put_with(key(k), val(k), opts).await.expect("a write");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("a writer");
        }
        start.elapsed()
    })
}

fn write_ack(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("write_ack");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [3, 5] {
        let nodes = rt.block_on(start_cluster::<Val>(n));
        let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        let on = [("on_leader", l), ("on_follower", (l + 1) % n)];
        for (ack_name, ack) in [
            ("none", AckLevel::None),
            ("leader", AckLevel::Leader),
            ("quorum", AckLevel::Quorum),
            ("all", AckLevel::All),
        ] {
            for (origin, i) in on {
                let cache = nodes[i].cache::<Val>("w1").expect("the cache");
                let id = BenchmarkId::new(format!("{n}n/{ack_name}"), origin);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| timed_writes(&rt, &cache, ack, 1, iters));
                });
            }
        }
        rt.block_on(shutdown(nodes));
    }
    group.finish();
}

fn quorum_throughput(c: &mut Criterion) {
    let rt = runtime();
    let nodes = rt.block_on(start_cluster::<Val>(3));
    let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
    let cache = nodes[l].cache::<Val>("w1").expect("the cache");
    let mut group = c.benchmark_group("quorum_throughput");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for writers in [1, 16, 64] {
        let id = BenchmarkId::new("3n", format!("{writers}_writers"));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| timed_writes(&rt, &cache, AckLevel::Quorum, writers, iters));
        });
    }
    group.finish();
    rt.block_on(shutdown(nodes));
}

fn learners(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("learners");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for learners in [0, 4, 12] {
        let nodes = rt.block_on(start_cluster_with_learners::<Val>(3, learners));
        let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        let cache = nodes[l].cache::<Val>("w1").expect("the cache");
        for (ack_name, ack) in [("quorum", AckLevel::Quorum), ("all", AckLevel::All)] {
            let id = BenchmarkId::new(format!("3v+{learners}l"), ack_name);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| timed_writes(&rt, &cache, ack, 1, iters));
            });
        }
        rt.block_on(shutdown(nodes));
    }
    group.finish();
}

criterion_group!(benches, write_ack, quorum_throughput, learners);
criterion_main!(benches);
