//! What a rolling update changes between members: the wire protocol
//! versions each speaks, and the shared token.

mod common;

use std::net::TcpListener;

use common::{Proxied, config, listeners, member_built, wait_leader, wait_until};
use redhac::{AckLevel, Config, Redhac, Secret, WriteOptions};

const NEW_TOKEN: &str = "the-next-token-9876543210";

/// Starts a member on `listener` speaking `versions`.
async fn member_speaking(
    listener: TcpListener,
    hosts: &str,
    versions: std::ops::RangeInclusive<u32>,
) -> Redhac {
    let config = config(hosts, common::TOKEN);
    member_built(listener, config, |b| b.protocol_versions(versions)).await
}

/// Two members speaking `a` and `b`.
async fn pair(a: std::ops::RangeInclusive<u32>, b: std::ops::RangeInclusive<u32>) -> [Redhac; 2] {
    let (ls, hosts) = listeners(2);
    let mut ls = ls.into_iter();
    let first = member_speaking(ls.next().unwrap(), &hosts, a).await;
    let second = member_speaking(ls.next().unwrap(), &hosts, b).await;
    [first, second]
}

/// The version member `of` reports for its link to member `to`.
fn version(of: &Redhac, to: usize) -> Option<u32> {
    of.status().members[to].protocol_version
}

