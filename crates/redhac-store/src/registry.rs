//! The registry of named caches, and the type-erased view the runtime uses.

use std::any::{Any, type_name};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Origin;
use crate::options::CacheOptions;
use crate::schema::Schema;
use crate::snapshot::{CacheSnapshot, RestoreReport, SnapshotEntry};
use crate::typed::{TypedCache, Value};
use crate::{Result, StoreError};

/// A cache seen without its value type: what the replication runtime needs to
/// apply entries that arrive as bytes.
pub trait ErasedCache: Send + Sync + fmt::Debug {
    /// The cache's name.
    fn name(&self) -> &str;
    /// The Rust name of the value type (for messages).
    fn value_type(&self) -> &'static str;
    /// The cache's schema identity.
    fn schema(&self) -> Schema;
    /// Decodes and inserts a value encoded with `schema`; see
    /// [`TypedCache::insert_encoded`].
    ///
    /// # Errors
    /// [`StoreError::SchemaMismatch`] or [`StoreError::Decode`] (the key is
    /// invalidated), [`StoreError::InvalidTtl`].
    fn apply_put(
        &self,
        key: String,
        value: &[u8],
        schema: Schema,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<()>;
    /// Removes a key; true if it was present.
    fn apply_delete(&self, key: &str, origin: Origin) -> bool;
    /// Removes every entry.
    fn apply_clear(&self, origin: Origin);
    /// The encoded value of a key, if present (answers remote lookups).
    ///
    /// # Errors
    /// [`StoreError::Encode`].
    fn get_encoded(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every key (shared, not copied); see [`TypedCache::keys`].
    fn keys(&self) -> Box<dyn Iterator<Item = Arc<String>> + '_>;
    /// One entry as a snapshot holds it; see [`TypedCache::snapshot_entry`].
    ///
    /// # Errors
    /// [`StoreError::Encode`].
    fn snapshot_entry(&self, key: &str) -> Result<Option<SnapshotEntry>>;
    /// Copies the cache; see [`TypedCache::snapshot`].
    ///
    /// # Errors
    /// [`StoreError::Encode`].
    fn snapshot(&self) -> Result<CacheSnapshot>;
    /// Replaces the contents; see [`TypedCache::restore`].
    fn restore(&self, snapshot: &CacheSnapshot, origin: Origin) -> RestoreReport;
    /// Approximate entry count.
    fn entry_count(&self) -> u64;
    /// Runs moka's pending housekeeping.
    fn run_pending_tasks(&self);
    /// Values that failed to decode since start.
    fn decode_errors(&self) -> u64;
    /// Values of another schema refused since start.
    fn schema_mismatches(&self) -> u64;
    /// Counts values of another schema the caller refused; see
    /// [`TypedCache::schema_mismatch`].
    fn schema_mismatch(&self, theirs: Schema, values: u64);
}

impl<V: Value> ErasedCache for TypedCache<V> {
    fn name(&self) -> &str {
        TypedCache::name(self)
    }
    fn value_type(&self) -> &'static str {
        type_name::<V>()
    }
    fn schema(&self) -> Schema {
        TypedCache::schema(self)
    }
    fn apply_put(
        &self,
        key: String,
        value: &[u8],
        schema: Schema,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<()> {
        self.insert_encoded(key, value, schema, ttl, origin)
    }
    fn apply_delete(&self, key: &str, origin: Origin) -> bool {
        self.remove(key, origin)
    }
    fn apply_clear(&self, origin: Origin) {
        self.clear(origin);
    }
    fn get_encoded(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get(key).map(|v| self.encode(&v)).transpose()
    }
    fn keys(&self) -> Box<dyn Iterator<Item = Arc<String>> + '_> {
        Box::new(TypedCache::keys(self))
    }
    fn snapshot_entry(&self, key: &str) -> Result<Option<SnapshotEntry>> {
        TypedCache::snapshot_entry(self, key)
    }
    fn snapshot(&self) -> Result<CacheSnapshot> {
        TypedCache::snapshot(self)
    }
    fn restore(&self, snapshot: &CacheSnapshot, origin: Origin) -> RestoreReport {
        TypedCache::restore(self, snapshot, origin)
    }
    fn entry_count(&self) -> u64 {
        TypedCache::entry_count(self)
    }
    fn run_pending_tasks(&self) {
        TypedCache::run_pending_tasks(self);
    }
    fn decode_errors(&self) -> u64 {
        TypedCache::decode_errors(self)
    }
    fn schema_mismatches(&self) -> u64 {
        TypedCache::schema_mismatches(self)
    }
    fn schema_mismatch(&self, theirs: Schema, values: u64) {
        TypedCache::schema_mismatch(self, theirs, values);
    }
}

/// One registered cache: the same allocation seen two ways.
#[derive(Clone)]
struct Registered {
    erased: Arc<dyn ErasedCache>,
    any: Arc<dyn Any + Send + Sync>,
}

/// Collects caches before the store is frozen.
#[derive(Default)]
pub struct StoreBuilder {
    caches: BTreeMap<String, Registered>,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.caches.keys()).finish()
    }
}

