//! Conversions between the core's types and the facade's.

use redhac_membership as cluster_core;

use super::WriteOp;
use crate::status::Role;
use crate::transport::handshake::Introduced;
use crate::write::AckLevel;

impl From<cluster_core::NodeRole> for Role {
    /// A pre-candidate reports as a candidate: both are asking for votes.
    fn from(r: cluster_core::NodeRole) -> Self {
        match r {
            cluster_core::NodeRole::Leader => Self::Leader,
            cluster_core::NodeRole::Candidate | cluster_core::NodeRole::PreCandidate => {
                Self::Candidate
            }
            cluster_core::NodeRole::Follower => Self::Follower,
        }
    }
}

impl From<AckLevel> for cluster_core::Ack {
    fn from(ack: AckLevel) -> Self {
        match ack {
            AckLevel::None => Self::None,
            AckLevel::Leader => Self::Leader,
            AckLevel::Quorum => Self::Quorum,
            AckLevel::All => Self::All,
        }
    }
}

impl From<WriteOp> for cluster_core::Op {
    fn from(op: WriteOp) -> Self {
        match op {
            WriteOp::Put {
                cache,
                key,
                value,
                ttl,
                schema,
            } => Self::Put {
                cache,
                key,
                value,
                ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                schema: Some(schema),
            },
            WriteOp::Delete { cache, key } => Self::Delete { cache, key },
            WriteOp::Clear { cache } => Self::Clear { cache },
        }
    }
}

impl From<&Introduced> for cluster_core::PeerHello {
    fn from(h: &Introduced) -> Self {
        Self {
            term: h.state.term,
            last: cluster_core::LogId::new(h.state.last_log_term, h.state.last_log_index),
            incarnation: h.generation,
            floor: h.state.term_floor,
        }
    }
}

impl From<cluster_core::PeerHello> for crate::transport::handshake::HelloState {
    fn from(h: cluster_core::PeerHello) -> Self {
        Self {
            term: h.term,
            last_log_term: h.last.term,
            last_log_index: h.last.index,
            term_floor: h.floor,
            // Set by the runtime.
            me: 0,
            cluster: 0,
        }
    }
}
