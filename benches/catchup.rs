//! A new member catching up a big cache by a streamed snapshot, while the
//! leader takes 1,000 writes a second.
//!
//! Members 0 and 1 run in this process and are loaded with
//! `REDHAC_CATCHUP_ENTRIES` values of 1 KiB (default 1,000,000: about
//! 1 GiB per member). Member 2, the new one, is this same binary started
//! again as a child process, so this process's RSS is the two old members'
//! (the leader's snapshot memory shows as growth above the steady state).
//! Printed: the time from starting the new member to it serving with every
//! entry, the peak RSS of this process above its steady state (same load,
//! before the new member), and the writes' p50/p99/max before and during the
//! catch-up.
//!
//! Run: `cargo bench -p redhac --bench catchup` (about 2 minutes, 4 GiB).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redhac::{AckLevel, CacheOptions, Config, Redhac, Role, WriteOptions};

const TOKEN: &str = "catchup-bench-token-0123456789";
const VALUE: usize = 1024;
const WRITES_PER_SEC: u64 = 1000;

fn config(hosts: &str) -> Config {
    Config::from_vars([
        ("HA_MODE", "true"),
        ("HA_HOSTS", hosts),
        ("CACHE_AUTH_TOKEN", TOKEN),
        ("CACHE_TLS", "false"),
    ])
    .expect("config")
}

async fn member(hosts: &str, name: String, listener: Option<TcpListener>) -> Redhac {
    let mut b = Redhac::builder()
        .config(config(hosts))
        .hostname(name)
        .cache::<Vec<u8>>("c", CacheOptions::default());
    if let Some(l) = listener {
        b = b.listener(l);
    }
    b.start().await.expect("a member starts")
}

/// This process's resident memory, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Writes at `WRITES_PER_SEC` on `node` until `stop`; the latencies, and
/// the peak RSS sampled meanwhile. Writes over 100 ms are printed with when
/// they started.
async fn steady_writes(node: Redhac, stop: Arc<AtomicBool>) -> (Vec<Duration>, f64) {
    let began = Instant::now();
    let cache = node.cache::<Vec<u8>>("c").expect("cache");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / WRITES_PER_SEC));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut lat = Vec::new();
    let mut peak = 0f64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        if n.is_multiple_of(10) {
            peak = peak.max(rss_mib());
        }
        let start = Instant::now();
        let w = cache
            .put_with(
                format!("live{}", n % 1000),
                vec![1; VALUE],
                WriteOptions::default(),
            )
            .await;
        let took = start.elapsed();
        if took > Duration::from_millis(100) {
            let at = start.duration_since(began).as_secs_f64();
            println!(
                "  a write took {:.0} ms, {at:.2} s into the phase ({w:?})",
                took.as_secs_f64() * 1e3
            );
        }
        if w.is_ok() {
            lat.push(took);
        }
    }
    (lat, peak)
}

async fn wait_leader(nodes: &[&Redhac]) -> usize {
    loop {
        let s: Vec<_> = nodes.iter().map(|n| n.status()).collect();
        if let Some(l) = (0..s.len()).find(|&i| s[i].role == Role::Leader)
            && s.iter().all(|x| x.leader == Some(s[l].me) && x.serving)
        {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The new member: serve, then report when it holds `entries` entries.
async fn child(hosts: String, name: String, entries: u64) {
    let started = Instant::now();
    let node = member(&hosts, name, None).await;
    let cache = node.cache::<Vec<u8>>("c").expect("cache");
    loop {
        if node.status().serving {
            cache.run_pending_tasks();
            if cache.entry_count() >= entries {
                println!(
                    "READY {} {}",
                    started.elapsed().as_millis(),
                    cache.entry_count()
                );
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Stay a member until the parent is done.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    node.shutdown().await.ok();
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let entries: u64 = std::env::var("REDHAC_CATCHUP_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let (Ok(hosts), Ok(name)) = (
        std::env::var("REDHAC_CATCHUP_HOSTS"),
        std::env::var("REDHAC_CATCHUP_NAME"),
    ) {
        rt.block_on(child(hosts, name, entries));
        return;
    }
    rt.block_on(parent(entries));
}

async fn parent(entries: u64) {
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let names: Vec<String> = ls
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    let hosts = names
        .iter()
        .map(|n| format!("http://{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut ls = ls.into_iter();
    let a = member(&hosts, names[0].clone(), ls.next()).await;
    let b = member(&hosts, names[1].clone(), ls.next()).await;
    drop(ls); // member 2's port: the child binds it itself
    let leader = [&a, &b][wait_leader(&[&a, &b]).await].clone();

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..64)
        .map(|_| {
            let (cache, next) = (leader.cache::<Vec<u8>>("c").expect("cache"), next.clone());
            tokio::spawn(async move {
                let at_leader = WriteOptions::default().ack(AckLevel::Leader);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= entries {
                        break;
                    }
                    let mut v = vec![0u8; VALUE];
                    v[..8].copy_from_slice(&i.to_le_bytes());
                    cache
                        .put_with(format!("k{i}"), v, at_leader)
                        .await
                        .expect("load");
                }
            })
        })
        .collect();
    for l in loaders {
        l.await.expect("loader");
    }
    let load = started.elapsed();
    // Both members hold everything before measuring.
    while a.status().applied_index != b.status().applied_index
        || a.status().applied_index < a.status().commit_index
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "loaded {entries} entries of {VALUE} B in {:.1} s ({:.0}/s); RSS {:.0} MiB",
        load.as_secs_f64(),
        entries as f64 / load.as_secs_f64(),
        rss_mib()
    );

    // The steady state: the same write load, no new member.
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(steady_writes(leader.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut before, steady) = w.await.expect("writer");
    before.sort();

    // The new member.
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(steady_writes(leader.clone(), stop.clone()));
    let spawned = Instant::now();
    let mut joiner = Command::new(std::env::current_exe().expect("this binary"))
        .env("REDHAC_CATCHUP_HOSTS", &hosts)
        .env("REDHAC_CATCHUP_NAME", &names[2])
        .env("REDHAC_CATCHUP_ENTRIES", entries.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the new member");
    let stdout = joiner.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("READY"))
    })
    .await
    .expect("reader");
    let to_ready = spawned.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut during, peak) = w.await.expect("writer");
    during.sort();
    drop(joiner.stdin.take());
    let _ = joiner.wait();

    println!(
        "new member ready (serving, every entry): {:.2} s  [{}]",
        to_ready.as_secs_f64(),
        ready.unwrap_or_default()
    );
    println!(
        "leader process RSS: steady {steady:.0} MiB, peak during catch-up {peak:.0} MiB: +{:.0} MiB",
        peak - steady
    );
    println!(
        "Quorum writes at {WRITES_PER_SEC}/s on the leader: before p50 {:.2} ms p99 {:.2} ms max {:.1} ms ({} writes); during catch-up p50 {:.2} ms p99 {:.2} ms max {:.1} ms ({} writes)",
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        percentile(&before, 1.0),
        before.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
        during.len(),
    );
    a.shutdown().await.ok();
    b.shutdown().await.ok();
}
