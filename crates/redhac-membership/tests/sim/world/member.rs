//! A simulated member: the core plus what its runtime keeps (caches,
//! serving time, writes in flight), started, ticked and stepped, carrying
//! out the core's outputs on its caches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{
    Ack, Autopilot, Input, MemberId, Message, Node, NodeConfig, NodeRole, Op, Output, PeerHello,
    RequestId,
};

use super::{Event, World};

/// How many voters the dynamic mode's autopilot keeps.
pub(crate) const AUTOPILOT_VOTERS: usize = 3;

/// A simulated member: the core plus the caches it would keep.
pub(crate) struct SimNode {
    pub(crate) node: Option<Node>,
    pub(crate) inc: u64,
    /// This incarnation's clock reads global time plus this.
    pub(crate) offset: Duration,
    pub(crate) paused_until: Duration,
    pub(crate) store: BTreeMap<(String, String), Vec<u8>>,
    pub(crate) serving_until: Option<Duration>,
    /// The last index applied, as seen from its outputs.
    pub(crate) applied: u64,
    /// Between a snapshot's first and last chunks.
    pub(crate) installing: bool,
    /// A snapshot's `end`: its caches are exact again once applied reaches it.
    pub(crate) fuzzy_until: u64,
    pub(super) next_id: RequestId,
    /// Writes in flight: id -> (op, ack, proposed at).
    pub(crate) writes: BTreeMap<RequestId, (Arc<Op>, Ack, Duration)>,
    /// It shut down gracefully and is about to exit: its links are not
    /// dialled again.
    pub(crate) exiting: bool,
    /// It was told to shut down (and has not started again since).
    pub(crate) leaving: bool,
    /// When discovery lists it (a bootstrap's).
    pub(crate) discoverable: Duration,
}

impl SimNode {
    /// A member not started yet, whose clocks read global time plus `offset`.
    pub(super) fn new(offset: Duration) -> Self {
        Self {
            node: None,
            inc: 0,
            offset,
            paused_until: Duration::ZERO,
            store: BTreeMap::new(),
            serving_until: None,
            applied: 0,
            installing: false,
            fuzzy_until: 0,
            next_id: 1,
            writes: BTreeMap::new(),
            exiting: false,
            leaving: false,
            discoverable: Duration::ZERO,
        }
    }
}

impl World {
    /// Starts `id` as a new incarnation: empty caches, a fresh core.
    pub(super) fn start(&mut self, id: MemberId) {
        let seed = if self.opts.same_seed {
            self.opts.seed
        } else {
            self.opts.seed ^ (u64::from(id) << 32)
        };
        let mut config = NodeConfig::new(id, self.opts.nodes, self.timing, seed);
        // A member that restarts under the same id is given the cluster's
        // membership as last committed (an oracle: the static list never
        // changes, so only this simulation restarts a changed membership's
        // member under its old id): it never acts on one the cluster left.
        // A new identity knows only the first list, which does not name it.
        let oracle = (!self.opts.fresh_identities && !self.opts.restart_blind)
            .then(|| self.checker.committed_membership())
            .flatten();
        let (index, membership) = oracle.unwrap_or_else(|| (0, self.membership()));
        config.membership = membership;
        config.membership_index = index;
        // The dynamic mode's leaders run the autopilot, quicker than by
        // default so a run heals within its time. A member shutting down
        // waits to be removed for as long as it takes: when a process may go
        // is the fault budget's to say (`may_crash`); a leave timeout that
        // ran out while the member is still needed is a crash beyond it.
        if self.opts.fresh_identities {
            config.autopilot = Some(Autopilot {
                voters: AUTOPILOT_VOTERS,
                replace_after: self.timing.election_timeout,
                remove_after: self.timing.election_timeout * 2,
                leave_timeout: Duration::MAX / 4,
            });
        }
        if self.opts.bootstrap {
            config.bootstrap_expect = Some(AUTOPILOT_VOTERS);
            let lag = self
                .rng
                .millis(0, self.opts.discovery_lag.as_millis() as u64 + 1);
            self.nodes[id as usize].discoverable = self.now + lag;
        }
        config.faults = self.opts.faults;
        // Wall clocks agree within a few milliseconds (less than a restart).
        let skew = self.rng.below(5);
        let wall_ms = (self.now.as_millis() as u64 + skew).saturating_sub(2);
        config.term_floor = NodeConfig::wall_clock_floor(wall_ms);
        let n = &mut self.nodes[id as usize];
        n.inc += 1;
        config.incarnation = n.inc;
        n.store.clear();
        n.serving_until = None;
        n.applied = 0;
        n.installing = false;
        n.fuzzy_until = 0;
        n.writes.clear();
        n.exiting = false;
        n.leaving = false;
        let local = self.now + n.offset;
        n.node = Some(Node::new(config, local));
        let inc = n.inc;
        self.checker.restarted(id);
        self.schedule(Duration::ZERO, Event::Tick { node: id, inc });
    }

