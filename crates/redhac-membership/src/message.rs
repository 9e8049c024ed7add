//! The messages cores send each other over the runtime's links.

use std::sync::Arc;
use std::time::Duration;

use crate::types::{Ack, Entry, Index, LogId, MemberId, Op, RequestId, Term};

/// What a peer said about itself when its link came up. The whole-cluster
/// cold start rule needs it (a member that (re)started may vote at once only
/// when every member reports an empty log), and so does a leader meeting a
/// restarted member (a new incarnation; term 0: it holds no lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerHello {
    /// The peer's term.
    pub term: Term,
    /// The peer's last log entry.
    pub last: LogId,
    /// The peer's [`NodeConfig::incarnation`](crate::NodeConfig::incarnation).
    pub incarnation: u64,
    /// The peer's term floor when it said hello: it votes in no lower term
    /// (see [`NodeConfig::term_floor`](crate::NodeConfig::term_floor)); 0
    /// when it did not say.
    pub floor: Term,
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
        /// The version (log index) of the candidate's membership: a
        /// member that knows a newer one was committed refuses it.
        config: Index,
        /// The candidate's cluster ([`Membership::cluster`]): a member of
        /// another cluster, or of none yet, refuses it.
        ///
        /// [`Membership::cluster`]: crate::Membership::cluster
        cluster: u64,
        /// In a first election by a candidate that granted a vote in one
        /// already (its choice is final), the voters it chose: a member
        /// among them whose own choice is not final adopts it (see
        /// [`crate::bootstrap`]). Empty otherwise.
        first: Vec<MemberId>,
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
        /// The version (log index) of the candidate's membership: a
        /// member that knows a newer one was committed refuses it.
        config: Index,
        /// As in `PreVote`.
        cluster: u64,
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
    /// Graceful handover: start an election at once. The leader that sends
    /// it serves no more reads.
    TimeoutNow {
        /// The leader's term.
        term: Term,
        /// The leader goes on as a follower (a step-down): the new leader
        /// must bound its lease as any follower's. Otherwise it is shutting
        /// down, and the new leader's `All` writes need not wait for it.
        stays: bool,
    },
    /// A follower shutting down: it serves no more reads, so `All` writes
    /// need not wait for its lease.
    Leaving {
        /// The follower's term.
        term: Term,
    },
    /// The leader (its autopilot on) removed the receiver from the
    /// membership: it serves, votes and writes no more, and its runtime
    /// starts a new member (a new id) in its place or stops.
    Removed {
        /// The leader's term.
        term: Term,
    },
}

impl Message {
    /// Whether the receiver answers it at once (a leader's append, a
    /// pre-vote or vote, a forwarded write that waits for its order): a
    /// link that carries no answer is silent. `AwaitAll` is answered only
    /// when every member applied, which may take a lease.
    pub(crate) fn expects_answer(&self) -> bool {
        match self {
            Message::Append(_) | Message::PreVote { .. } | Message::Vote { .. } => true,
            Message::Forward { ack, .. } => *ack != crate::types::Ack::None,
            _ => false,
        }
    }

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
            Message::Leaving { .. } => "leaving",
            Message::Removed { .. } => "removed",
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
    /// On the last chunk: the membership as of `last`, with the index of
    /// its entry (from [`Output::SendSnapshot`](crate::Output::SendSnapshot));
    /// `None` from a sender that does not say, and the receiver keeps its own.
    pub membership: Option<(Index, Arc<crate::Membership>)>,
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
    /// The follower is shutting down: it serves no more reads (as
    /// [`Message::Leaving`] says, on every reply: a reply reaches a leader
    /// elected after the word went out, or over a new link).
    pub leaving: bool,
    /// The leader's stamp echoed back; zero in the answer to a snapshot.
    pub stamp: Duration,
    /// The follower's clock when it sent this reply.
    pub own: Duration,
    /// Whether the append carried entries (frames in flight count).
    pub batch: bool,
}
