//! The vocabulary of the core: ids, log positions, entries, ack levels,
//! health and roles.

use std::fmt;
use std::sync::Arc;

use crate::membership::{ChangeError, Membership};

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
        /// The schema the value was encoded with, opaque to the core (the
        /// runtime's: a member decodes only values of its own schema);
        /// `None` from a member that did not say.
        schema: Option<u64>,
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
    /// A new membership, one change from the one before (see
    /// [`Membership::one_change_to`]). Each member uses it as soon as its
    /// log holds it, committed or not (Raft's rule); it changes no cache.
    Membership(Membership),
}

impl Op {
    /// The cache and key this op touches; `None` as key for a whole cache.
    pub fn touches(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Op::Put { cache, key, .. } | Op::Delete { cache, key } => Some((cache, Some(key))),
            Op::Clear { cache } => Some((cache, None)),
            Op::Noop | Op::Membership(_) => None,
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
            Op::Membership(m) => 8 * m.len(),
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
    /// The write that made it, as its origin knows it; `None` for a leader's
    /// `Noop` and when the sender did not say.
    pub request: Option<Request>,
}

/// A write as its origin knows it: that process's incarnation and its id
/// there. A leader forwarded a write whose entry its log already holds (the
/// answer was lost with a link, or went to the leader before) answers with
/// that entry rather than ordering the write twice: ordered again after a
/// later write to the same key, it would undo that write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// The origin's [`NodeConfig::incarnation`](crate::NodeConfig::incarnation).
    pub incarnation: u64,
    /// The origin's id of the write.
    pub id: RequestId,
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
    /// A membership change the leader refused.
    Membership(ChangeError),
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
            WriteError::Membership(e) => return write!(f, "membership change refused: {e}"),
        })
    }
}

/// Health by links (the original redhac's three levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Health {
    /// Links to every member (always, for a standalone cache).
    Good,
    /// Links to a majority, this member included.
    Degraded,
    /// Fewer: the member clears its caches and refuses writes.
    Bad,
}

/// A node's role in its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it would win (pre-vote); its term is unchanged.
    PreCandidate,
    /// Asks for votes in a new term.
    Candidate,
    /// Orders every change.
    Leader,
}
