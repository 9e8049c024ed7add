//! The core's outputs carried out, one named handler per output: the
//! dispatch is `carry_out`, each arm one line.

use std::time::Duration;

use redhac_membership::{self as cluster_core, Health, Input, LogId, Message, Output, Term};
use redhac_proto::frame;

use super::Driver;
use crate::runtime::{effects, wire};
use crate::transport::handshake::LEAVING_AND_STAYS;

impl Driver {
    pub(super) fn carry_out(&mut self, out: Output) {
        match out {
            Output::Send { to, msg } => self.send_message(to, &msg),
            Output::Apply(entry) => effects::apply(&self.parts.store, self.parts.me, &entry),
            Output::InstallChunk {
                first,
                done,
                last,
                data,
            } => self.install_chunk(first, done, last, &data),
            Output::SendSnapshot {
                to,
                term,
                last,
                membership: (index, membership),
            } => {
                let membership = crate::runtime::wire::membership_at(index, &membership);
                self.send_snapshot(to, term, last, membership);
            }
            Output::Resolve { id, result } => self.writes.resolve(id, result),
            Output::InvalidateAll => self.invalidate_all(),
            Output::InvalidateKeys(keys) => effects::invalidate(&self.parts.store, keys),
            Output::Health(h) => self.set_health(h),
            Output::Serving(until) => self.serve_until(until),
            Output::State { term, role, leader } => self.set_state(term, role, leader),
            Output::Rejected { from, what, why } => {
                self.refuse(from, what, why.as_str(), "", why.is_violation());
            }
            Output::ResetLink { peer } => self.reset_link(peer),
            Output::ShutdownReady => self.shutdown_ready(),
            Output::Removed => self.removed(),
        }
    }

    /// The core found the link to `peer` silent (and counts it down
    /// already): close it; the dialling side dials afresh at once.
    fn reset_link(&mut self, peer: u32) {
        tracing::warn!(
            peer,
            silent_ms = self.parts.timing.silent_link.as_millis() as u64,
            "link reset: nothing came from the peer while an answer or a heartbeat was due \
             (a half-open connection after a partition, or a stalled peer); dialling afresh"
        );
        let label = crate::metrics::peer_label(self.parts.dynamic.is_some(), peer);
        metrics::counter!(crate::metrics::LINKS_SILENT, "peer" => label).increment(1);
        self.inbound.remove(&peer);
        if self.outbox.remove(peer) {
            self.links_changed();
        }
    }

    /// The leader removed this member (only the dynamic mode's leaders
    /// do): its core serves, votes and takes writes no more. Unless it is
    /// shutting down, it rejoins as a new member once this step's outputs
    /// end (`Driver::rejoin`).
    fn removed(&mut self) {
        if self.parts.dynamic.is_none() || !self.shutdown.is_empty() {
            tracing::info!("the leader removed this member from the cluster");
            return;
        }
        self.rejoin = true;
    }

    /// Starts a new member in place of this removed one: a new id and a
    /// new core, every link dialled afresh, the caches empty until the
    /// leader, which adds it as a learner, sent it a snapshot.
    pub(super) fn rejoin(&mut self) {
        self.rejoin = false;
        let old = self.parts.me;
        let mut new = super::super::handle::random_id();
        while new == old || self.outbox.contains(new) {
            new = super::super::handle::random_id();
        }
        tracing::warn!(
            old,
            new,
            "the leader removed this member from the cluster (it was gone too long, or the \
             operator removed it): it rejoins as a new member; its caches are empty until it \
             caught up, and its writes in flight fail with a timeout (they may still apply)"
        );
        self.parts.gate.close();
        self.writes.fail_all();
        self.install = crate::runtime::effects::Install::default();
        self.parts.store.clear_all(redhac_store::Origin::Local);
        // The new identity is published (id and state in one Hello) before
        // any link is dialled again; links shaken under the old id are
        // dropped when they arrive (`on_link`).
        self.parts.me = new;
        if let Some(address) = self.addresses.remove(&old) {
            self.addresses.insert(new, address);
        }
        let seed = super::super::handle::random_id().into();
        self.node = super::new_node(&self.parts, new, seed, self.now());
        self.role = cluster_core::NodeRole::Follower;
        self.publish_hello();
        self.inbound.clear();
        self.outbox.clear();
        self.links_changed();
        if let Some(peers) = self.parts.dynamic.as_ref().map(|d| *d.discovered.borrow()) {
            self.step(Input::Discovered { peers });
        }
        self.health = self.node.status().health;
        self.parts.health.send_replace(self.health);
        self.publish_status();
    }

