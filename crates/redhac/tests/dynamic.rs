//! The dynamic mode (`HA_DISCOVER`) on real sockets, in one process on
//! 127.0.0.1: a cluster bootstraps from the members that find each other,
//! grows by members that start later (learners), replaces a voter that
//! died, and lets members leave, with no restart of the others and no
//! acknowledged write lost.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{DEADLINE, TOKEN, wait_until};
use redhac::{AckLevel, Autopilot, CacheOptions, Config, Redhac, Role, Status, WriteOptions};

/// Fast timing, so a test sees the autopilot act within seconds.
fn autopilot() -> Autopilot {
    Autopilot {
        voters: 3,
        replace_after: Duration::from_secs(1),
        remove_after: Duration::from_secs(3),
        leave_timeout: Duration::from_secs(5),
    }
}

fn config(discover: &[String], advertise: &str) -> Config {
    Config::from_vars([
        ("HA_MODE", "true"),
        ("HA_DISCOVER", discover.join(",").as_str()),
        ("HA_ADVERTISE", advertise),
        ("HA_DISCOVER_INTERVAL", "200ms"),
        ("CACHE_AUTH_TOKEN", TOKEN),
        ("CACHE_TLS", "false"),
        ("CACHE_ELECTION_TIMEOUT", "500ms"),
        ("CACHE_RECONNECT_TIMEOUT_LOWER", "10"),
        ("CACHE_RECONNECT_TIMEOUT_UPPER", "50"),
    ])
    .expect("a valid dynamic config")
}

async fn start(listener: TcpListener, discover: &[String]) -> Redhac {
    let advertise = listener.local_addr().unwrap().to_string();
    Redhac::builder()
        .config(config(discover, &advertise))
        .listener(listener)
        .autopilot(autopilot())
        .cache::<String>("c", CacheOptions::default())
        .start()
        .await
        .expect("a member starts")
}

fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let ls: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = ls
        .iter()
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    (ls, addrs)
}

fn value_on(node: &Redhac, key: &str) -> Option<String> {
    node.cache::<String>("c")
        .unwrap()
        .get(key)
        .map(|v| (*v).clone())
}

