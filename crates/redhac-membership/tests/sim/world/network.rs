//! The network: one link per pair, losing what is in flight when reset
//! and redialled after; in-order delivery per direction with random delays.

use redhac_membership::{Input, MemberId, Message};

use super::{Event, World};

/// Link state of a pair.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Link {
    pub(super) up: bool,
    pub(super) epoch: u64,
    connecting: bool,
}

impl World {
    /// The key of the link between `a` and `b`.
    pub(super) fn pair(a: MemberId, b: MemberId) -> (MemberId, MemberId) {
        (a.min(b), a.max(b))
    }

    fn can_connect(&self, a: MemberId, b: MemberId) -> bool {
        self.alive(a)
            && self.alive(b)
            && !self.nodes[a as usize].exiting
            && !self.nodes[b as usize].exiting
            && !self.blocked.get(&(a, b)).copied().unwrap_or(false)
            && !self.blocked.get(&(b, a)).copied().unwrap_or(false)
    }

    /// Sends `msg` if its link is up and not blocked that way; it arrives
    /// after the previous message in its direction.
    pub(super) fn transmit(&mut self, from: MemberId, to: MemberId, msg: Message) {
        let link = self.links[&Self::pair(from, to)];
        if !link.up
            || self.blocked.get(&(from, to)).copied().unwrap_or(false)
            || self.stalled.get(&(from, to)) == Some(&link.epoch)
        {
            return;
        }
        // Mostly sub-millisecond, sometimes a spike.
        let delay = if self.rng.chance(0.02) {
            self.rng.millis(5, 60)
        } else {
            self.rng.millis(0, 2)
        };
        let dir = (from, to);
        let at = (self.now + delay).max(self.last_delivery.get(&dir).copied().unwrap_or_default());
        self.last_delivery.insert(dir, at);
        self.schedule_at(
            at,
            Event::Deliver {
                from,
                to,
                epoch: link.epoch,
                msg,
            },
        );
    }

    /// A message arrives, unless its link was reset since it was sent;
    /// held while the receiver is paused.
    pub(super) fn deliver(&mut self, from: MemberId, to: MemberId, epoch: u64, msg: Message) {
        let link = self.links[&Self::pair(from, to)];
        if !link.up || link.epoch != epoch {
            return;
        }
        let paused = self.nodes[to as usize].paused_until;
        if paused > self.now {
            self.schedule_at(
                paused,
                Event::Deliver {
                    from,
                    to,
                    epoch,
                    msg,
                },
            );
            return;
        }
        let granted = matches!(msg, Message::VoteReply { granted: true, .. });
        self.step(to, Input::Receive { from, msg });
        if granted && self.opts.crash_voters && !self.healed && self.rng.chance(0.3) {
            self.crash(from);
        }
    }

    /// A dial completes: the link comes up, unless it is blocked or an end
    /// is down.
    pub(super) fn connect(&mut self, a: MemberId, b: MemberId) {
        let p = Self::pair(a, b);
        self.links.get_mut(&p).expect("pair").connecting = false;
        if self.links[&p].up {
            return;
        }
        if !self.can_connect(a, b) {
            return; // retried when healed or restarted
        }
        let l = self.links.get_mut(&p).expect("pair");
        l.up = true;
        l.epoch += 1;
        let (ha, hb) = (self.hello(a), self.hello(b));
        self.step(a, Input::Connected { peer: b, hello: hb });
        self.step(b, Input::Connected { peer: a, hello: ha });
    }

    /// Closes a link: in-flight messages are lost and both ends are told.
    pub(super) fn reset(&mut self, a: MemberId, b: MemberId) {
        let p = Self::pair(a, b);
        let link = self.links.get_mut(&p).expect("pair");
        if !link.up {
            return;
        }
        link.up = false;
        link.epoch += 1;
        for (x, y) in [(a, b), (b, a)] {
            if self.alive(x) {
                self.step(x, Input::Disconnected { peer: y });
            }
        }
        self.redial(a, b);
    }

    fn redial(&mut self, a: MemberId, b: MemberId) {
        let p = Self::pair(a, b);
        let link = self.links.get_mut(&p).expect("pair");
        if !link.connecting {
            link.connecting = true;
            let after = self.rng.millis(5, 60);
            self.schedule(after, Event::Connect { a, b });
        }
    }

    pub(super) fn reconnect_all(&mut self) {
        let pairs: Vec<_> = self.links.keys().copied().collect();
        for (a, b) in pairs {
            if !self.links[&(a, b)].up && self.can_connect(a, b) {
                self.redial(a, b);
            }
        }
    }
}
