//! Behaviour of the typed caches: expiry, eviction, snapshots, events, bad bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use redhac_store::{CacheOptions, Event, EventKind, Events, Origin, Store, StoreError, TypedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
    expires: u64,
}

fn session(user: &str) -> Arc<Session> {
    Arc::new(Session {
        user: user.into(),
        roles: vec!["admin".into()],
        expires: 42,
    })
}

/// Polls `cond` (running moka's housekeeping first) until it holds or 10 s pass.
fn wait_until<V: redhac_store::Value>(
    cache: &TypedCache<V>,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        cache.run_pending_tasks();
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::yield_now();
    }
}

fn drain(events: &mut Events) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv().expect("no lag in tests") {
        out.push(e);
    }
    out
}

#[test]
fn cache_ttl_expires_entries() {
    let c = TypedCache::<Session>::new(
        "s",
        CacheOptions::default().time_to_live(Duration::from_millis(30)),
    )
    .unwrap();
    c.insert("a".into(), session("a"), None, Origin::Local)
        .unwrap();
    wait_until(&c, "a expired", || c.get("a").is_none());
}

#[test]
fn per_entry_ttl_is_shorter_than_the_cache_ttl() {
    let c = TypedCache::<Session>::new(
        "s",
        CacheOptions::default().time_to_live(Duration::from_secs(3600)),
    )
    .unwrap();
    c.insert(
        "short".into(),
        session("a"),
        Some(Duration::from_millis(30)),
        Origin::Local,
    )
    .unwrap();
    c.insert("long".into(), session("b"), None, Origin::Local)
        .unwrap();
    wait_until(&c, "short expired", || c.get("short").is_none());
    assert!(
        c.get("long").is_some(),
        "the cache TTL of an hour cannot have run out"
    );
}

#[test]
fn per_entry_ttl_cannot_outlive_the_cache_ttl() {
    let c = TypedCache::<u32>::new(
        "s",
        CacheOptions::default().time_to_live(Duration::from_millis(30)),
    )
    .unwrap();
    c.insert(
        "k".into(),
        Arc::new(1),
        Some(Duration::from_secs(3600)),
        Origin::Local,
    )
    .unwrap();
    wait_until(&c, "k expired by the cache TTL", || c.get("k").is_none());
}

#[test]
fn time_to_idle_expires_untouched_entries() {
    let c = TypedCache::<u32>::new(
        "s",
        CacheOptions::default()
            .time_to_idle(Duration::from_millis(30))
            .eviction_events(true),
    )
    .unwrap();
    let mut events = c.subscribe();
    c.insert("k".into(), Arc::new(1), None, Origin::Local)
        .unwrap();
    // Only look with `contains`, which does not count as a read for TTI.
    wait_until(&c, "k idle-expired", || !c.contains("k"));
    let mut kinds = Vec::new();
    wait_until(&c, "the Expired event", || {
        kinds.extend(drain(&mut events).into_iter().map(|e| e.kind));
        kinds.len() >= 2
    });
    assert_eq!(kinds, vec![EventKind::Put, EventKind::Expired]);
}

#[test]
fn invalid_ttls_are_errors() {
    let c = TypedCache::<u32>::new("s", CacheOptions::default()).unwrap();
    let err = c
        .insert("k".into(), Arc::new(1), Some(Duration::ZERO), Origin::Local)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTtl(_)), "{err}");
    assert!(c.get("k").is_none());
}

#[test]
fn entry_capacity_evicts() {
    let options = CacheOptions::default()
        .max_capacity(10)
        .eviction_events(true);
    let c = TypedCache::<u32>::new("s", options).unwrap();
    let mut events = c.subscribe();
    for i in 0..200 {
        c.insert(format!("k{i}"), Arc::new(i), None, Origin::Local)
            .unwrap();
        // Touch early keys so moka's admission has a frequency signal.
        let _ = c.get("k0");
    }
    c.run_pending_tasks();
    assert!(c.entry_count() <= 10, "entries: {}", c.entry_count());
    let evicted = drain(&mut events)
        .into_iter()
        .filter(|e| e.kind == EventKind::Evicted)
        .count();
    assert!(evicted > 0, "no Evicted event");
}

