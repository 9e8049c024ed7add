//! The dynamic mode's bootstrap (`HA_BOOTSTRAP_EXPECT`, Consul's
//! `bootstrap_expect`): members that start in no cluster form one once `N`
//! of them see each other, or are added to one that exists.
//!
//! The rules (each tested on its own; the simulation shows it finds a
//! second cluster without unanimity or without the discovery rule, and a
//! start stuck for ever without adoption):
//! - **Choice.** A member in no cluster, linked to every member discovery
//!   lists ([`Input::Discovered`]) and none of them in a cluster (their
//!   hello reported an empty log), whose view (itself and those peers) held
//!   at least `N` members and stayed the same for `T/8`, chooses the `N`
//!   smallest ids of it as the first membership ([`Membership::bootstrap`]:
//!   its cluster id is derived from them). A member outside its choice
//!   waits to be added. It chooses again when its view changes, until it
//!   is locked.
//! - **Cluster ids in votes.** Votes and pre-votes carry the candidate's
//!   cluster; a member votes only for its own (not at all while in none).
//! - **Unanimity first.** A candidate whose log is empty (its cluster never
//!   elected a leader it heard of) needs every voter of its membership, not
//!   a majority.
//! - **Locks.** A member that granted a vote to another in such a first
//!   election never chooses again. (A candidate's own vote binds nothing:
//!   were its cluster to form in that term, it would lead it, its log no
//!   longer empty; one that gives up its candidacy to choose again drops
//!   the replies still on their way.)
//! - **Adoption.** A locked member that stands names its choice in its
//!   pre-votes; a member among those voters whose own choice is not final
//!   adopts it. Without it, members whose views differed for a moment
//!   (one not discovered yet, a partition) could lock to one choice while
//!   another member of it moved on to another: neither could ever form
//!   (the simulation found about 1 start in 100 stuck so). Adopting moves
//!   no lock, so the argument below stands.
//!
//! Why no two clusters form: a cluster forms when its first leader is
//! elected, by every one of its first voters, each locked to it; a member
//! locks to one cluster only. So two clusters that formed share no member,
//! and need `2N` members in no cluster: excluded while fewer than `2N`
//! members start before the first leader is elected (`HA_BOOTSTRAP_EXPECT`
//! more than half of the replicas a deployment starts with). Members that
//! start later discover the formed cluster's members, which they cannot be
//! linked to while a partition separates them, and a member linked to one
//! in a cluster chooses nothing. Majority alone is not enough: with members
//! a..e, c seeing all (and choosing a, b, c) while d and e see only c, d, e
//! (and choose them), a and b would elect one leader and d and e another.
//!
//! Once its log holds an entry (the first leader's first entry is the first
//! membership itself, so every member that joins later learns it), a member
//! is in a cluster for good.
//!
//! [`Input::Discovered`]: crate::Input::Discovered
//! [`Membership::bootstrap`]: crate::Membership::bootstrap

use std::collections::BTreeSet;
use std::time::Duration;

use crate::faults::broken;
use crate::membership::{Configs, Membership};
use crate::node::Node;
use crate::types::{MemberId, NodeRole};

/// A member's bootstrap, while it is in no formed cluster.
#[derive(Debug, Clone)]
pub(crate) struct Boot {
    /// `HA_BOOTSTRAP_EXPECT`.
    expect: usize,
    /// How many other members discovery lists.
    discovered: usize,
    /// Itself and the peers it chooses from, and since when unchanged.
    view: BTreeSet<MemberId>,
    since: Duration,
    /// It granted a vote to another in a first election: its choice is
    /// final.
    locked: bool,
    /// When it adopted a final choice named in a pre-vote: kept until its
    /// view changes.
    adopted_at: Option<Duration>,
}

impl Boot {
    pub(crate) fn new(expect: usize, now: Duration) -> Self {
        Self {
            expect: expect.max(1),
            discovered: 0,
            view: BTreeSet::new(),
            since: now,
            locked: false,
            adopted_at: None,
        }
    }
}

impl Node {
    /// Discovery lists `peers` other members.
    pub(crate) fn discovered(&mut self, peers: usize) {
        if let Some(b) = self.boot.as_mut() {
            b.discovered = peers;
        }
    }

