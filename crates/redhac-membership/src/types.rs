//! The vocabulary of the core: ids, entries, messages, inputs and outputs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A member's index in the member list (`HA_HOSTS`).
pub type MemberId = u32;
/// An election term. Terms only grow.
pub type Term = u64;
/// A position in the replicated log, from 1.
pub type Index = u64;
/// The runtime's id of a write, unique per node.
pub type RequestId = u64;

/// A position in the log with the term of the entry there. `(0, 0)` is the
/// empty log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// The term the leader gave the entry.
    pub term: Term,
    /// Its position.
    pub index: Index,
}

impl LogId {
    /// A log id.
    pub const fn new(term: Term, index: Index) -> Self {
        Self { term, index }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term, self.index)
    }
}

/// A change to the caches. Values are opaque bytes to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace a key.
    Put {
        /// Cache name.
        cache: String,
        /// Key.
        key: String,
        /// Encoded value.
        value: Vec<u8>,
        /// Time to live, counted by each member from when it applies the entry.
        ttl_ms: Option<u64>,
    },
    /// Remove a key.
    Delete {
        /// Cache name.
        cache: String,
        /// Key.
        key: String,
    },
    /// Remove every key of a cache.
    Clear {
        /// Cache name.
        cache: String,
    },
    /// The entry a new leader appends first: committing it commits every
    /// earlier entry (Raft's rule), and the leader serves only after it.
    Noop,
}

impl Op {
    /// The cache and key this op touches; `None` as key for a whole cache.
    pub fn touches(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Op::Put { cache, key, .. } | Op::Delete { cache, key } => Some((cache, Some(key))),
            Op::Clear { cache } => Some((cache, None)),
            Op::Noop => None,
        }
    }

    /// What the op weighs in a frame: its names, key and value, plus
    /// [`Op::FRAMING`]. The leader counts this against
    /// [`crate::Timing::max_batch_bytes`].
    pub fn size(&self) -> usize {
        let payload = match self {
            Op::Put {
                cache, key, value, ..
            } => cache.len() + key.len() + value.len(),
            Op::Delete { cache, key } => cache.len() + key.len(),
            Op::Clear { cache } => cache.len(),
            Op::Noop => 0,
        };
        payload + Self::FRAMING
    }

    /// Bytes allowed per entry for its position, TTL and the encoding's tags
    /// and lengths. A transport whose encoding of one entry takes more than
    /// its payload plus this must lower `max_batch_bytes` to match.
    pub const FRAMING: usize = 128;
}

/// One log entry. The op is shared, so sending an entry to several followers
/// copies no value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the leader put it.
    pub id: LogId,
    /// What it changes.
    pub op: Arc<Op>,
    /// The member whose application made the write (the leader for its
    /// `Noop`); `None` when the sender did not say. Events report a write as
    /// local only on its origin.
    pub origin: Option<MemberId>,
}

/// How far a write must have gone before it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Ack {
    /// Resolved at once: queued to the leader, still leader-ordered.
    None,
    /// The leader ordered it: it holds the entry at a (term, index) and is
    /// replicating it. It becomes readable once a majority holds it.
    Leader,
    /// A majority holds it and the leader applied it; the writing member has
    /// applied it too (read-your-writes). Other members serve the old value
    /// for at most the read lease.
    #[default]
    Quorum,
    /// As `Quorum`, and every member has applied it or provably stopped
    /// serving reads: no member serves the old value any more.
    All,
}

/// Why a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteError {
    /// This member is cut off from a majority (health Bad).
    NoQuorum,
    /// The deadline passed; the write may still apply.
    Timeout,
    /// This member is shutting down; the write may still apply if it was
    /// already forwarded.
    ShuttingDown,
}

impl std::error::Error for WriteError {}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::NoQuorum => "this member is cut off from a majority of the cluster",
            WriteError::Timeout => {
                "the write did not reach its ack level in time; it may still apply"
            }
            WriteError::ShuttingDown => "this member is shutting down",
        })
    }
}

/// Health by links (the original redhac's three levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Links to every member.
    Good,
    /// Links to a majority, this member included.
    Degraded,
    /// Fewer: caches invalidated, writes refused.
    Bad,
}

/// A node's role in its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it would win (pre-vote); its term is unchanged.
    PreCandidate,
    /// Asks for votes in a new term.
    Candidate,
    /// Orders every change.
    Leader,
}

/// What a peer said about itself when its link came up. The whole-cluster
/// cold start rule needs it: a member that (re)started may vote at once only
/// when every member reports term 0 and an empty log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerHello {
    /// The peer's term.
    pub term: Term,
    /// The peer's last log entry.
    pub last: LogId,
}

