//! Helpers for tests that run several members in one process on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::time::Duration;

use redhac::{CacheOptions, Config, Health, Redhac, Role, Status};

pub const TOKEN: &str = "a-test-token-0123456789";

/// How long any wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// `n` listeners on ephemeral ports and the `HA_HOSTS` naming them.
pub fn listeners(n: usize) -> (Vec<TcpListener>, String) {
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

pub fn config(hosts: &str, token: &str) -> Config {
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

/// Starts the member that owns `listener`, with one cache "c" of Strings.
pub async fn member_with(listener: TcpListener, config: Config) -> Redhac {
    member_built(listener, config, |b| b).await
}

/// As [`member_with`], with more set on the builder by `builder`.
pub async fn member_built(
    listener: TcpListener,
    config: Config,
    builder: impl FnOnce(redhac::Builder) -> redhac::Builder,
) -> Redhac {
    let name = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let b = Redhac::builder()
        .config(config)
        .listener(listener)
        .hostname(name)
        .cache::<String>("c", CacheOptions::default());
    builder(b).start().await.expect("a member starts")
}

pub async fn member(listener: TcpListener, hosts: &str, token: &str) -> Redhac {
    member_with(listener, config(hosts, token)).await
}

/// Starts `n` members.
pub async fn cluster(n: usize) -> (Vec<Redhac>, String) {
    let (ls, hosts) = listeners(n);
    let mut nodes = Vec::new();
    for l in ls {
        nodes.push(member(l, &hosts, TOKEN).await);
    }
    (nodes, hosts)
}

/// Waits (with a deadline) until `node` reports `health`.
pub async fn wait_health(node: &Redhac, health: Health) {
    let mut watch = node.health();
    tokio::time::timeout(DEADLINE, watch.wait_for(|h| *h == health))
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

/// Polls `f` until it holds, with a deadline.
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the given members agree on one leader among them, all
/// serving; returns the leader's position in `nodes`.
pub async fn wait_leader(nodes: &[&Redhac]) -> usize {
    let mut found = 0;
    wait_until("one leader, every member serving", || {
        let s: Vec<Status> = nodes.iter().map(|n| n.status()).collect();
        let leaders: Vec<usize> = (0..s.len())
            .filter(|&i| s[i].role == Role::Leader)
            .collect();
        let [l] = leaders.as_slice() else {
            return false;
        };
        found = *l;
        let me = s[*l].me;
        s.iter()
            .all(|x| x.leader == Some(me) && x.term == s[*l].term && x.serving)
    })
    .await;
    found
}

pub mod proxy {
    pub use redhac::testing::Proxy;
}

/// Members behind proxies: `HA_HOSTS` names the proxies, each member listens
/// on its own port behind its proxy and finds itself by the proxy's address.
pub struct Proxied {
    pub proxies: Vec<proxy::Proxy>,
    pub hosts: String,
}

impl Proxied {
    /// Binds `n` member listeners and a proxy in front of each.
    pub async fn new(n: usize) -> (Self, Vec<TcpListener>) {
        let ls: Vec<_> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut proxies = Vec::new();
        for l in &ls {
            proxies.push(proxy::Proxy::start(l.local_addr().unwrap()).await.unwrap());
        }
        let hosts = proxies
            .iter()
            .map(|p| format!("http://{}", p.addr()))
            .collect::<Vec<_>>()
            .join(",");
        (Self { proxies, hosts }, ls)
    }

    /// Starts member `i` on `listener`, found in `HA_HOSTS` by its proxy.
    pub async fn member(
        &self,
        i: usize,
        listener: TcpListener,
        builder: impl FnOnce(redhac::Builder) -> redhac::Builder,
    ) -> Redhac {
        self.member_with(i, listener, config(&self.hosts, TOKEN), builder)
            .await
    }

    /// As [`Proxied::member`], with `config`.
    pub async fn member_with(
        &self,
        i: usize,
        listener: TcpListener,
        config: Config,
        builder: impl FnOnce(redhac::Builder) -> redhac::Builder,
    ) -> Redhac {
        self.proxies[i].retarget(listener.local_addr().unwrap());
        let b = Redhac::builder()
            .config(config)
            .listener(listener)
            .hostname(self.proxies[i].addr().to_string())
            .cache::<String>("c", CacheOptions::default());
        builder(b).start().await.expect("a member starts")
    }
}
