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
        let n = self.nodes.len() as u64;
        let at = self.rng.below(n) as MemberId;
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
