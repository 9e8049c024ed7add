//! What the runtime feeds the core (inputs) and what the core asks it to
//! do (outputs).

use std::sync::Arc;
use std::time::Duration;

use crate::message::{Message, PeerHello};
use crate::types::{
    Ack, Entry, Health, LogId, MemberId, NodeRole, Op, RequestId, Term, WriteError,
};

/// What the runtime feeds the core. Every input comes with the time.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passed; call at least every `Timing::tick` .
    Tick,
    /// A link to `peer` came up (a newer link replaces an older one).
    Connected {
        /// The peer.
        peer: MemberId,
        /// What it said in its Hello.
        hello: PeerHello,
    },
    /// The link to `peer` went down; messages in flight on it are lost.
    Disconnected {
        /// The peer.
        peer: MemberId,
    },
    /// A message from `from` over its current link.
    Receive {
        /// The sender.
        from: MemberId,
        /// The message.
        msg: Message,
    },
    /// A write from the application.
    Propose {
        /// The runtime's id, echoed in `Resolve`.
        id: RequestId,
        /// The change.
        op: Arc<Op>,
        /// How far it must go.
        ack: Ack,
        /// When it fails with `Timeout`.
        deadline: Duration,
    },
    /// Hand leadership over (when leading), then report `ShutdownReady`.
    Shutdown,
    /// Discovery lists `peers` other members now (the dynamic mode's DNS
    /// name resolved, own address left out). A member bootstraps a cluster
    /// only while it is linked to at least that many (see
    /// [`NodeConfig::bootstrap_expect`](crate::NodeConfig::bootstrap_expect)).
    Discovered {
        /// How many other members discovery lists.
        peers: usize,
    },
    /// Hand leadership over to the most up-to-date linked voter and go on
    /// as a follower (before a planned restart, to move leadership off a
    /// member). Ignored unless leading, not shutting down and not already
    /// handing over; given up after an election timeout, the node leading
    /// on.
    StepDown,
}

/// What the core asks the runtime to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a message to a peer (dropped when no link is up).
    Send {
        /// The peer.
        to: MemberId,
        /// The message.
        msg: Message,
    },
    /// Apply a committed entry to the caches, now, before the next input.
    /// Entries come in index order with no gaps; a `Noop` changes nothing.
    Apply(Entry),
    /// Put a snapshot chunk's entries into the caches, now. This node
    /// serves no read from the first chunk until the leader renews its
    /// lease after the last, so nobody sees caches half installed.
    InstallChunk {
        /// The first chunk: clear every cache before.
        first: bool,
        /// The last chunk: the caches now hold the snapshot, and this node
        /// has applied up to `last` (the log after it replays on top).
        done: bool,
        /// The snapshot's start, as in [`SnapshotChunk::last`](crate::SnapshotChunk::last).
        last: LogId,
        /// The chunk's entries, as the leader's runtime encoded them.
        data: Arc<Vec<u8>>,
    },
    /// Stream every cache to `to` as [`Message::Snapshot`] chunks of `term`
    /// and `last`, numbered from 0, the last one with `end` (this node's
    /// [`Node::caches_through`](crate::Node::caches_through) when it is
    /// cut), as fast as the link takes them and
    /// ahead of anything sent to `to` later. The caches hold exactly the
    /// entries up to `last` now; entries applied while streaming may show in
    /// later chunks. The core sends `to` nothing else of the log until it
    /// acknowledges the snapshot, and keeps the entries after `last` for it.
    /// The last chunk carries `membership`.
    SendSnapshot {
        /// The peer.
        to: MemberId,
        /// The leader's term.
        term: Term,
        /// The last entry applied.
        last: LogId,
        /// The membership as of `last`, with the index of its entry.
        membership: (crate::Index, std::sync::Arc<crate::Membership>),
    },
    /// A write finished. `Ok` carries where it was ordered, when known.
    Resolve {
        /// The runtime's id.
        id: RequestId,
        /// The outcome.
        result: Result<Option<LogId>, WriteError>,
    },
    /// Clear every cache (health Bad, or state that cannot be trusted).
    InvalidateAll,
    /// Remove these keys (`None`: the whole cache): entries this member had
    /// applied were truncated by a new leader.
    InvalidateKeys(Vec<(String, Option<String>)>),
    /// Health changed.
    Health(Health),
    /// Serve local reads until this time (this node's clock); `None`: stop now.
    Serving(Option<Duration>),
    /// Term, role or leader changed.
    State {
        /// The term.
        term: Term,
        /// The role.
        role: NodeRole,
        /// The leader, when known.
        leader: Option<MemberId>,
    },
    /// Close the link to `peer` (it carried nothing for
    /// [`crate::Timing::silent_link`]) and dial it afresh; the core already
    /// counts it as down.
    ResetLink {
        /// The peer.
        peer: MemberId,
    },
    /// Shutdown may proceed: leadership was handed over, or there was none.
    ShutdownReady,
    /// The leader said this member was removed from the membership: it
    /// serves, votes and takes writes no more. Stop it, or (the dynamic
    /// mode) start a new member with a new id in its place, which joins as
    /// a learner.
    Removed,
    /// A peer's message was not acted on. The runtime logs it (a warning
    /// when `why.is_violation()`) and counts it; nothing else is to be done.
    Rejected {
        /// The sender.
        from: MemberId,
        /// The message's kind, as [`Message::name`] gives it.
        what: &'static str,
        /// Why.
        why: Rejection,
    },
}

/// Why the core did not act on a peer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// From a term older than this node's: normal after a partition heals.
    StaleTerm,
    /// From a member with no link up (a message that raced its link's end),
    /// from this node itself, or from an index outside the member list.
    NotLinked,
    /// Leader traffic (entries, a snapshot) from a member that is not the
    /// leader of its term: this node already follows, or is, another leader
    /// of that term. No correct member sends it.
    NotTheLeader,
    /// A message no correct member sends (impossible log positions or
    /// entry terms).
    Malformed,
    /// A snapshot chunk that does not follow the one before: one was lost.
    OutOfSequence,
    /// A snapshot older than what this node holds (a stream its leader
    /// began before a newer one): installing it would forget entries this
    /// node acknowledged.
    OlderSnapshot,
}

impl Rejection {
    /// Whether a correct member can never cause it (worth a warning).
    pub fn is_violation(self) -> bool {
        matches!(self, Self::NotTheLeader | Self::Malformed)
    }

    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StaleTerm => "stale_term",
            Self::NotLinked => "not_linked",
            Self::NotTheLeader => "not_the_leader",
            Self::Malformed => "malformed",
            Self::OutOfSequence => "out_of_sequence",
            Self::OlderSnapshot => "older_snapshot",
        }
    }
}