#[test]
fn byte_capacity_counts_encoded_sizes() {
    let c = TypedCache::<String>::new("s", CacheOptions::default().max_bytes(1_000)).unwrap();
    for i in 0..100 {
        c.insert(
            format!("k{i:03}"),
            Arc::new("x".repeat(96)),
            None,
            Origin::Local,
        )
        .unwrap();
    }
    c.run_pending_tasks();
    // Each entry weighs 4 (key) + 1 (length prefix) + 96 bytes = 101.
    assert!(
        c.weighted_size() <= 1_000,
        "weighted size {}",
        c.weighted_size()
    );
    assert!(c.entry_count() <= 9, "entries {}", c.entry_count());
    assert!(c.entry_count() >= 1);
}

#[test]
fn snapshot_restores_values_and_remaining_ttls() {
    let a = TypedCache::<Session>::new("s", CacheOptions::default()).unwrap();
    for i in 0..50 {
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(3600));
        a.insert(
            format!("k{i}"),
            session(&format!("u{i}")),
            ttl,
            Origin::Local,
        )
        .unwrap();
    }
    let snap = a.snapshot().unwrap();
    assert_eq!(snap.cache, "s");
    assert_eq!(snap.entries.len(), 50);
    for e in &snap.entries {
        let i: usize = e.key[1..].parse().unwrap();
        match e.ttl {
            Some(t) => {
                assert!(i.is_multiple_of(2) && t <= Duration::from_secs(3600) && !t.is_zero())
            }
            None => assert_eq!(i % 2, 1),
        }
    }

    let b = TypedCache::<Session>::new("s", CacheOptions::default()).unwrap();
    b.insert("stale".into(), session("old"), None, Origin::Local)
        .unwrap();
    let report = b.restore(&snap, Origin::Peer);
    assert_eq!((report.restored, report.failed), (50, 0));
    assert!(b.get("stale").is_none(), "restore replaces the contents");
    for i in 0..50 {
        let k = format!("k{i}");
        assert_eq!(b.get(&k), a.get(&k));
    }
    assert_eq!(b.snapshot().unwrap().entries.len(), 50);
}

#[test]
fn snapshot_leaves_out_expired_entries_and_restore_skips_bad_ones() {
    let a = TypedCache::<u64>::new("s", CacheOptions::default()).unwrap();
    a.insert(
        "gone".into(),
        Arc::new(1),
        Some(Duration::from_millis(1)),
        Origin::Local,
    )
    .unwrap();
    a.insert("kept".into(), Arc::new(2), None, Origin::Local)
        .unwrap();
    wait_until(&a, "gone expired", || a.get("gone").is_none());
    let mut snap = a.snapshot().unwrap();
    assert_eq!(snap.entries.len(), 1);
    snap.entries.push(redhac_store::SnapshotEntry {
        key: "bad".into(),
        value: vec![0xff; 11],
        ttl: None,
    });
    let b = TypedCache::<u64>::new("s", CacheOptions::default()).unwrap();
    let report = b.restore(&snap, Origin::Peer);
    assert_eq!((report.restored, report.failed), (1, 1));
    assert_eq!(b.decode_errors(), 1);
}

#[test]
fn events_for_each_kind_with_origin() {
    let c = TypedCache::<u32>::new("s", CacheOptions::default()).unwrap();
    let mut events = c.subscribe();
    c.insert("a".into(), Arc::new(1), None, Origin::Local)
        .unwrap();
    c.insert_encoded(
        "a".into(),
        &postcard::to_allocvec(&2u32).unwrap(),
        c.schema(),
        None,
        Origin::Peer,
    )
    .unwrap();
    assert!(c.remove("a", Origin::Peer));
    assert!(!c.remove("a", Origin::Local), "second delete finds nothing");
    c.insert("b".into(), Arc::new(3), None, Origin::Local)
        .unwrap();
    c.clear(Origin::Local);
    let got = drain(&mut events);
    let ev = |kind, key: Option<&str>, origin| Event {
        kind,
        key: key.map(Into::into),
        origin,
    };
    assert_eq!(
        got,
        vec![
            ev(EventKind::Put, Some("a"), Origin::Local),
            ev(EventKind::Put, Some("a"), Origin::Peer),
            ev(EventKind::Delete, Some("a"), Origin::Peer),
            ev(EventKind::Put, Some("b"), Origin::Local),
            ev(EventKind::Clear, None, Origin::Local),
        ]
    );

    // Expired and Evicted come from moka's housekeeping, when asked for.
    let removals = CacheOptions::default().eviction_events(true);
    let c = TypedCache::<u32>::new("s", removals.clone()).unwrap();
    let mut events = c.subscribe();
    c.insert(
        "t".into(),
        Arc::new(4),
        Some(Duration::from_millis(1)),
        Origin::Local,
    )
    .unwrap();
    wait_until(&c, "an Expired event", || {
        drain(&mut events)
            .iter()
            .any(|e| e == &ev(EventKind::Expired, Some("t"), Origin::Local))
    });
    let c = TypedCache::<u32>::new("s", removals.max_capacity(1)).unwrap();
    let mut events = c.subscribe();
    for i in 0..50 {
        c.insert(format!("e{i}"), Arc::new(i), None, Origin::Local)
            .unwrap();
    }
    wait_until(&c, "an Evicted event", || {
        drain(&mut events)
            .iter()
            .any(|e| e.kind == EventKind::Evicted && e.origin == Origin::Local)
    });
}