/// The leader among `nodes` once all of them follow it and serve, and its
/// membership is `voters` voters and `learners` learners, every one linked.
async fn settled(nodes: &[&Redhac], voters: usize, learners: usize) -> Status {
    let mut found = None;
    wait_until(
        &format!("one leader, {voters} voters and {learners} learners, all serving"),
        || {
            let s: Vec<Status> = nodes.iter().map(|n| n.status()).collect();
            let Some(leader) = s.iter().find(|x| x.role == Role::Leader) else {
                return false;
            };
            let members = &leader.members;
            let ok = s
                .iter()
                .all(|x| x.leader == Some(leader.me) && x.serving && x.term == leader.term)
                && members.iter().filter(|m| m.voter).count() == voters
                && members.len() == voters + learners
                && members.iter().all(|m| m.connected);
            if ok {
                found = Some(leader.clone());
            }
            ok
        },
    )
    .await;
    found.expect("settled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_cluster_bootstraps_grows_replaces_a_voter_and_shrinks() {
    let (mut ls, addrs) = listeners(5);
    let later = ls.split_off(3);
    // The first three find each other (and themselves) and form a cluster.
    let mut nodes = Vec::new();
    for l in ls {
        nodes.push(start(l, &addrs[..3]).await);
    }
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = settled(&all, 3, 0).await;
    let ids: std::collections::BTreeSet<u32> = nodes.iter().map(|n| n.status().me).collect();
    assert_eq!(ids.len(), 3, "every member drew its own id");
    // Each member shows the address it advertised (HA_ADVERTISE).
    for m in &leader.members {
        assert!(
            addrs[..3].contains(&format!("http://{}", m.address)),
            "member {} shows {:?}",
            m.id,
            m.address
        );
    }
    let all_ack = WriteOptions::default().ack(AckLevel::All);
    let c = nodes[0].cache::<String>("c").unwrap();
    c.put_with("before", "3 members".into(), all_ack)
        .await
        .unwrap();

    // Two more start later, knowing every address: they join as learners,
    // caught up by a snapshot, with no restart of the others.
    for l in later {
        nodes.push(start(l, &addrs).await);
    }
    let all: Vec<&Redhac> = nodes.iter().collect();
    let grown = settled(&all, 3, 2).await;
    assert!(
        grown.term == leader.term,
        "joiners force no election: term {} then {}",
        leader.term,
        grown.term
    );
    c.put_with("grown", "5 members".into(), all_ack)
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(value_on(n, "before").as_deref(), Some("3 members"));
        assert_eq!(value_on(n, "grown").as_deref(), Some("5 members"));
    }

    // A voter that is not the leader dies for good: a learner is promoted
    // in its place, and the dead one is removed.
    let dead = nodes
        .iter()
        .position(|n| {
            let s = n.status();
            s.role != Role::Leader && s.members.iter().any(|m| m.id == s.me && m.voter)
        })
        .expect("a voter that follows");
    let dead_id = nodes[dead].status().me;
    redhac::test_support::kill(&nodes.remove(dead));
    let all: Vec<&Redhac> = nodes.iter().collect();
    let replaced = settled(&all, 3, 1).await;
    assert!(replaced.members.iter().all(|m| m.id != dead_id));
    let writer = nodes
        .iter()
        .find(|n| n.status().role != Role::Leader)
        .unwrap();
    writer
        .cache::<String>("c")
        .unwrap()
        .put_with("replaced", "4 members".into(), all_ack)
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(value_on(n, "grown").as_deref(), Some("5 members"));
        assert_eq!(value_on(n, "replaced").as_deref(), Some("4 members"));
    }

    // A member shutting down waits until the leader removed it; then the
    // cluster is three voters again, every write kept.
    let leaving = nodes
        .iter()
        .position(|n| {
            let s = n.status();
            s.members.iter().any(|m| m.id == s.me && !m.voter)
        })
        .expect("a learner");
    let gone = nodes.remove(leaving);
    tokio::time::timeout(DEADLINE, gone.shutdown())
        .await
        .expect("a shutdown within the leave timeout")
        .unwrap();
    let all: Vec<&Redhac> = nodes.iter().collect();
    settled(&all, 3, 0).await;
    for n in &nodes {
        assert_eq!(value_on(n, "replaced").as_deref(), Some("4 members"));
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_rejoins_under_a_new_id_and_the_operator_api_is_the_leaders() {
    let (ls, addrs) = listeners(4);
    let mut nodes = Vec::new();
    for l in ls {
        nodes.push(start(l, &addrs).await);
    }
    let all: Vec<&Redhac> = nodes.iter().collect();
    let leader = settled(&all, 3, 1).await;
    let on_leader = nodes.iter().find(|n| n.status().me == leader.me).unwrap();
    let learner = nodes
        .iter()
        .find(|n| {
            let s = n.status();
            s.members.iter().any(|m| m.id == s.me && !m.voter)
        })
        .unwrap();
    let old_id = learner.status().me;
    on_leader
        .cache::<String>("c")
        .unwrap()
        .put_with(
            "kept",
            "yes".into(),
            WriteOptions::default().ack(AckLevel::All),
        )
        .await
        .unwrap();

    // Only the leader changes the membership.
    let follower = nodes
        .iter()
        .find(|n| n.status().role == Role::Follower)
        .unwrap();
    let e = follower.remove(old_id).await.unwrap_err();
    assert!(
        matches!(&e, redhac::Error::Membership(why) if why.contains(&format!("member {}", leader.me))),
        "{e}"
    );
    // A member is added once it linked.
    let e = on_leader.add_learner(12_345).await.unwrap_err();
    assert!(
        matches!(&e, redhac::Error::Membership(why) if why.contains("not linked")),
        "{e}"
    );
    // The leader cannot remove itself: it hands over first.
    let e = on_leader.remove(leader.me).await.unwrap_err();
    assert!(matches!(e, redhac::Error::Membership(_)), "{e}");

    // Removed while it runs, the learner rejoins as a new member, which the
    // autopilot adds back; it catches up by a snapshot.
    on_leader.remove(old_id).await.unwrap();
    assert!(on_leader.members().iter().all(|m| m.id != old_id));
    let all: Vec<&Redhac> = nodes.iter().collect();
    let back = settled(&all, 3, 1).await;
    let new_id = learner.status().me;
    assert_ne!(new_id, old_id, "a rejoining member draws a new id");
    assert!(back.members.iter().any(|m| m.id == new_id && !m.voter));
    assert_eq!(value_on(learner, "kept").as_deref(), Some("yes"));
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_static_mode_refuses_membership_changes() {
    let (nodes, _) = common::cluster(1).await;
    let e = nodes[0].remove(0).await.unwrap_err();
    assert!(
        matches!(&e, redhac::Error::Membership(why) if why.contains("HA_DISCOVER")),
        "{e}"
    );
    nodes[0].shutdown().await.unwrap();
}
