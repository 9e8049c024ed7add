//! The typed handle applications use.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redhac_store::{Events, Origin, TypedCache, Value, check_ttl};

use crate::instance::Shared;
use crate::loader::KeyLocks;
use crate::runtime::{Command, LOOKUP_TIMEOUT, WriteOp};
use crate::write::WriteOptions;
use crate::{Error, Result};

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

/// A typed handle on one named cache. Cheap to clone; all clones share the
/// cache.
///
/// Reads ([`Cache::get`]) are synchronous local lookups. Writes are async
/// because in HA mode they are ordered by the leader and acknowledged at the
/// chosen [`crate::AckLevel`].
pub struct Cache<V> {
    typed: Arc<TypedCache<V>>,
    loads: Arc<KeyLocks>,
    shared: Arc<Shared>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Self {
            typed: Arc::clone(&self.typed),
            loads: Arc::clone(&self.loads),
            shared: Arc::clone(&self.shared),
            hits: self.hits.clone(),
            misses: self.misses.clone(),
        }
    }
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cache").field(&self.typed).finish()
    }
}

impl<V: Value> Cache<V> {
    pub(crate) fn new(
        typed: Arc<TypedCache<V>>,
        loads: Arc<KeyLocks>,
        shared: Arc<Shared>,
    ) -> Self {
        let cache = typed.name().to_owned();
        Self {
            hits: metrics::counter!(crate::metrics::CACHE_HITS, "cache" => cache.clone()),
            misses: metrics::counter!(crate::metrics::CACHE_MISSES, "cache" => cache),
            typed,
            loads,
            shared,
        }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        self.typed.name()
    }

    /// The cache's schema identity (see [`crate::CacheOptions::schema_version`]):
    /// members exchange this cache's values only when theirs match.
    pub fn schema(&self) -> crate::Schema {
        self.typed.schema()
    }

