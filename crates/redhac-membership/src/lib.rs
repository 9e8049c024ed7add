//! Sans-IO cluster core of redhac.
//!
//! A deterministic state machine per member: member list and "who am I",
//! leader election, leader-ordered replication bookkeeping and health. It owns
//! no sockets, clocks or tasks; time and messages are inputs and the runtime
//! carries out its outputs, so the same code runs under tokio in production
//! and under a seeded simulated network in tests.
//!
//! (Protocol documentation: see the section below, filled in with the core.)

mod election;
mod log;
pub mod members;
mod node;
pub mod quorum;
mod replication;
mod rng;
mod timing;
mod types;
mod writes;

pub use members::{HostEntry, find_me};
pub use node::{Config, Faults, Node, NodeStatus, PeerStatus};
pub use timing::Timing;
pub use types::{
    Ack, Entry, Health, Index, Input, LogId, MemberId, Message, Op, Output, PeerHello, RequestId,
    Role, Term, WriteError,
};
