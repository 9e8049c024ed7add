//! What the runtime publishes from the core's state: the status the
//! application reads, and the gauges.

use std::collections::{BTreeMap, BTreeSet};

use redhac_membership::{HostEntry, Membership, NodeRole, NodeStatus};
use redhac_store::Store;

use crate::status::{MemberStatus, Status};

/// The status to publish: the core's view, each member of the static
/// list by its address, with the protocol version of its link (`version`).
pub(super) fn status(
    s: &NodeStatus,
    members: &[HostEntry],
    serving: bool,
    version: impl Fn(u32) -> Option<u32>,
) -> Status {
    let members = members
        .iter()
        .enumerate()
        .map(|(i, m)| member(s, i as u32, m.to_string(), &version))
        .collect();
    of_members(s, serving, members)
}

/// The dynamic mode's status: this member and every member of its
/// membership, by id, with the address each advertised.
pub(super) fn dynamic_status(
    s: &NodeStatus,
    membership: &Membership,
    addresses: &BTreeMap<u32, String>,
    serving: bool,
    version: impl Fn(u32) -> Option<u32>,
) -> Status {
    let ids: BTreeSet<u32> = membership.all().chain([s.me]).collect();
    let members = ids
        .into_iter()
        .map(|id| {
            let address = addresses.get(&id).cloned().unwrap_or_default();
            member(s, id, address, &version)
        })
        .collect();
    of_members(s, serving, members)
}

/// Member `id` as the core's status `s` sees it.
fn member(
    s: &NodeStatus,
    id: u32,
    address: String,
    version: &impl Fn(u32) -> Option<u32>,
) -> MemberStatus {
    let peer = s.peers.iter().find(|p| p.id == id);
    MemberStatus {
        id,
        address,
        voter: if id == s.me {
            s.voter
        } else {
            peer.is_some_and(|p| p.voter)
        },
        connected: id == s.me || peer.is_some_and(|p| p.connected),
        lag: peer
            .and_then(|p| p.applied)
            .map(|a| s.commit.saturating_sub(a)),
        protocol_version: version(id),
        silent_resets: peer.map_or(0, |p| p.silent_resets),
    }
}

fn of_members(s: &NodeStatus, serving: bool, members: Vec<MemberStatus>) -> Status {
    Status {
        me: s.me,
        term: s.term,
        role: s.role.into(),
        leader: s.leader,
        health: s.health,
        serving,
        members,
        applied_index: s.applied,
        commit_index: s.commit,
        // Filled in by `Runtime::status` from the shared counters.
        links_refused: 0,
        messages_refused: 0,
        schema_mismatches: 0,
    }
}

/// Sets the gauges read on every tick: term, replication lag (the leader's
/// view; 0 on every other member, so a former leader does not go on
/// reporting the lag it last saw), entries in the caches, and the values
/// each cache could not decode (counted by the store wherever they arrive).
pub(super) fn gauges(s: &NodeStatus, store: &Store, serving: bool) {
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    metrics::gauge!(crate::metrics::TERM).set(s.term as f64);
    metrics::gauge!(crate::metrics::LEADER).set(flag(s.role == NodeRole::Leader));
    metrics::gauge!(crate::metrics::SERVING).set(flag(serving));
    metrics::gauge!(crate::metrics::MEMBERS).set((s.peers.len() + 1) as f64);
    if s.role == NodeRole::Leader {
        let lag = s
            .peers
            .iter()
            .filter_map(|p| p.applied)
            .map(|a| s.commit.saturating_sub(a))
            .max()
            .unwrap_or(0);
        metrics::gauge!(crate::metrics::REPLICATION_LAG).set(lag as f64);
    } else {
        metrics::gauge!(crate::metrics::REPLICATION_LAG).set(0.0);
    }
    let mut entries = 0;
    for c in store.caches() {
        entries += c.entry_count();
        let failed = c.decode_errors();
        if failed > 0 {
            metrics::counter!(crate::metrics::DECODE_ERRORS, "cache" => c.name().to_owned())
                .absolute(failed);
        }
    }
    metrics::gauge!(crate::metrics::CACHE_ENTRIES).set(entries as f64);
}