    /// Looks a key up in the local copy: no network, no channel, no decoding.
    /// Returns `None` on a miss, and for every key while this member does
    /// not serve reads or once it was shut down ([`Cache::read`] says which).
    #[inline]
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        match self.read(key) {
            Read::Hit(v) => Some(v),
            Read::Absent | Read::NotServing => None,
        }
    }

    /// As [`Cache::get`], saying why a read found nothing: the key is not
    /// in this member's copy, or this member does not serve reads now (no
    /// leader, a lapsed lease, catching up, cut off, shut down), so any key
    /// would miss: the application may then read its database, or ask the
    /// leader ([`Cache::get_or_fetch`]).
    ///
    /// ```
    /// # use redhac::{CacheOptions, Read, Redhac};
    /// # #[tokio::main] async fn main() -> Result<(), redhac::Error> {
    /// # let redhac = Redhac::builder().cache::<u64>("hits", CacheOptions::default()).start().await?;
    /// let hits = redhac.cache::<u64>("hits")?;
    /// assert!(matches!(hits.read("a"), Read::Absent));
    /// hits.put("a", 1).await?;
    /// assert!(matches!(hits.read("a"), Read::Hit(v) if *v == 1));
    /// redhac.shutdown().await?;
    /// assert!(matches!(hits.read("a"), Read::NotServing));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn read(&self, key: &str) -> Read<V> {
        if !self.shared.serving() {
            self.misses.increment(1);
            return Read::NotServing;
        }
        match self.typed.get(key) {
            Some(v) => {
                self.hits.increment(1);
                Read::Hit(v)
            }
            None => {
                self.misses.increment(1);
                Read::Absent
            }
        }
    }

    /// Looks a key up locally and, on a miss, asks the leader: for a member
    /// that may lag behind it (a follower serves the previous value for at
    /// most the read lease after a `Quorum` write). The answer is the
    /// leader's state, or this member's own once it has applied as far as
    /// the leader had; what is fetched is returned, never stored (values
    /// enter the caches only through the log, with their TTL, so a fetch
    /// cannot bring back a key deleted meanwhile). In standalone mode this
    /// is [`Cache::get`].
    ///
    /// # Errors
    /// In HA mode: [`Error::NoQuorum`] when this member knows no leader to
    /// ask, is cut off (health Bad), or the leader serves no reads now;
    /// [`Error::Timeout`] when the leader does not answer in time.
    pub async fn get_or_fetch(&self, key: &str) -> Result<Option<Arc<V>>> {
        if let Some(hit) = self.get(key) {
            return Ok(Some(hit));
        }
        let Some(cluster) = self.shared.cluster() else {
            return Ok(None);
        };
        check_key(key)?;
        let (cache, k) = (self.name().to_owned(), key.to_owned());
        // The cache only; never the key.
        let span = tracing::debug_span!("redhac.lookup", cache = self.name());
        let fetched = tracing::Instrument::instrument(
            cluster.ask(LOOKUP_TIMEOUT + Duration::from_millis(100), |reply| {
                Command::Lookup {
                    cache,
                    key: k,
                    reply,
                }
            }),
            span,
        )
        .await?;
        match fetched {
            Some(value) => Ok(Some(Arc::new(self.typed.decode(key, &value)?))),
            None => Ok(None),
        }
    }

    /// Writes a value with the default [`WriteOptions`].
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::ShutDown`], [`Error::Store`] (the
    /// value cannot be encoded); in HA mode also [`Error::ValueTooLarge`]
    /// (over [`crate::Config::max_value_size`] encoded), [`Error::NoQuorum`]
    /// and [`Error::Timeout`].
    pub async fn put(&self, key: impl Into<String>, value: V) -> Result<()> {
        self.put_with(key, value, WriteOptions::default()).await
    }

    /// Writes a value with options (TTL, ack level, timeout).
    ///
    /// # Errors
    /// As [`Cache::put`].
    pub async fn put_with(
        &self,
        key: impl Into<String>,
        value: V,
        options: WriteOptions,
    ) -> Result<()> {
        self.put_arc(key, Arc::new(value), options).await
    }

    /// Writes a value that is already shared.
    ///
    /// # Errors
    /// As [`Cache::put`].
    pub async fn put_arc(
        &self,
        key: impl Into<String>,
        value: Arc<V>,
        options: WriteOptions,
    ) -> Result<()> {
        let key = key.into();
        check_key(&key)?;
        check_ttl(options.ttl)?;
        self.shared.check_open()?;
        let Some(cluster) = self.shared.cluster() else {
            self.typed.insert(key, value, options.ttl, Origin::Local)?;
            return Ok(());
        };
        let value = self.typed.encode(&value)?;
        let max = self.shared.max_value_size();
        if value.len() > max {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                max,
            });
        }
        let op = WriteOp::Put {
            cache: self.name().to_owned(),
            key,
            value,
            ttl: options.ttl,
            schema: self.typed.schema().id(),
        };
        cluster.write(op, options).await
    }

    /// Deletes a key with the default [`WriteOptions`].
    ///
    /// # Errors
    /// As [`Cache::put`].
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.delete_with(key, WriteOptions::default()).await
    }

    /// Deletes a key. With [`crate::AckLevel::All`] the key is gone on every
    /// member when this returns.
    ///
    /// # Errors
    /// As [`Cache::put`].
    pub async fn delete_with(&self, key: &str, options: WriteOptions) -> Result<()> {
        check_key(key)?;
        self.shared.check_open()?;
        let Some(cluster) = self.shared.cluster() else {
            self.typed.remove(key, Origin::Local);
            return Ok(());
        };
        let op = WriteOp::Delete {
            cache: self.name().to_owned(),
            key: key.to_owned(),
        };
        cluster.write(op, options).await
    }

    /// Removes every entry, with the default [`WriteOptions`].
    ///
    /// # Errors
    /// [`Error::ShutDown`]; in HA mode also [`Error::NoQuorum`] and [`Error::Timeout`].
    pub async fn clear(&self) -> Result<()> {
        self.clear_with(WriteOptions::default()).await
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`Cache::clear`].
    pub async fn clear_with(&self, options: WriteOptions) -> Result<()> {
        self.shared.check_open()?;
        let Some(cluster) = self.shared.cluster() else {
            self.typed.clear(Origin::Local);
            return Ok(());
        };
        cluster
            .write(
                WriteOp::Clear {
                    cache: self.name().to_owned(),
                },
                options,
            )
            .await
    }

    /// Returns the value of `key`, or runs `loader`, writes its value and
    /// returns it. Concurrent callers for one key on this node wait for a
    /// single load instead of each running the loader. When the write fails
    /// (no quorum, a timeout, a value over the size limit), the loaded value
    /// is returned all the same: an outage of the cache degrades to "no
    /// cache", not to a failed request. The failure is logged as a warning
    /// and counted in [`crate::metrics::LOADER_WRITES_FAILED`].
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    pub async fn get_or_insert_with<F, Fut>(&self, key: &str, loader: F) -> Result<Arc<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.get_or_insert_with_options(key, WriteOptions::default(), loader)
            .await
    }

    /// As [`Cache::get_or_insert_with`], writing with `options` (TTL, ack
    /// level, timeout).
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::Store`] for an invalid TTL.
    pub async fn get_or_insert_with_options<F, Fut>(
        &self,
        key: &str,
        options: WriteOptions,
        loader: F,
    ) -> Result<Arc<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.try_get_or_insert_with_options(key, options, || async {
            Ok::<_, std::convert::Infallible>(loader().await)
        })
        .await
    }

    /// As [`Cache::get_or_insert_with`], with a loader that can fail. A
    /// failed load caches nothing; the next waiter for the key loads again.
    ///
    /// # Errors
    /// [`Error::Loader`] with the loader's error, [`Error::InvalidKey`].
    pub async fn try_get_or_insert_with<F, Fut, E>(&self, key: &str, loader: F) -> Result<Arc<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.try_get_or_insert_with_options(key, WriteOptions::default(), loader)
            .await
    }

    /// As [`Cache::try_get_or_insert_with`], writing with `options`.
    ///
    /// # Errors
    /// [`Error::Loader`] with the loader's error, [`Error::InvalidKey`],
    /// [`Error::Store`] for an invalid TTL.
    pub async fn try_get_or_insert_with_options<F, Fut, E>(
        &self,
        key: &str,
        options: WriteOptions,
        loader: F,
    ) -> Result<Arc<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_key(key)?;
        check_ttl(options.ttl)?;
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let _guard = self.loads.lock(key).await;
        // Whoever held the key before us may have loaded it.
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let value = Arc::new(loader().await.map_err(|e| Error::Loader(e.into()))?);
        if let Err(e) = self.put_arc(key, Arc::clone(&value), options).await {
            let reason = match &e {
                Error::NoQuorum => "no_quorum",
                Error::Timeout(_) => "timeout",
                Error::ShutDown => "shut_down",
                Error::ValueTooLarge { .. } => "too_large",
                _ => "other",
            };
            metrics::counter!(
                crate::metrics::LOADER_WRITES_FAILED,
                "cache" => self.name().to_owned(),
                "reason" => reason,
            )
            .increment(1);
            tracing::warn!(
                cache = self.name(),
                error = %e,
                "a loaded value was not cached; returning it uncached"
            );
        }
        Ok(value)
    }

    /// Subscribes to the changes of this cache on this node.
    /// Expirations and evictions are heard only from a cache created with
    /// `CacheOptions::eviction_events(true)`.
    pub fn subscribe(&self) -> Events {
        self.typed.subscribe()
    }

    /// Approximate number of entries held locally.
    pub fn entry_count(&self) -> u64 {
        self.typed.entry_count()
    }

    /// Runs the local cache's deferred housekeeping now (moka applies
    /// writes to its eviction structures lazily, on later reads).
    pub fn run_pending_tasks(&self) {
        self.typed.run_pending_tasks();
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey {
            len: key.len(),
            reason: "longer than MAX_KEY_LEN (4096 bytes)",
        });
    }
    Ok(())
}

/// What a local read found: see [`Cache::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<V> {
    /// The value.
    Hit(Arc<V>),
    /// This member serves reads and has no value for the key.
    Absent,
    /// This member does not serve reads now: every key misses.
    NotServing,
}
