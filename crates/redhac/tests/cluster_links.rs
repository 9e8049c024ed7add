//! Cluster members in one process on 127.0.0.1: they find themselves in
//! HA_HOSTS, link up with the shared token, and report health by links.

mod common;

use common::{TOKEN, config, listeners, member, wait_health};
use redhac::{Config, Error, Health, Redhac};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_link_up_and_report_health_by_links() {
    let (ls, hosts) = listeners(3);
    let mut nodes = Vec::new();
    for l in ls {
        nodes.push(member(l, &hosts, TOKEN).await);
    }
    for n in &nodes {
        wait_health(n, Health::Good).await;
    }
    let status = nodes[1].status();
    assert_eq!(status.me, 1);
    assert!(status.members.iter().all(|m| m.connected), "{status:?}");

    nodes[2].shutdown().await.unwrap();
    wait_health(&nodes[0], Health::Degraded).await;
    wait_health(&nodes[1], Health::Degraded).await;
    nodes[1].shutdown().await.unwrap();
    wait_health(&nodes[0], Health::Bad).await;
    nodes[0].shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_token_stays_out() {
    let (ls, hosts) = listeners(3);
    let mut ls = ls.into_iter();
    let a = member(ls.next().unwrap(), &hosts, TOKEN).await;
    let b = member(ls.next().unwrap(), &hosts, TOKEN).await;
    let intruder = member(ls.next().unwrap(), &hosts, "not-the-token-at-all").await;
    wait_health(&a, Health::Degraded).await;
    wait_health(&b, Health::Degraded).await;
    assert_eq!(*intruder.health().borrow(), Health::Bad);
    let s = a.status();
    assert_eq!(s.members.iter().filter(|m| m.connected).count(), 2, "{s:?}");
    for n in [a, b, intruder] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn start_errors_name_what_to_fix() {
    let (ls, hosts) = listeners(3);
    let err = Redhac::builder()
        .config(config(&hosts, TOKEN))
        .hostname("somebody-else")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("HOSTNAME_OVERWRITE") && m.contains("somebody-else")),
        "{err}"
    );

    let tls_without_ca = Config {
        tls: true,
        ..config(&hosts, TOKEN)
    };
    let name = format!("127.0.0.1:{}", ls[0].local_addr().unwrap().port());
    let err = Redhac::builder()
        .config(tls_without_ca)
        .hostname(name)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("CACHE_TLS_SERVER_CERT")),
        "{err}"
    );
}

/// A port free on both loopbacks now (the member binds it itself).
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_listed_by_ipv6_and_ipv4_addresses_form_a_cluster() {
    // Each member binds its own port (no listener handed in): two are
    // listed at [::1], one at 127.0.0.1 and dialled over IPv4 on the same
    // dual-stack socket.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let names = [
        format!("[::1]:{}", ports[0]),
        format!("[::1]:{}", ports[1]),
        format!("127.0.0.1:{}", ports[2]),
    ];
    let hosts = names
        .iter()
        .map(|n| format!("http://{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for name in &names {
        nodes.push(
            Redhac::builder()
                .config(config(&hosts, TOKEN))
                .hostname(name.clone())
                .cache::<String>("c", redhac::CacheOptions::default())
                .start()
                .await
                .expect("a member starts"),
        );
    }
    for n in &nodes {
        wait_health(n, Health::Good).await;
    }
    let refs: Vec<&Redhac> = nodes.iter().collect();
    let leader = common::wait_leader(&refs).await;
    let c = nodes[(leader + 1) % 3].cache::<String>("c").unwrap();
    c.put_with(
        "k",
        "v".into(),
        redhac::WriteOptions::default().ack(redhac::AckLevel::All),
    )
    .await
    .unwrap();
    for n in &nodes {
        assert_eq!(
            n.cache::<String>("c")
                .unwrap()
                .get("k")
                .as_deref()
                .map(String::as_str),
            Some("v")
        );
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_shuts_down_at_once_while_a_peer_accepts_but_never_answers() {
    // Member 1's port is bound but nobody serves it: member 0's dial
    // connects and then waits for an HTTP/2 answer that never comes (a peer
    // hung, or still starting). Stopping must not wait for that dial.
    let (ls, hosts) = listeners(2);
    let mut ls = ls.into_iter();
    let node = member(ls.next().unwrap(), &hosts, TOKEN).await;
    let _silent = ls.next().unwrap();
    wait_health(&node, Health::Bad).await;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(2), node.shutdown()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the shutdown waited for the dial (the handshake timeout is 5 s)"
    );
}
