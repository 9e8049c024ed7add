//! hiqlite 0.15 (crates.io), cache only (features `cache` and
//! `in-memory-snapshots`, no `sqlite`): three Raft members in this process on
//! 127.0.0.1, plaintext, default timing (`NodeConfig::default()`: heartbeat
//! 500 ms, election timeout 1.5 to 3 s), Raft log and snapshots in memory
//! (`cache_storage_disk = false`).
//!
//! Writes are `Client::put(.., None)` (no expiry), gets `Client::get`.

use std::time::{Duration, Instant};

use hiqlite::{CacheVariants, Client, Node, NodeConfig, start_node_with_cache};
use serde_json::{Map, Value, json};

use crate::common::{self, KEYS, Member, Val, free_ports, key, runtime, val};

/// The caches this bench declares: one, W1's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caches {
    W1,
}

impl CacheVariants for Caches {
    fn hiqlite_cache_index(&self) -> usize {
        match self {
            Caches::W1 => 0,
        }
    }

    fn hiqlite_cache_variants() -> &'static [(usize, &'static str)] {
        &[(0, "W1")]
    }
}

/// One member: its local client.
#[derive(Clone)]
pub(crate) struct Hql(Client);

impl Member for Hql {
    async fn put(&self, i: usize) -> Result<(), String> {
        self.0
            .put(Caches::W1, key(i % KEYS), &val(i), None)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Hql {
    async fn is_leader(&self) -> bool {
        match self.0.metrics_cache().await {
            Ok(m) => m.current_leader == Some(m.id),
            Err(_) => false,
        }
    }
}

/// Where the Raft log and snapshots live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    /// `cache_storage_disk = false` with `in-memory-snapshots`: nothing on disk.
    Memory,
    /// hiqlite's default, `cache_storage_disk = true`: the Raft log in its
    /// WAL files and snapshots in a data directory (a fresh one under the
    /// temporary directory per member and cluster), synced every 200 ms
    /// (`LogSync::IntervalMillis(200)`, the default).
    Disk,
}

impl Storage {
    fn system(self) -> &'static str {
        match self {
            Storage::Memory => "hiqlite-0.15",
            Storage::Disk => "hiqlite-0.15-disk-wal",
        }
    }
}

/// The parent of the disk variant's data directories.
fn data_base() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("redhac-peers-hiqlite-{}", std::process::id()))
}

fn config(node_id: u64, nodes: &[Node], storage: Storage) -> NodeConfig {
    let data_dir = match storage {
        // never touched with `in-memory-snapshots` and `cache_storage_disk = false`
        Storage::Memory => format!("/nonexistent/hiqlite-peer-{node_id}"),
        Storage::Disk => {
            // distinct per cluster: the first node's raft port is fresh
            let dir = data_base().join(format!(
                "{}-{node_id}",
                nodes[0].addr_raft.rsplit(':').next().unwrap_or("0")
            ));
            std::fs::create_dir_all(&dir).expect("a data directory");
            dir.to_string_lossy().into_owned()
        }
    };
    NodeConfig {
        node_id,
        nodes: nodes.to_vec(),
        listen_addr_api: "127.0.0.1".into(),
        listen_addr_raft: "127.0.0.1".into(),
        data_dir: data_dir.into(),
        cache_storage_disk: storage == Storage::Disk,
        secret_raft: "bench-secret-raft-0123456789".into(),
        secret_api: "bench-secret-api-0123456789".into(),
        ..NodeConfig::default()
    }
}