#[test]
fn without_eviction_events_subscribers_hear_writes_but_not_removals() {
    let options = CacheOptions::default().max_capacity(1);
    let c = TypedCache::<u32>::new("s", options).unwrap();
    let mut events = c.subscribe();
    c.insert(
        "t".into(),
        Arc::new(1),
        Some(Duration::from_millis(1)),
        Origin::Local,
    )
    .unwrap();
    for i in 0..50 {
        c.insert(format!("e{i}"), Arc::new(i), None, Origin::Local)
            .unwrap();
    }
    wait_until(&c, "t expired and the rest evicted", || {
        c.run_pending_tasks();
        !c.contains("t") && c.entry_count() <= 1
    });
    let kinds: Vec<EventKind> = drain(&mut events).into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Put; 51]);
}

#[test]
fn a_slow_subscriber_is_told_it_lagged() {
    let c = TypedCache::<u32>::new("s", CacheOptions::default().event_buffer(4)).unwrap();
    let mut events = c.subscribe();
    for i in 0..10 {
        c.insert(format!("k{i}"), Arc::new(i), None, Origin::Local)
            .unwrap();
    }
    assert_eq!(events.try_recv(), Err(redhac_store::EventsError::Lagged(6)));
    assert_eq!(
        events.try_recv().unwrap().unwrap().key.as_deref(),
        Some("k6")
    );
}

