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
