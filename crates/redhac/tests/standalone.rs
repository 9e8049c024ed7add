//! The facade in standalone mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redhac::{CacheOptions, Config, Error, EventKind, Origin, Redhac, StoreError, WriteOptions};

async fn node() -> Redhac {
    Redhac::builder()
        .cache::<String>("names", CacheOptions::default())
        .cache::<u64>("numbers", CacheOptions::default().max_capacity(1_000))
        .start()
        .await
        .expect("a standalone node starts")
}

#[tokio::test]
async fn put_get_delete_clear() {
    let redhac = node().await;
    let names = redhac.cache::<String>("names").unwrap();
    names.put("a", "alpha".into()).await.unwrap();
    names.put("b", "beta".into()).await.unwrap();
    assert_eq!(names.get("a").as_deref().map(String::as_str), Some("alpha"));
    names.delete("a").await.unwrap();
    assert!(names.get("a").is_none());
    assert!(names.get("b").is_some());
    names.clear().await.unwrap();
    assert!(names.get("b").is_none());
}

#[tokio::test]
async fn unknown_cache_and_type_mismatch_are_errors() {
    let redhac = node().await;
    match redhac.cache::<u64>("names") {
        Err(Error::Store(StoreError::TypeMismatch { name, .. })) => assert_eq!(name, "names"),
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    match redhac.cache::<String>("missing") {
        Err(Error::Store(StoreError::UnknownCache { known, .. })) => {
            assert_eq!(known, "names, numbers")
        }
        other => panic!("expected an unknown cache, got {other:?}"),
    }
}

#[tokio::test]
async fn duplicate_cache_and_bad_options_fail_start() {
    let err = Redhac::builder()
        .cache::<u64>("x", CacheOptions::default())
        .cache::<String>("x", CacheOptions::default())
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::DuplicateCache(_))),
        "{err}"
    );
    let err = Redhac::builder()
        .cache::<u64>("x", CacheOptions::default().max_capacity(0))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_capacity"), "{err}");
}

#[tokio::test]
async fn an_invalid_config_given_in_code_fails_start() {
    let config = Config {
        buf_client: 0,
        ..Config::default()
    };
    let err = Redhac::builder().config(config).start().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("CACHE_BUF_CLIENT")),
        "{err}"
    );
}

#[tokio::test]
async fn per_entry_ttl_through_the_facade() {
    let redhac = node().await;
    let numbers = redhac.cache::<u64>("numbers").unwrap();
    numbers
        .put_with(
            "short",
            1,
            WriteOptions::default().ttl(Duration::from_millis(20)),
        )
        .await
        .unwrap();
    numbers.put("long", 2).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while numbers.get("short").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the TTL never expired the entry"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(numbers.get("long").as_deref(), Some(&2));
    let err = numbers
        .put_with("zero", 1, WriteOptions::default().ttl(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::InvalidTtl(_))),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_keys_are_refused() {
    let redhac = node().await;
    let numbers = redhac.cache::<u64>("numbers").unwrap();
    let key = "k".repeat(redhac::MAX_KEY_LEN + 1);
    assert!(matches!(
        numbers.put(key.clone(), 1).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(numbers.get(&key).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_insert_with_runs_the_loader_once_for_100_tasks() {
    let redhac = node().await;
    let names = redhac.cache::<String>("names").unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (names, loads, gate) = (names.clone(), loads.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                names
                    .get_or_insert_with("k", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Give the other tasks time to pile up on the key.
                        tokio::task::yield_now().await;
                        "loaded".to_string()
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().as_str(), "loaded");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        names.get("k").as_deref().map(String::as_str),
        Some("loaded")
    );
}

#[tokio::test]
async fn a_failed_load_caches_nothing_and_the_next_caller_loads() {
    let redhac = node().await;
    let names = redhac.cache::<String>("names").unwrap();
    let err = names
        .try_get_or_insert_with("k", || async {
            Err::<String, _>(std::io::Error::other("db down"))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Loader(e) if e.to_string() == "db down"),
        "{err}"
    );
    assert!(names.get("k").is_none());
    let v = names
        .try_get_or_insert_with("k", || async { Ok::<_, std::io::Error>("ok".to_string()) })
        .await
        .unwrap();
    assert_eq!(v.as_str(), "ok");
}

#[tokio::test]
async fn events_carry_kind_key_and_origin() {
    let redhac = node().await;
    let names = redhac.cache::<String>("names").unwrap();
    let mut events = names.subscribe();
    names.put("a", "x".into()).await.unwrap();
    names.delete("a").await.unwrap();
    names.clear().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = events.recv().await.unwrap();
        got.push((e.kind, e.key, e.origin));
    }
    assert_eq!(
        got,
        vec![
            (EventKind::Put, Some("a".to_string()), Origin::Local),
            (EventKind::Delete, Some("a".to_string()), Origin::Local),
            (EventKind::Clear, None, Origin::Local),
        ]
    );
}

#[tokio::test]
async fn after_shutdown_writes_fail_and_reads_miss() {
    let redhac = node().await;
    let names = redhac.cache::<String>("names").unwrap();
    names.put("a", "x".into()).await.unwrap();
    redhac.shutdown().await.unwrap();
    redhac.shutdown().await.unwrap();
    assert!(names.get("a").is_none());
    let err = names.put("b", "y".into()).await.unwrap_err();
    assert!(matches!(err, Error::ShutDown) && err.is_retryable());
}

#[test]
fn hits_and_misses_are_counted_per_cache() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let redhac = node().await;
            let names = redhac.cache::<String>("names").unwrap();
            names.put("a", "x".into()).await.unwrap();
            let _ = names.get("a");
            let _ = names.get("a");
            let _ = names.get("b");
        });
    });
    let text = handle.render();
    assert!(
        text.contains(r#"redhac_cache_hits_total{cache="names"} 2"#),
        "{text}"
    );
    // Described at start, with their help text.
    assert!(
        text.contains("# HELP redhac_cache_hits_total Local reads that found a value"),
        "{text}"
    );
    assert!(
        text.contains(r#"redhac_cache_misses_total{cache="names"} 1"#),
        "{text}"
    );
}
