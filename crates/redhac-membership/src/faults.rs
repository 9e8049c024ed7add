//! Rules broken on purpose, behind the `faults` feature, so the simulation
//! can show it catches each broken invariant.

/// Deliberately broken rules, for the simulation's own tests. Exists only
/// with the `faults` feature; all off by default.
#[cfg(feature = "faults")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Faults {
    pub vote_twice: bool,
    pub skip_up_to_date: bool,
    pub commit_without_majority: bool,
    pub serve_when_bad: bool,
    pub all_ignores_leases: bool,
    pub renew_when_lagging: bool,
    pub vote_delay_forever: bool,
    pub no_vote_delay: bool,
    pub no_term_floor: bool,
    pub keep_lease_while_installing: bool,
    pub count_restarted: bool,
    pub serve_after_leaving: bool,
    pub forget_lease_on_relink: bool,
    pub keep_silent_links: bool,
    pub install_older_snapshots: bool,
    pub count_learners: bool,
    pub learners_vote: bool,
    pub change_before_term_commit: bool,
    pub overlapping_changes: bool,
    pub forget_departed_leases: bool,
    pub ignore_known_config: bool,
    pub stayer_left: bool,
    pub forwards_ordered_twice: bool,
    pub forget_applied_writes: bool,
    pub changes_without_majority: bool,
    pub first_election_by_majority: bool,
    pub bootstrap_without_discovery: bool,
    pub no_adoption: bool,
}

/// Whether `$holder.faults` breaks `$rule` on purpose.
#[cfg(feature = "faults")]
macro_rules! broken {
    ($holder:expr, $rule:ident) => {
        $holder.faults.$rule
    };
}

/// Without the `faults` feature no rule is broken: the checks compile away.
#[cfg(not(feature = "faults"))]
macro_rules! broken {
    ($holder:expr, $rule:ident) => {
        false
    };
}

pub(crate) use broken;
