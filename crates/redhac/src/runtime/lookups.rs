//! Reads a follower asks the leader for (`get_or_fetch` on a miss), and the
//! leader's side of them.

use std::collections::HashMap;
use std::time::Instant;

use redhac_membership::{Index, Node};
use redhac_proto::{LookupRequest, LookupResponse};
use redhac_store::Store;
use tokio::sync::oneshot;

use crate::gate::ReadGate;
use crate::{Error, Result};

/// Where a lookup's answer goes: the encoded value, when there is one.
pub(super) type Reply = oneshot::Sender<Result<Option<Vec<u8>>>>;

/// A lookup waiting for the leader.
#[derive(Debug)]
struct Waiting {
    reply: Reply,
    cache: String,
    key: String,
    /// When it is given up.
    deadline: Instant,
}

/// The lookups this member asked the leader and has no answer to yet.
#[derive(Debug, Default)]
pub(super) struct Lookups {
    waiting: HashMap<u64, Waiting>,
    next_id: u64,
}

impl Lookups {
    /// Registers a lookup; returns the request to send the leader.
    pub(super) fn ask(&mut self, reply: Reply, cache: String, key: String) -> LookupRequest {
        self.next_id += 1;
        let id = self.next_id;
        let request = LookupRequest {
            id,
            cache: cache.clone(),
            key: key.clone(),
        };
        let deadline = Instant::now() + super::LOOKUP_TIMEOUT;
        self.waiting.insert(
            id,
            Waiting {
                reply,
                cache,
                key,
                deadline,
            },
        );
        request
    }

    /// The leader answered: resolves the lookup (see [`fetched`]).
    pub(super) fn answered(
        &mut self,
        r: LookupResponse,
        node: &Node,
        store: &Store,
        gate: &ReadGate,
    ) {
        if let Some(w) = self.waiting.remove(&r.id) {
            let _ = w
                .reply
                .send(fetched(node, store, gate, &w.cache, &w.key, r));
        }
    }

    /// Fails the lookups whose deadline passed.
    pub(super) fn expire(&mut self, now: Instant) {
        for (_, w) in self.waiting.extract_if(|_, w| w.deadline <= now) {
            let _ = w.reply.send(Err(Error::Timeout(super::LOOKUP_TIMEOUT)));
        }
    }
}

/// The encoded value this member serves for `key`; `None` when it serves
/// no reads now.
pub(super) fn local(
    store: &Store,
    gate: &ReadGate,
    cache: &str,
    key: &str,
) -> Option<Option<Vec<u8>>> {
    if !gate.open() {
        return None;
    }
    Some(
        store
            .erased(cache)
            .ok()
            .and_then(|c| c.get_encoded(key).ok().flatten()),
    )
}

/// The leader's answer to a peer's lookup: its value and how far it had
/// applied, or no `applied` when it serves no reads now.
pub(super) fn answer(
    r: LookupRequest,
    node: &Node,
    store: &Store,
    gate: &ReadGate,
) -> LookupResponse {
    let local = local(store, gate, &r.cache, &r.key);
    LookupResponse {
        id: r.id,
        applied: local.is_some().then(|| node.applied()),
        value: local.flatten().map(Into::into),
        schema: store.erased(&r.cache).ok().map(|c| c.schema().id()),
    }
}

/// What a lookup answers once the leader replied. The leader's value is
/// its state as of the index it had applied; when this member has applied
/// that far too (entries apply in the runtime task, as this runs, so nothing
/// can slip in between), its own copy is as new and is what it answers: a
/// key deleted or expired here since is not brought back. Nothing fetched is
/// ever stored: values enter the caches only through the log, with their TTL.
fn fetched(
    node: &Node,
    store: &Store,
    gate: &ReadGate,
    cache: &str,
    key: &str,
    r: LookupResponse,
) -> Result<Option<Vec<u8>>> {
    let Some(at) = r.applied else {
        return Err(Error::NoQuorum); // the leader serves no reads now
    };
    let mine = node.applied();
    if mine >= at
        && let Some(here) = local(store, gate, cache, key)
    {
        // A local miss may be an eviction here: the leader's value holds
        // unless an entry applied here since touched the key.
        if here.is_some() || touched(node, cache, key, at, mine) {
            return Ok(here);
        }
    }
    // The leader's value is decoded here only if it is of this member's
    // schema: one of another release's is a miss.
    if r.value.is_some()
        && let Ok(c) = store.erased(cache)
        && super::effects::refuses(&**c, r.schema, 1)
    {
        return Ok(None);
    }
    Ok(r.value.map(|value| value.to_vec()))
}

/// Whether an entry in `after + 1..=upto` (as far as the log still holds
/// them, and not too many to look at) may have changed `key`.
fn touched(node: &Node, cache: &str, key: &str, after: Index, upto: Index) -> bool {
    if upto - after > 4096 {
        return true; // too far to look: trust this member's copy
    }
    (after + 1..=upto).any(|i| match node.entry(i) {
        Some(e) => {
            e.op.touches()
                .is_some_and(|(c, k)| c == cache && k.is_none_or(|k| k == key))
        }
        None => true, // compacted: cannot tell
    })
}
