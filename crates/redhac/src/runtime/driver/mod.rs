//! The runtime task: its state and its loop. It owns the cluster core and
//! the links, feeds the core its inputs (`inputs`) and carries out its
//! outputs (`outputs`).
//!
//! It reads every link's incoming stream itself (each frame reaches the
//! core without a hand-off between tasks). A follower whose link to the
//! leader holds frames back takes in no new command until it drains.

mod inputs;
mod outputs;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use redhac_membership::{self as cluster_core, Input, Node};
use redhac_proto::frame;
use redhac_store::Store;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{StreamExt, StreamMap};

use super::effects::Install;
use super::lookups::Lookups;
use super::outbox::Outbox;
use super::pending::PendingWrites;
use super::snapshot::{Listed, Snapshots};
use super::{Command, report};
use crate::gate::ReadGate;
use crate::status::{Health, Status};
use crate::transport::handshake::HelloState;
use crate::transport::link::{Inbound, InboundItem, LinkUp, stopped};
use redhac_membership::HostEntry;

/// What the driver is built from.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) me: u32,
    pub(crate) members: Vec<HostEntry>,
    /// Who of `members` votes.
    pub(crate) membership: cluster_core::Membership,
    pub(crate) store: Store,
    pub(crate) gate: Arc<ReadGate>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) hello: watch::Sender<HelloState>,
    pub(crate) timing: cluster_core::Timing,
    pub(crate) seed: u64,
    /// Peer messages refused (read by `Runtime::status`).
    pub(crate) refused: Arc<AtomicU64>,
    /// The protocol versions this member speaks.
    pub(crate) versions: std::ops::RangeInclusive<u32>,
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
        config.incarnation = parts.seed;
        config.membership = parts.membership.clone();
        let node = Node::new(config, Duration::ZERO);
        let health = node.status().health;
        parts.health.send_replace(health);
        // Present from the start, so an alert on a member that never links
        // (health 0, no links) fires.
        metrics::gauge!(crate::metrics::HEALTH).set(health_value(health));
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(0.0);
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
        driver.publish_hello();
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
                Woke::Command(command) => self.on_commands(command, &mut commands),
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
        self.step_batch([input]);
    }

    /// Steps the core with several inputs as one turn and carries out its
    /// outputs, in order.
    fn step_batch(&mut self, inputs: impl IntoIterator<Item = Input>) {
        let outputs = self.node.step_batch(self.now(), inputs);
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
        self.publish_status_of(&self.node.status());
    }

    /// Publishes the status from the core's `s`.
    fn publish_status_of(&self, s: &cluster_core::NodeStatus) {
        let me = self.parts.me;
        let version = |id| {
            if id == me {
                Some(*self.parts.versions.end())
            } else {
                self.outbox.version(id)
            }
        };
        let members = &self.parts.members;
        let serving = self.parts.gate.open();
        let status = report::status(s, members, serving, version);
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

/// The `redhac_health` gauge's value: 2 Good, 1 Degraded, 0 Bad.
fn health_value(health: Health) -> f64 {
    match health {
        Health::Good => 2.0,
        Health::Degraded => 1.0,
        Health::Bad => 0.0,
    }
}
