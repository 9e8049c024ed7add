//! What the runtime publishes from the core's state: the status the
//! application reads, and the gauges.

use redhac_membership::{HostEntry, NodeRole, NodeStatus};
use redhac_store::Store;

use crate::status::{MemberStatus, Status};

/// The status to publish: the core's view, each member by its address,
/// with the protocol version of its link (`version`).
pub(super) fn status(
    s: &NodeStatus,
    members: &[HostEntry],
    serving: bool,
    version: impl Fn(u32) -> Option<u32>,
) -> Status {
    let members = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let id = i as u32;
            let peer = s.peers.iter().find(|p| p.id == id);
            MemberStatus {
                id,
                address: m.to_string(),
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
        })
        .collect();
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
