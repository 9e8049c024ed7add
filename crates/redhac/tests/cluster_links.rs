//! Cluster members in one process on 127.0.0.1: they find themselves in
//! HA_HOSTS, link up with the shared token, and report health by links.
//! (Replication comes with the cluster core; until then writes are refused.)

use std::net::TcpListener;
use std::time::Duration;

use redhac::{CacheOptions, Config, Error, Health, Redhac};

const TOKEN: &str = "a-test-token-0123456789";

fn listeners(n: usize) -> (Vec<TcpListener>, String) {
    let ls: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let hosts = ls
        .iter()
        .map(|l| format!("http://127.0.0.1:{}", l.local_addr().unwrap().port()))
        .collect::<Vec<_>>()
        .join(",");
    (ls, hosts)
}

fn config(hosts: &str, token: &str) -> Config {
    Config::from_vars([
        ("HA_MODE", "true"),
        ("HA_HOSTS", hosts),
        ("CACHE_AUTH_TOKEN", token),
        ("CACHE_TLS", "false"),
        ("CACHE_RECONNECT_TIMEOUT_LOWER", "10"),
        ("CACHE_RECONNECT_TIMEOUT_UPPER", "50"),
    ])
    .expect("a valid cluster config")
}

async fn member(listener: TcpListener, hosts: &str, token: &str) -> Redhac {
    let name = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    Redhac::builder()
        .config(config(hosts, token))
        .listener(listener)
        .hostname(name)
        .cache::<String>("c", CacheOptions::default())
        .start()
        .await
        .expect("a member starts")
}

/// Waits (with a deadline) until `node` reports `health`.
async fn wait_health(node: &Redhac, health: Health) {
    let mut watch = node.health();
    tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|h| *h == health))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "member {} never reached {health:?}; status {:?}",
                node.status().me,
                node.status()
            )
        })
        .expect("the health watch is open");
}

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
    assert!(!status.serving, "no member serves without a leader");

    // Without the cluster core, reads miss and writes are refused, clearly.
    let c = nodes[0].cache::<String>("c").unwrap();
    assert!(c.get("k").is_none());
    assert!(matches!(
        c.put("k", "v".into()).await,
        Err(Error::Unsupported(_))
    ));
    assert!(c.get_or_fetch("k").await.unwrap().is_none());

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
