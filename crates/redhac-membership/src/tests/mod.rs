//! One input, the exact outputs (openraft's engine-test style), by concern.
//! The shared fixtures come first: a node, its links, the messages a peer
//! sends, and a leader or a follower to start from.

mod autopilot;
mod bootstrap;
mod changes;
mod election;
mod learners;
mod lease;
mod links;
mod replication;
mod restarts;
mod snapshots;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Input, Output};
use crate::message::{Append, AppendReply, Message, PeerHello, SnapshotChunk};
use crate::types::{Ack, Entry, Health, LogId, NodeRole, Op};
use crate::{Membership, Node, NodeConfig, Timing};

/// The election timeout of every test node.
const T: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Member `me` of `members`, started at 0 with the floor 0.
fn node(me: u32, members: usize) -> Node {
    Node::new(
        NodeConfig::new(me, members, Timing::new(T), 7),
        Duration::ZERO,
    )
}

/// Member `me` of voters 0, 1, 2 and learners 3, 4, started at 0.
fn with_learners(me: u32) -> Node {
    let mut c = NodeConfig::new(me, 5, Timing::new(T), 7);
    c.membership = Membership::new(0..3, 3..5).expect("valid");
    Node::new(c, Duration::ZERO)
}

/// Node 0 of 3, linked to both peers, which report `term`.
fn linked(term: u64) -> Node {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], term);
    n
}

/// Member `me` of 3 whose terms start at `floor`.
fn floored(me: u32, floor: u64) -> Node {
    let mut c = NodeConfig::new(me, 3, Timing::new(T), 7);
    c.term_floor = floor;
    Node::new(c, Duration::ZERO)
}

fn put(key: &str) -> Arc<Op> {
    Arc::new(Op::Put {
        cache: "c".into(),
        key: key.into(),
        value: vec![1],
        ttl_ms: None,
        schema: None,
    })
}

/// An entry written on member 1.
fn entry(term: u64, index: u64, op: &Arc<Op>) -> Entry {
    Entry {
        id: LogId::new(term, index),
        op: Arc::clone(op),
        origin: Some(1),
        request: None,
    }
}

/// Links `n` to each of `peers`, which report `term` and an empty log.
fn connect_all(n: &mut Node, now: Duration, peers: &[u32], term: u64) -> Vec<Output> {
    let mut out = Vec::new();
    for &peer in peers {
        let hello = PeerHello {
            term,
            last: LogId::default(),
            incarnation: 0,
            floor: 0,
        };
        out.extend(n.step(now, Input::Connected { peer, hello }));
    }
    out
}

/// `msg` from `from` at `at` ms.
fn receive(n: &mut Node, at: u64, from: u32, msg: Message) -> Vec<Output> {
    n.step(ms(at), Input::Receive { from, msg })
}

/// Proposes `op` at `ack` (deadline 10 s) at `at` ms.
fn propose(n: &mut Node, at: u64, id: u64, op: &Arc<Op>, ack: Ack) -> Vec<Output> {
    n.step(
        ms(at),
        Input::Propose {
            id,
            op: Arc::clone(op),
            ack,
            deadline: ms(10_000),
        },
    )
}

/// A leader's append stamped at 1 ms, granting no lease.
fn append(term: u64, prev: LogId, entries: Vec<Entry>, commit: u64) -> Message {
    Message::Append(Append {
        term,
        prev,
        entries,
        commit,
        stamp: ms(1),
        echo: None,
        lease: false,
    })
}

/// A follower's answer to [`append`], sent to member 1 at `now`.
fn reply(term: u64, ok: bool, last: u64, applied: u64, now: Duration) -> Output {
    Output::Send {
        to: 1,
        msg: Message::AppendReply(AppendReply {
            term,
            ok,
            last,
            applied,
            needs_snapshot: false,
            leaving: false,
            stamp: ms(1),
            own: now,
            batch: true,
        }),
    }
}

/// A chunk of a snapshot of `term` starting at `last`.
fn chunk(term: u64, last: LogId, seq: u64, end: Option<u64>) -> Message {
    Message::Snapshot(SnapshotChunk {
        term,
        last,
        seq,
        end,
        data: Arc::new(vec![seq as u8]),
        membership: None,
    })
}

/// A follower's acceptance in term 1 of everything up to `last`, at `at` ms.
fn ack(last: u64, at: u64) -> Message {
    Message::AppendReply(ack_reply(last, at))
}

/// The reply inside [`ack`], to vary.
fn ack_reply(last: u64, at: u64) -> AppendReply {
    AppendReply {
        term: 1,
        ok: true,
        last,
        applied: last,
        needs_snapshot: false,
        leaving: false,
        stamp: ms(at - 1),
        own: ms(at),
        batch: true,
    }
}

/// Follows member 1 in term 2, with entry (2, 1) applied.
fn following_1_in_term_2() -> Node {
    let mut n = linked(2);
    receive(
        &mut n,
        10,
        1,
        append(2, LogId::default(), vec![entry(2, 1, &put("a"))], 1),
    );
    n
}

/// Node 0 of 3, leader of term 1 with its noop committed by member 1.
fn leader_of_three() -> Node {
    elected(node(0, 3))
}

/// `n` (node 0 of 3, cold) elected leader of term 1 by member 1, which
/// also holds its noop.
fn elected(mut n: Node) -> Node {
    connect_all(&mut n, ms(0), &[1, 2], 0);
    n.step(ms(100), Input::Tick);
    let granted = |term| Message::PreVoteReply {
        term,
        granted: true,
    };
    receive(&mut n, 101, 1, granted(1));
    let vote = Message::VoteReply {
        term: 1,
        granted: true,
    };
    receive(&mut n, 102, 1, vote);
    receive(&mut n, 103, 1, ack(1, 1));
    assert_eq!((n.status().role, n.status().commit), (NodeRole::Leader, 1));
    n
}

/// The entries of every append the outputs send to `to`.
fn appended(out: &[Output], to: u32) -> Vec<Vec<u64>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: t,
                msg: Message::Append(a),
            } if *t == to && !a.entries.is_empty() => {
                Some(a.entries.iter().map(|e| e.id.index).collect())
            }
            _ => None,
        })
        .collect()
}
