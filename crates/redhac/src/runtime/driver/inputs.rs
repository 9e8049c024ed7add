//! What wakes the runtime, handled: links up and down, frames from peers,
//! snapshot key listings, the application's commands, the tick.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redhac_membership::{Health, Input};
use redhac_proto::{Frame, frame};

use crate::transport::handshake::LEAVING_AND_STAYS;
use tokio::sync::{mpsc, oneshot};

use super::Driver;
use crate::runtime::lookups::{self, Reply};
use crate::runtime::snapshot::Listed;
use crate::runtime::{Command, WriteOp, report, wire};
use crate::transport::link::{InboundItem, LinkUp, malformed};
use crate::write::AckLevel;
use crate::{Error, Result};

impl Driver {
    pub(super) fn on_tick(&mut self) {
        self.step(Input::Tick);
        self.lookups.expire(Instant::now());
        let s = self.node.status();
        // Bounded: members neither listed nor linked (removed, gone) are
        // dropped; a member links before it is added, so both count.
        let (membership, outbox) = (self.node.membership(), &self.outbox);
        self.addresses
            .retain(|id, _| *id == s.me || membership.contains(*id) || outbox.contains(*id));
        self.publish_status_of(&s);
        report::gauges(&s, &self.parts.store, self.parts.gate.open());
        self.warn_if_unformed();
    }

    /// The dynamic mode: every `UNFORMED_WARN_EVERY` in no cluster (not
    /// bootstrapped, not added), a warning with what discovery found.
    fn warn_if_unformed(&mut self) {
        /// Long enough for a start or a join, short enough to be seen.
        const UNFORMED_WARN_EVERY: Duration = Duration::from_secs(10);
        let Some(d) = &self.parts.dynamic else {
            return;
        };
        let now = self.now();
        if !self.node.membership().is_empty() || now < self.unformed_warned + UNFORMED_WARN_EVERY {
            return;
        }
        self.unformed_warned = now;
        let discovered = *d.discovered.borrow();
        let discovered = (discovered != usize::MAX).then_some(discovered);
        tracing::warn!(
            ?discovered,
            linked = self.outbox.len(),
            bootstrap_expect = d.bootstrap_expect,
            "in no cluster yet: a cluster forms once HA_BOOTSTRAP_EXPECT members are linked to \
             every member discovery lists (an address that never answers holds it back: check \
             that HA_DISCOVER lists each member's own address), or a leader adds this member"
        );
    }

    pub(super) fn on_link(&mut self, up: LinkUp) {
        let LinkUp {
            peer,
            link,
            dialled,
            hello,
            tx,
            inbound,
            held,
        } = up;
        if hello.as_me != self.parts.me {
            // Shaken under the id this member had before it rejoined.
            tracing::debug!(peer, link, "a link under this member's old id: dropped");
            return;
        }
        if self.parts.dynamic.is_some() {
            // Both ends may dial each other: each keeps the link the
            // smaller id dialled, else the first one up, so both keep the
            // same one.
            let preferred = dialled == (self.parts.me < peer);
            if !preferred && self.outbox.contains(peer) {
                tracing::debug!(peer, link, "a second link to a linked member: dropped");
                return;
            }
            if !hello.address.is_empty() {
                self.addresses.insert(peer, hello.address.clone());
            }
        }
        if let Some(old) = self.outbox.insert(peer, (link, hello.version), tx, held) {
            tracing::debug!(peer, old, new = link, "a newer link replaces the old one");
        }
        self.inbound.insert(peer, inbound);
        self.step(Input::Connected {
            peer,
            hello: (&hello).into(),
        });
        self.links_changed();
    }

    /// What a link's stream gave: a frame, an error, or its end.
    pub(super) fn on_inbound(&mut self, peer: u32, item: InboundItem) {
        match item {
            Some(Ok(f @ Frame { kind: Some(_) })) => {
                let bytes = prost::Message::encoded_len(&f) as u64;
                metrics::counter!(crate::metrics::BYTES_IN).increment(bytes);
                if let Some(kind) = f.kind {
                    self.on_frame(peer, kind);
                }
            }
            Some(Ok(Frame { kind: None })) => {
                let why = "an empty frame; closing the link";
                self.refuse(peer, "Frame", "malformed", why, true);
                self.drop_link(peer);
            }
            Some(Err(status)) if malformed(&status) => {
                let detail = format!("{}; closing the link", status.message());
                self.refuse(peer, "Frame", "malformed", &detail, true);
                self.drop_link(peer);
            }
            Some(Err(status)) => {
                tracing::info!(peer, error = status.message(), "link down: stream error");
                self.drop_link(peer);
            }
            None => {
                tracing::info!(peer, "link down: closed by the peer");
                self.drop_link(peer);
            }
        }
    }

