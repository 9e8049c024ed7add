//! What a node is built from.

use crate::autopilot::Autopilot;
#[cfg(feature = "faults")]
use crate::faults::Faults;
use crate::membership::Membership;
use crate::timing::Timing;
use crate::types::{Index, MemberId, Term};

/// What a node is built from.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's index in the member list.
    pub me: MemberId,
    /// Who is in the cluster and who votes: [`NodeConfig::new`] makes
    /// members `0..members` all voters; a learner (`me` not a voter)
    /// follows, serves and forwards writes, but never votes or stands.
    /// Every member must be built with the same membership.
    pub membership: Membership,
    /// The index of the log entry `membership` comes from: 0 for a static
    /// list, else the committed membership a starting member was given.
    /// It votes for no candidate whose membership is older.
    pub membership_index: Index,
    /// Timeouts and limits.
    pub timing: Timing,
    /// Seed of the node's random timeouts. Mixed with `me`, so members given
    /// the same seed still draw different timeouts.
    pub seed: u64,
    /// The lowest term this incarnation may vote or stand in: the wall clock
    /// at start in milliseconds times 1024 ([`NodeConfig::wall_clock_floor`]).
    /// Votes live in memory, so without it a restarted member could vote
    /// twice in a term, or a majority that restarted at once could reuse a
    /// term an older leader still holds entries of. With it, every term a
    /// restarted member votes or stands in is newer than any before its
    /// start, as long as the members' clocks agree within the time a restart
    /// takes. It still follows a live leader of an older term at once, so a
    /// restart forces no election.
    pub term_floor: Term,
    /// This incarnation's identity, different at every start of the member
    /// (the runtime draws it at random). A leader that sees a member's
    /// incarnation change knows it forgot its votes, and counts it in no
    /// majority until a majority without it confirms the leader's term.
    pub incarnation: u64,
    /// The leader's autopilot (the dynamic mode), off by default: it keeps
    /// a number of voters, promotes caught-up learners in place of silent
    /// voters, removes members silent for long and adds new members (linked,
    /// unlisted, their log empty) as learners.
    pub autopilot: Option<Autopilot>,
    /// The dynamic mode's bootstrap (`HA_BOOTSTRAP_EXPECT`): the node starts
    /// in no cluster (`membership` is not used) and either bootstraps one
    /// with the members it sees or is added to one that exists. A cluster
    /// bootstraps with the `N` smallest ids among members that see each
    /// other and every member discovery lists ([`Input::Discovered`]), none
    /// of them in a cluster yet; its first election needs every one of them
    /// (see [`crate::bootstrap`]). Safe while fewer than `2N` members start
    /// before the first cluster elected its leader.
    ///
    /// [`Input::Discovered`]: crate::Input::Discovered
    pub bootstrap_expect: Option<usize>,
    /// Rules to break on purpose, so the simulation can show it catches
    /// each broken invariant. All off by default; never set them otherwise.
    #[cfg(feature = "faults")]
    #[doc(hidden)]
    pub faults: Faults,
}

impl NodeConfig {
    /// A member `me` of `members`, every one a voter, with `timing` and a
    /// timer seed.
    pub fn new(me: MemberId, members: usize, timing: Timing, seed: u64) -> Self {
        Self {
            me,
            membership: Membership::voters_only(members),
            membership_index: 0,
            timing,
            seed,
            term_floor: 0,
            incarnation: 0,
            autopilot: None,
            bootstrap_expect: None,
            #[cfg(feature = "faults")]
            faults: Faults::default(),
        }
    }

    /// The floor for a member starting at `unix_millis` (wall clock).
    pub fn wall_clock_floor(unix_millis: u64) -> Term {
        unix_millis.saturating_mul(1024)
    }
}