impl StoreBuilder {
    /// Registers a cache of `V` values.
    ///
    /// # Errors
    /// [`StoreError::DuplicateCache`], [`StoreError::InvalidName`],
    /// [`StoreError::InvalidOptions`].
    pub fn add<V: Value>(&mut self, name: &str, options: CacheOptions) -> Result<()> {
        if self.caches.contains_key(name) {
            return Err(StoreError::DuplicateCache(name.to_owned()));
        }
        let cache = Arc::new(TypedCache::<V>::new(name, options)?);
        self.caches.insert(
            name.to_owned(),
            Registered {
                erased: cache.clone(),
                any: cache,
            },
        );
        Ok(())
    }

    /// Freezes the registry.
    pub fn build(self) -> Store {
        Store {
            caches: self.caches,
        }
    }
}

/// The named caches of one node. Frozen at start, so lookups take no lock.
///
/// ```
/// use redhac_store::{CacheOptions, Origin, Store};
///
/// let mut builder = Store::builder();
/// builder.add::<String>("greetings", CacheOptions::default()).unwrap();
/// let store = builder.build();
///
/// // The runtime applies replicated entries without knowing the type...
/// // (with the schema of the member that encoded them: here, the same).
/// let bytes = postcard::to_allocvec(&"hello".to_string()).unwrap();
/// let erased = store.erased("greetings").unwrap();
/// erased.apply_put("k".into(), &bytes, erased.schema(), None, Origin::Peer).unwrap();
/// // ...and the application reads them typed.
/// let greetings = store.typed::<String>("greetings").unwrap();
/// assert_eq!(greetings.get("k").as_deref(), Some(&"hello".to_string()));
/// ```
#[derive(Clone)]
pub struct Store {
    caches: BTreeMap<String, Registered>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.caches.values().map(|c| &c.erased))
            .finish()
    }
}

impl Store {
    /// Starts a registry.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// The typed handle of a cache.
    ///
    /// # Errors
    /// [`StoreError::UnknownCache`] or [`StoreError::TypeMismatch`].
    pub fn typed<V: Value>(&self, name: &str) -> Result<Arc<TypedCache<V>>> {
        let registered = self.registered(name)?;
        registered
            .any
            .clone()
            .downcast::<TypedCache<V>>()
            .map_err(|_| StoreError::TypeMismatch {
                name: name.to_owned(),
                actual: registered.erased.value_type(),
                requested: type_name::<V>(),
            })
    }

    /// The type-erased view of a cache.
    ///
    /// # Errors
    /// [`StoreError::UnknownCache`].
    pub fn erased(&self, name: &str) -> Result<&Arc<dyn ErasedCache>> {
        self.registered(name).map(|r| &r.erased)
    }

    /// Every cache, by name.
    pub fn caches(&self) -> impl Iterator<Item = &Arc<dyn ErasedCache>> {
        self.caches.values().map(|r| &r.erased)
    }

    /// Removes every entry of every cache.
    pub fn clear_all(&self, origin: Origin) {
        for cache in self.caches() {
            cache.apply_clear(origin);
        }
    }

    fn registered(&self, name: &str) -> Result<&Registered> {
        self.caches
            .get(name)
            .ok_or_else(|| StoreError::UnknownCache {
                name: name.to_owned(),
                known: self
                    .caches
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Cache names travel in every replicated entry: keep them short and printable.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidName(name.to_owned()));
    }
    Ok(())
}