    /// Whether an election now is its cluster's first: the candidate's log
    /// is empty, and it bootstraps (see the module's rules).
    pub(crate) fn first_election(&self) -> bool {
        self.boot.is_some()
            && self.log.last().index == 0
            && !broken!(self, first_election_by_majority)
    }

    /// It granted a vote in a first election: its choice is final.
    pub(crate) fn lock_choice(&mut self) {
        if let Some(b) = self.boot.as_mut() {
            b.locked = true;
        }
    }

    /// The voters it chose, to name in its pre-votes, when its choice is
    /// final and it stands in a first election; else none.
    pub(crate) fn final_choice(&self) -> Vec<MemberId> {
        let locked = self.boot.as_ref().is_some_and(|b| b.locked);
        if locked && self.first_election() {
            self.configs.current().voters().collect()
        } else {
            Vec::new()
        }
    }

    /// A candidate whose choice is final named it (`first`, of `cluster`):
    /// a member among its voters whose own choice is not final adopts it.
    pub(crate) fn adopt_choice(&mut self, first: &[MemberId], cluster: u64) {
        let free = self.boot.as_ref().is_some_and(|b| !b.locked)
            && self.log.last().index == 0
            && first.contains(&self.me);
        if !free || broken!(self, no_adoption) {
            return;
        }
        let Ok(chosen) = Membership::bootstrap(first.iter().copied()) else {
            return;
        };
        if chosen.cluster() != cluster || *self.configs.current() == chosen {
            return;
        }
        let now = self.now;
        if let Some(b) = self.boot.as_mut() {
            b.adopted_at = Some(now);
        }
        self.take_choice(chosen);
    }

    /// Each step: in a cluster for good once its log holds an entry;
    /// until then, chooses (again) the first membership from its view.
    pub(crate) fn bootstrap_step(&mut self) {
        if self.boot.is_none() {
            return;
        }
        if self.log.last().index > 0 || self.log.base().index > 0 {
            self.boot = None;
            return;
        }
        let (me, now, settle) = (self.me, self.now, self.timing.election_timeout / 8);
        let linked_all = self.boot.as_ref().is_some_and(|b| {
            self.links.len() >= b.discovered || broken!(self, bootstrap_without_discovery)
        });
        let in_cluster = self.links.values().any(|h| h.last.index > 0);
        let view: BTreeSet<MemberId> = if linked_all && !in_cluster {
            self.links.keys().copied().chain([me]).collect()
        } else {
            BTreeSet::new()
        };
        let Some(b) = self.boot.as_mut() else {
            return;
        };
        if b.locked {
            return;
        }
        if view != b.view {
            b.view = view;
            b.since = now;
        }
        let chosen: Vec<MemberId> = if b.view.len() >= b.expect && now >= b.since + settle {
            b.view.iter().copied().take(b.expect).collect()
        } else {
            Vec::new()
        };
        let next = if chosen.contains(&me) {
            Membership::bootstrap(chosen).unwrap_or_else(|_| Membership::unformed())
        } else {
            Membership::unformed()
        };
        // An adopted choice stays while the view that would replace it is
        // unchanged (it was adopted against it).
        let adopted = b.adopted_at.is_some_and(|at| at >= b.since);
        if *self.configs.current() != next && !adopted {
            self.take_choice(next);
        }
    }

    /// Makes `next` its first membership (or none), as chosen or adopted.
    fn take_choice(&mut self, next: Membership) {
        self.configs = Configs::new(next, 0);
        self.membership_changed();
        if self.role != NodeRole::Follower {
            // A pre-vote or candidacy under way was for the choice it gives
            // up (its own vote binds nothing; the replies still on their
            // way are dropped).
            self.become_follower(self.term, None);
        }
        // As a cold cluster whose voters just linked: stand soon.
        let fast = self.timing.fast_election;
        if self.is_voter() && self.election.timer() > self.now + fast {
            let at = self.now + self.rng.between(Duration::ZERO, fast);
            self.election.set_timer(at);
        }
    }
}