    /// The runtime's timer: a tick every few milliseconds, held while the
    /// node is paused.
    pub(super) fn tick(&mut self, node: MemberId, inc: u64) {
        let n = &self.nodes[node as usize];
        if n.inc != inc || n.node.is_none() {
            return;
        }
        let next = self.timing.tick() + self.rng.millis(0, 2);
        if n.paused_until > self.now {
            let at = n.paused_until;
            self.schedule_at(at, Event::Tick { node, inc });
            return;
        }
        self.schedule(next, Event::Tick { node, inc });
        if self.opts.bootstrap {
            let peers = self.discovered(node);
            self.step_batch(node, vec![Input::Discovered { peers }, Input::Tick]);
        } else {
            self.step(node, Input::Tick);
        }
    }

    /// What `n` says of itself when a link comes up.
    pub(super) fn hello(&self, n: MemberId) -> PeerHello {
        self.nodes[n as usize].node.as_ref().expect("alive").hello()
    }

    /// Steps a node and carries out its outputs.
    pub(super) fn step(&mut self, id: MemberId, input: Input) {
        self.step_batch(id, vec![input]);
    }

    /// Steps a node with several inputs in one turn and carries out its
    /// outputs.
    pub(super) fn step_batch(&mut self, id: MemberId, inputs: Vec<Input>) {
        let local = self.local(id);
        for input in &inputs {
            self.trace_input(id, input);
        }
        let Some(node) = self.nodes[id as usize].node.as_mut() else {
            return;
        };
        let before = node.status();
        let was_leader = before.role == NodeRole::Leader;
        let outputs = node.step_batch(local, inputs);
        let status = node.status();
        // A leader may commit and step down in one step (a handover).
        self.leader_stepping = was_leader.then_some((id, before.term));
        for out in outputs {
            self.trace_output(id, &out);
            self.carry_out(id, out);
        }
        self.leader_stepping = None;
        self.check(|c, w| c.stepped(w, id, status.role));
        if status.role == NodeRole::Leader && !was_leader {
            self.check(|c, w| c.became_leader(w, id));
            if self.first_leader.is_none() {
                self.first_leader = Some(self.now);
            }
            if let Some(crash) = self.crash_of_leader.take() {
                self.failovers.push(self.now - crash);
            }
            // An operator (an autopilot) often reacts to a new leader.
            if self.opts.changes && self.rng.chance(0.3) {
                let after = self.rng.millis(0, 3);
                self.schedule(after, Event::Reconfigure { again: false });
            }
        }
    }

    fn carry_out(&mut self, id: MemberId, out: Output) {
        match out {
            Output::Send { to, msg } => {
                if matches!(msg, Message::Removed { .. }) {
                    self.check(|c, w| c.told_removed(w, to));
                }
                self.transmit(id, to, msg);
            }
            Output::Apply(entry) => {
                self.check(|c, w| c.applied(w, id, &entry));
                let n = &mut self.nodes[id as usize];
                n.applied = entry.id.index;
                match &*entry.op {
                    Op::Put {
                        cache, key, value, ..
                    } => {
                        n.store.insert((cache.clone(), key.clone()), value.clone());
                    }
                    Op::Delete { cache, key } => {
                        n.store.remove(&(cache.clone(), key.clone()));
                    }
                    Op::Clear { cache } => n.store.retain(|(c, _), _| c != cache),
                    Op::Noop | Op::Membership(_) => {}
                }
            }
            Output::InstallChunk {
                first,
                done,
                last,
                data,
            } => {
                let (part, end) = self.checker.chunk(&data);
                self.check(|c, w| c.installed(w, id, last, end, &part));
                let n = &mut self.nodes[id as usize];
                if first {
                    n.store.clear();
                }
                n.store.extend(part);
                n.installing = !done;
                if done {
                    n.applied = last.index;
                    n.fuzzy_until = end;
                }
            }
            Output::SendSnapshot {
                to,
                term,
                last,
                membership,
            } => self.start_stream(id, to, term, last, membership),
            Output::Resolve { id: req, result } => {
                self.check(|c, w| c.resolved(w, id, req, result));
                self.nodes[id as usize].writes.remove(&req);
            }
            Output::InvalidateAll => {
                // Empty caches hold nothing half-installed.
                let n = &mut self.nodes[id as usize];
                n.store.clear();
                n.installing = false;
            }
            Output::InvalidateKeys(keys) => {
                let n = &mut self.nodes[id as usize];
                for (cache, key) in keys {
                    match key {
                        Some(k) => {
                            n.store.remove(&(cache, k));
                        }
                        None => n.store.retain(|(c, _), _| *c != cache),
                    }
                }
                n.applied = n.node.as_ref().expect("alive").status().applied;
            }
            Output::Serving(until) => self.nodes[id as usize].serving_until = until,
            Output::Rejected { from, what, why } => {
                self.check(|c, w| c.rejected(w, id, from, what, why));
            }
            Output::ShutdownReady => self.shutdown_ready(id),
            Output::Removed => {
                // Its runtime starts a new member in its place (after this
                // step's outputs are carried out).
                let inc = self.nodes[id as usize].inc;
                self.schedule(Duration::ZERO, Event::Removed { node: id, inc });
            }
            Output::ResetLink { peer } => {
                let epoch = self.links[&Self::pair(id, peer)].epoch;
                self.schedule(
                    Duration::ZERO,
                    Event::Reset {
                        a: id,
                        b: peer,
                        epoch,
                    },
                );
            }
            Output::Health(_) | Output::State { .. } => {}
        }
    }
}
