//! A typed cache on moka.

use std::any::type_name;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::Expiry;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::{EventKind, EventSender, Events, Origin};
use crate::options::{CacheOptions, Capacity, check_ttl};
use crate::schema::Schema;
use crate::snapshot::{CacheSnapshot, RestoreReport, SnapshotEntry};
use crate::{Result, StoreError};

/// What a cache can hold: any owned serde type that can cross threads.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// What moka stores per key: the shared value and the little the policies need.
struct Slot<V> {
    value: Arc<V>,
    /// When the entry's TTL (per entry or per cache, whichever is shorter)
    /// runs out. Kept so that a snapshot can carry the remaining TTL.
    expires_at: Option<Instant>,
    /// Key length plus encoded value length; only computed for byte bounds.
    weight: u32,
}

impl<V> Clone for Slot<V> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            expires_at: self.expires_at,
            weight: self.weight,
        }
    }
}

/// Per entry expiry: each slot knows its own deadline.
struct SlotExpiry;

impl<V> Expiry<String, Slot<V>> for SlotExpiry {
    fn expire_after_create(&self, _: &String, slot: &Slot<V>, now: Instant) -> Option<Duration> {
        slot.expires_at.map(|at| at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot<V>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        slot.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

/// A cache of `V` values under `String` keys.
///
/// Reads are synchronous lookups in a `moka::sync::Cache` returning the shared
/// `Arc<V>`: no decoding, no channel, no lock beyond moka's. Writes come either
/// typed (from this node) or as postcard bytes (replicated from a peer, through
/// [`crate::ErasedCache`]).
pub struct TypedCache<V> {
    name: Arc<str>,
    inner: moka::sync::Cache<String, Slot<V>>,
    options: CacheOptions,
    events: EventSender,
    decode_errors: AtomicU64,
    schema: Schema,
    schema_mismatches: AtomicU64,
    /// When a schema mismatch was last logged: at most once a minute.
    mismatch_logged: Mutex<Option<Instant>>,
}

/// How often a cache logs values refused for their schema.
const MISMATCH_LOG_EVERY: Duration = Duration::from_secs(60);

impl<V> fmt::Debug for TypedCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCache")
            .field("name", &self.name)
            .field("value_type", &type_name::<V>())
            .field("schema", &self.schema)
            .field("entries", &self.inner.entry_count())
            .field("options", &self.options)
            .finish()
    }
}

impl<V: Value> TypedCache<V> {
    /// Creates a cache.
    ///
    /// # Errors
    /// [`StoreError::InvalidOptions`] or [`StoreError::InvalidName`].
    pub fn new(name: &str, options: CacheOptions) -> Result<Self> {
        crate::registry::check_name(name)?;
        options.validate(name)?;
        let events = EventSender::new(options.event_buffer);
        let mut builder = moka::sync::Cache::builder()
            .name(name)
            .expire_after(SlotExpiry);
        if options.eviction_events {
            let listener_events = events.clone();
            builder = builder.eviction_listener(move |key: Arc<String>, _slot: Slot<V>, cause| {
                let kind = match cause {
                    RemovalCause::Expired => EventKind::Expired,
                    RemovalCause::Size => EventKind::Evicted,
                    // Deletes, clears and overwrites send their own events.
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                listener_events.emit(kind, Some(&key), Origin::Local);
            });
        }
        match options.capacity {
            Capacity::Unbounded => {}
            Capacity::Entries(n) => builder = builder.max_capacity(n),
            Capacity::Bytes(n) => {
                builder = builder
                    .max_capacity(n)
                    .weigher(|_: &String, slot: &Slot<V>| slot.weight);
            }
        }
        if let Some(tti) = options.time_to_idle {
            builder = builder.time_to_idle(tti);
        }
        let (schema, untraced) = Schema::of_explained::<V>(options.schema_version.unwrap_or(0));
        if options.schema_version.is_none()
            && let Some(why) = untraced
        {
            tracing::warn!(
                cache = name,
                value_type = type_name::<V>(),
                why,
                "the value type's serde shape cannot be traced: set CacheOptions::schema_version \
                 and bump it whenever the type changes, or members running different releases \
                 may decode each other's values wrongly"
            );
        }
        Ok(Self {
            name: name.into(),
            inner: builder.build(),
            options,
            events,
            decode_errors: AtomicU64::new(0),
            schema,
            schema_mismatches: AtomicU64::new(0),
            mismatch_logged: Mutex::new(None),
        })
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache's schema identity: what values it encodes and decodes.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The cache's options.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Looks a key up. Synchronous and local.
    #[inline]
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.inner.get(key).map(|slot| slot.value)
    }

    /// Whether the key holds a live value.
    pub fn contains(&self, key: &str) -> bool {
        self.inner.contains_key(key)
    }

    /// Encodes a value with the cache's codec (postcard).
    ///
    /// # Errors
    /// [`StoreError::Encode`] if serde refuses the value.
    pub fn encode(&self, value: &V) -> Result<Vec<u8>> {
        postcard::to_allocvec(value).map_err(|source| StoreError::Encode {
            cache: self.name.to_string(),
            source,
        })
    }

    /// Decodes bytes as the cache's value type.
    ///
    /// # Errors
    /// [`StoreError::Decode`]; counted in [`TypedCache::decode_errors`].
    pub fn decode(&self, key: &str, bytes: &[u8]) -> Result<V> {
        postcard::from_bytes(bytes).map_err(|source| {
            self.decode_errors.fetch_add(1, Ordering::Relaxed);
            StoreError::Decode {
                cache: self.name.to_string(),
                key: key.to_owned(),
                type_name: type_name::<V>(),
                source,
            }
        })
    }

    /// Inserts a typed value. `ttl` overrides the cache's time to live when
    /// it is shorter.
    ///
    /// # Errors
    /// [`StoreError::InvalidTtl`]; [`StoreError::Encode`] when the cache is
    /// bounded in bytes and the value cannot be sized.
    pub fn insert(
        &self,
        key: String,
        value: Arc<V>,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<()> {
        let encoded_len = match self.options.capacity {
            Capacity::Bytes(_) => {
                postcard::experimental::serialized_size(&*value).map_err(|source| {
                    StoreError::Encode {
                        cache: self.name.to_string(),
                        source,
                    }
                })?
            }
            _ => 0,
        };
        self.insert_sized(key, value, encoded_len, ttl, origin)
    }

    /// Inserts a value whose encoded length the caller already knows (it
    /// holds the bytes), sparing a second encoding for byte-bounded caches.
    ///
    /// # Errors
    /// [`StoreError::InvalidTtl`].
    pub fn insert_sized(
        &self,
        key: String,
        value: Arc<V>,
        encoded_len: usize,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<()> {
        check_ttl(ttl)?;
        let ttl = match (ttl, self.options.time_to_live) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let weight = u32::try_from(key.len().saturating_add(encoded_len)).unwrap_or(u32::MAX);
        let slot = Slot {
            value,
            expires_at: ttl.map(|d| Instant::now() + d),
            weight,
        };
        // The event goes out after the value is readable.
        let event_key = self.events.listened().then(|| key.clone());
        self.inner.insert(key, slot);
        if let Some(key) = event_key {
            self.events.emit(EventKind::Put, Some(&key), origin);
        }
        Ok(())
    }

    /// Decodes `bytes`, encoded by a member whose cache has `schema`, and
    /// inserts the value: how replicated writes land.
    ///
    /// Bytes of another schema are never decoded: the key is invalidated (a
    /// read misses rather than serve an older value or a wrong one), the
    /// mismatch counted ([`TypedCache::schema_mismatches`]) and logged at
    /// most once a minute, without the key. A value that does not decode
    /// likewise invalidates the key, is counted and logged.
    ///
    /// # Errors
    /// [`StoreError::SchemaMismatch`], [`StoreError::Decode`],
    /// [`StoreError::InvalidTtl`].
    pub fn insert_encoded(
        &self,
        key: String,
        bytes: &[u8],
        schema: Schema,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<()> {
        if schema != self.schema {
            self.remove(&key, origin);
            self.schema_mismatch(schema, 1);
            return Err(StoreError::SchemaMismatch {
                cache: self.name.to_string(),
                ours: self.schema,
                theirs: schema,
            });
        }
        match self.decode(&key, bytes) {
            Ok(value) => self.insert_sized(key, Arc::new(value), bytes.len(), ttl, origin),
            Err(e) => {
                // Never the key: keys can be secrets (the error's message leaves it out too).
                tracing::warn!(cache = %self.name, error = %e, "dropping a value that does not decode");
                self.remove(&key, origin);
                Err(e)
            }
        }
    }

    /// Removes a key; true if it held a value.
    pub fn remove(&self, key: &str, origin: Origin) -> bool {
        let removed = self.inner.remove(key).is_some();
        if removed {
            self.events.emit(EventKind::Delete, Some(key), origin);
        }
        removed
    }

    /// Removes every entry.
    pub fn clear(&self, origin: Origin) {
        self.inner.invalidate_all();
        self.events.emit(EventKind::Clear, None, origin);
    }

    /// Subscribes to this cache's change events.
    /// Expirations and evictions are heard only from a cache created with
    /// `CacheOptions::eviction_events(true)`.
    pub fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    /// Approximate number of live entries (moka counts lazily; call
    /// [`TypedCache::run_pending_tasks`] first for an exact figure).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Sum of the entry weights (bytes for byte-bounded caches, else entries).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Runs moka's pending housekeeping now: evictions, expiries and their
    /// events otherwise happen lazily during later operations.
    pub fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks();
    }

    /// How many values failed to decode since start.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }

    /// How many values of another schema were refused since start.
    pub fn schema_mismatches(&self) -> u64 {
        self.schema_mismatches.load(Ordering::Relaxed)
    }

    /// Counts `values` of schema `theirs` refused by the caller (a remote
    /// lookup's answer, say); logs it when the last such line is a minute
    /// old. Writes and restores of another schema count themselves.
    pub fn schema_mismatch(&self, theirs: Schema, values: u64) {
        let total = self.schema_mismatches.fetch_add(values, Ordering::Relaxed) + values;
        let now = Instant::now();
        let mut logged = self
            .mismatch_logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.is_none_or(|at| now.duration_since(at) >= MISMATCH_LOG_EVERY) {
            *logged = Some(now);
            tracing::warn!(
                cache = %self.name,
                ours = %self.schema,
                theirs = %theirs,
                refused_since_start = total,
                "values written by a member with another schema of this cache are not decoded: \
                 their keys read as misses here (expected while a release that changed the \
                 value type rolls out; logged at most once a minute)"
            );
        }
    }

    /// Every key held, shared with the cache (no key is copied): what a
    /// streamed snapshot lists. Writes may go on meanwhile: a key held
    /// throughout is visited; one added or removed meanwhile may or may not be.
    pub fn keys(&self) -> impl Iterator<Item = Arc<String>> + '_ {
        self.inner.iter().map(|(k, _)| k)
    }

    /// One entry as a snapshot holds it: the key, its encoded value and its
    /// remaining TTL; `None` when absent or expired.
    ///
    /// # Errors
    /// [`StoreError::Encode`] if the value cannot be encoded.
    pub fn snapshot_entry(&self, key: &str) -> Result<Option<SnapshotEntry>> {
        let Some(slot) = self.inner.get(key) else {
            return Ok(None);
        };
        let ttl = match slot.expires_at {
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(None),
            },
            None => None,
        };
        Ok(Some(SnapshotEntry {
            key: key.to_owned(),
            value: self.encode(&slot.value)?,
            ttl,
        }))
    }

    /// Copies the cache as (key, encoded value, remaining TTL) triples.
    /// Entries whose TTL has run out are left out. Writes may go on meanwhile:
    /// each entry is read atomically, the whole is not a point in time.
    ///
    /// # Errors
    /// [`StoreError::Encode`] if a value cannot be encoded.
    pub fn snapshot(&self) -> Result<CacheSnapshot> {
        let now = Instant::now();
        let mut entries =
            Vec::with_capacity(usize::try_from(self.inner.entry_count()).unwrap_or(0));
        for (key, slot) in &self.inner {
            let ttl = match slot.expires_at {
                Some(at) if at <= now => continue,
                Some(at) => Some(at - now),
                None => None,
            };
            entries.push(SnapshotEntry {
                key: key.as_str().to_owned(),
                value: self.encode(&slot.value)?,
                ttl,
            });
        }
        Ok(CacheSnapshot {
            cache: self.name.to_string(),
            schema: self.schema,
            entries,
        })
    }

    /// Replaces the cache's contents by a snapshot. Entries that do not
    /// decode are skipped, counted and logged; a snapshot of another schema
    /// leaves the cache empty (every entry counted as a schema mismatch).
    pub fn restore(&self, snapshot: &CacheSnapshot, origin: Origin) -> RestoreReport {
        self.clear(origin);
        let mut report = RestoreReport::default();
        if snapshot.schema != self.schema {
            report.failed = snapshot.entries.len();
            self.schema_mismatch(snapshot.schema, snapshot.entries.len() as u64);
            return report;
        }
        for entry in &snapshot.entries {
            match self.insert_encoded(
                entry.key.clone(),
                &entry.value,
                snapshot.schema,
                entry.ttl,
                origin,
            ) {
                Ok(()) => report.restored += 1,
                Err(_) => report.failed += 1,
            }
        }
        report
    }
}
