//! The HA cache on real sockets: 3 and 5 members in one process on
//! 127.0.0.1, elections, every ack level, failover and graceful handover.

mod common;

use std::time::Duration;

use common::{cluster, wait_leader, wait_until};
use redhac::{AckLevel, Redhac, Role, WriteOptions};

fn ack(level: AckLevel) -> WriteOptions {
    WriteOptions::default().ack(level)
}

fn value_on(node: &Redhac, key: &str) -> Option<String> {
    node.cache::<String>("c")
        .unwrap()
        .get(key)
        .map(|v| (*v).clone())
}

async fn shutdown_all(nodes: Vec<Redhac>) {
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_one_leader_and_replicate_at_every_ack_level() {
    let (nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let follower = &nodes[(leader + 1) % 3];
    let c = follower.cache::<String>("c").unwrap();

    // Read-your-writes on the member that wrote, at Quorum and All.
    c.put_with("q", "quorum".into(), ack(AckLevel::Quorum))
        .await
        .unwrap();
    assert_eq!(value_on(follower, "q").as_deref(), Some("quorum"));
    // All: every member serves the new value when the call returns.
    c.put_with("a", "all".into(), ack(AckLevel::All))
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(
            value_on(n, "a").as_deref(),
            Some("all"),
            "member {}",
            n.status().me
        );
    }
    // Leader and None are ordered by the leader and reach everyone.
    c.put_with("l", "leader".into(), ack(AckLevel::Leader))
        .await
        .unwrap();
    c.put_with("n", "none".into(), ack(AckLevel::None))
        .await
        .unwrap();
    wait_until("every member holds every value", || {
        nodes.iter().all(|n| {
            ["q", "a", "l", "n"]
                .iter()
                .all(|k| value_on(n, k).is_some())
        })
    })
    .await;

    // A delete at All is gone everywhere on return.
    c.delete_with("a", ack(AckLevel::All)).await.unwrap();
    for n in &nodes {
        assert_eq!(value_on(n, "a"), None, "member {}", n.status().me);
    }
    // Remote lookup reaches the leader.
    assert_eq!(
        c.get_or_fetch("q")
            .await
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("quorum")
    );
    // Status (published on every tick) shows the entries applied.
    wait_until("status shows the writes applied", || {
        let s = follower.status();
        s.commit_index >= 6 && s.applied_index == s.commit_index
    })
    .await;
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_leader_crashes_every_quorum_write_survives() {
    let (mut nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let writer = nodes[(leader + 1) % 3].cache::<String>("c").unwrap();
    for i in 0..50 {
        writer.put(&format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    let old_term = nodes[leader].status().term;
    // Dropped without a graceful shutdown: no handover.
    drop(nodes.remove(leader));
    let survivors: Vec<&Redhac> = nodes.iter().collect();
    let new_leader = wait_leader(&survivors).await;
    assert!(survivors[new_leader].status().term > old_term);
    for n in &nodes {
        for i in 0..50 {
            assert_eq!(value_on(n, &format!("k{i}")), Some(format!("v{i}")));
        }
    }
    // And the survivors keep taking writes.
    writer.put("after", "yes".into()).await.unwrap();
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_hands_over_without_failing_writes() {
    let (mut nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let writes = write_in_background(&nodes[(leader + 1) % 3], "w", 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let old = nodes.remove(leader);
    let term = old.status().term;
    old.shutdown().await.unwrap();
    let rest: Vec<&Redhac> = nodes.iter().collect();
    let new_leader = wait_leader(&rest).await;
    assert!(rest[new_leader].status().term > term);
    assert_eq!(
        writes.await.unwrap(),
        0,
        "no write failed across the handover"
    );
    shutdown_all(nodes).await;
}

/// Writes `count` keys `{prefix}{i}` through `node` (5 s timeout each) in
/// the background; returns how many failed.
fn write_in_background(
    node: &Redhac,
    prefix: &'static str,
    count: usize,
) -> tokio::task::JoinHandle<usize> {
    let writer = node.cache::<String>("c").unwrap();
    tokio::spawn(async move {
        let mut failed = 0;
        for i in 0..count {
            let opts = WriteOptions::default().timeout(Duration::from_secs(5));
            if writer
                .put_with(&format!("{prefix}{i}"), "x".into(), opts)
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        failed
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_steps_down_follows_on_without_failing_writes() {
    let (nodes, _) = cluster(3).await;
    let refs: Vec<&Redhac> = nodes.iter().collect();
    let old = wait_leader(&refs).await;
    // A follower has nothing to hand over.
    nodes[(old + 1) % 3].step_down().await.unwrap();
    assert_eq!(nodes[old].status().role, Role::Leader);

    // Writes go on, through a follower and through the leader itself.
    let through_follower = write_in_background(&nodes[(old + 1) % 3], "f", 200);
    let through_leader = write_in_background(&nodes[old], "l", 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let term = nodes[old].status().term;
    nodes[old].step_down().await.unwrap();
    assert_ne!(nodes[old].status().role, Role::Leader);
    let new = wait_leader(&refs).await;
    assert_ne!(new, old);
    assert!(nodes[new].status().term > term);
    assert_eq!(through_follower.await.unwrap(), 0, "through a follower");
    assert_eq!(through_leader.await.unwrap(), 0, "through the old leader");

    // It follows on and serves; an `All` write it makes is everywhere.
    nodes[old]
        .cache::<String>("c")
        .unwrap()
        .put_with("after", "y".into(), ack(AckLevel::All))
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(value_on(n, "after").as_deref(), Some("y"));
        assert_eq!(value_on(n, "l199").as_deref(), Some("x"));
    }
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_elect_and_replicate() {
    let (nodes, _) = cluster(5).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    assert_eq!(nodes[leader].status().role, Role::Leader);
    let c = nodes[(leader + 3) % 5].cache::<String>("c").unwrap();
    c.put_with("k", "v".into(), ack(AckLevel::All))
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(value_on(n, "k").as_deref(), Some("v"));
    }
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fire_and_forget_writes_on_a_follower_loses_none() {
    let (nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let follower = nodes[(leader + 1) % 3].cache::<String>("c").unwrap();
    // As fast as the caller can: more than any link buffer holds.
    const N: usize = 5_000;
    for i in 0..N {
        follower
            .put_with(format!("burst-{i}"), "x".into(), ack(AckLevel::None))
            .await
            .unwrap();
    }
    // A barrier ordered after the burst on the same member.
    follower
        .put_with("barrier", "b".into(), ack(AckLevel::All))
        .await
        .unwrap();
    let on_leader = nodes[leader].cache::<String>("c").unwrap();
    let missing: Vec<usize> = (0..N)
        .filter(|i| on_leader.get(&format!("burst-{i}")).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {N} writes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_say_local_only_on_the_member_that_wrote_at_every_ack_level() {
    use redhac::{EventKind, Origin};
    let (nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let mut events: Vec<_> = nodes
        .iter()
        .map(|n| n.cache::<String>("c").unwrap().subscribe())
        .collect();
    let levels = [
        AckLevel::None,
        AckLevel::Leader,
        AckLevel::Quorum,
        AckLevel::All,
    ];
    for writer in [leader, (leader + 1) % 3] {
        for level in levels {
            let key = format!("{writer}-{level:?}");
            nodes[writer]
                .cache::<String>("c")
                .unwrap()
                .put_with(key.clone(), "v".into(), ack(level))
                .await
                .unwrap();
            for (m, rx) in events.iter_mut().enumerate() {
                let e = tokio::time::timeout(common::DEADLINE, rx.recv())
                    .await
                    .expect("an event in time")
                    .expect("the event stream is open");
                let want = if m == writer {
                    Origin::Local
                } else {
                    Origin::Peer
                };
                assert_eq!(
                    (e.kind, e.key.as_deref(), e.origin),
                    (EventKind::Put, Some(key.as_str()), want),
                    "member {m}, written on {writer} at {level:?}"
                );
            }
        }
    }
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_value_never_outlives_its_ttl_nor_brings_back_a_deleted_key() {
    let (nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let on_leader = nodes[leader].cache::<String>("c").unwrap();
    let on_follower = nodes[(leader + 1) % 3].cache::<String>("c").unwrap();
    let at_leader = ack(AckLevel::Leader);
    // Each write is ordered but not yet applied on the follower when it
    // asks the leader: a fetch races the entry's arrival.
    for i in 0..200 {
        let ttl = at_leader.ttl(Duration::from_millis(300));
        on_leader
            .put_with(format!("ttl{i}"), "v".into(), ttl)
            .await
            .unwrap();
        on_follower.get_or_fetch(&format!("ttl{i}")).await.unwrap();
    }
    for i in 0..200 {
        let key = format!("del{i}");
        on_leader
            .put_with(key.clone(), "v".into(), ack(AckLevel::All))
            .await
            .unwrap();
        on_leader.delete_with(&key, at_leader).await.unwrap();
        on_follower.get_or_fetch(&key).await.unwrap();
    }
    wait_until("no member holds an expired or deleted key", || {
        nodes.iter().all(|n| {
            let c = n.cache::<String>("c").unwrap();
            (0..200)
                .all(|i| c.get(&format!("ttl{i}")).is_none() && c.get(&format!("del{i}")).is_none())
        })
    })
    .await;
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_writes_with_the_options_it_is_given() {
    let (nodes, _) = cluster(3).await;
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    let c = nodes[(leader + 1) % 3].cache::<String>("c").unwrap();
    let options = ack(AckLevel::All).ttl(Duration::from_millis(300));
    let v = c
        .get_or_insert_with_options("loaded", options, || async { "v".to_string() })
        .await
        .unwrap();
    assert_eq!(*v, "v");
    // All: on every member when the call returned; then gone with its TTL.
    for n in &nodes {
        assert_eq!(value_on(n, "loaded").as_deref(), Some("v"));
    }
    wait_until("the loaded entry expired everywhere", || {
        nodes.iter().all(|n| value_on(n, "loaded").is_none())
    })
    .await;
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_finds_on_the_leader_what_this_member_evicted() {
    let (ls, hosts) = common::listeners(3);
    let mut nodes = Vec::new();
    // Members 0 and 1 elect first: member 2 joins with an empty log and
    // cannot lead, so the small cache is a follower's.
    for (i, l) in ls.into_iter().enumerate() {
        if i == 2 {
            let first: Vec<&Redhac> = nodes.iter().collect();
            wait_leader(&first).await;
        }
        // Member 2 keeps 10 entries at most; the others keep everything.
        let options = if i == 2 {
            redhac::CacheOptions::default().max_capacity(10)
        } else {
            redhac::CacheOptions::default()
        };
        let name = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        nodes.push(
            Redhac::builder()
                .config(common::config(&hosts, common::TOKEN))
                .listener(l)
                .hostname(name)
                .cache::<String>("c", options)
                .start()
                .await
                .unwrap(),
        );
    }
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    assert_ne!(leader, 2);
    let c = nodes[leader].cache::<String>("c").unwrap();
    for i in 0..100 {
        c.put_with(format!("k{i}"), format!("v{i}"), ack(AckLevel::All))
            .await
            .unwrap();
    }
    let small = nodes[2].cache::<String>("c").unwrap();
    small.run_pending_tasks();
    let evicted: Vec<usize> = (0..100)
        .filter(|i| small.get(&format!("k{i}")).is_none())
        .collect();
    assert!(evicted.len() >= 80, "{} evicted", evicted.len());
    for i in evicted {
        let got = small.get_or_fetch(&format!("k{i}")).await.unwrap();
        assert_eq!(
            got.as_deref().map(String::as_str),
            Some(format!("v{i}").as_str())
        );
    }
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn wait_serving_waits_for_a_majority_and_ends_at_shutdown() {
    let (ls, hosts) = common::listeners(3);
    let mut ls = ls.into_iter();
    let first = common::member(ls.next().unwrap(), &hosts, common::TOKEN).await;
    // Alone, no majority: it cannot serve, and a read says so.
    let alone = first.wait_serving(Duration::from_millis(300)).await;
    assert!(matches!(alone, Err(redhac::Error::Timeout(_))), "{alone:?}");
    let read = first.cache::<String>("c").unwrap().read("k");
    assert!(matches!(read, redhac::Read::NotServing), "{read:?}");
    let second = common::member(ls.next().unwrap(), &hosts, common::TOKEN).await;
    for n in [&first, &second] {
        n.wait_serving(common::DEADLINE).await.unwrap();
        assert!(n.status().serving);
    }
    first.shutdown().await.unwrap();
    let after = first.wait_serving(common::DEADLINE).await;
    assert!(matches!(after, Err(redhac::Error::ShutDown)), "{after:?}");
    second.shutdown().await.unwrap();

    let standalone = Redhac::builder().start().await.unwrap();
    standalone.wait_serving(Duration::ZERO).await.unwrap();
    standalone.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_watch_reports_leadership_changes_and_ends_at_shutdown() {
    let (ls, hosts) = common::listeners(3);
    let mut ls = ls.into_iter();
    let first = common::member(ls.next().unwrap(), &hosts, common::TOKEN).await;
    let mut changes = first.watch();
    let now = changes.changed().await.unwrap();
    assert!(!now.serving, "alone, it cannot serve: {now:?}");
    let second = common::member(ls.next().unwrap(), &hosts, common::TOKEN).await;
    // With a majority, the watch reports the member serving under a leader
    // without polling.
    let serving = tokio::time::timeout(common::DEADLINE, async {
        loop {
            let s = changes.changed().await.unwrap();
            if s.serving && s.leader.is_some() {
                return s;
            }
        }
    })
    .await
    .expect("the watch reports serving");
    assert_eq!(serving.role, first.status().role);
    second.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
    let after = changes.changed().await;
    assert!(matches!(after, Err(redhac::Error::ShutDown)), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_runtime_died_stops_serving_and_is_not_running() {
    let (nodes, _) = cluster(3).await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let follower = &nodes[(leader + 1) % 3];
    let cache = follower.cache::<String>("c").unwrap();
    cache.put("k", "v".to_owned()).await.unwrap();
    assert_eq!(value_on(follower, "k").as_deref(), Some("v"));
    assert!(follower.is_running());
    redhac::test_support::crash_runtime(follower).await;
    wait_until("the dead runtime noticed", || !follower.is_running()).await;
    // Nobody updates its caches any more: it answers no read, takes no write.
    assert_eq!(value_on(follower, "k"), None);
    assert!(!follower.status().serving);
    assert!(cache.put("k", "w".to_owned()).await.is_err());
    // The others carry on.
    let other = &nodes[(leader + 2) % 3];
    other
        .cache::<String>("c")
        .unwrap()
        .put("k", "w".to_owned())
        .await
        .unwrap();
    assert!(nodes[leader].is_running() && other.is_running());
    shutdown_all(nodes).await;
}

/// `CACHE_LISTEN_ADDR` binds the cluster port on that address only; one
/// this host does not have is refused at start, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_listens_where_cache_listen_addr_says() {
    // A free port, released for the member to bind itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hosts = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let mut config = common::config(&hosts, common::TOKEN);
    config.listen_addr = Some(addr.parse().unwrap());
    let member = Redhac::builder()
        .config(config.clone())
        .hostname(addr.clone())
        .start()
        .await
        .expect("a member starts on CACHE_LISTEN_ADDR");
    member
        .wait_serving(common::DEADLINE)
        .await
        .expect("a cluster of one serves");
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    member.shutdown().await.unwrap();

    config.listen_addr = Some("203.0.113.7:1".parse().unwrap()); // TEST-NET-3
    let e = Redhac::builder()
        .config(config)
        .hostname(addr)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CACHE_LISTEN_ADDR"), "{e}");
}
