//! The runtime task: owns the cluster core and the links, feeds the core
//! its inputs and carries out its outputs, one named handler per output.
//!
//! It feeds the core links going up and down, the frames that arrive, a tick
//! and the application's commands. It reads every link's incoming stream
//! itself (each frame reaches the core without a hand-off between tasks).
//! A follower whose link to the leader holds frames back takes in no new
//! command until it drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redhac_membership::{self as cluster_core, Input, LogId, Message, Node, Output, Term};
use redhac_proto::{Frame, frame};
use redhac_store::Store;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{StreamExt, StreamMap};

use super::effects::{self, Install};
use super::lookups::{self, Lookups};
use super::outbox::Outbox;
use super::pending::PendingWrites;
use super::snapshot::{Listed, Snapshots};
use super::{Command, WriteOp, report, wire};
use crate::gate::ReadGate;
use crate::status::{Health, Status};
use crate::transport::handshake::HelloState;
use crate::transport::link::{Inbound, InboundItem, LinkUp, malformed, stopped};
use crate::write::AckLevel;
use crate::{Error, Result};
use redhac_membership::HostEntry;

/// What the driver is built from.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) me: u32,
    pub(crate) members: Vec<HostEntry>,
    pub(crate) store: Store,
    pub(crate) gate: Arc<ReadGate>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) hello: watch::Sender<HelloState>,
    pub(crate) timing: cluster_core::Timing,
    pub(crate) seed: u64,
    /// Peer messages refused (read by `Runtime::status`).
    pub(crate) refused: Arc<AtomicU64>,
}

/// What woke the runtime.
enum Woke {
    Link(LinkUp),
    Inbound(u32, InboundItem),
    /// A link with a backlog has room again (the next turn flushes it).
    Room,
    /// Keys of a snapshot were listed.
    Listed(Listed),
    Command(Command),
    Tick,
    Due,
    Stop,
}

/// The runtime task's state.
#[derive(Debug)]
pub(crate) struct Driver {
    parts: Parts,
    node: Node,
    epoch: Instant,
    outbox: Outbox,
    /// Every link's incoming frames, by peer.
    inbound: StreamMap<u32, Inbound>,
    install: Install,
    snapshots: Snapshots,
    writes: PendingWrites,
    lookups: Lookups,
    shutdown: Vec<oneshot::Sender<()>>,
    health: Health,
    role: cluster_core::NodeRole,
}

impl Driver {
    pub(crate) fn new(parts: Parts) -> Self {
        let epoch = Instant::now();
        let mut config =
            cluster_core::NodeConfig::new(parts.me, parts.members.len(), parts.timing, parts.seed);
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        config.term_floor = cluster_core::NodeConfig::wall_clock_floor(wall_ms);
        let node = Node::new(config, Duration::ZERO);
        let health = node.status().health;
        parts.health.send_replace(health);
        let driver = Self {
            parts,
            node,
            epoch,
            outbox: Outbox::default(),
            inbound: StreamMap::new(),
            install: Install::default(),
            snapshots: Snapshots::new(),
            writes: PendingWrites::default(),
            lookups: Lookups::default(),
            shutdown: Vec::new(),
            health,
            role: cluster_core::NodeRole::Follower,
        };
        driver.publish_status();
        driver
    }

