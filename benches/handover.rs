//! Writes across a leader's graceful shutdown (its handover), as in every
//! rolling update: three members in this process with default timing, a
//! writer on a follower alternating `Quorum` and `All` writes (one at a
//! time), and the leader shut down mid-stream. Printed per round: the
//! slowest write from just before the shutdown to 1.5 s after; then the
//! rounds' median and worst, and how many failed.
//!
//! Run: `cargo bench -p redhac --bench handover` (`REDHAC_HANDOVER_ROUNDS`,
//! default 30; about 2 s a round).

#[path = "common/cluster.rs"]
mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{leader, shutdown, start_cluster};
use redhac::{AckLevel, WriteOptions};

/// One round: the slowest write around the handover, and failed writes.
async fn round() -> (Duration, usize) {
    let nodes = start_cluster::<String>(3).await;
    let l = leader(&nodes.iter().collect::<Vec<_>>()).await;
    let cache = nodes[(l + 1) % 3].cache::<String>("w1").expect("cache");
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (stop, measuring) = (Arc::clone(&stop), Arc::clone(&measuring));
        async move {
            let (mut slowest, mut failed) = (Duration::ZERO, 0);
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ack = if i % 2 == 0 {
                    AckLevel::All
                } else {
                    AckLevel::Quorum
                };
                let started = Instant::now();
                let result = cache
                    .put_with(
                        format!("k{}", i % 8),
                        "v".to_owned(),
                        WriteOptions::default().ack(ack),
                    )
                    .await;
                if measuring.load(Ordering::Relaxed) {
                    slowest = slowest.max(started.elapsed());
                    failed += usize::from(result.is_err());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (slowest, failed)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    measuring.store(true, Ordering::Relaxed);
    nodes[l].shutdown().await.expect("shutdown");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let result = writer.await.expect("the writer");
    shutdown(nodes).await;
    result
}

fn main() {
    let rounds: usize = std::env::var("REDHAC_HANDOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut slowest = Vec::new();
    let mut failed = 0;
    for r in 0..rounds {
        let (s, f) = rt.block_on(round());
        println!("round {r}: slowest write {s:?}, {f} failed");
        slowest.push(s);
        failed += f;
    }
    slowest.sort();
    println!(
        "handover: {rounds} rounds, slowest write per round: median {:?}, worst {:?}; {failed} failed writes",
        slowest[slowest.len() / 2],
        slowest.last().copied().unwrap_or_default()
    );
}
