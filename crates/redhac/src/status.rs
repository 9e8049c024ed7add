//! What a node reports about itself: health and status.

use serde::Serialize;

pub use redhac_membership::Health;

/// The role of a member in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    /// Not part of a cluster.
    Standalone,
    /// Follows a leader or waits for one.
    Follower,
    /// Asks for votes.
    Candidate,
    /// Orders every change.
    Leader,
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Index in `HA_HOSTS`, then `HA_LEARNERS`.
    pub id: u32,
    /// The `HA_HOSTS` (or `HA_LEARNERS`) entry.
    pub address: String,
    /// Whether it votes; `false` for a learner (`HA_LEARNERS`).
    pub voter: bool,
    /// Whether a link to it is up (always true for this node itself).
    pub connected: bool,
    /// On the leader: entries the member has yet to apply.
    pub lag: Option<u64>,
    /// The wire protocol version the link to it speaks (for this node
    /// itself, the newest it speaks); `None` while not linked.
    pub protocol_version: Option<u32>,
    /// Links to it this node reset since start because nothing came over
    /// them while an answer or a leader's heartbeat was due (half-open
    /// connections after partitions, or a stalled member).
    pub silent_resets: u64,
}

/// A snapshot of a node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// This node's index in `HA_HOSTS` (0 in standalone mode).
    pub me: u32,
    /// The current term.
    pub term: u64,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<u32>,
    /// Health by links.
    pub health: Health,
    /// Whether local reads are answered now (readiness).
    pub serving: bool,
    /// Every member, this one included.
    pub members: Vec<MemberStatus>,
    /// Highest log index applied here.
    pub applied_index: u64,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Links refused at the handshake since start: TLS, token, member list,
    /// protocol version or limits (each is also logged as a warning).
    pub links_refused: u64,
    /// Peer messages refused since start: malformed, leader traffic from a
    /// member that is not the leader, a stale term, or from a member with no
    /// link (the first two are logged as warnings).
    pub messages_refused: u64,
    /// Values refused since start because a member with another schema of
    /// their cache wrote them (a release that changed a value type, rolling
    /// out): their keys read as misses here. See
    /// [`crate::CacheOptions::schema_version`].
    pub schema_mismatches: u64,
}

impl Status {
    pub(crate) fn standalone(serving: bool) -> Self {
        Self {
            me: 0,
            term: 0,
            role: Role::Standalone,
            leader: None,
            health: Health::Good,
            serving,
            members: Vec::new(),
            applied_index: 0,
            commit_index: 0,
            links_refused: 0,
            messages_refused: 0,
            schema_mismatches: 0,
        }
    }
}
