//! A local get hit on a redhac cache against a raw moka get, in one run.
//!
//! `cargo bench -p redhac --bench get`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "common/w1.rs"]
mod w1;
use redhac::{CacheOptions, Redhac};
use w1::{KEYS, Val, key, val};

fn get_hit(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();

    let raw: moka::sync::Cache<String, Arc<Val>> =
        moka::sync::Cache::builder().max_capacity(100_000).build();
    for (i, k) in keys.iter().enumerate() {
        raw.insert(k.clone(), Arc::new(val(i)));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let cache = rt.block_on(async {
        let redhac = Redhac::builder()
            .cache::<Val>("w1", CacheOptions::default().max_capacity(100_000))
            .start()
            .await
            .expect("start");
        let cache = redhac.cache::<Val>("w1").expect("cache");
        for (i, k) in keys.iter().enumerate() {
            cache.put(k.clone(), val(i)).await.expect("put");
        }
        cache
    });

    let mut group = c.benchmark_group("get_hit");
    let mut i = 0;
    group.bench_function("raw_moka", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(raw.get(black_box(keys[i].as_str())))
        })
    });
    let mut i = 0;
    group.bench_function("redhac", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(black_box(keys[i].as_str())))
        })
    });
    group.finish();
}

criterion_group!(benches, get_hit);
criterion_main!(benches);