    pub(super) fn drop_link(&mut self, peer: u32) {
        self.inbound.remove(&peer);
        if self.outbox.remove(peer) {
            self.links_changed();
            self.step(Input::Disconnected { peer });
        }
    }

    fn on_frame(&mut self, peer: u32, frame: frame::Kind) {
        let (node, store, gate) = (&self.node, &self.parts.store, &self.parts.gate);
        match frame {
            frame::Kind::Core(c) => match wire::from_wire(c) {
                Ok(msg) => self.step(Input::Receive { from: peer, msg }),
                Err(reason) => {
                    self.refuse(peer, "Core", "malformed", reason, true);
                    self.drop_link(peer);
                }
            },
            frame::Kind::LookupRequest(r) => {
                let response = lookups::answer(r, node, store, gate);
                self.send_frame(peer, frame::Kind::LookupResponse(response));
            }
            frame::Kind::LookupResponse(r) => self.lookups.answered(r, node, store, gate),
            frame::Kind::Hello(_) | frame::Kind::Auth(_) => {
                let why = "a handshake frame on an open link; closing the link";
                self.refuse(peer, "Hello/Auth", "malformed", why, true);
                self.drop_link(peer);
            }
        }
    }

    /// Keys listed for a snapshot stream (gone if its link or term ended).
    pub(super) fn on_listed(&mut self, listed: Listed) {
        let Some((peer, s)) = self.outbox.stream(listed.stream()) else {
            return;
        };
        match listed {
            Listed::Keys { cache, keys, .. } => s.add_keys(cache, keys),
            Listed::Done { .. } => {
                s.all_listed();
                let ms = s.started.elapsed().as_millis() as u64;
                tracing::info!(peer, listed_in_ms = ms, "snapshot keys listed");
            }
        }
    }