/// Whether each member still takes part: a marker written through the
/// leader (5 s timeout) must become readable on each member within 3 s. (A
/// panicked Raft core task leaves its last metrics in place, so the metrics
/// cannot tell.)
async fn running(members: &[Hql], leader: usize, phase: &str) -> Vec<bool> {
    let marker = format!("marker-{phase}");
    let wrote = tokio::time::timeout(
        Duration::from_secs(5),
        members[leader]
            .0
            .put(Caches::W1, marker.clone(), &val(0), None),
    )
    .await;
    let mut v = vec![false; members.len()];
    if !matches!(wrote, Ok(Ok(()))) {
        return v;
    }
    for (i, m) in members.iter().enumerate() {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let got: Result<Option<Val>, _> = m.0.get(Caches::W1, marker.clone()).await;
            if matches!(got, Ok(Some(_))) {
                v[i] = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    v
}

/// The three members' node list on fresh ports.
fn nodes() -> Vec<Node> {
    let ports = free_ports(6);
    (0..3)
        .map(|i| Node {
            id: i as u64 + 1,
            addr_raft: format!("127.0.0.1:{}", ports[2 * i]),
            addr_api: format!("127.0.0.1:{}", ports[2 * i + 1]),
        })
        .collect()
}

/// Waits until every member reports a healthy cache Raft (a leader known)
/// and one write through each member succeeded. Returns the leader's
/// position.
async fn until_serving(members: &[Hql]) -> usize {
    for m in members {
        while m.0.is_healthy_cache().await.is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for m in members {
        while m.put(0).await.is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    loop {
        for (i, m) in members.iter().enumerate() {
            if m.is_leader().await {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Three members started at once as tasks on the current runtime, serving.
/// `storage`: where their Raft logs live.
async fn cluster(storage: Storage) -> (Vec<Hql>, usize) {
    let nodes = nodes();
    let starts: Vec<_> = (1..=3)
        .map(|id| tokio::spawn(start_node_with_cache::<Caches>(config(id, &nodes, storage))))
        .collect();
    let mut members = Vec::new();
    for s in starts {
        members.push(Hql(s
            .await
            .expect("a start task")
            .expect("start_node_with_cache")));
    }
    let l = until_serving(&members).await;
    (members, l)
}

pub(crate) fn row(rt: &tokio::runtime::Runtime, storage: Storage) -> Map<String, Value> {
    let cold = common::cold_starts(|| cluster(storage));

    // Failover: each member on its own 1-worker runtime; the leader's
    // runtime is dropped (a crash: its tasks end, its sockets close).
    let mut fo = Vec::new();
    for _ in 0..5 {
        let rts: Vec<_> = (0..3).map(|_| runtime(1)).collect();
        let nodes = nodes();
        let starts: Vec<_> = rts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.spawn(start_node_with_cache::<Caches>(config(
                    i as u64 + 1,
                    &nodes,
                    storage,
                )))
            })
            .collect();
        let members: Vec<Hql> = rt.block_on(async {
            let mut ms = Vec::new();
            for s in starts {
                ms.push(Hql(s
                    .await
                    .expect("a start task")
                    .expect("start_node_with_cache")));
            }
            ms
        });
        let l = rt.block_on(until_serving(&members));
        fo.push(common::crash_leader(rt, rts, members, l));
    }

    // The steady cluster: three members on the bench's runtime.
    let (members, l) = rt.block_on(cluster(storage));
    let (lead, follow) = (members[l].clone(), members[(l + 1) % 3].clone());
    // Which members still apply writes after each phase ("L" the leader,
    // "F" the follower written through and read from, "f" the other; "x" one
    // that does not).
    let mut health = Vec::new();
    let mut check = |phase: &str| {
        let r = rt.block_on(running(&members, l, phase));
        let tag = |i: usize, c: char| if r[i] { c } else { 'x' };
        let s = format!(
            "{phase}: {}{}{}",
            tag(l, 'L'),
            tag((l + 1) % 3, 'F'),
            tag((l + 2) % 3, 'f')
        );
        eprintln!("   members applying after {s}");
        health.push(s);
        r
    };
    let (w_p50, w_p99, w_mean) = rt.block_on(common::latency(lead.clone()));
    eprintln!("   leader write p50 {w_p50:.1} µs");
    check("leader writes");
    let (f_p50, f_p99, _) = rt.block_on(common::latency(follow.clone()));
    eprintln!("   follower write p50 {f_p50:.1} µs");
    check("follower writes");
    rt.block_on(async {
        for i in 0..KEYS {
            lead.put(i).await.expect("fill");
        }
    });
    let tput = rt.block_on(common::throughput(vec![lead.clone()]));
    let spread = rt.block_on(common::throughput(members.clone()));
    eprintln!("   throughput {tput:.0} ops/s on the leader, {spread:.0} spread");
    let applying = check("throughput");
    // Gets on the follower written through, or on the other one if the
    // former no longer applies writes (see the purge panic in main.rs).
    let (reader, reader_tag) = if applying[(l + 1) % 3] || !applying[(l + 2) % 3] {
        (follow.clone(), "F")
    } else {
        (members[(l + 2) % 3].clone(), "f")
    };
    // The follower has applied every write once its get of the last key
    // written on the leader finds it (writes above are raft-committed, not
    // necessarily applied on this follower yet).
    rt.block_on(async {
        let last = key(KEYS - 1);
        loop {
            let v: Option<Val> = reader.0.get(Caches::W1, last.clone()).await.expect("a get");
            if v.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let get = common::get_ns(rt, move |k| {
        let r = reader.clone();
        async move {
            let v: Option<Val> = r.0.get(Caches::W1, k).await.expect("a get");
            v.is_some()
        }
    });
    eprintln!("   follower get {get:.1} ns");
    let rss = match storage {
        Storage::Memory => crate::rss_per_entry("hiqlite-0.15"),
        Storage::Disk => None,
    };
    let where_log = match storage {
        Storage::Memory => "log and snapshots in memory",
        Storage::Disk => {
            "log in WAL files and snapshots on disk (the default), synced every 200 ms"
        }
    };
    common::row(
        storage.system(),
        json!({
            "raft_running_after": health,
            "get_on": reader_tag,
            "mode": format!("3 Raft members in one process, plaintext, cache only, {where_log}; \
                     Client::put: Raft client_write (committed on a majority, i.e. \
                     appended to 2 of 3 logs, and applied on the leader; a follower forwards \
                     to the leader over its API stream)"),
            "w_leader_p50_us": w_p50,
            "w_leader_p99_us": w_p99,
            "w_leader_mean_us": w_mean,
            "w_follower_p50_us": f_p50,
            "w_follower_p99_us": f_p99,
            "w_tput_ops": tput,
            "w_tput_spread_ops": spread,
            "get_ns": get,
            "rss_per_entry_bytes": rss,
            "notes": "cold start: 10 runs, each on a fresh 2-worker runtime, from spawning the 3 \
                      start_node_with_cache to every member healthy (leader known) and one put \
                      through each member succeeded; failover: 5 runs, each member on its own \
                      1-worker runtime, the leader's runtime dropped (a crash), 4 writers on the \
                      survivors, probes (500 ms timeout, retried) on both survivors from the \
                      stop, a run counted as 30 s (unrecovered) if none succeeds by then; \
                      stranded = writes in flight at the stop that failed or hung 10 s (summed \
                      over runs); rss (memory storage only): a single-member cluster, \
                      1,000,000 puts; raft_running_after: after each phase a marker put \
                      on the leader and read on every member within 3 s; L leader, F the \
                      follower written through and read from, f the other follower (get_on: the follower read from), x a member \
                      that did not apply it (or, for L, the put failed)",
        }),
        [cold, common::failover_fields(&fo)],
    )
}

/// In the memory child: 1,000,000 W1 entries in a single-member cluster.
pub(crate) fn rss_fill(n: usize) -> Box<dyn std::any::Any> {
    let rt = runtime(2);
    let client = rt.block_on(async {
        let nodes: Vec<Node> = nodes().into_iter().take(1).collect();
        let c = Hql(
            start_node_with_cache::<Caches>(config(1, &nodes, Storage::Memory))
                .await
                .expect("start_node_with_cache"),
        );
        until_serving(std::slice::from_ref(&c)).await;
        for i in 0..n {
            c.0.put(Caches::W1, key(i), &val(i), None)
                .await
                .expect("put");
        }
        c
    });
    Box::new((rt, client))
}

/// Removes the disk variant's data directories.
pub(crate) fn remove_data() {
    let _ = std::fs::remove_dir_all(data_base());
}
