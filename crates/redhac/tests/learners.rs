//! Learners (`HA_LEARNERS`) on real sockets: they serve reads, take writes
//! (forwarded to the leader), are waited for by `All`, and never lead, not
//! even when a voter crashes and the voters elect anew.

use std::time::Duration;

use redhac::testing::TestCluster;
use redhac::{AckLevel, CacheOptions, Role, WriteOptions};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_serve_and_write_but_never_lead() {
    let mut cluster =
        TestCluster::start_with_learners(3, 2, |b| b.cache::<u64>("hits", CacheOptions::default()))
            .await
            .unwrap();
    let leader = cluster.wait_leader(WAIT).await.unwrap();
    assert!(leader < 3, "learner {leader} leads");
    let hits = |c: &TestCluster, i: usize| c.member(i).cache::<u64>("hits").unwrap();
    let status = cluster.member(4).status();
    let voters: Vec<bool> = status.members.iter().map(|m| m.voter).collect();
    assert_eq!(voters, [true, true, true, false, false]);

    // A write from a learner at `All`: every member, learners included,
    // applied it before it resolved.
    let all = WriteOptions::default().ack(AckLevel::All);
    hits(&cluster, 3).put_with("a", 1, all).await.unwrap();
    for i in 0..5 {
        assert_eq!(
            hits(&cluster, i).get("a").as_deref(),
            Some(&1),
            "member {i}"
        );
    }

    // The leader crashes: a voter takes over, the learners follow it and
    // keep serving what was written.
    cluster.kill(leader);
    let next = cluster.wait_leader(WAIT).await.unwrap();
    assert!(next < 3 && next != leader, "member {next} leads");
    for i in 3..5 {
        let s = cluster.member(i).status();
        assert_eq!(s.role, Role::Follower);
        assert_eq!(
            hits(&cluster, i).get("a").as_deref(),
            Some(&1),
            "learner {i}"
        );
    }
    hits(&cluster, 4)
        .put_with("b", 2, WriteOptions::default().ack(AckLevel::Quorum))
        .await
        .unwrap();
    assert_eq!(hits(&cluster, 4).get("b").as_deref(), Some(&2));

    // Two voters gone: the learners are no majority, nothing is served.
    let other = (0..3).find(|i| *i != leader && *i != next).unwrap();
    cluster.kill(other);
    for i in [next, 3, 4] {
        let m = cluster.member(i);
        tokio::time::timeout(WAIT, async {
            while m.status().serving {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("member {i} still serves without a majority of voters"));
        assert_ne!(m.status().role, Role::Leader);
    }
    cluster.shutdown().await;
}
