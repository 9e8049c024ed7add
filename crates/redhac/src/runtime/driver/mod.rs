//! The runtime task: its state and its loop. It owns the cluster core and
//! the links, feeds the core its inputs (`inputs`) and carries out its
//! outputs (`outputs`).
//!
//! It reads every link's incoming stream itself (each frame reaches the
//! core without a hand-off between tasks). A follower whose link to the
//! leader holds frames back takes in no new command until it drains.

mod inputs;
mod outputs;

use std::collections::{BTreeMap, BTreeSet};
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
    /// This member's id (the dynamic mode draws a new one when it rejoins).
    pub(crate) me: u32,
    /// The members a link is up to, as the dial tasks read it.
    pub(crate) linked: watch::Sender<BTreeSet<u32>>,
    /// The dynamic mode (`HA_DISCOVER`); `None` in the static mode.
    pub(crate) dynamic: Option<Dynamic>,
    /// The static mode's members; empty in the dynamic mode.
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

/// The dynamic mode's part of the driver.
#[derive(Debug)]
pub(crate) struct Dynamic {
    pub(crate) autopilot: cluster_core::Autopilot,
    pub(crate) bootstrap_expect: usize,
    /// How many other members discovery lists now.
    pub(crate) discovered: watch::Receiver<usize>,
    /// This member's advertised address (empty if none).
    pub(crate) advertised: String,
}

/// What woke the runtime.
enum Woke {
    /// Discovery lists this many other members now.
    Discovered(usize),
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
    /// The dynamic mode: the address each member advertised.
    addresses: BTreeMap<u32, String>,
    /// The dynamic mode: the membership the published status shows.
    shown: cluster_core::Membership,
    /// The leader removed this member: it rejoins as a new member once the
    /// step's outputs end (the rest of them are the old core's).
    rejoin: bool,
    /// The dynamic mode: when this member last warned that it is in no
    /// cluster yet (this runtime's clock).
    unformed_warned: Duration,
}

/// The core of member `me` (a new incarnation, `seed`), started at `now`.
fn new_node(parts: &Parts, me: u32, seed: u64, now: Duration) -> Node {
    let mut config = cluster_core::NodeConfig::new(me, parts.members.len(), parts.timing, seed);
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    config.term_floor = cluster_core::NodeConfig::wall_clock_floor(wall_ms);
    config.incarnation = seed;
    config.membership = parts.membership.clone();
    if let Some(d) = &parts.dynamic {
        config.autopilot = Some(d.autopilot);
        config.bootstrap_expect = Some(d.bootstrap_expect);
    }
    Node::new(config, now)
}

impl Driver {
    pub(crate) fn new(parts: Parts) -> Self {
        let epoch = Instant::now();
        let node = new_node(&parts, parts.me, parts.seed, Duration::ZERO);
        let health = node.status().health;
        parts.health.send_replace(health);
        // Present from the start, so an alert on a member that never links
        // (health 0, no links) fires.
        metrics::gauge!(crate::metrics::HEALTH).set(health_value(health));
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(0.0);
        let mut addresses = BTreeMap::new();
        if let Some(d) = parts.dynamic.as_ref().filter(|d| !d.advertised.is_empty()) {
            addresses.insert(parts.me, d.advertised.clone());
        }
        let shown = node.membership().clone();
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
            addresses,
            shown,
            rejoin: false,
            unformed_warned: Duration::ZERO,
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
        let mut discovered = self.parts.dynamic.as_ref().map(|d| d.discovered.clone());
        if let Some(peers) = discovered.as_mut().map(|d| *d.borrow_and_update()) {
            self.step(Input::Discovered { peers });
        }
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
                Some(peers) = async {
                    match discovered.as_mut() {
                        Some(d) => d.changed().await.ok().map(|()| *d.borrow_and_update()),
                        None => std::future::pending().await,
                    }
                } => Woke::Discovered(peers),
                _ = ticker.tick() => Woke::Tick,
                () = tokio::time::sleep_until(due) => Woke::Due,
                () = stopped(&mut stop) => Woke::Stop,
            };
            match woke {
                Woke::Inbound(peer, item) => self.on_inbound(peer, item),
                Woke::Discovered(peers) => self.step(Input::Discovered { peers }),
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
        self.links_changed();
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
        let mut outputs = self.node.step_batch(self.now(), inputs);
        let before = self.health;
        for out in outputs.drain(..) {
            self.carry_out(out);
            if self.rejoin {
                // What follows is the removed core's; the new one starts.
                self.rejoin();
                return;
            }
        }
        self.node.recycle(outputs);
        if self.health != before {
            // Only now, with every output of the step carried out (caches
            // cleared, gate closed): whoever wakes on the health watch sees
            // a member that already behaves as it says, and a status that
            // agrees with it.
            self.publish_status();
            self.parts.health.send_replace(self.health);
        } else if self.parts.dynamic.is_some() && *self.node.membership() != self.shown {
            // A change is in force once appended, before it commits: the
            // status shows it before the change's caller is answered.
            self.shown = self.node.membership().clone();
            self.publish_status();
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
        let serving = self.parts.gate.open();
        let status = if self.parts.dynamic.is_some() {
            report::dynamic_status(s, self.node.membership(), &self.addresses, serving, version)
        } else {
            report::status(s, &self.parts.members, serving, version)
        };
        self.parts.status.send_replace(status);
    }

    /// Publishes the links up (the dial tasks wait on it) and counts them.
    fn links_changed(&self) {
        let linked: BTreeSet<u32> = self.outbox.peers().collect();
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(linked.len() as f64);
        self.parts.linked.send_if_modified(|l| {
            let changed = *l != linked;
            *l = linked;
            changed
        });
    }

    /// The state this member's next Hellos carry.
    fn publish_hello(&self) {
        let mut state = HelloState::from(self.node.hello());
        state.me = self.parts.me;
        // A bootstrap's choice is no cluster yet: a cluster is formed once
        // its membership is in the log (the first entry). Members of two
        // tentative choices must still link, or one that lost its first
        // election could never be added to the cluster that won.
        if state.last_log_index > 0 {
            state.cluster = self.node.membership().cluster();
        }
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
