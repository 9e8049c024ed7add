//! What the core's outputs do to the store: entries applied, keys and
//! caches invalidated, snapshot chunks installed.

use std::time::{Duration, Instant};

use redhac_membership::{Entry, LogId, Op};
use redhac_store::{ErasedCache, Origin, Schema, Store, StoreError};

use super::snapshot;
use crate::gate::ReadGate;

/// Applies a committed entry; `me` tells the writer's own entries (events
/// `Local`) from the others' (`Peer`).
pub(super) fn apply(store: &Store, me: u32, entry: &Entry) {
    let origin = if entry.origin == Some(me) {
        Origin::Local
    } else {
        Origin::Peer
    };
    let result = match &*entry.op {
        Op::Put {
            cache,
            key,
            value,
            ttl_ms,
            schema,
        } => store.erased(cache).map(|c| {
            let ttl = ttl_ms.map(Duration::from_millis);
            match c.apply_put(key.clone(), value, schema_of(&**c, *schema), ttl, origin) {
                // The store counts and logs a value that does not decode.
                Ok(()) | Err(StoreError::Decode { .. }) => {}
                Err(StoreError::SchemaMismatch { .. }) => schema_mismatches(cache, 1),
                // No store error's message carries a key (a decode error
                // keeps it in a field, out of its message).
                Err(e) => tracing::warn!(cache, error = %e, "a replicated value was not applied"),
            }
        }),
        Op::Delete { cache, key } => store.erased(cache).map(|c| {
            c.apply_delete(key, origin);
        }),
        Op::Clear { cache } => store.erased(cache).map(|c| c.apply_clear(origin)),
        Op::Noop | Op::Membership(_) => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "an entry for a cache this member does not have");
    }
}

/// The schema a value of cache `c` was encoded with: as its writer said, or
/// (a member that predates schemas said nothing) this member's own.
pub(super) fn schema_of(c: &dyn ErasedCache, sent: Option<u64>) -> Schema {
    sent.map_or_else(|| c.schema(), Schema::from_id)
}

/// Counts values of `cache` refused for their schema (the store logs them).
fn schema_mismatches(cache: &str, values: u64) {
    metrics::counter!(crate::metrics::SCHEMA_MISMATCHES, "cache" => cache.to_owned())
        .increment(values);
}

/// Whether `c` refuses `values` values encoded with schema `sent` (another
/// release's): if so they are counted, in the store (which logs them) and
/// in the metric, and must not be decoded.
pub(super) fn refuses(c: &dyn ErasedCache, sent: Option<u64>, values: u64) -> bool {
    let theirs = schema_of(c, sent);
    if theirs == c.schema() {
        return false;
    }
    c.schema_mismatch(theirs, values);
    schema_mismatches(c.name(), values);
    true
}

/// Drops keys (`Some`) or whole caches (`None`) the core can no longer
/// vouch for.
pub(super) fn invalidate(store: &Store, keys: Vec<(String, Option<String>)>) {
    for (cache, key) in keys {
        if let Ok(c) = store.erased(&cache) {
            match key {
                Some(k) => {
                    c.apply_delete(&k, Origin::Local);
                }
                None => c.apply_clear(Origin::Local),
            }
        }
    }
}

/// A snapshot being installed: entries restored, entries that did not
/// decode, since when.
#[derive(Debug, Default)]
pub(super) struct Install(Option<(u64, u64, Instant)>);

impl Install {
    /// Puts a chunk's entries into the caches (cleared first by the first
    /// chunk). The core serves nothing meanwhile.
    pub(super) fn chunk(
        &mut self,
        store: &Store,
        gate: &ReadGate,
        first: bool,
        done: bool,
        last: LogId,
        data: &[u8],
    ) {
        if first {
            // The core closes the gate at the end of this step; readers must
            // not see the caches half cleared or half installed before.
            gate.close();
            store.clear_all(Origin::Peer);
            self.0 = Some((0, 0, Instant::now()));
            tracing::info!(%last, "installing a snapshot");
        }
        let (mut restored, mut failed, started) = self.0.unwrap_or((0, 0, Instant::now()));
        match snapshot::decode_chunk(data) {
            Ok(caches) => {
                for snap in caches {
                    let Ok(c) = store.erased(&snap.cache) else {
                        tracing::warn!(cache = snap.cache, "snapshot of an unknown cache");
                        continue;
                    };
                    // Another release's part: its keys stay absent (misses).
                    if refuses(&**c, snap.schema, snap.entries.len() as u64) {
                        failed += snap.entries.len() as u64;
                        continue;
                    }
                    let schema = c.schema();
                    for e in snap.entries {
                        let ttl = e.ttl_ms.map(Duration::from_millis);
                        match c.apply_put(e.key, &e.value, schema, ttl, Origin::Peer) {
                            Ok(()) => restored += 1,
                            Err(_) => failed += 1,
                        }
                    }
                }
            }
            // Nothing is served before a whole snapshot; what is missing
            // here is a miss, never a wrong value.
            Err(reason) => {
                metrics::counter!(crate::metrics::MESSAGES_REFUSED, "reason" => "malformed")
                    .increment(1);
                tracing::error!(%last, reason, "a snapshot chunk did not decode");
            }
        }
        self.0 = Some((restored, failed, started));
        if done {
            self.0 = None;
            let ms = started.elapsed().as_millis();
            metrics::counter!(crate::metrics::SNAPSHOTS_INSTALLED).increment(1);
            tracing::info!(%last, restored, failed, ms, "installed a snapshot");
        }
    }
}