    /// Logs and counts a peer message this member did not act on.
    pub(super) fn refuse(
        &self,
        peer: u32,
        what: &str,
        reason: &'static str,
        detail: &str,
        warn: bool,
    ) {
        self.parts.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::MESSAGES_REFUSED, "reason" => reason).increment(1);
        if warn {
            tracing::warn!(
                peer,
                message = what,
                reason,
                detail,
                "refused a peer's message"
            );
        } else {
            tracing::debug!(
                peer,
                message = what,
                reason,
                detail,
                "refused a peer's message"
            );
        }
    }

    /// Takes `first` and every command waiting behind it (up to
    /// `MAX_TURN`) as one turn: their writes reach the core together, so a
    /// leader appends them at once and sends each follower one frame for
    /// all (group commit), and they resolve together when it commits. A
    /// lone write goes at once: nothing waits for a batch to fill.
    pub(super) fn on_commands(&mut self, first: Command, waiting: &mut mpsc::Receiver<Command>) {
        /// Enough to amortise a turn, few enough that links and ticks
        /// are not kept waiting behind a flood of writes.
        const MAX_TURN: usize = 256;
        let mut inputs = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(command) = next.take() {
            taken += 1;
            match command {
                Command::Write {
                    op,
                    ack,
                    timeout,
                    reply,
                } => inputs.extend(self.write_input(op, ack, timeout, reply)),
                Command::Lookup { cache, key, reply } => self.lookup(cache, key, reply),
                Command::Change {
                    change,
                    timeout,
                    reply,
                } => inputs.extend(self.change_input(change, timeout, reply)),
                Command::Shutdown { reply } => {
                    self.shutdown.push(reply);
                    inputs.push(Input::Shutdown);
                }
                Command::StepDown { reply } => {
                    let asked = self.step_down_input();
                    let _ = reply.send(asked.as_ref().map(Option::is_some).map_err(|e| {
                        tracing::warn!(error = %e, "step-down refused");
                        Error::Handover(e.clone())
                    }));
                    inputs.extend(asked.ok().flatten());
                }
                // On purpose, and only with `test-support`: the test of a
                // runtime that dies (`test_support::crash_runtime`).
                #[cfg(feature = "test-support")]
                Command::Crash => panic!("the runtime task crashed (test-support)"),
            }
            if taken < MAX_TURN {
                next = waiting.try_recv().ok();
            }
        }
        if !inputs.is_empty() {
            self.step_batch(inputs);
        }
    }

    /// The core's input for a step-down: none when this member does not
    /// lead; refused when no voter is linked, or a linked member speaks a
    /// protocol older than 3 (its `TimeoutNow` has no `stays`: as leader it
    /// would take this member for gone, and not wait for its read lease).
    fn step_down_input(&self) -> std::result::Result<Option<Input>, String> {
        let s = self.node.status();
        if s.role != redhac_membership::NodeRole::Leader {
            return Ok(None);
        }
        let old = s.peers.iter().find_map(|p| {
            let v = self.outbox.version(p.id)?;
            (v < LEAVING_AND_STAYS).then_some((p.id, v))
        });
        if let Some((id, v)) = old {
            return Err(format!(
                "member {id} speaks protocol {v}, which cannot tell a step-down from a \
                 shutdown; upgrade it first"
            ));
        }
        if !s.peers.iter().any(|p| p.connected && p.voter) {
            return Err("no voter is linked to hand leadership over to".into());
        }
        tracing::info!(term = s.term, "stepping down: handing leadership over");
        Ok(Some(Input::StepDown))
    }

    /// The core's input for a write, or none when it is answered here.
    fn write_input(
        &mut self,
        op: WriteOp,
        ack: AckLevel,
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    ) -> Option<Input> {
        if let Err(e) = self.parts.store.erased(op.cache()) {
            let _ = reply.send(Err(e.into()));
            return None;
        }
        let id = self.writes.track(reply, ack, timeout);
        let deadline = self.now() + timeout;
        Some(Input::Propose {
            id,
            op: Arc::new(op.into()),
            ack: ack.into(),
            deadline,
        })
    }

    /// The core's input for an operator's membership change, or none when
    /// it is refused here (the static mode, or not the leader).
    fn change_input(
        &mut self,
        change: crate::runtime::Change,
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    ) -> Option<Input> {
        let refuse = if self.parts.dynamic.is_none() {
            Some(
                "the static mode's members are HA_HOSTS and HA_LEARNERS; membership changes \
                 need the dynamic mode (HA_DISCOVER)"
                    .to_owned(),
            )
        } else if self.role != redhac_membership::NodeRole::Leader {
            Some(match self.node.leader() {
                Some(l) => format!("only the leader changes the membership: ask member {l}"),
                None => "only the leader changes the membership, and none is known now".into(),
            })
        } else if let crate::runtime::Change::AddLearner(id) = change
            && !self.outbox.contains(id)
        {
            Some(format!(
                "member {id} is not linked to the leader; a member is added once it linked"
            ))
        } else {
            None
        };
        if let Some(why) = refuse {
            let _ = reply.send(Err(Error::Membership(why)));
            return None;
        }
        let next = change.apply(self.node.membership());
        tracing::info!(?change, "membership change asked");
        let id = self.writes.track(reply, AckLevel::Quorum, timeout);
        Some(Input::Propose {
            id,
            op: Arc::new(redhac_membership::Op::Membership(next)),
            ack: redhac_membership::Ack::Quorum,
            deadline: self.now() + timeout,
        })
    }

    /// A read for a key this member missed: the leader answers it.
    fn lookup(&mut self, cache: String, key: String, reply: Reply) {
        if let Err(e) = self.parts.store.erased(&cache) {
            let _ = reply.send(Err(e.into()));
            return;
        }
        let leader = self.node.leader();
        match leader.filter(|l| *l != self.parts.me && self.outbox.contains(*l)) {
            Some(leader) if self.health != Health::Bad => {
                let request = self.lookups.ask(reply, cache, key);
                self.send_frame(leader, frame::Kind::LookupRequest(request));
            }
            // The leader itself answers from its copy while it serves;
            // anyone else without a leader to ask fails.
            _ => {
                let local = (leader == Some(self.parts.me))
                    .then(|| lookups::local(&self.parts.store, &self.parts.gate, &cache, &key))
                    .flatten();
                let _ = reply.send(local.ok_or(Error::NoQuorum));
            }
        }
    }
}
