//! Workload W1's values, and the local measurements: gets and memory.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use redhac::{CacheOptions, Redhac};
use serde_json::{Map, Value, json};

pub(crate) use crate::value::{KEYS, Val, key, val};

const GETS: usize = 100_000;
const RSS_ENTRIES: usize = 1_000_000;

/// ns per get over 100,000 gets of present keys, run as a spawned task; the
/// median of five rounds.
pub(crate) fn get_ns(
    rt: &tokio::runtime::Runtime,
    get: Arc<dyn Fn(&str) -> bool + Send + Sync>,
) -> f64 {
    rt.block_on(async move {
        tokio::spawn(async move { get_rounds(&*get) })
            .await
            .expect("the get task")
    })
}

/// ns per get over 100,000 gets of present keys in this thread; the median
/// of five rounds.
///
/// On a runtime's worker the loop runs in `block_in_place`, which hands the
/// worker's queued tasks to another thread: a member's task left in this
/// worker's LIFO slot (which no other worker steals) would otherwise wait
/// out the whole loop, and its follower lose its lease mid-loop.
pub(crate) fn get_rounds(get: &dyn Fn(&str) -> bool) -> f64 {
    let keys: Vec<String> = crate::value::get_order().into_iter().map(key).collect();
    let mut rounds: Vec<f64> = tokio::task::block_in_place(|| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for i in 0..GETS {
                    assert!(black_box(get(&keys[i % KEYS])), "a W1 key is missing");
                }
                start.elapsed().as_nanos() as f64 / GETS as f64
            })
            .collect()
    });
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// A raw moka cache holding the W1 keys.
pub(crate) fn moka_filled() -> moka::sync::Cache<String, Arc<Val>> {
    let cache = moka::sync::Cache::builder().max_capacity(100_000).build();
    for i in 0..KEYS {
        cache.insert(key(i), Arc::new(val(i)));
    }
    cache.run_pending_tasks();
    cache
}

pub(crate) fn moka_row(rt: &tokio::runtime::Runtime) -> Map<String, Value> {
    let cache = moka_filled();
    let get_ns = get_ns(rt, Arc::new(move |k| cache.get(k).is_some()));
    crate::row(
        "moka",
        json!({ "get_ns": get_ns, "rss_per_entry_bytes": rss_per_entry("moka") }),
    )
}

pub(crate) fn redhac_row(rt: &tokio::runtime::Runtime) -> Map<String, Value> {
    let cache = rt.block_on(async {
        let redhac = Redhac::builder()
            .cache::<Val>("w1", CacheOptions::default().max_capacity(100_000))
            .start()
            .await
            .expect("start");
        let cache = redhac.cache::<Val>("w1").expect("the cache");
        for i in 0..KEYS {
            cache.put(key(i), val(i)).await.expect("put");
        }
        cache
    });
    let get_ns = get_ns(rt, Arc::new(move |k| cache.get(k).is_some()));
    crate::row(
        "redhac-standalone",
        json!({ "mode": "standalone", "get_ns": get_ns, "rss_per_entry_bytes": rss_per_entry("redhac") }),
    )
}

/// Resident bytes per entry, measured in a fresh child process.
pub(crate) fn rss_per_entry(system: &str) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args(["--rss-child", system])
        .output()
        .expect("the memory child runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "the memory child printed no number: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    pages * 4096
}

/// In the child: fill 1,000,000 W1 entries and print resident bytes per entry.
pub(crate) fn rss_child(system: &str) {
    let before = rss_bytes();
    let keep: Box<dyn std::any::Any> = match system {
        "moka" => {
            let cache: moka::sync::Cache<String, Arc<Val>> = moka::sync::Cache::builder()
                .max_capacity(2 * RSS_ENTRIES as u64)
                .build();
            for i in 0..RSS_ENTRIES {
                cache.insert(key(i), Arc::new(val(i)));
            }
            cache.run_pending_tasks();
            Box::new(cache)
        }
        "redhac" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            let cache = rt.block_on(async {
                let redhac = Redhac::builder()
                    .cache::<Val>(
                        "w1",
                        CacheOptions::default().max_capacity(2 * RSS_ENTRIES as u64),
                    )
                    .start()
                    .await
                    .expect("start");
                let cache = redhac.cache::<Val>("w1").expect("the cache");
                for i in 0..RSS_ENTRIES {
                    cache.put(key(i), val(i)).await.expect("put");
                }
                cache
            });
            Box::new(cache)
        }
        other => panic!("unknown system {other:?}"),
    };
    let after = rss_bytes();
    println!(
        "{:.1}",
        (after.saturating_sub(before)) as f64 / RSS_ENTRIES as f64
    );
    drop(keep);
}