#[tokio::test]
async fn a_link_speaks_the_highest_version_both_ends_speak() {
    let now = redhac_proto::PROTOCOL_VERSION;
    // This release and the next one (which also speaks this one).
    let nodes = pair(now..=now + 1, now..=now).await;
    wait_leader(&[&nodes[0], &nodes[1]]).await;
    assert_eq!(version(&nodes[0], 1), Some(now));
    assert_eq!(version(&nodes[1], 0), Some(now));
    assert_eq!(version(&nodes[0], 0), Some(now + 1), "its own newest");
    for n in &nodes {
        n.shutdown().await.unwrap();
    }

    // Two members of the next release speak its version.
    let nodes = pair(now..=now + 1, now..=now + 1).await;
    wait_leader(&[&nodes[0], &nodes[1]]).await;
    assert_eq!(version(&nodes[0], 1), Some(now + 1));
    assert_eq!(version(&nodes[1], 0), Some(now + 1));
    assert_eq!(nodes[0].status().links_refused, 0);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_leader_linked_to_a_member_of_protocol_2_refuses_to_step_down() {
    // Protocol 2's `TimeoutNow` has no `stays`: elected by it, that member
    // would take the stepped-down leader for gone and skip its lease.
    let nodes = pair(2..=2, 2..=3).await;
    let leader = wait_leader(&[&nodes[0], &nodes[1]]).await;
    let refused = nodes[leader].step_down().await;
    assert!(
        matches!(&refused, Err(redhac::Error::Handover(why)) if why.contains("protocol")),
        "{refused:?}"
    );
    assert_eq!(nodes[leader].status().role, redhac::Role::Leader);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn members_with_no_version_in_common_refuse_each_other() {
    let now = redhac_proto::PROTOCOL_VERSION;
    let nodes = pair(now + 1..=now + 2, now..=now).await;
    wait_until("both members refused the link", || {
        nodes.iter().all(|n| n.status().links_refused >= 1)
    })
    .await;
    for (i, n) in nodes.iter().enumerate() {
        let s = n.status();
        assert!(!s.members[1 - i].connected, "{s:?}");
        assert_eq!(s.members[1 - i].protocol_version, None);
        assert_eq!(s.leader, None, "no majority without the link");
    }
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

fn with_tokens(hosts: &str, token: &str, previous: Option<&str>) -> Config {
    let mut c = config(hosts, token);
    c.auth_token_previous = previous.map(Secret::from);
    c
}

#[tokio::test]
async fn a_token_rotated_in_two_rolling_restarts_never_refuses_a_link_nor_loses_data() {
    let (p, ls) = Proxied::new(3).await;
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        nodes.push(p.member(i, l, |b| b).await);
    }
    let quorum = WriteOptions::default().ack(AckLevel::Quorum);
    let l = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let cache = nodes[l].cache::<String>("c").unwrap();
    cache
        .put_with("before", "v0".to_string(), quorum)
        .await
        .unwrap();

    // Roll one: the new token, the old one still proven and accepted.
    // Roll two: the new token alone.
    let rolls = [(NEW_TOKEN, Some(common::TOKEN)), (NEW_TOKEN, None)];
    for (roll, (token, previous)) in rolls.into_iter().enumerate() {
        for i in 0..3 {
            for n in &nodes {
                assert_eq!(n.status().links_refused, 0, "roll {roll}: {:?}", n.status());
            }
            nodes[i].shutdown().await.unwrap();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let config = with_tokens(&p.hosts, token, previous);
            nodes[i] = p.member_with(i, l, config, |b| b).await;
            let l = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
            let key = format!("roll-{roll}-member-{i}");
            nodes[l]
                .cache::<String>("c")
                .unwrap()
                .put_with(key.clone(), "v".to_string(), quorum)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
    for n in &nodes {
        let s = n.status();
        assert_eq!(s.links_refused, 0, "{s:?}");
        let c = n.cache::<String>("c").unwrap();
        wait_until("every write on every member", || {
            c.get("before").is_some()
                && (0..2).all(|r| (0..3).all(|i| c.get(&format!("roll-{r}-member-{i}")).is_some()))
        })
        .await;
    }
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_old_token_alone_and_the_new_token_alone_refuse_each_other() {
    let (ls, hosts) = listeners(2);
    let mut ls = ls.into_iter();
    let start = async |l: TcpListener, token: &str| {
        member_built(l, with_tokens(&hosts, token, None), |b| b).await
    };
    let old = start(ls.next().unwrap(), common::TOKEN).await;
    let new = start(ls.next().unwrap(), NEW_TOKEN).await;
    wait_until("both members refused the link", || {
        old.status().links_refused >= 1 && new.status().links_refused >= 1
    })
    .await;
    assert!(!old.status().members[1].connected);
    old.shutdown().await.unwrap();
    new.shutdown().await.unwrap();
}

/// The session type of release 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SessionV1 {
    user: String,
}

/// Release 2 added a field in front: release 1's reading of its bytes
/// would be a session nobody wrote (a user named "\u{2}h" for tenant 2,
/// user "hi").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SessionV2 {
    tenant: u32,
    user: String,
}

fn release(b: redhac::Builder, v2: bool) -> redhac::Builder {
    if v2 {
        b.cache::<SessionV2>("s", redhac::CacheOptions::default().schema_version(2))
    } else {
        b.cache::<SessionV1>("s", redhac::CacheOptions::default().schema_version(1))
    }
}

/// What member `m` serves for `key`, as the user it names: `None` on a miss.
fn user(m: &Redhac, v2: bool, key: &str) -> Option<String> {
    if v2 {
        m.cache::<SessionV2>("s")
            .unwrap()
            .get(key)
            .map(|s| s.user.clone())
    } else {
        m.cache::<SessionV1>("s")
            .unwrap()
            .get(key)
            .map(|s| s.user.clone())
    }
}

/// Writes `key` from member `m` (of release `v2`) with ack All.
async fn write_session(m: &Redhac, v2: bool, key: &str, user: &str) {
    let all = WriteOptions::default().ack(AckLevel::All);
    let r = if v2 {
        let s = SessionV2 {
            tenant: 2,
            user: user.into(),
        };
        m.cache::<SessionV2>("s")
            .unwrap()
            .put_with(key, s, all)
            .await
    } else {
        let s = SessionV1 { user: user.into() };
        m.cache::<SessionV1>("s")
            .unwrap()
            .put_with(key, s, all)
            .await
    };
    r.unwrap_or_else(|e| panic!("{key}: {e}"));
}

#[tokio::test]
async fn a_value_type_changed_by_a_release_is_never_decoded_across_releases() {
    let (p, ls) = Proxied::new(3).await;
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        nodes.push(p.member(i, l, |b| release(b, false)).await);
    }
    let mut v2 = [false; 3];
    let l = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    write_session(&nodes[l], false, "before", "hi").await;
    // Every key written, with the user each release wrote under it.
    let mut written: Vec<(String, bool, &str)> = vec![("before".into(), false, "hi")];

    for i in 0..3 {
        nodes[i].shutdown().await.unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        nodes[i] = p.member(i, l, |b| release(b, true)).await;
        v2[i] = true;
        let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
        wait_until("the new member serves", || nodes[i].status().serving).await;
        assert!(
            nodes[i].status().schema_mismatches >= 1,
            "it caught up on release 1's writes and refused them: {:?}",
            nodes[i].status()
        );
        // Each release writes; All: every member applied (or refused) it.
        let key = format!("new-{i}");
        write_session(&nodes[i], true, &key, "hi").await;
        written.push((key, true, "hi"));
        if let Some(old) = (0..3).find(|&j| !v2[j]) {
            let key = format!("old-{i}");
            write_session(&nodes[old], false, &key, "hi").await;
            written.push((key, false, "hi"));
        }
        // A member serves exactly what its own release wrote, and misses
        // the other release's keys: never a value nobody wrote.
        for (j, n) in nodes.iter().enumerate() {
            for (key, by_v2, value) in &written {
                let expected = (*by_v2 == v2[j]).then(|| value.to_string());
                assert_eq!(
                    user(n, v2[j], key),
                    expected,
                    "member {j} (v2: {}), key {key}",
                    v2[j]
                );
            }
        }
        // Nor does a remote lookup bring one over.
        if v2[leader] != v2[(leader + 1) % 3] {
            let f = (leader + 1) % 3;
            let fetched = if v2[f] {
                let c = nodes[f].cache::<SessionV2>("s").unwrap();
                c.get_or_fetch("before")
                    .await
                    .unwrap()
                    .map(|s| s.user.clone())
            } else {
                let c = nodes[f].cache::<SessionV1>("s").unwrap();
                c.get_or_fetch("new-0")
                    .await
                    .unwrap()
                    .map(|s| s.user.clone())
            };
            assert_eq!(fetched, None, "member {f} fetched from the other release");
        }
    }
    // After the roll every member is of release 2 and serves its writes.
    let l = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    write_session(&nodes[l], true, "after", "everyone").await;
    for n in &nodes {
        assert_eq!(user(n, true, "after").as_deref(), Some("everyone"));
        assert_eq!(user(n, true, "before"), None);
        assert_eq!(n.status().links_refused, 0);
    }
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}
