//! Read invariants, after every event: a serving node is in health Good or
//! Degraded, not stale, and not mid-snapshot.

use std::time::Duration;

use redhac_membership::{Health, MemberId};

use super::Checker;
use crate::violation::Violation;
use crate::world::World;

impl Checker {
    /// After every event: a node in Bad serves nothing; a serving node is not
    /// stale, nor mid-snapshot.
    pub(crate) fn check_all(&mut self, w: &World) {
        for id in 0..w.nodes.len() as MemberId {
            let Some(node) = w.nodes[id as usize].node.as_ref() else {
                continue;
            };
            if !w.serving(id) {
                continue;
            }
            let s = node.status();
            self.report(w.now, bad_serves_nothing(id, s.health));
            let found = self.not_stale(w.now, id, w.nodes[id as usize].applied);
            self.report(w.now, found);
            self.report(w.now, not_mid_snapshot(w, id));
        }
    }

    /// Invariant: no member serves a value older than the newest completed
    /// `All` write, nor, more than the lease after it, a completed `Quorum`
    /// write.
    fn not_stale(&mut self, now: Duration, id: MemberId, applied: u64) -> Result<(), Violation> {
        let cutoff = now.saturating_sub(self.lease);
        while let Some((t, i)) = self.quorum.front().copied()
            && t <= cutoff
        {
            self.quorum_index = self.quorum_index.max(i);
            self.quorum.pop_front();
        }
        let need = self.all_index.max(self.quorum_index);
        if applied < need {
            return Err(Violation::StaleRead {
                node: id,
                applied,
                completed: need,
            });
        }
        Ok(())
    }
}

/// Invariant: a node in health Bad serves nothing.
fn bad_serves_nothing(id: MemberId, health: Health) -> Result<(), Violation> {
    if health == Health::Bad {
        return Err(Violation::ServesInBad { node: id });
    }
    Ok(())
}

/// Invariant: a node serves nothing while it installs a snapshot, nor
/// before it has applied past the snapshot's end: its caches are exact only
/// then.
fn not_mid_snapshot(w: &World, id: MemberId) -> Result<(), Violation> {
    let n = &w.nodes[id as usize];
    if n.installing || n.applied < n.fuzzy_until {
        return Err(Violation::ServesMidSnapshot {
            node: id,
            installing: n.installing,
            applied: n.applied,
            end: n.fuzzy_until,
        });
    }
    Ok(())
}
