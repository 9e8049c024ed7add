//! The workload: every few milliseconds a client on a random member puts,
//! deletes or clears, at a random ack level.

use std::sync::Arc;

use redhac_membership::{Ack, Input, MemberId, Op};

use super::{Event, World};

impl World {
    /// A client writes (now and then several clients of one member at
    /// once, proposed in one turn as a runtime batches what waits), and the
    /// next write is scheduled.
    pub(super) fn write(&mut self) {
        // With fresh identities dead ids pile up: write on running members.
        let at = if self.opts.fresh_identities {
            let running = self.running();
            let pick = self.rng.below(running.len() as u64) as usize;
            running.get(pick).copied().unwrap_or(0)
        } else {
            self.rng.below(self.nodes.len() as u64) as MemberId
        };
        if self.alive(at) && self.nodes[at as usize].paused_until <= self.now {
            let burst = if self.rng.chance(0.25) {
                2 + self.rng.below(5)
            } else {
                1
            };
            let writes: Vec<Input> = (0..burst).map(|_| self.client_write(at)).collect();
            self.step_batch(at, writes);
        }
        let next = self.rng.millis(5, 250);
        self.schedule(next, Event::Write);
    }

    /// The application asks a leader (one of those that think they lead)
    /// to step down, now and then while faults go on.
    pub(super) fn step_down(&mut self) {
        if self.healed {
            return;
        }
        let next = self.rng.millis(300, 4000);
        self.schedule(next, Event::StepDown);
        let leaders: Vec<MemberId> = (0..self.nodes.len() as MemberId)
            .filter(|&i| {
                self.nodes[i as usize]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.status().role == redhac_membership::NodeRole::Leader)
            })
            .collect();
        if let Some(&leader) = leaders.get(self.rng.below(leaders.len().max(1) as u64) as usize) {
            self.step(leader, Input::StepDown);
        }
    }

    /// An operator changes the membership at the leader, now and then
    /// while faults go on: adds a member not listed as a learner, promotes
    /// a learner, demotes or removes a member (keeping 3 to 5 voters: with
    /// two, a voter that exits takes the majority with it). The
    /// leader may refuse (a change in flight, a learner not caught up).
    pub(super) fn reconfigure(&mut self, again: bool) {
        if self.healed {
            return;
        }
        if again {
            let next = self.rng.millis(200, 3000);
            self.schedule(next, Event::Reconfigure { again: true });
        }
        let leader = (0..self.nodes.len() as MemberId).find(|&i| {
            self.nodes[i as usize]
                .node
                .as_ref()
                .is_some_and(|n| n.status().role == redhac_membership::NodeRole::Leader)
        });
        let Some(leader) = leader else {
            return;
        };
        let m = self.nodes[leader as usize]
            .node
            .as_ref()
            .expect("alive")
            .membership()
            .clone();
        let pick = |w: &mut Self, ids: Vec<MemberId>| -> Option<MemberId> {
            (!ids.is_empty()).then(|| ids[w.rng.below(ids.len() as u64) as usize])
        };
        let outside: Vec<MemberId> = (0..self.nodes.len() as MemberId)
            .filter(|i| !m.contains(*i) && self.alive(*i))
            .collect();
        let learners: Vec<MemberId> = m.learners().collect();
        let voters: Vec<MemberId> = m.voters().filter(|v| *v != leader).collect();
        let voter_count = m.voter_count();
        let next = match self.rng.below(4) {
            0 => pick(self, outside).map(|id| m.with_learner(id)),
            1 if voter_count < 5 => pick(self, learners).map(|id| m.promoted(id)),
            2 if voter_count > 3 => pick(self, voters).map(|id| {
                if self.rng.chance(0.5) {
                    m.demoted(id)
                } else {
                    m.without(id)
                }
            }),
            _ => pick(self, learners).map(|id| m.without(id)),
        };
        let Some(next) = next else {
            return;
        };
        let node = &mut self.nodes[leader as usize];
        let id = node.next_id;
        node.next_id += 1;
        let op = Arc::new(Op::Membership(next));
        node.writes
            .insert(id, (Arc::clone(&op), Ack::Quorum, self.now));
        let deadline = self.local(leader) + self.timing.election_timeout * 3;
        self.step(
            leader,
            Input::Propose {
                id,
                op,
                ack: Ack::Quorum,
                deadline,
            },
        );
    }

    /// One client write proposed at `at`.
    fn client_write(&mut self, at: MemberId) -> Input {
        let key = format!("k{}", self.rng.below(8));
        let value = self.seq.to_le_bytes().to_vec();
        let op = match self.rng.below(20) {
            0 => Op::Clear { cache: "c".into() },
            1..=4 => Op::Delete {
                cache: "c".into(),
                key,
            },
            _ => Op::Put {
                cache: "c".into(),
                key,
                value,
                ttl_ms: None,
                schema: None,
            },
        };
        let ack = match self.rng.below(4) {
            0 => Ack::None,
            1 => Ack::Leader,
            2 => Ack::Quorum,
            _ => Ack::All,
        };
        let node = &mut self.nodes[at as usize];
        let id = node.next_id;
        node.next_id += 1;
        let op = Arc::new(op);
        node.writes.insert(id, (Arc::clone(&op), ack, self.now));
        let deadline = self.local(at) + self.timing.election_timeout * 3;
        Input::Propose {
            id,
            op,
            ack,
            deadline,
        }
    }
}