#[test]
fn registry_typed_lookup_and_type_mismatch() {
    let mut b = Store::builder();
    b.add::<Session>("sessions", CacheOptions::default())
        .unwrap();
    b.add::<u64>("counters", CacheOptions::default()).unwrap();
    assert!(matches!(
        b.add::<u64>("counters", CacheOptions::default()),
        Err(StoreError::DuplicateCache(_))
    ));
    assert!(matches!(
        b.add::<u64>("", CacheOptions::default()),
        Err(StoreError::InvalidName(_))
    ));
    let store = b.build();
    assert!(store.typed::<Session>("sessions").is_ok());
    let err = store.typed::<String>("sessions").unwrap_err();
    assert!(matches!(err, StoreError::TypeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("Session"), "{err}");
    let err = store.typed::<u64>("nope").unwrap_err();
    assert!(err.to_string().contains("counters, sessions"), "{err}");
    assert_eq!(
        store
            .caches()
            .map(|c| c.name().to_owned())
            .collect::<Vec<_>>(),
        ["counters", "sessions"]
    );
}

#[test]
fn corrupt_value_on_apply_is_an_error_and_invalidates_the_key() {
    let mut b = Store::builder();
    b.add::<Session>("sessions", CacheOptions::default())
        .unwrap();
    let store = b.build();
    let typed = store.typed::<Session>("sessions").unwrap();
    typed
        .insert("k".into(), session("old"), None, Origin::Local)
        .unwrap();
    let erased = store.erased("sessions").unwrap();
    let err = erased
        .apply_put(
            "session-id-secret".into(),
            &[0x05, b'a'],
            erased.schema(),
            None,
            Origin::Peer,
        )
        .unwrap_err();
    match &err {
        StoreError::Decode { cache, key, .. } => {
            assert_eq!(
                (cache.as_str(), key.as_str()),
                ("sessions", "session-id-secret")
            )
        }
        other => panic!("expected a decode error, got {other}"),
    }
    // Keys can be secrets: the message, which gets logged, leaves it out.
    assert!(!err.to_string().contains("session-id-secret"), "{err}");
    erased
        .apply_put(
            "k".into(),
            &[0x05, b'a'],
            erased.schema(),
            None,
            Origin::Peer,
        )
        .unwrap_err();
    assert!(
        typed.get("k").is_none(),
        "the old value must not survive a failed update"
    );
    assert_eq!(erased.decode_errors(), 2);
    // A good value still applies afterwards.
    let good = postcard::to_allocvec(&*session("new")).unwrap();
    erased
        .apply_put("k".into(), &good, erased.schema(), None, Origin::Peer)
        .unwrap();
    assert_eq!(typed.get("k").unwrap().user, "new");
    assert_eq!(erased.get_encoded("k").unwrap(), Some(good));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let c = TypedCache::<Session>::new("s", CacheOptions::default().max_bytes(10_000)).unwrap();
        match c.insert_encoded("k".into(), &bytes, c.schema(), None, Origin::Peer) {
            Ok(()) => prop_assert!(c.get("k").is_some()),
            Err(StoreError::Decode { .. }) => prop_assert!(c.get("k").is_none()),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn encode_decode_round_trip(user in ".*", roles in proptest::collection::vec(".*", 0..4), expires: u64) {
        let c = TypedCache::<Session>::new("s", CacheOptions::default()).unwrap();
        let s = Session { user, roles, expires };
        let bytes = c.encode(&s).unwrap();
        prop_assert_eq!(c.decode("k", &bytes).unwrap(), s);
    }
}

/// The session type of the next release: a field added in front, so the
/// old bytes would decode into a value nobody wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SessionV2 {
    tenant: u32,
    user: String,
    roles: Vec<String>,
    expires: u64,
}

#[test]
fn values_of_another_schema_are_never_decoded() {
    let v1 = TypedCache::<Session>::new("s", CacheOptions::default().schema_version(1)).unwrap();
    let v2 = TypedCache::<SessionV2>::new("s", CacheOptions::default().schema_version(2)).unwrap();
    let same_version =
        TypedCache::<SessionV2>::new("s", CacheOptions::default().schema_version(1)).unwrap();
    assert_ne!(v1.schema(), v2.schema());
    assert_ne!(
        v1.schema(),
        same_version.schema(),
        "a forgotten bump is caught by the traced shape"
    );
    let old = session("alice");
    let bytes = v1.encode(&old).unwrap();
    let key = "session-id-secret";
    v2.insert(
        key.into(),
        Arc::new(SessionV2 {
            tenant: 7,
            user: "bob".into(),
            roles: vec![],
            expires: 1,
        }),
        None,
        Origin::Local,
    )
    .unwrap();
    let mut events = v2.subscribe();
    let err = v2
        .insert_encoded(key.into(), &bytes, v1.schema(), None, Origin::Peer)
        .unwrap_err();
    assert!(!err.to_string().contains(key), "{err}");
    assert!(
        matches!(&err, StoreError::SchemaMismatch { cache, ours, theirs }
            if cache == "s" && *ours == v2.schema() && *theirs == v1.schema()),
        "{err}"
    );
    assert!(
        v2.get(key).is_none(),
        "the older value is invalidated, not kept"
    );
    assert_eq!(drain(&mut events).len(), 1, "its delete is an event");
    assert_eq!((v2.schema_mismatches(), v2.decode_errors()), (1, 0));

    // A snapshot of the other schema restores nothing and says so.
    v1.insert("a".into(), old.clone(), None, Origin::Local)
        .unwrap();
    v1.insert("b".into(), old, None, Origin::Local).unwrap();
    let snap = v1.snapshot().unwrap();
    assert_eq!(snap.schema, v1.schema());
    let report = v2.restore(&snap, Origin::Peer);
    assert_eq!((report.restored, report.failed), (0, 2));
    assert_eq!(v2.schema_mismatches(), 3);
    assert_eq!(v2.entry_count(), 0);

    // The same schema applies as before.
    let mine = v2.encode(&SessionV2 {
        tenant: 1,
        user: "carol".into(),
        roles: vec![],
        expires: 2,
    });
    v2.insert_encoded("k".into(), &mine.unwrap(), v2.schema(), None, Origin::Peer)
        .unwrap();
    assert_eq!(v2.get("k").unwrap().user, "carol");
}