    fn send_message(&mut self, to: u32, msg: &Message) {
        // A peer of protocol 2 would take a message it does not know for
        // a malformed frame and close the link; without it, it waits for
        // the lease instead.
        if matches!(msg, Message::Leaving { .. })
            && self.outbox.version(to) < Some(LEAVING_AND_STAYS)
        {
            return;
        }
        self.send_frame(to, frame::Kind::Core(wire::to_wire(msg)));
    }

    fn install_chunk(&mut self, first: bool, done: bool, last: LogId, data: &[u8]) {
        let (store, gate) = (&self.parts.store, &self.parts.gate);
        self.install.chunk(store, gate, first, done, last, data);
    }

    /// Queues a snapshot stream for `to`, its keys listed meanwhile.
    fn send_snapshot(
        &mut self,
        to: u32,
        term: Term,
        last: LogId,
        membership: redhac_proto::MembershipAt,
    ) {
        if !self.outbox.contains(to) {
            return;
        }
        let stream = self
            .snapshots
            .start(&self.parts.store, term, last, membership);
        self.outbox.queue_snapshot(to, stream);
        tracing::info!(peer = to, %last, "streaming a snapshot");
    }

    fn invalidate_all(&mut self) {
        tracing::warn!(
            links = self.outbox.len(),
            members = self.parts.members.len(),
            "invalidating every cache: this member lost its majority (health Bad) \
             or holds state it cannot trust; reads miss until it rejoins"
        );
        self.parts.store.clear_all(redhac_store::Origin::Local);
    }

    fn set_health(&mut self, health: Health) {
        tracing::info!(from = ?self.health, to = ?health, links = self.outbox.len(), "health changed");
        self.health = health;
        metrics::gauge!(crate::metrics::HEALTH).set(super::health_value(health));
    }

    fn serve_until(&mut self, until: Option<Duration>) {
        let was = self.parts.gate.open();
        match until {
            Some(until) => self.parts.gate.open_until(self.epoch + until),
            None => self.parts.gate.close(),
        }
        if was != self.parts.gate.open() {
            self.publish_status(); // readiness follows at once
        }
    }

    fn set_state(&mut self, term: Term, role: cluster_core::NodeRole, leader: Option<u32>) {
        self.outbox
            .drop_streams(term, role == cluster_core::NodeRole::Leader);
        if role == cluster_core::NodeRole::Candidate {
            metrics::counter!(crate::metrics::ELECTIONS).increment(1);
        }
        if role != self.role {
            tracing::info!(term, ?role, ?leader, "role changed");
        }
        self.role = role;
        self.publish_status();
    }

    /// The core may stop: answer the shutdown once the links' channels
    /// have taken what the last steps sent (a handover's `TimeoutNow`, a
    /// follower's `Leaving`), or after `DRAIN` at most. The links close
    /// right after the answer.
    fn shutdown_ready(&mut self) {
        const DRAIN: Duration = Duration::from_millis(200);
        let replies = std::mem::take(&mut self.shutdown);
        let senders = self.outbox.senders();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + DRAIN;
            while senders.iter().any(|tx| tx.capacity() < tx.max_capacity())
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for reply in replies {
                let _ = reply.send(());
            }
        });
    }
}
