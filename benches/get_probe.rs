//! A get-hit loop for instruction counting under callgrind, which (unlike
//! wall-clock time on a shared VM) is repeatable. Used by
//! `benches/get_instructions.sh`; alone it is `get_probe raw|expiry|redhac N`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redhac::{CacheOptions, Redhac};
#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/w1.rs"]
mod w1;
use w1::{KEYS, Val, key, val};

/// moka with a per-entry expiry policy, as redhac configures it.
struct NoExpiry;

impl moka::Expiry<String, Arc<Val>> for NoExpiry {
    fn expire_after_create(&self, _: &String, _: &Arc<Val>, _: Instant) -> Option<Duration> {
        None
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.iter().any(|a| a == "--bench") {
        eprintln!("usage: get_probe raw|expiry|redhac GETS (see benches/get_instructions.sh)");
        return;
    }
    let n: usize = args[2].parse().expect("GETS is a number");
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let get: Box<dyn Fn(&str) -> bool> = match args[1].as_str() {
        "raw" | "expiry" => {
            let builder = moka::sync::Cache::builder().max_capacity(100_000);
            let cache: moka::sync::Cache<String, Arc<Val>> = if args[1] == "raw" {
                builder.build()
            } else {
                builder.expire_after(NoExpiry).build()
            };
            for (i, k) in keys.iter().enumerate() {
                cache.insert(k.clone(), Arc::new(val(i)));
            }
            Box::new(move |k| cache.get(k).is_some())
        }
        "redhac" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            let cache = rt.block_on(async {
                let redhac = Redhac::builder()
                    .cache::<Val>("w1", CacheOptions::default().max_capacity(100_000))
                    .start()
                    .await
                    .expect("start");
                let cache = redhac.cache::<Val>("w1").expect("the cache");
                for (i, k) in keys.iter().enumerate() {
                    cache.put(k.clone(), val(i)).await.expect("put");
                }
                cache
            });
            Box::new(move |k| cache.get(k).is_some())
        }
        "follower" => {
            // Three members in this process; the keys written on the
            // leader, read on a follower (the runtime keeps running).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            let cache = rt.block_on(async {
                let nodes = cluster::start_cluster::<Val>(3).await;
                let l = cluster::leader(&nodes.iter().collect::<Vec<_>>()).await;
                let lead = nodes[l].cache::<Val>("w1").expect("the cache");
                for (i, k) in keys.iter().enumerate() {
                    lead.put(k.clone(), val(i)).await.expect("put");
                }
                let follower = nodes[(l + 1) % 3].cache::<Val>("w1").expect("the cache");
                std::mem::forget(nodes);
                follower
            });
            std::mem::forget(rt);
            Box::new(move |k| cache.get(k).is_some())
        }
        other => panic!("unknown system {other:?}"),
    };
    gets(&*get, &keys, &w1::get_order(), n);
}

/// The measured loop (callgrind's `--toggle-collect=*get_probe*gets*`
/// counts only this).
#[inline(never)]
fn gets(get: &dyn Fn(&str) -> bool, keys: &[String], order: &[usize], n: usize) {
    for i in 0..n {
        assert!(black_box(get(&keys[order[i % order.len()]])));
    }
}
