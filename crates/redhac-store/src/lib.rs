//! The local storage of redhac: typed caches on [moka], a registry of named
//! caches, and what replication needs from them.
//!
//! - [`TypedCache<V>`] stores `Arc<V>` under `String` keys with the
//!   [`CacheOptions`] of its cache: a capacity in entries or in encoded bytes,
//!   a time to live, a time to idle, and a TTL per entry on insert.
//! - Reads are synchronous moka lookups; values are decoded once, when a
//!   replicated write arrives, never on the read path.
//! - [`Store`] holds the caches by name. Its [`ErasedCache`] view applies
//!   postcard-encoded writes without knowing the value type: that is how the
//!   runtime applies entries replicated from peers.
//! - [`TypedCache::snapshot`] and [`TypedCache::restore`] copy a cache as
//!   (key, encoded value, remaining TTL), for the catch-up of new members.
//! - [`TypedCache::subscribe`] yields [`Event`]s: Put, Delete, Clear (and
//!   Expired and Evicted with [`CacheOptions::eviction_events`]), each with
//!   its key and [`Origin`].
//! - Every cache has a [`Schema`]: an explicit version and a fingerprint of the
//!   value type's serde shape. Replicated values carry the schema they were
//!   encoded with, and a cache decodes only its own: bytes of another schema
//!   (a release that changed the value type, rolling out) invalidate their key.
//! - A value that fails to decode is an error value, a counter and a log line;
//!   the key is invalidated rather than left at an older value. Nothing panics.
//!
//! This crate knows nothing of the network; it is usable alone, for example
//! with a custom transport beside `redhac-membership`.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use redhac_store::{CacheOptions, Origin, TypedCache};
//!
//! let cache = TypedCache::<u64>::new("counters", CacheOptions::default().max_capacity(1000))?;
//! cache.insert("a".into(), Arc::new(7), Some(Duration::from_secs(60)), Origin::Local)?;
//! assert_eq!(cache.get("a").as_deref(), Some(&7));
//! # Ok::<(), redhac_store::StoreError>(())
//! ```

mod error;
mod event;
mod options;
mod registry;
mod schema;
mod snapshot;
mod typed;

pub use error::{Result, StoreError};
pub use event::{Event, EventKind, Events, EventsError, Origin};
pub use options::{CacheOptions, Capacity, MAX_TTL, check_ttl};
pub use registry::{ErasedCache, Store, StoreBuilder};
pub use schema::{Schema, untraceable};
pub use snapshot::{CacheSnapshot, RestoreReport, SnapshotEntry};
pub use typed::{TypedCache, Value};
