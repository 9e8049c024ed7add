//! Sans-IO cluster core of redhac.
//!
//! A deterministic state machine per member: member list and "who am I",
//! leader election, leader-ordered replication bookkeeping, read leases and
//! health. It owns no sockets, clocks, tasks or global randomness: time and
//! messages are inputs, a seeded RNG draws its timeouts, and the runtime
//! carries out its outputs. The same code runs under tokio in `redhac` and
//! under a seeded simulated network in this crate's tests.
//!
//! # Driving a node
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use redhac_membership::{Ack, NodeConfig, Input, Node, Op, Output, Timing};
//!
//! // A cluster of one: it elects itself and commits at once.
//! let mut node = Node::new(NodeConfig::new(0, 1, Timing::default(), 42), Duration::ZERO);
//! let later = Duration::from_secs(5); // after the restart vote delay
//! node.step(later, Input::Tick);
//! let op = Arc::new(Op::Put { cache: "c".into(), key: "k".into(), value: b"v".to_vec(), ttl_ms: None, schema: None });
//! let out = node.step(later, Input::Propose { id: 1, op, ack: Ack::Quorum, deadline: later * 2 });
//! assert!(out.iter().any(|o| matches!(o, Output::Apply(e) if e.id.index == 2)));
//! assert!(out.iter().any(|o| matches!(o, Output::Resolve { id: 1, result: Ok(Some(_)) })));
//! ```
//!
//! A runtime owns one [`Node`] and feeds it, in one task:
//! - [`Input::Tick`] at least every [`Timing::tick`], and at
//!   [`Node::next_deadline`];
//! - [`Input::Connected`] when an authenticated link to a peer is up (with what
//!   the peer reported about itself: [`Node::hello`] on its side), and
//!   [`Input::Disconnected`] when it goes down. Messages in flight on a link
//!   that went down may be lost; on a link that is up they must arrive in
//!   order, each at most once. One link per peer: a newer one replaces the old;
//! - [`Input::Receive`] for each message from a peer's current link (a
//!   message from a peer without `Connected` first is dropped);
//! - [`Input::Propose`] for the application's writes, [`Input::Shutdown`]
//!   before stopping.
//!
//! Build each incarnation's [`NodeConfig`] with [`NodeConfig::term_floor`] set from
//! the wall clock ([`NodeConfig::wall_clock_floor`]): terms live in memory, and
//! the floor is what keeps a restarted member from reusing them.
//!
//! `now` is a monotonic clock of this process (any epoch). Nodes never compare
//! each other's clocks: stamps travel only to be echoed back to their owner.
//!
//! It carries out every [`Output`] in order before the next input: sends
//! messages (dropping them when the peer has no link), applies entries to
//! its caches *synchronously* (a snapshot begun later starts from exactly the
//! entries applied), streams or installs snapshots, resolves writes, clears
//! caches, opens its read gate until the time of [`Output::Serving`] (checked
//! on every read against the clock, so a process resumed after a pause does
//! not serve), and reports health and state. [`Output::Rejected`] names a
//! peer's message the core did not act on: log it (a warning when
//! [`Rejection::is_violation`]: no correct member sends it) and count it.
//!
//! # The protocol
//!
//! **Members.** [`members`] parses `HA_HOSTS` and finds "me" by exact host or
//! host:port. Member ids are indexes in that list; every member must have the
//! same list (the runtime compares a fingerprint at connect).
//!
//! **Voters and learners** ([`Membership`], in [`NodeConfig::membership`]).
//! Voters elect and make up every majority below; learners follow, serve
//! reads under the same lease and forward writes, but never vote, never
//! stand and count in no majority. `All` writes and health Good include
//! them; a majority (health Degraded) is of the voters. A voter answers
//! votes whatever its own membership says (it may lag); the candidate counts
//! only its own voters.
//!
//! **Membership changes** go through the log: an [`Op::Membership`] entry,
//! in force on a member as soon as its log holds it (committed or not) and
//! dropped if truncated away. Raft's single-server changes: each entry
//! changes one member once ([`Membership::one_change_to`]); the leader
//! appends one only after committing an entry of its term, one at a time,
//! and only when a majority of the new voters answer it (else
//! [`WriteError::Membership`]). Where the membership changes, every start
//! of a member should be a new member (a new id) that joins as a learner:
//! a member restarted under its old id forgot its log and what the cluster
//! committed since (see docs/architecture.md §2). The leader's
//! [`Autopilot`] ([`NodeConfig::autopilot`]) makes those changes itself:
//! new members added as learners, a silent voter replaced by a caught-up
//! learner, members silent for long removed (and told so:
//! [`Output::Removed`]). A removed member is sent nothing
//! more; `All` writes wait out its lease, and a later leader's wait a read
//! lease after its election when any member was ever removed. Votes carry
//! the version (log index) of the candidate's membership, and a member
//! refuses one older than the newest it knows was committed
//! ([`NodeConfig::membership_index`]): a member restarted with its log lost
//! must not elect a candidate whose old membership counts it as a voter.
//! A cluster of new members can also start from nothing
//! ([`NodeConfig::bootstrap_expect`], see [`bootstrap`]): members that see
//! each other choose the first voters, and its first election needs every
//! one of them.
//!
//! **Election** (Raft's rules, votes in memory). Terms only grow; one vote per
//! term; a candidate needs a majority of the voters and a log at least as up
//! to date as each voter's (last term, then last index).
//! - *Pre-vote*: before a real election a node asks whether it would win; a
//!   member with an open link to a leader heard within `T` says no, so one lost
//!   link never unseats a healthy leader.
//! - *Vote guard*: a member that heard the leader less than `G` ago votes for
//!   no one else (except after the leader's `TimeoutNow`).
//! - *Restarts*: votes live in memory, so each incarnation gets a wall-clock
//!   floor ([`NodeConfig::term_floor`]) and never votes or stands below it: a
//!   restarted member cannot vote twice in a term or reuse one. It starts at
//!   term 0, though, and follows a live leader of an older term at once, so
//!   a restart forces no election. What it forgot is guarded on the leader's
//!   side: each member has an [`NodeConfig::incarnation`], and a leader counts
//!   a member whose incarnation changed (since it stood) in no majority
//!   (commit, lease, check-quorum) until a majority without it has echoed a
//!   stamp sent after it came back: then the leader still led its term, no
//!   newer term had a majority, and no vote the member forgot elected anyone.
//!   Until then it gets no read lease either: it serves (is ready) only once
//!   it counts, so a rollout waiting for it never takes down, meanwhile, the
//!   member its confirmation needs.
//!   The old incarnation's lease ended with its process. A restarted member
//!   votes only after the vote guard `G` from its start (it forgot the leader
//!   it heard), unless every member is linked and reports an empty log (a
//!   whole-cluster cold start, which elects at once).
//! - *Fast paths*: with no leader known and a majority just linked, or when
//!   the leader's link closes, a node stands after a short random delay (and
//!   after the guard), not a whole timeout. A split vote retries soon; so
//!   does a pre-vote lost with no leader known (voters still in their vote
//!   guard: members that started at different moments), and one refused for
//!   a voter's floor, or for a term the voter is in already (the refusal
//!   names the floor, or the voter's term plus one), asks again at once,
//!   there.
//! - *Check-quorum*: a leader that heard no majority within `T` steps down.
//! - *Handover*: on [`Input::Shutdown`] a leader stops taking writes and
//!   serving, brings its most up-to-date follower level with its log, sends it
//!   `TimeoutNow`, and reports [`Output::ShutdownReady`]. The target stands at
//!   once, above the term floor each linked member gave in its Hello (a member
//!   restarted since the term began refuses any term below its floor, which
//!   would turn the handover into an ordinary election); the new leader's
//!   `All` writes do not wait for that incarnation's lease, even when its
//!   link closed before the election ended. A write the old leader refused
//!   meanwhile goes to the new one as soon as it is known. A follower that
//!   shuts down stops serving and tells its leader ([`Message::Leaving`]), whose
//!   `All` writes stop waiting for its lease.
//! - *Step-down*: on [`Input::StepDown`] a leader hands over the same way but
//!   stays a member: its `TimeoutNow` says so (`stays`), and the new leader
//!   bounds its lease like any follower's. It waits until the target and a
//!   majority of the voters are past their vote guard, and, given up after
//!   `T` before telling the target, leads on.
//!
//! **Replication.** The leader gives each change a (term, index) and appends it
//! to a bounded in-memory log tail. It sends each follower, in `Append`
//! messages, the entries after what the follower holds, with the previous
//! entry's id; several frames may be in flight per follower. A follower whose
//! log does not hold that previous entry drops the conflicting suffix (and
//! invalidates the keys of entries it had applied from it) and answers with a
//! hint; the leader steps back, or sends a snapshot when the follower is behind
//! the tail's start. An entry is committed once a majority holds it and it is
//! of the leader's term (the new leader's first entry is a no-op, so earlier
//! entries commit with it). Every member applies committed entries only, in
//! order.
//!
//! **Snapshots.** A follower behind the tail's start, or whose caches were
//! cleared, gets the leader's caches streamed in chunks
//! ([`Output::SendSnapshot`], [`Message::Snapshot`]), produced as the link
//! takes them, so neither side holds the whole. The stream starts from the
//! entries applied up to `last`, but entries applied meanwhile may show in
//! later chunks (a fuzzy snapshot); the last chunk names `end`, the leader's
//! applied index when it was cut. The leader sends that follower nothing else
//! of the log until it acknowledges the snapshot, and keeps the entries after
//! `last` for it (up to four times the log's capacity), which it then
//! replays on top: puts, deletes and clears applied again in order leave the
//! caches exact. The follower drops its lease at the first chunk and serves
//! nothing while its caches are cleared or half installed
//! (`needs_snapshot`); it serves again only when a leader renews its lease,
//! which needs it to have applied the leader's commit index, past `end`.
//! Its log is kept while installing (it still counts in elections).
//!
//! **Writes** ([`Ack`]) are routed to the leader: appended there, or forwarded
//! over the leader's link, or held until a leader is known, until their
//! deadline. `Leader` resolves when the leader ordered it, `Quorum` when the
//! member that wrote has applied it (hence a majority holds it), `All` when,
//! besides, every member applied it or provably stopped serving reads.
//!
//! **Leases.** A follower serves reads while it holds a lease: each `Append`
//! from a leader that holds its own lease echoes the stamp of the follower's
//! latest reply, and once the follower applied everything that `Append` said
//! was committed, it may serve until that stamp plus `L`. The leader therefore
//! knows each follower's lease ends before the arrival of its latest reply plus
//! `L` (and, for one granted by an earlier leader, before this leader's election
//! plus `L`), which is what `All` waits for when a member does not answer. The
//! leader serves until the newest stamp a majority echoed plus `G`, less a drift
//! margin: no voter elects anyone else before that.
//!
//! **Health** by links: Good (every member), Degraded (a majority, itself
//! included), Bad (fewer: caches cleared, writes refused, nothing served).
//!
//! The simulation in `tests/sim` checks these rules after every event; see
//! `docs/architecture.md` §6 and `CONTRIBUTING.md` in the repository.

mod autopilot;
pub mod bootstrap;
mod config;
mod election;
mod events;
mod faults;
mod leading;
mod lease;
mod links;
mod log;
pub mod members;
mod membership;
mod message;
mod node;
mod progress;
pub mod quorum;
mod replication;
mod rng;
mod snapshot;
mod timing;
mod types;
mod writes;

#[cfg(test)]
mod tests;

pub use autopilot::Autopilot;
pub use config::NodeConfig;
pub use events::{Input, Output, Rejection};
#[cfg(feature = "faults")]
pub use faults::Faults;
pub use members::{HostEntry, find_me};
pub use membership::{ChangeError, Membership, MembershipError};
pub use message::{Append, AppendReply, Message, PeerHello, SnapshotChunk};
pub use node::{Node, NodeStatus, PeerStatus};
pub use timing::Timing;
pub use types::{
    Ack, Entry, Health, Index, LogId, MemberId, NodeRole, Op, Request, RequestId, Term, WriteError,
};
