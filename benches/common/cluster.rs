//! A redhac cluster inside the benchmark process: `n` members on 127.0.0.1
//! ephemeral ports, plaintext (or mutual TLS), default timing (election timeout 2 s), each
//! with one cache "w1" of the bench's value type.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use redhac::{CacheOptions, Config, Redhac, Role, Value};

/// Starts `n` members at the same instant, as spawned tasks.
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) async fn start_cluster<V: Value>(n: usize) -> Vec<Redhac> {
    start_cluster_with_learners::<V>(n, 0).await
}

/// Starts `voters` members and `learners` more (`HA_LEARNERS`, after the
/// voters) at the same instant, as spawned tasks.
pub(crate) async fn start_cluster_with_learners<V: Value>(
    voters: usize,
    learners: usize,
) -> Vec<Redhac> {
    start_members::<V>(voters, learners, "http", &[("CACHE_TLS", "false".into())]).await
}

/// Starts `n` members over mutual TLS, each with the variables `tls` (the
/// `CACHE_TLS*` ones), at the same instant.
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) async fn start_cluster_tls<V: Value>(
    n: usize,
    tls: &[(&'static str, String)],
) -> Vec<Redhac> {
    start_members::<V>(n, 0, "https", tls).await
}

/// Starts `voters` members and `learners` more, listed with `scheme`, each
/// with `vars` besides the member lists and the token, as spawned tasks.
async fn start_members<V: Value>(
    voters: usize,
    learners: usize,
    scheme: &str,
    vars: &[(&'static str, String)],
) -> Vec<Redhac> {
    let listeners: Vec<TcpListener> = (0..voters + learners)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let list = |ls: &[TcpListener]| {
        ls.iter()
            .map(|l| format!("{scheme}://{}", l.local_addr().expect("addr")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (hosts, learner_hosts) = (list(&listeners[..voters]), list(&listeners[voters..]));
    let starts: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let (hosts, learners, vars) = (hosts.clone(), learner_hosts.clone(), vars.to_vec());
            tokio::spawn(async move { start_member_vars::<V>(l, hosts, learners, &vars).await })
        })
        .collect();
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("a start task"));
    }
    nodes
}

/// Starts the member listening on `l` of the cluster `hosts` (comma
/// separated `http://` addresses, as `HA_HOSTS`).
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) async fn start_member<V: Value>(l: TcpListener, hosts: String) -> Redhac {
    start_member_with_learners::<V>(l, hosts, String::new()).await
}

/// Starts the member listening on `l` of the voters `hosts` and the
/// learners `learners` (both as `HA_HOSTS`), plaintext.
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) async fn start_member_with_learners<V: Value>(
    l: TcpListener,
    hosts: String,
    learners: String,
) -> Redhac {
    let plaintext = [("CACHE_TLS", "false".to_owned())];
    start_member_vars::<V>(l, hosts, learners, &plaintext).await
}

/// Starts the member on `l` with `HA_HOSTS`, `HA_LEARNERS` and `vars`.
async fn start_member_vars<V: Value>(
    l: TcpListener,
    hosts: String,
    learners: String,
    vars: &[(&'static str, String)],
) -> Redhac {
    let me = l.local_addr().expect("addr").to_string();
    let mut all = vec![
        ("HA_MODE", "true".to_owned()),
        ("HA_HOSTS", hosts),
        ("HA_LEARNERS", learners),
        ("CACHE_AUTH_TOKEN", "bench-token-0123456789".to_owned()),
    ];
    all.extend_from_slice(vars);
    let config = Config::from_vars(all).expect("config");
    Redhac::builder()
        .config(config)
        .listener(l)
        .hostname(me)
        .cache::<V>("w1", CacheOptions::default().max_capacity(100_000))
        .start()
        .await
        .expect("a member starts")
}

/// Waits for one leader with every given member serving; its position.
pub(crate) async fn leader(nodes: &[&Redhac]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Vec<_> = nodes.iter().map(|n| n.status()).collect();
        let leaders: Vec<usize> = (0..s.len())
            .filter(|&i| s[i].role == Role::Leader)
            .collect();
        if let [l] = leaders.as_slice()
            && s.iter().all(|x| x.leader == Some(s[*l].me) && x.serving)
        {
            return *l;
        }
        assert!(Instant::now() < deadline, "no leader: {s:?}");
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Stops every member gracefully.
#[allow(dead_code)] // Not every bench that includes this module uses it.
pub(crate) async fn shutdown(nodes: Vec<Redhac>) {
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}
