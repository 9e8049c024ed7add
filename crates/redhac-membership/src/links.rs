//! Links to peers coming up and going down, and health by links.

use std::time::Duration;

use crate::events::Output;
use crate::faults::broken;
use crate::message::PeerHello;
use crate::node::{Node, Traffic};
use crate::progress::Progress;
use crate::quorum;
use crate::types::{Health, MemberId, NodeRole};

impl Node {
    pub(crate) fn connected(&mut self, peer: MemberId, hello: PeerHello) {
        // Any authenticated peer is linked, listed or not: one not listed
        // yet may be added (a new member), one no longer listed may be
        // added again. Only members count, and only members are sent the log.
        if peer == self.me {
            return;
        }
        let before = self.voters_reached();
        self.links.insert(peer, hello);
        self.traffic.insert(peer, Traffic::new(self.now));
        // Unknown or changed: it may have voted in a term it forgot.
        let known = self.incarnations.get(&peer).map(|(i, _)| *i);
        let restarted = known != Some(hello.incarnation);
        if restarted {
            self.incarnations
                .insert(peer, (hello.incarnation, self.now));
        }
        if let Some(lead) = self.leading.as_mut() {
            lead.told_removed.remove(&peer);
        }
        if let Some(lead) = self.leading.as_mut()
            && self.configs.current().contains(peer)
        {
            let next = self.log.last().index + 1;
            let old = lead.progress.get(&peer);
            let mut p = Progress::relinked(next, self.now, old, restarted);
            if broken!(self, count_restarted) {
                p.relinked_at = None;
            }
            if broken!(self, forget_lease_on_relink) {
                p.lease_from = None;
            }
            lead.progress.insert(peer, p);
        }
        self.update_health();
        // Fast start: no leader known and a majority of the voters just
        // reached, or every voter (a cold cluster may then vote at once).
        let (majority, reached) = (quorum::majority(self.electorate()), self.voters_reached());
        let just_majority = before < majority && reached >= majority;
        let just_all = reached == self.electorate() && before < reached;
        let fast = self.timing.fast_election;
        if self.leader.is_none()
            && self.role == NodeRole::Follower
            && (just_majority || just_all)
            && self.election.timer() > self.now + fast
        {
            // One draw: a second one would bunch the members' starts together.
            let at = self.now + self.rng.between(Duration::ZERO, fast);
            self.election.set_timer(at);
        }
    }

    pub(crate) fn disconnected(&mut self, peer: MemberId) {
        if self.links.remove(&peer).is_none() {
            return;
        }
        self.traffic.remove(&peer);
        if let Some(p) = self.progress_mut(peer) {
            p.link_lost();
        }
        self.requeue_forwarded_to(peer);
        if self.leader == Some(peer) && self.role != NodeRole::Leader {
            // Its link closed: it may have crashed. Look for a new leader
            // as soon as the vote guard allows, not a whole timeout later.
            self.leader = None;
            let at = self.now + self.rng.between(Duration::ZERO, self.timing.fast_election);
            self.election.set_timer(self.election.timer().min(at));
            self.report_state();
        }
        self.update_health();
    }

    /// Resets the links that should have carried something for
    /// `silent_link` and carried nothing: one whose peer was sent a message
    /// it answers (an append, a pre-vote or vote, a forwarded write) and
    /// said nothing since, and a follower's link to its leader (which sends
    /// at least a heartbeat every `heartbeat`). A link left half-open by a
    /// partition is dialled afresh as soon as the network heals rather
    /// than after the transport's retransmissions or keepalive give up.
    pub(crate) fn reset_silent_links(&mut self) {
        if broken!(self, keep_silent_links) {
            return;
        }
        let (now, bound) = (self.now, self.timing.silent_link);
        let my_leader = self.leader.filter(|_| self.role == NodeRole::Follower);
        // A member waiting to be removed that follows no leader expects word
        // from whichever leads: a link that brings nothing may be half-open
        // (the leader's `Removed`, told again and again, lost on it).
        let waiting = my_leader.is_none() && self.shutting_down && self.waits_for_removal();
        let silent: Vec<MemberId> = self
            .traffic
            .iter()
            .filter(|(peer, t)| {
                t.silent_since(waiting || my_leader == Some(**peer))
                    .is_some_and(|since| now >= since + bound)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in silent {
            *self.silent_resets.entry(peer).or_default() += 1;
            self.out.push(Output::ResetLink { peer });
            self.disconnected(peer);
        }
    }

    /// Health by links; Bad clears the caches and stops serving.
    pub(crate) fn update_health(&mut self) {
        let health = self.health_by_links();
        if health == self.health {
            return;
        }
        self.health = health;
        self.out.push(Output::Health(health));
        if health == Health::Bad {
            // Cut off from a majority: nothing here can be proven current.
            // The log stays (it still counts in elections); the caches go,
            // and refill from entries applied from now on.
            self.out.push(Output::InvalidateAll);
            self.install.caches_cleared();
            self.drop_lease_in_bad();
            if self.role == NodeRole::Leader {
                self.step_down();
            }
        }
    }
}