/// A message between cores. The runtime carries them over its links, in
/// order per link; a link reset may lose those in flight (both ends are then
/// told, by `Disconnected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Would you vote for me in `term`? Changes no state on the receiver.
    PreVote {
        /// The term the sender would stand in (its term + 1).
        term: Term,
        /// The sender's last entry.
        last: LogId,
    },
    /// Answer to `PreVote`.
    PreVoteReply {
        /// The term asked about.
        term: Term,
        /// Whether the receiver would vote.
        granted: bool,
    },
    /// Vote for me in `term`.
    Vote {
        /// The candidate's term.
        term: Term,
        /// The candidate's last entry.
        last: LogId,
        /// Sent after the leader's `TimeoutNow`: voters skip the live-leader
        /// guard, since that leader has stopped.
        transfer: bool,
    },
    /// Answer to `Vote`.
    VoteReply {
        /// The voter's term.
        term: Term,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// Entries (possibly none: a heartbeat) from the leader.
    Append(Append),
    /// Answer to `Append` or to a snapshot.
    AppendReply(AppendReply),
    /// One part of the leader's caches, streamed after `SendSnapshot`.
    Snapshot(SnapshotChunk),
    /// A write made on a follower, for the leader to order.
    Forward {
        /// The follower's request id.
        id: RequestId,
        /// The change.
        op: Arc<Op>,
        /// Its ack level.
        ack: Ack,
    },
    /// The leader ordered a forwarded write at `at`.
    Accepted {
        /// The follower's request id.
        id: RequestId,
        /// Where the leader put it.
        at: LogId,
    },
    /// The receiver is not the leader; the sender should route again.
    Refused {
        /// The follower's request id.
        id: RequestId,
    },
    /// Tell me when every member applied `index` or stopped serving (an
    /// `All` write made on a follower).
    AwaitAll {
        /// The follower's request id.
        id: RequestId,
        /// The entry's index.
        index: Index,
    },
    /// Every member applied the entry at `index` or stopped serving.
    AllDone {
        /// The follower's request id.
        id: RequestId,
        /// The entry's index: a write forwarded twice (its link reset before
        /// the answer came) is done only where it was last ordered.
        index: Index,
    },
    /// Graceful handover: start an election at once.
    TimeoutNow {
        /// The leader's term.
        term: Term,
    },
}

impl Message {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteReply { .. } => "pre_vote_reply",
            Message::Vote { .. } => "vote",
            Message::VoteReply { .. } => "vote_reply",
            Message::Append(_) => "append",
            Message::AppendReply(_) => "append_reply",
            Message::Snapshot { .. } => "snapshot",
            Message::Forward { .. } => "forward",
            Message::Accepted { .. } => "accepted",
            Message::Refused { .. } => "refused",
            Message::AwaitAll { .. } => "await_all",
            Message::AllDone { .. } => "all_done",
            Message::TimeoutNow { .. } => "timeout_now",
        }
    }
}

/// Entries (possibly none: a heartbeat) from the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// The leader's term.
    pub term: Term,
    /// The entry just before `entries`.
    pub prev: LogId,
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub commit: Index,
    /// The leader's clock when it sent this; echoed in the reply.
    pub stamp: Duration,
    /// The follower's own stamp from its latest reply the leader
    /// received, echoed back; the follower's read lease counts from it.
    pub echo: Option<Duration>,
    /// Whether the leader held its own lease when sending: only then does
    /// this message renew the follower's lease.
    pub lease: bool,
}

/// One part of a snapshot: the leader's runtime streams its caches in
/// chunks numbered from 0, the last one carrying `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The leader's term.
    pub term: Term,
    /// The caches held exactly the entries up to here when the stream began.
    pub last: LogId,
    /// The chunk's number in its stream, from 0.
    pub seq: u64,
    /// On the last chunk only: the leader's
    /// [`Node::caches_through`](crate::Node::caches_through) when it was cut.
    /// Entries applied while streaming may show in the chunks (a fuzzy
    /// snapshot); every entry that can is at most `end`, and replaying the
    /// log from `last` on makes the caches exact again.
    pub end: Option<Index>,
    /// Entries of the caches, encoded by the runtime; opaque to the core.
    pub data: Arc<Vec<u8>>,
}

/// A follower's answer to `Append` or to a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReply {
    /// The follower's term.
    pub term: Term,
    /// Whether the entries were accepted.
    pub ok: bool,
    /// Accepted: the follower holds the leader's log up to here.
    /// Rejected: a hint where to resume (the follower's last index).
    pub last: Index,
    /// Up to where the follower has applied entries to its caches.
    pub applied: Index,
    /// The follower's caches were cleared and need a snapshot.
    pub needs_snapshot: bool,
    /// The leader's stamp echoed back; zero in the answer to a snapshot.
    pub stamp: Duration,
    /// The follower's clock when it sent this reply.
    pub own: Duration,
    /// Whether the append carried entries (frames in flight count).
    pub batch: bool,
}

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
        /// The snapshot's start, as in [`SnapshotChunk::last`].
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
    SendSnapshot {
        /// The peer.
        to: MemberId,
        /// The leader's term.
        term: Term,
        /// The last entry applied.
        last: LogId,
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
        role: Role,
        /// The leader, when known.
        leader: Option<MemberId>,
    },
    /// Shutdown may proceed: leadership was handed over, or there was none.
    ShutdownReady,
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
        }
    }
}
