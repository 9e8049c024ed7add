//! The read lease: whether, and until when, this node serves reads from its
//! own caches without asking anyone.
//!
//! - **A follower's lease** is renewed by an `Append` from a leader that holds
//!   its own lease ([`Append::lease`]), and only once this node has applied
//!   everything that append says is committed, is not installing a snapshot,
//!   and has replayed its log past the last snapshot's `end` (`fuzzy_end`:
//!   until then its caches may show entries beyond `applied`). It runs until
//!   the stamp of this node's reply that the append echoes, plus `L`
//!   ([`Timing::read_lease`]), so the leader's bound on it (that reply's
//!   arrival plus `L`) holds.
//! - It is **dropped** when this node stands for election, grants a vote,
//!   meets a newer term, falls to health Bad, or receives a snapshot's first
//!   chunk.
//! - **The leader** serves once its term's first entry is committed, not while
//!   handing over or shutting down, until the newest stamp a majority echoed
//!   plus `G` less the drift margin: no voter elects anyone else before that.
//! - **The leader's bound** on a follower's lease, which `All` writes wait for:
//!   that follower's latest reply plus `L`, or, for a lease an earlier leader
//!   granted, this leader's election plus `L` (plus the drift margin).
//! - Candidates serve nothing, nor does any node in health Bad.
//!
//! [`Output::Serving`]`(until)` reports each change: the runtime serves
//! while its clock is before `until`; `None` means stop now.

use std::time::Duration;

use crate::events::Output;
use crate::faults::broken;
use crate::leading::Leading;
use crate::message::Append;
use crate::node::Node;
use crate::timing::Timing;
use crate::types::{Health, MemberId, NodeRole};

/// A follower's lease, and what the runtime was last told.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lease {
    /// As a follower, serving until then (this node's clock).
    until: Option<Duration>,
    /// The latest [`Output::Serving`] reported.
    reported: Option<Duration>,
}

impl Node {
    /// Until when this node serves local reads.
    pub(crate) fn serving_until(&self) -> Option<Duration> {
        if self.health == Health::Bad && !broken!(self, serve_when_bad) {
            return None;
        }
        match self.role {
            NodeRole::Leader => self.leader_lease(),
            NodeRole::Follower => self.lease.until,
            NodeRole::PreCandidate | NodeRole::Candidate => None,
        }
    }

    /// Reports a change of the serving time to the runtime.
    pub(crate) fn report_serving(&mut self) {
        let until = self.serving_until().filter(|&u| u > self.now);
        if until != self.lease.reported {
            self.lease.reported = until;
            self.out.push(Output::Serving(until));
        }
    }

    /// Renews a follower's lease from the leader's append `a`, when the
    /// rules allow it.
    pub(crate) fn renew_lease(&mut self, a: &Append) {
        // A leader that took an old stream's answer for a newer one's may
        // send appends committing less than the snapshot's end.
        if a.lease
            && (!self.shutting_down || broken!(self, serve_after_leaving))
            && (self.applied >= a.commit || broken!(self, renew_when_lagging))
            && (self.install.caches_exact(self.applied)
                || broken!(self, keep_lease_while_installing))
            && let Some(echo) = a.echo.filter(|e| *e <= self.now)
        {
            let until = echo + self.timing.read_lease;
            self.lease.until = Some(self.lease.until.map_or(until, |u| u.max(until)));
        }
    }

    /// Someone else may lead soon: stop serving at once.
    pub(crate) fn drop_lease(&mut self) {
        self.lease.until = None;
    }

    /// Cut off from a majority: nothing here can be proven current.
    pub(crate) fn drop_lease_in_bad(&mut self) {
        if !broken!(self, serve_when_bad) {
            self.drop_lease();
        }
    }

    /// A snapshot's first chunk clears the caches.
    pub(crate) fn drop_lease_for_install(&mut self) {
        if !broken!(self, keep_lease_while_installing) {
            self.drop_lease();
        }
    }

    /// The leader's read lease: the latest stamp a majority echoed plus the
    /// vote guard, less the drift margin. No voter elects anyone else before
    /// that, since each waits the guard from when it received the stamp.
    pub(crate) fn leader_lease(&self) -> Option<Duration> {
        let l = self.leading.as_ref()?;
        if self.commit < l.term_start || l.transfer.is_some() || self.shutting_down {
            return None;
        }
        let at = l.quorum_stamp(self.now, self.voters())?;
        let g = self.timing.vote_guard;
        Some(at + g - Timing::drift_margin(g))
    }
}

impl Leading {
    /// An upper bound on the end of `peer`'s read lease (leader's clock): a
    /// follower's lease counts from a reply whose stamp this leader echoed
    /// in an append granting a lease, or, for one granted by an earlier
    /// leader, ended within `L` (`read_lease`) of this leader's election (an
    /// earlier leader's lease ran out before it).
    pub(crate) fn lease_bound(&self, peer: MemberId, read_lease: Duration) -> Duration {
        let progress = self.progress.get(&peer);
        if progress.is_some_and(|p| p.left) {
            return Duration::ZERO;
        }
        let from = progress
            .and_then(|p| p.lease_from)
            .map_or(self.since, |a| a.max(self.since));
        from + read_lease + Timing::drift_margin(read_lease)
    }
}
