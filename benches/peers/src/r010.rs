//! redhac 0.10.5 (crates.io): three members in this process on 127.0.0.1,
//! plaintext (`CACHE_TLS=false`), default timing (`CACHE_ELECTION_TIMEOUT`
//! 2 s), configured through its environment variables as its docs show.
//!
//! Writes are `cache_insert(.., AckLevel::Quorum)`, gets are
//! `cache_get!(Val, ..)` without remote lookup.

use std::time::Duration;

use redhac010::quorum::{AckLevel, QuorumState};
use redhac010::{
    CacheConfig, SizedCache, cache_get, cache_get_from, cache_get_value, cache_insert,
};
use serde_json::{Map, Value, json};

use crate::common::{self, KEYS, Member, Val, free_ports, key, runtime, val};

const CACHE: &str = "w1";

/// One member: its config (channels to its tasks).
#[derive(Clone)]
pub(crate) struct R010(CacheConfig);

impl Member for R010 {
    async fn put(&self, i: usize) -> Result<(), String> {
        cache_insert(
            CACHE.to_string(),
            key(i % KEYS),
            &self.0,
            &val(i),
            AckLevel::Quorum,
        )
        .await
        .map_err(|e| e.error)
    }
}

impl R010 {
    fn state(&self) -> Option<QuorumState> {
        self.0
            .rx_health_state
            .borrow()
            .as_ref()
            .map(|s| s.state.clone())
    }

    async fn get(&self, k: String) -> Option<Val> {
        cache_get!(Val, CACHE.to_string(), k, &self.0, false)
            .await
            .expect("a get")
    }
}

/// Sets the process-wide variables redhac 0.10.5 reads: `HA_HOSTS` is read
/// again by every `start_cluster`, the others once.
fn set_env(ports: &[u16]) {
    let hosts = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    // SAFETY: redhac 0.10.5 is configured only through the environment. The
    // variables are set before this cluster's members start, while no
    // other code of this process reads the environment from C.
    unsafe {
        std::env::set_var("HA_MODE", "true");
        std::env::set_var("HA_HOSTS", hosts);
        std::env::set_var("CACHE_TLS", "false");
        std::env::set_var("CACHE_AUTH_TOKEN", "SuperSafeSecretToken1337");
    }
}

/// Starts one member (on the current runtime): its cache "w1", then its
/// server, clients and quorum handler.
async fn start_member(port: u16) -> R010 {
    let (tx_health, mut cfg) = CacheConfig::new();
    cfg.spawn_cache(CACHE.to_string(), SizedCache::with_size(100_000), None);
    redhac010::start_cluster(tx_health, &mut cfg, None, Some(format!("127.0.0.1:{port}")))
        .await
        .expect("start_cluster");
    R010(cfg)
}

