//! Faults between members on real sockets, through a fault-injecting proxy
//! in front of each member: a cut-off minority, late joiners and restarts
//! catching up, a member with another member list.

mod common;

use std::net::TcpListener;

use common::{
    Proxied, TOKEN, config, listeners, member, member_with, wait_health, wait_leader, wait_until,
};
use redhac::{AckLevel, Error, Health, Redhac, Timing, WriteOptions};

fn get(node: &Redhac, key: &str) -> Option<String> {
    node.cache::<String>("c")
        .unwrap()
        .get(key)
        .map(|v| (*v).clone())
}

fn all() -> WriteOptions {
    WriteOptions::default().ack(AckLevel::All)
}

/// A small log tail, so catching up needs a snapshot.
fn small_log(b: redhac::Builder) -> redhac::Builder {
    let mut t = Timing::new(std::time::Duration::from_secs(2));
    t.log_capacity = 8;
    b.timing(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_member_serves_nothing_refuses_writes_and_catches_up_after_healing() {
    let (p, ls) = Proxied::new(3).await;
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        nodes.push(p.member(i, l, small_log).await);
    }
    let refs: Vec<&Redhac> = nodes.iter().collect();
    wait_leader(&refs).await;
    let c0 = nodes[0].cache::<String>("c").unwrap();
    for i in 0..10 {
        c0.put_with(&format!("before{i}"), "x".into(), all())
            .await
            .unwrap();
    }
    assert_eq!(get(&nodes[2], "before0").as_deref(), Some("x"));

    // Member 2 (dialled by 0 and 1 through its proxy) is cut off.
    p.proxies[2].cut();
    wait_health(&nodes[2], Health::Bad).await;
    assert_eq!(
        get(&nodes[2], "before0"),
        None,
        "a member in Bad serves nothing"
    );
    let c2 = nodes[2].cache::<String>("c").unwrap();
    assert!(matches!(
        c2.put("k", "v".into()).await,
        Err(Error::NoQuorum)
    ));
    // Not "no such key": it cannot know.
    assert!(matches!(
        c2.get_or_fetch("before0").await,
        Err(Error::NoQuorum)
    ));
    // A loader's value still reaches the caller: no cache, not no answer.
    let loaded = c2
        .get_or_insert_with("loaded", || async { "from the database".to_string() })
        .await
        .unwrap();
    assert_eq!(*loaded, "from the database");
    let failing = c2
        .try_get_or_insert_with("failing", || async {
            Err::<String, _>(std::io::Error::other("database down"))
        })
        .await;
    assert!(matches!(failing, Err(Error::Loader(_))), "{failing:?}");

    // The majority elects (if it must) and keeps writing.
    let majority: Vec<&Redhac> = nodes[..2].iter().collect();
    wait_leader(&majority).await;
    for i in 0..20 {
        c0.put(&format!("during{i}"), "y".into()).await.unwrap();
    }

    p.proxies[2].heal();
    wait_until("the healed member holds the majority's values", || {
        (0..10).all(|i| get(&nodes[2], &format!("before{i}")).is_some())
            && (0..20).all(|i| get(&nodes[2], &format!("during{i}")).is_some())
    })
    .await;
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_and_a_restarted_member_catch_up_from_a_snapshot() {
    let (p, ls) = Proxied::new(3).await;
    let mut ls = ls.into_iter();
    let a = p.member(0, ls.next().unwrap(), small_log).await;
    let b = p.member(1, ls.next().unwrap(), small_log).await;
    wait_leader(&[&a, &b]).await;
    let ca = a.cache::<String>("c").unwrap();
    for i in 0..50 {
        ca.put(&format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    // Far more entries than the log keeps: only a snapshot can bring these.
    let late = p.member(2, ls.next().unwrap(), small_log).await;
    wait_until("the late joiner holds every value", || {
        (0..50).all(|i| get(&late, &format!("k{i}")) == Some(format!("v{i}")))
    })
    .await;

    // Crash it (no handover), write more, restart it at the same address.
    drop(late);
    for i in 50..80 {
        ca.put(&format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let again = p.member(2, l, small_log).await;
    wait_until("the restarted member holds every value", || {
        (0..80).all(|i| get(&again, &format!("k{i}")) == Some(format!("v{i}")))
    })
    .await;
    wait_leader(&[&a, &b, &again]).await;
    for n in [a, b, again] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_member_list_never_joins() {
    let (ls, hosts) = listeners(3);
    let mut ls = ls.into_iter();
    let a = member(ls.next().unwrap(), &hosts, TOKEN).await;
    let b = member(ls.next().unwrap(), &hosts, TOKEN).await;
    let other_list = format!("{hosts},http://127.0.0.1:1");
    let c = member_with(ls.next().unwrap(), config(&other_list, TOKEN)).await;
    wait_leader(&[&a, &b]).await;
    wait_health(&a, Health::Degraded).await;
    assert_eq!(*c.health().borrow(), Health::Bad);
    assert_eq!(a.status().members.iter().filter(|m| m.connected).count(), 2);
    assert!(matches!(
        c.cache::<String>("c").unwrap().put("k", "v".into()).await,
        Err(Error::NoQuorum)
    ));
    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}

/// Records whether `node`'s health was ever Bad while the task runs.
fn watch_for_bad(node: &Redhac) -> tokio::task::JoinHandle<bool> {
    let mut health = node.health();
    tokio::spawn(async move { health.wait_for(|h| *h == Health::Bad).await.is_ok() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_follower_catches_up_a_burst_of_large_values_and_nobody_goes_bad() {
    const WRITES: usize = 600;
    const SIZE: usize = 100 << 10;
    let (p, ls) = Proxied::new(3).await;
    let mut ls = ls.into_iter();
    // Members 0 and 1 elect first, so the leader is one of them (member 2
    // joins with an empty log and cannot win); every link of member 2 goes
    // through its proxy, so stalling that proxy holds back member 2 alone.
    let a = p.member(0, ls.next().unwrap(), |b| b).await;
    let b = p.member(1, ls.next().unwrap(), |b| b).await;
    wait_leader(&[&a, &b]).await;
    let c = p.member(2, ls.next().unwrap(), |b| b).await;
    let nodes = [a, b, c];
    let refs: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&refs).await;
    assert_ne!(leader, 2);
    let term = nodes[leader].status().term;
    // Refusals so far (a stale-term append as member 2 joined) are normal.
    let refused = |n: &Redhac| (n.status().messages_refused, n.status().links_refused);
    let refused_before: Vec<_> = nodes.iter().map(refused).collect();
    let went_bad: Vec<_> = nodes.iter().map(watch_for_bad).collect();

    p.proxies[2].stall();
    let cache = nodes[leader].cache::<String>("c").unwrap();
    let value = |i: usize| format!("{i:>8}{}", "v".repeat(SIZE - 8));
    let at_leader = WriteOptions::default().ack(AckLevel::Leader);
    for i in 0..WRITES {
        cache
            .put_with(format!("big{i}"), value(i), at_leader)
            .await
            .unwrap();
    }
    p.proxies[2].resume();

    for (m, node) in nodes.iter().enumerate() {
        wait_until(&format!("member {m} holds every value"), || {
            let c = node.cache::<String>("c").unwrap();
            (0..WRITES).all(|i| c.get(&format!("big{i}")).is_some_and(|v| *v == value(i)))
        })
        .await;
    }
    for (m, (node, bad)) in nodes.iter().zip(went_bad).enumerate() {
        bad.abort();
        assert!(
            !bad.await.unwrap_or(false),
            "member {m} went Bad (its caches were invalidated)"
        );
        assert_eq!(
            refused(node),
            refused_before[m],
            "member {m} refused a frame or a link"
        );
        assert_eq!(node.status().term, term, "member {m}: no election happened");
    }
    for node in &nodes {
        node.cache::<String>("c")
            .unwrap()
            .put_with(
                "after",
                "q".into(),
                WriteOptions::default().ack(AckLevel::Quorum),
            )
            .await
            .unwrap();
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_limit_is_refused_before_it_is_replicated() {
    let (ls, hosts) = listeners(3);
    let mut c = config(&hosts, TOKEN);
    c.max_value_size = 1000;
    let mut nodes = Vec::new();
    for l in ls {
        nodes.push(member_with(l, c.clone()).await);
    }
    let refs: Vec<&Redhac> = nodes.iter().collect();
    wait_leader(&refs).await;
    let cache = nodes[0].cache::<String>("c").unwrap();
    // postcard writes a String as a 2-byte length and its bytes.
    let err = cache.put("k", "x".repeat(999)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooLarge {
                size: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("CACHE_MAX_VALUE_SIZE"), "{err}");
    cache.put("k", "x".repeat(998)).await.unwrap();
    assert_eq!(get(&nodes[0], "k").map(|v| v.len()), Some(998));
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_a_streamed_snapshot_while_writes_go_on() {
    // More entries than the log keeps (16,384): only a snapshot brings them.
    const LOADED: usize = 20_000;
    let (p, ls) = Proxied::new(3).await;
    let mut ls = ls.into_iter();
    let a = p.member(0, ls.next().unwrap(), |b| b).await;
    let b = p.member(1, ls.next().unwrap(), |b| b).await;
    let leader = [&a, &b][wait_leader(&[&a, &b]).await];
    let cache = leader.cache::<String>("c").unwrap();
    // 20,000 values of 400 B: about 8 MiB, eight chunks or so.
    let value = |i: usize| format!("{i:>8}{}", "s".repeat(392));
    for i in 0..LOADED {
        cache
            .put_with(
                format!("k{i}"),
                value(i),
                WriteOptions::default().ack(AckLevel::Leader),
            )
            .await
            .unwrap();
    }
    // Writes go on while the late joiner catches up.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (cache, stop) = (cache.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                cache
                    .put(format!("live{}", n % 50), n.to_string())
                    .await
                    .unwrap();
            }
            n
        })
    };
    let late = p.member(2, ls.next().unwrap(), |b| b).await;
    // Whatever it serves meanwhile is a value that was written.
    let lc = late.cache::<String>("c").unwrap();
    wait_until("the late joiner holds every loaded value", || {
        let mut all = true;
        for i in 0..LOADED {
            match lc.get(&format!("k{i}")) {
                Some(v) => assert_eq!(*v, value(i), "a wrong value for k{i}"),
                None => all = false,
            }
        }
        all
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    // The live keys' last values, as the leader has them, reach it too.
    wait_until(
        "the late joiner holds the live keys as the leader does",
        || {
            (0..50).all(|k| {
                let key = format!("live{k}");
                cache.get(&key) == lc.get(&key)
            })
        },
    )
    .await;
    for n in [a, b, late] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_a_partition_left_half_open_are_reset_and_dialled_afresh() {
    // Keepalives far beyond the test's deadline: only the protocol's own
    // silence check can notice the dead connections.
    let (p, ls) = Proxied::new(3).await;
    let mut config = config(&p.hosts, TOKEN);
    config.keepalive_interval = std::time::Duration::from_secs(600);
    config.keepalive_timeout = std::time::Duration::from_secs(600);
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        nodes.push(p.member_with(i, l, config.clone(), |b| b).await);
    }
    let refs: Vec<&Redhac> = nodes.iter().collect();
    let leader = wait_leader(&refs).await;
    let before: u64 = nodes[leader]
        .status()
        .members
        .iter()
        .map(|m| m.silent_resets)
        .sum();
    assert_eq!(before, 0);
    // A partition came and went: every connection between members is dead
    // (open, carrying nothing), new ones work.
    for proxy in &p.proxies {
        proxy.half_open();
    }
    // Every member serves again and takes writes at every level.
    for (i, n) in nodes.iter().enumerate() {
        let c = n.cache::<String>("c").unwrap();
        let wrote = tokio::time::timeout(common::DEADLINE, async {
            loop {
                if c.put_with("k", format!("v{i}"), all()).await.is_ok() {
                    break;
                }
            }
        })
        .await;
        assert!(wrote.is_ok(), "member {i} took no write: {:?}", n.status());
    }
    let leader = wait_leader(&refs).await;
    assert_eq!(get(&nodes[0], "k").as_deref(), Some("v2"));
    let resets: u64 = nodes
        .iter()
        .flat_map(|n| n.status().members)
        .map(|m| m.silent_resets)
        .sum();
    assert!(
        resets > 0,
        "links reset for silence: {:?}",
        nodes[leader].status()
    );
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// A word, never empty. Its `Deserialize` checks its input, so its shape
/// cannot be traced: only `schema_version` tells its schema from another.
#[derive(serde::Serialize)]
struct Word(String);

impl<'de> serde::Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("an empty word"));
        }
        Ok(Self(s))
    }
}

/// A flag that is always up: as untraceable as [`Word`], and of the same
/// schema, but another encoding.
#[derive(serde::Serialize)]
struct Up(bool);

impl<'de> serde::Deserialize<'de> for Up {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !bool::deserialize(d)? {
            return Err(serde::de::Error::custom("down"));
        }
        Ok(Self(true))
    }
}

/// Snapshots are counted where they are sent and where they are installed,
/// and a snapshot's values that this member cannot decode (another value
/// type under the same schema: a release that changed a type it cannot
/// trace without bumping `schema_version`) are counted by cache, and read
/// as misses.
#[test]
fn snapshots_and_values_that_do_not_decode_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (p, ls) = Proxied::new(3).await;
            let mut ls = ls.into_iter();
            let words = |b: redhac::Builder| {
                small_log(b).cache::<Word>("typed", redhac::CacheOptions::default())
            };
            let a = p.member(0, ls.next().unwrap(), words).await;
            let b = p.member(1, ls.next().unwrap(), words).await;
            wait_leader(&[&a, &b]).await;
            let (ca, typed) = (
                a.cache::<String>("c").unwrap(),
                a.cache::<Word>("typed").unwrap(),
            );
            for i in 0..20 {
                ca.put(&format!("k{i}"), format!("v{i}")).await.unwrap();
                typed
                    .put(&format!("k{i}"), Word("xx".into()))
                    .await
                    .unwrap();
            }
            // Joins after more entries than the log keeps, with flags where
            // the others hold words.
            let late = p
                .member(2, ls.next().unwrap(), |b| {
                    small_log(b).cache::<Up>("typed", redhac::CacheOptions::default())
                })
                .await;
            wait_until("the late joiner holds the snapshot's values", || {
                (0..20).all(|i| get(&late, &format!("k{i}")) == Some(format!("v{i}")))
            })
            .await;
            let flags = late.cache::<Up>("typed").unwrap();
            assert!((0..20).all(|i| flags.get(&format!("k{i}")).is_none()));
            wait_until("the decode errors are published", || {
                handle
                    .render()
                    .contains(r#"redhac_decode_errors_total{cache="typed"} 20"#)
            })
            .await;
            for n in [a, b, late] {
                n.shutdown().await.unwrap();
            }
        });
    });
    let text = handle.render();
    for line in [
        "redhac_snapshots_sent_total 1",
        "redhac_snapshots_installed_total 1",
        "# HELP redhac_decode_errors_total Values received that did not decode",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
}
