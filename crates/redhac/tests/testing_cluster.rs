//! `redhac::testing::TestCluster` as an application's test would use it:
//! crash, restart and cut off members while writing through their caches.

use std::time::Duration;

use redhac::testing::TestCluster;
use redhac::{AckLevel, CacheOptions, Error, WriteOptions};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_cluster_survives_a_crash_a_restart_and_a_cut() {
    let mut cluster = TestCluster::start(3, |b| b.cache::<u64>("hits", CacheOptions::default()))
        .await
        .unwrap();
    let leader = cluster.wait_leader(WAIT).await.unwrap();
    let all = WriteOptions::default().ack(AckLevel::All);
    let hits = |c: &TestCluster, i: usize| c.member(i).cache::<u64>("hits").unwrap();
    hits(&cluster, leader).put_with("a", 1, all).await.unwrap();

    // A crash: the others elect anew and keep the value.
    cluster.kill(leader);
    assert_eq!(cluster.running().iter().filter(|r| **r).count(), 2);
    let next = cluster.wait_leader(WAIT).await.unwrap();
    assert_ne!(next, leader);
    assert_eq!(hits(&cluster, next).get("a").as_deref(), Some(&1));

    // Restarted, the crashed member catches up.
    cluster.restart(leader).await.unwrap();
    cluster.wait_leader(WAIT).await.unwrap();
    assert_eq!(hits(&cluster, leader).get("a").as_deref(), Some(&1));

    // Cut off alone, a member takes no write; healed, it serves the others'
    // writes again. (The last member dials no one: cutting its proxy cuts
    // every link it has.)
    let lone = 2;
    cluster.cut(lone);
    let quick = WriteOptions::default().timeout(Duration::from_millis(300));
    let refused = hits(&cluster, lone).put_with("b", 2, quick).await;
    assert!(
        matches!(refused, Err(Error::NoQuorum | Error::Timeout(_))),
        "{refused:?}"
    );
    cluster.heal(lone);
    let leader = cluster.wait_leader(WAIT).await.unwrap();
    hits(&cluster, leader).put_with("b", 3, all).await.unwrap();
    assert_eq!(hits(&cluster, lone).get("b").as_deref(), Some(&3));
    cluster.shutdown().await;
}