/// Waits (polling every ms) until one member is Leader and the others
/// Follower, then until one Quorum write through each member succeeds.
/// Returns the leader's position.
async fn until_serving(members: &[R010]) -> usize {
    let l = loop {
        let states: Vec<_> = members.iter().map(R010::state).collect();
        let leaders: Vec<usize> = (0..members.len())
            .filter(|&i| states[i] == Some(QuorumState::Leader))
            .collect();
        let followers = states
            .iter()
            .filter(|s| **s == Some(QuorumState::Follower))
            .count();
        if leaders.len() == 1 && followers == members.len() - 1 {
            break leaders[0];
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    for m in members {
        while m.put(0).await.is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    l
}

/// Three members on the current runtime, serving.
async fn cluster() -> (Vec<R010>, usize) {
    let ports = free_ports(3);
    set_env(&ports);
    let mut members = Vec::new();
    for p in ports {
        members.push(start_member(p).await);
    }
    let l = until_serving(&members).await;
    (members, l)
}

pub(crate) fn row(rt: &tokio::runtime::Runtime) -> Map<String, Value> {
    let cold = common::cold_starts(cluster);

    // Failover: each member on its own 1-worker runtime; the leader's
    // runtime is dropped (a crash: its tasks end, its sockets close).
    let mut fo = Vec::new();
    for _ in 0..5 {
        let rts: Vec<_> = (0..3).map(|_| runtime(1)).collect();
        let ports = free_ports(3);
        set_env(&ports);
        let members: Vec<R010> = rts
            .iter()
            .zip(&ports)
            .map(|(r, &p)| r.block_on(async { r.spawn(start_member(p)).await.expect("start") }))
            .collect();
        let l = rt.block_on(until_serving(&members));
        fo.push(common::crash_leader(rt, rts, members, l));
    }

    // The steady cluster: three members on the bench's runtime.
    let (members, l) = rt.block_on(cluster());
    let (lead, follow) = (members[l].clone(), members[(l + 1) % 3].clone());
    let (w_p50, w_p99, w_mean) = rt.block_on(common::latency(lead.clone()));
    eprintln!("   leader write p50 {w_p50:.1} µs");
    let (f_p50, f_p99, _) = rt.block_on(common::latency(follow.clone()));
    eprintln!("   follower write p50 {f_p50:.1} µs");
    // Every W1 key present (the latency runs wrote key 0..10,000 already).
    rt.block_on(async {
        for i in 0..KEYS {
            lead.put(i).await.expect("fill");
        }
    });
    let tput = rt.block_on(common::throughput(vec![lead.clone()]));
    let spread = rt.block_on(common::throughput(members.clone()));
    eprintln!("   throughput {tput:.0} ops/s on the leader, {spread:.0} spread");
    let reader = follow.clone();
    let get = common::get_ns(rt, move |k| {
        let r = reader.clone();
        async move { r.get(k).await.is_some() }
    });
    eprintln!("   follower get {get:.1} ns");
    // Graceful shutdown (0.10.5 waits 2 s in it), so that this cluster is
    // idle while the next system runs.
    rt.block_on(async {
        let downs: Vec<_> = members
            .iter()
            .map(|m| {
                let cfg = m.0.clone();
                tokio::spawn(async move { cfg.shutdown().await })
            })
            .collect();
        for d in downs {
            let _ = d.await;
        }
    });
    std::mem::forget(members);
    let rss = crate::rss_per_entry("redhac-0.10.5");
    common::row(
        "redhac-0.10.5",
        json!({
            "mode": "3 members in one process, plaintext; cache_insert AckLevel::Quorum (leader: \
                     1 of 2 followers has queued the put for its cache task; follower: forwarded \
                     to the leader, which does the same)",
            "w_leader_p50_us": w_p50,
            "w_leader_p99_us": w_p99,
            "w_leader_mean_us": w_mean,
            "w_follower_p50_us": f_p50,
            "w_follower_p99_us": f_p99,
            "w_tput_ops": tput,
            "w_tput_spread_ops": spread,
            "get_ns": get,
            "rss_per_entry_bytes": rss,
            "notes": "cold start: 10 runs, each on a fresh 2-worker runtime, until one Leader, two \
                      Followers and a Quorum write through each member succeeded; failover: 5 \
                      runs, each member on its own 1-worker runtime, the leader's runtime dropped \
                      (a crash), 4 writers on the survivors, probes (500 ms timeout, retried) on \
                      both survivors from the stop, a run counted as 30 s (unrecovered) if none \
                      succeeds by then; stranded = writes in flight at the stop that failed or \
                      hung 10 s (summed over runs); rss: standalone \
                      (HA_MODE unset), SizedCache, 1,000,000 cache_put",
        }),
        [cold, common::failover_fields(&fo)],
    )
}

/// In the memory child: 1,000,000 W1 entries in a standalone cache.
pub(crate) fn rss_fill(n: usize) -> Box<dyn std::any::Any> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cfg = rt.block_on(async {
        let (_tx, mut cfg) = CacheConfig::new();
        cfg.spawn_cache(CACHE.to_string(), SizedCache::with_size(2 * n), None);
        for i in 0..n {
            redhac010::cache_put(CACHE.to_string(), key(i), &cfg, &val(i))
                .await
                .expect("put");
        }
        // The cache task has taken every put off its channel once a get
        // behind them answers.
        let _ = cache_get_value(CACHE.to_string(), key(0), &cfg, false).await;
        cfg
    });
    Box::new((rt, cfg))
}