    /// Runs until shutdown.
    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<LinkUp>,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(self.parts.timing.tick());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Besides the steady tick, wake exactly when the core's next
            // timer is due (an election after the leader's link closed).
            let due = tokio::time::Instant::from_std(self.epoch + self.node.next_deadline());
            // Move what links held back into their channels while there is
            // room, then wake on room in the first link still holding some
            // (the others drain at the next turn, a tick at most away).
            self.flush_backlogs();
            let backlogged = self.outbox.waiting_for_room();
            let intake = !self.leader_link_backlogged();
            let woke = tokio::select! {
                Some((peer, item)) = self.inbound.next(), if !self.inbound.is_empty() => {
                    Woke::Inbound(peer, item)
                }
                Some(up) = events.recv() => Woke::Link(up),
                // The permit is dropped at once: only this task sends on a
                // link, so the slot is still free when the next turn flushes.
                Ok(_) = async {
                    match backlogged {
                        Some((tx, n)) => tx.reserve_many(n).await.map(drop),
                        None => std::future::pending().await,
                    }
                } => Woke::Room,
                Some(command) = commands.recv(), if intake => Woke::Command(command),
                Some(listed) = self.snapshots.listed.recv() => Woke::Listed(listed),
                _ = ticker.tick() => Woke::Tick,
                () = tokio::time::sleep_until(due) => Woke::Due,
                () = stopped(&mut stop) => Woke::Stop,
            };
            match woke {
                Woke::Inbound(peer, item) => self.on_inbound(peer, item),
                Woke::Link(up) => self.on_link(up),
                Woke::Room => {}
                Woke::Listed(listed) => self.on_listed(listed),
                Woke::Command(command) => self.on_command(command),
                Woke::Tick => self.on_tick(),
                Woke::Due => self.step(Input::Tick),
                Woke::Stop => break,
            }
        }
        self.inbound.clear();
        self.outbox.clear();
        self.parts.gate.close();
        self.writes.shut_down();
        tracing::info!("cluster runtime stopped");
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Steps the core and carries out its outputs, in order.
    fn step(&mut self, input: Input) {
        let outputs = self.node.step(self.now(), input);
        let before = self.health;
        for out in outputs {
            self.carry_out(out);
        }
        if self.health != before {
            // Only now, with every output of the step carried out (caches
            // cleared, gate closed): whoever wakes on the health watch sees
            // a member that already behaves as it says, and a status that
            // agrees with it.
            self.publish_status();
            self.parts.health.send_replace(self.health);
        }
        self.publish_hello();
    }

    fn carry_out(&mut self, out: Output) {
        match out {
            Output::Send { to, msg } => self.send_message(to, &msg),
            Output::Apply(entry) => effects::apply(&self.parts.store, self.parts.me, &entry),
            Output::InstallChunk {
                first,
                done,
                last,
                data,
            } => self.install_chunk(first, done, last, &data),
            Output::SendSnapshot { to, term, last } => self.send_snapshot(to, term, last),
            Output::Resolve { id, result } => self.writes.resolve(id, result),
            Output::InvalidateAll => self.invalidate_all(),
            Output::InvalidateKeys(keys) => effects::invalidate(&self.parts.store, keys),
            Output::Health(h) => self.set_health(h),
            Output::Serving(until) => self.serve_until(until),
            Output::State { term, role, leader } => self.set_state(term, role, leader),
            Output::Rejected { from, what, why } => {
                self.refuse(from, what, why.as_str(), "", why.is_violation());
            }
            Output::ShutdownReady => self.shutdown_ready(),
        }
    }

    fn send_message(&mut self, to: u32, msg: &Message) {
        self.send_frame(to, frame::Kind::Core(wire::to_wire(msg)));
    }

    fn install_chunk(&mut self, first: bool, done: bool, last: LogId, data: &[u8]) {
        let (store, gate) = (&self.parts.store, &self.parts.gate);
        self.install.chunk(store, gate, first, done, last, data);
    }

    /// Queues a snapshot stream for `to`, its keys listed meanwhile.
    fn send_snapshot(&mut self, to: u32, term: Term, last: LogId) {
        if !self.outbox.contains(to) {
            return;
        }
        let stream = self.snapshots.start(&self.parts.store, term, last);
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
        metrics::gauge!(crate::metrics::HEALTH).set(match health {
            Health::Good => 2.0,
            Health::Degraded => 1.0,
            Health::Bad => 0.0,
        });
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

    fn shutdown_ready(&mut self) {
        for reply in self.shutdown.drain(..) {
            let _ = reply.send(());
        }
    }

    fn on_tick(&mut self) {
        self.step(Input::Tick);
        self.lookups.expire(Instant::now());
        self.publish_status();
        report::gauges(&self.node.status(), &self.parts.store);
    }

    fn on_link(&mut self, up: LinkUp) {
        let LinkUp {
            peer,
            link,
            hello,
            tx,
            inbound,
            held,
        } = up;
        if let Some(old) = self.outbox.insert(peer, link, tx, held) {
            tracing::debug!(peer, old, new = link, "a newer link replaces the old one");
        }
        self.inbound.insert(peer, inbound);
        self.step(Input::Connected {
            peer,
            hello: (&hello).into(),
        });
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(self.outbox.len() as f64);
    }

    /// What a link's stream gave: a frame, an error, or its end.
    fn on_inbound(&mut self, peer: u32, item: InboundItem) {
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

    fn drop_link(&mut self, peer: u32) {
        self.inbound.remove(&peer);
        if self.outbox.remove(peer) {
            metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(self.outbox.len() as f64);
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
    fn on_listed(&mut self, listed: Listed) {
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
    fn refuse(&self, peer: u32, what: &str, reason: &'static str, detail: &str, warn: bool) {
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

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Write {
                op,
                ack,
                timeout,
                reply,
            } => self.propose(op, ack, timeout, reply),
            Command::Lookup { cache, key, reply } => self.lookup(cache, key, reply),
            Command::Shutdown { reply } => {
                self.shutdown.push(reply);
                self.step(Input::Shutdown);
            }
        }
    }

    fn propose(
        &mut self,
        op: WriteOp,
        ack: AckLevel,
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    ) {
        if let Err(e) = self.parts.store.erased(op.cache()) {
            let _ = reply.send(Err(e.into()));
            return;
        }
        let id = self.writes.track(reply, ack, timeout);
        let deadline = self.now() + timeout;
        self.step(Input::Propose {
            id,
            op: Arc::new(op.into()),
            ack: ack.into(),
            deadline,
        });
    }

    /// A read for a key this member missed: the leader answers it.
    fn lookup(&mut self, cache: String, key: String, reply: lookups::Reply) {
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

    /// Sends a frame through the outbox; a peer that cannot take it loses
    /// its link.
    fn send_frame(&mut self, peer: u32, kind: frame::Kind) {
        if self.outbox.send(peer, kind).is_err() {
            self.drop_link(peer);
        }
    }

    fn flush_backlogs(&mut self) {
        let closed = self
            .outbox
            .flush(&self.parts.store, self.node.caches_through());
        for peer in closed {
            self.drop_link(peer);
        }
    }

    /// Whether this follower's link to its leader holds frames back: then
    /// it takes in no new command (the callers wait) until the link drains.
    fn leader_link_backlogged(&self) -> bool {
        self.role != cluster_core::NodeRole::Leader
            && self
                .node
                .leader()
                .is_some_and(|l| self.outbox.backlogged(l))
    }

    fn publish_status(&self) {
        let status = report::status(
            &self.node.status(),
            &self.parts.members,
            self.parts.gate.open(),
        );
        self.parts.status.send_replace(status);
    }

    /// The state this member's next Hellos carry.
    fn publish_hello(&self) {
        let state = HelloState::from(self.node.hello());
        self.parts.hello.send_if_modified(|h| {
            let changed = *h != state;
            *h = state;
            changed
        });
    }
}
