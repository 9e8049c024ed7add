//! Faults while the chaos lasts: link resets, symmetric and one-sided
//! partitions, crashes and restarts, pauses; and healing them all.

use std::time::Duration;

use redhac_membership::{Input, MemberId, NodeRole};

use super::{Event, World};

impl World {
    /// Injects a fault while the chaos lasts, and schedules the next.
    pub(super) fn fault(&mut self) {
        if self.now < self.opts.chaos {
            self.inject_fault();
            let next = self.rng.millis(50, 3000);
            self.schedule(next, Event::Fault);
        }
    }

    fn inject_fault(&mut self) {
        let (a, b) = self.fault_pair();
        match self.rng.below(12) {
            0 | 1 => self.reset(a, b),
            2 => {
                // Symmetric partition: a random side against the rest. Links
                // stall (no reset): half-open, they stay silent even once
                // healed until an end resets them.
                let n = self.nodes.len() as MemberId;
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for x in 0..n {
                    for y in 0..n {
                        if x != y && side[x as usize] != side[y as usize] {
                            self.block(x, y);
                        }
                    }
                }
            }
            3 => {
                // One-sided: a stops hearing b; that direction of the link
                // stalls.
                self.block(b, a);
            }
            4 | 5 => {
                self.blocked.clear();
                self.reconnect_all();
            }
            6 => self.crash(a),
            10 | 11 => self.shut_down(a),
            7 => {
                // A pause (or a clock jump): the node stops, then resumes
                // with its clock moved on.
                let pause = self.rng.millis(10, 5000);
                let node = &mut self.nodes[a as usize];
                node.paused_until = node.paused_until.max(self.now + pause);
            }
            _ => {
                if !self.opts.fresh_identities && self.nodes.iter().any(|n| n.node.is_none()) {
                    let n = self.nodes.len() as MemberId;
                    let dead: Vec<_> = (0..n).filter(|&i| !self.alive(i)).collect();
                    let pick = dead[self.rng.below(dead.len() as u64) as usize];
                    self.schedule(Duration::ZERO, Event::Restart { node: pick });
                } else {
                    self.reset(a, b);
                }
            }
        }
    }

    /// Two members a fault may hit: any two ids, or, when dead ids never
    /// come back, two running members.
    fn fault_pair(&mut self) -> (MemberId, MemberId) {
        let ids: Vec<MemberId> = if self.opts.fresh_identities {
            self.running()
        } else {
            (0..self.nodes.len() as MemberId).collect()
        };
        let n = ids.len() as u64;
        if n < 2 {
            return (0, 1);
        }
        let a = self.rng.below(n);
        let b = (a + 1 + self.rng.below(n - 1)) % n;
        (ids[a as usize], ids[b as usize])
    }

    /// Drops what `a` sends `b` from now on; a link up between them keeps
    /// dropping it (half-open: the transport's retransmissions back off
    /// and its keepalive, seconds away, is not counted on) until an end
    /// resets it.
    fn block(&mut self, a: MemberId, b: MemberId) {
        self.blocked.insert((a, b), true);
        let link = self.links[&Self::pair(a, b)];
        if link.up {
            self.stalled.insert((a, b), link.epoch);
        }
    }

    /// Crashes a node, if a majority of live nodes still holds every
    /// committed entry afterwards (the guarantee is for a surviving majority).
    pub(super) fn crash(&mut self, victim: MemberId) {
        if !self.alive(victim) || !self.may_go() || !self.checker.may_crash(self, victim) {
            return;
        }
        self.crash_anyway(victim);
    }

    /// Crashes a node, whatever the others hold.
    fn crash_anyway(&mut self, victim: MemberId) {
        let was_leader = self.nodes[victim as usize]
            .node
            .as_ref()
            .is_some_and(|n| n.status().role == NodeRole::Leader);
        self.trace_crash(victim);
        self.nodes[victim as usize].node = None;
        self.nodes[victim as usize].serving_until = None;
        // A rollout goes on with the next member once this one's
        // replacement starts (at once, when ids are fresh).
        if self.opts.fresh_identities {
            self.nodes[victim as usize].leaving = false;
        }
        if was_leader {
            self.crash_of_leader = Some(self.now);
        }
        let others: Vec<MemberId> = (0..self.nodes.len() as MemberId)
            .filter(|&x| x != victim)
            .collect();
        for o in others {
            self.reset(victim, o);
        }
        let after = if self.opts.crash_voters {
            self.rng.millis(1, 50)
        } else {
            self.rng.millis(100, 6000)
        };
        self.schedule(after, Event::Restart { node: victim });
    }

    /// A rolling restart's step: the node shuts down gracefully (a leader
    /// hands over first), exits a little later, and starts again. One at a
    /// time, as a rollout goes.
    fn shut_down(&mut self, node: MemberId) {
        let rolling = self.nodes.iter().any(|n| n.leaving);
        if self.alive(node) && !rolling && self.may_go() && self.checker.may_crash(self, node) {
            self.nodes[node as usize].leaving = true;
            self.step(node, Input::Shutdown);
        }
    }

    /// Shutdown may proceed: the process exits a little later (after what
    /// it sent arrived: the network's delays stay under 60 ms), and its
    /// links are not dialled again meanwhile.
    pub(super) fn shutdown_ready(&mut self, node: MemberId) {
        if self.nodes[node as usize].exiting {
            return;
        }
        self.nodes[node as usize].exiting = true;
        let inc = self.nodes[node as usize].inc;
        let after = self.rng.millis(60, 300);
        self.schedule(after, Event::Exit { node, inc });
    }

    /// The process of a node that shut down ends; it starts again later.
    /// (Not while the others lack entries only it holds: the guarantee is
    /// for a surviving majority. It waits, its links down, and tries again.)
    pub(super) fn exit(&mut self, node: MemberId, inc: u64) {
        if self.nodes[node as usize].inc != inc || !self.alive(node) {
            return;
        }
        if self.checker.may_crash(self, node) {
            self.crash_anyway(node);
        } else {
            let again = self.rng.millis(50, 150);
            self.schedule(again, Event::Exit { node, inc });
        }
    }

    /// A member told it was removed stops (it counts in no membership
    /// that may still commit), and a new member starts in its place.
    pub(super) fn removed(&mut self, node: MemberId, inc: u64) {
        if self.nodes[node as usize].inc == inc && self.alive(node) {
            *self.checker.resolved.entry("removed").or_insert(0) += 1;
            self.crash_anyway(node);
        }
    }

    /// A crashed node comes back as a new incarnation.
    pub(super) fn restart(&mut self, node: MemberId) {
        if self.opts.fresh_identities {
            self.join();
        } else if !self.alive(node) {
            self.start(node);
            self.reconnect_all();
        }
    }

    /// Heals every partition and pause and restarts crashed nodes.
    pub(crate) fn heal(&mut self) {
        self.healed = true;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            self.nodes[i].paused_until = self.nodes[i].paused_until.min(self.now);
            // A node that is exiting exits first (see `exit`); a new
            // identity has taken a dead one's place already.
            if !self.alive(i as MemberId) && !self.opts.fresh_identities {
                self.start(i as MemberId);
            }
        }
        self.reconnect_all();
    }
}
