//! Core messages to and from wire messages. Decoding checks everything a
//! peer could get wrong: a malformed message closes that link, it never
//! panics.

use std::sync::Arc;
use std::time::Duration;

use redhac_membership::{
    Ack, Append, AppendReply, Entry, LogId, Membership, Message, Op, Request, SnapshotChunk,
};
use redhac_proto as pb;
use redhac_proto::core::Msg;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn log_id(id: LogId) -> Option<pb::LogId> {
    Some(pb::LogId {
        term: id.term,
        index: id.index,
    })
}

fn op_to_wire(op: &Op) -> pb::Op {
    use pb::op::Kind;
    let kind = match op {
        Op::Put {
            cache,
            key,
            value,
            ttl_ms,
            schema,
        } => Kind::Put(pb::Put {
            cache: cache.clone(),
            key: key.clone(),
            value: value.clone().into(),
            ttl_ms: *ttl_ms,
            schema: *schema,
        }),
        Op::Delete { cache, key } => Kind::Delete(pb::Delete {
            cache: cache.clone(),
            key: key.clone(),
        }),
        Op::Clear { cache } => Kind::Clear(pb::Clear {
            cache: cache.clone(),
        }),
        Op::Noop => Kind::Noop(pb::Noop {}),
        Op::Membership(m) => Kind::Membership(membership_to_wire(m)),
    };
    pb::Op { kind: Some(kind) }
}

fn membership_to_wire(m: &Membership) -> pb::Membership {
    pb::Membership {
        voters: m.voters().collect(),
        learners: m.learners().collect(),
        removed_any: m.removed_any(),
        cluster: m.cluster(),
    }
}

/// A snapshot's membership, with the index of its entry.
pub(crate) fn membership_at(index: u64, m: &Membership) -> pb::MembershipAt {
    pb::MembershipAt {
        index,
        membership: Some(membership_to_wire(m)),
    }
}

fn membership_from_wire(m: pb::Membership) -> Result<Membership, WireError> {
    Membership::new(m.voters, m.learners)
        .map(|ms| ms.with_removed_any(m.removed_any).with_cluster(m.cluster))
        .map_err(|_| "a membership with no voter, or a member both voter and learner")
}

fn ack_to_wire(ack: Ack) -> pb::Ack {
    match ack {
        Ack::None => pb::Ack::None,
        Ack::Leader => pb::Ack::Leader,
        Ack::Quorum => pb::Ack::Quorum,
        Ack::All => pb::Ack::All,
    }
}

/// One core message as a wire message.
pub(crate) fn to_wire(msg: &Message) -> pb::Core {
    let one = |m: Msg| pb::Core { msg: Some(m) };
    match msg {
        Message::PreVote {
            term,
            last,
            config,
            cluster,
            first,
        } => one(Msg::PreVote(pb::PreVote {
            term: *term,
            last: log_id(*last),
            config: *config,
            cluster: *cluster,
            first: first.clone(),
        })),
        Message::PreVoteReply { term, granted } => one(Msg::PreVoteReply(pb::VoteReply {
            term: *term,
            granted: *granted,
        })),
        Message::Vote {
            term,
            last,
            transfer,
            config,
            cluster,
        } => one(Msg::Vote(pb::Vote {
            term: *term,
            last: log_id(*last),
            transfer: *transfer,
            config: *config,
            cluster: *cluster,
        })),
        Message::VoteReply { term, granted } => one(Msg::VoteReply(pb::VoteReply {
            term: *term,
            granted: *granted,
        })),
        Message::Append(a) => one(Msg::Append(pb::Append {
            term: a.term,
            prev: log_id(a.prev),
            entries: a
                .entries
                .iter()
                .map(|e| pb::Entry {
                    id: log_id(e.id),
                    op: Some(op_to_wire(&e.op)),
                    origin: e.origin,
                    request: e.request.map(|r| pb::WriteRequest {
                        incarnation: r.incarnation,
                        id: r.id,
                    }),
                })
                .collect(),
            commit: a.commit,
            stamp_ns: nanos(a.stamp),
            echo_ns: a.echo.map(nanos),
            lease: a.lease,
        })),
        Message::AppendReply(r) => one(Msg::AppendReply(pb::AppendReply {
            term: r.term,
            ok: r.ok,
            last: r.last,
            applied: r.applied,
            needs_snapshot: r.needs_snapshot,
            leaving: r.leaving,
            stamp_ns: nanos(r.stamp),
            own_ns: nanos(r.own),
            batch: r.batch,
        })),
        Message::Snapshot(c) => one(Msg::Snapshot(pb::SnapshotChunk {
            term: c.term,
            last: log_id(c.last),
            seq: c.seq,
            end: c.end,
            data: c.data.to_vec().into(),
            membership: c.membership.as_ref().map(|(i, m)| membership_at(*i, m)),
        })),
        Message::Forward { id, op, ack } => one(Msg::Forward(pb::Forward {
            id: *id,
            op: Some(op_to_wire(op)),
            ack: ack_to_wire(*ack).into(),
        })),
        Message::Accepted { id, at } => one(Msg::Accepted(pb::Accepted {
            id: *id,
            at: log_id(*at),
        })),
        Message::Refused { id } => one(Msg::Refused(pb::RequestRef { id: *id })),
        Message::AwaitAll { id, index } => one(Msg::AwaitAll(pb::AwaitAll {
            id: *id,
            index: *index,
        })),
        Message::AllDone { id, index } => one(Msg::AllDone(pb::AwaitAll {
            id: *id,
            index: *index,
        })),
        Message::TimeoutNow { term, stays } => one(Msg::TimeoutNow(pb::TimeoutNow {
            term: *term,
            stays: *stays,
        })),
        Message::Leaving { term } => one(Msg::Leaving(pb::TimeoutNow {
            term: *term,
            stays: false,
        })),
        Message::Removed { term } => one(Msg::Removed(pb::TimeoutNow {
            term: *term,
            stays: false,
        })),
    }
}

/// Why a peer's message was refused.
pub(crate) type WireError = &'static str;

fn need_id(id: Option<pb::LogId>) -> Result<LogId, WireError> {
    let id = id.ok_or("a log position is missing")?;
    Ok(LogId::new(id.term, id.index))
}

fn op_from_wire(op: Option<pb::Op>) -> Result<Op, WireError> {
    use pb::op::Kind;
    Ok(
        match op.and_then(|o| o.kind).ok_or("an entry has no operation")? {
            Kind::Put(p) => Op::Put {
                cache: p.cache,
                key: p.key,
                value: p.value.to_vec(),
                ttl_ms: p.ttl_ms,
                schema: p.schema,
            },
            Kind::Delete(d) => Op::Delete {
                cache: d.cache,
                key: d.key,
            },
            Kind::Clear(c) => Op::Clear { cache: c.cache },
            Kind::Noop(_) => Op::Noop,
            Kind::Membership(m) => Op::Membership(membership_from_wire(m)?),
        },
    )
}

/// Decodes one wire message of the core.
pub(crate) fn from_wire(core: pb::Core) -> Result<Message, WireError> {
    let d = Duration::from_nanos;
    let msg = match core.msg.ok_or("an empty core message")? {
        Msg::PreVote(m) => Message::PreVote {
            term: m.term,
            last: need_id(m.last)?,
            config: m.config,
            cluster: m.cluster,
            first: m.first,
        },
        Msg::PreVoteReply(m) => Message::PreVoteReply {
            term: m.term,
            granted: m.granted,
        },
        Msg::Vote(m) => Message::Vote {
            term: m.term,
            last: need_id(m.last)?,
            transfer: m.transfer,
            config: m.config,
            cluster: m.cluster,
        },
        Msg::VoteReply(m) => Message::VoteReply {
            term: m.term,
            granted: m.granted,
        },
        Msg::Append(m) => {
            let prev = need_id(m.prev)?;
            let mut entries = Vec::with_capacity(m.entries.len());
            for (i, e) in m.entries.into_iter().enumerate() {
                let id = need_id(e.id)?;
                if id.index != prev.index + 1 + i as u64 {
                    return Err("entries out of order");
                }
                entries.push(Entry {
                    id,
                    op: Arc::new(op_from_wire(e.op)?),
                    origin: e.origin,
                    request: e.request.map(|r| Request {
                        incarnation: r.incarnation,
                        id: r.id,
                    }),
                });
            }
            Message::Append(Append {
                term: m.term,
                prev,
                entries,
                commit: m.commit,
                stamp: d(m.stamp_ns),
                echo: m.echo_ns.map(d),
                lease: m.lease,
            })
        }
        Msg::AppendReply(m) => Message::AppendReply(AppendReply {
            term: m.term,
            ok: m.ok,
            last: m.last,
            applied: m.applied,
            needs_snapshot: m.needs_snapshot,
            leaving: m.leaving,
            stamp: d(m.stamp_ns),
            own: d(m.own_ns),
            batch: m.batch,
        }),
        Msg::Snapshot(c) => Message::Snapshot(SnapshotChunk {
            term: c.term,
            last: need_id(c.last)?,
            seq: c.seq,
            end: c.end,
            data: Arc::new(c.data.to_vec()),
            membership: match c.membership {
                Some(at) => Some((
                    at.index,
                    Arc::new(membership_from_wire(
                        at.membership.ok_or("a snapshot's membership is empty")?,
                    )?),
                )),
                None => None,
            },
        }),
        Msg::Forward(m) => Message::Forward {
            id: m.id,
            op: Arc::new(op_from_wire(m.op)?),
            ack: match pb::Ack::try_from(m.ack).map_err(|_| "an unknown ack level")? {
                pb::Ack::None => Ack::None,
                pb::Ack::Leader => Ack::Leader,
                pb::Ack::Quorum => Ack::Quorum,
                pb::Ack::All => Ack::All,
            },
        },
        Msg::Accepted(m) => Message::Accepted {
            id: m.id,
            at: need_id(m.at)?,
        },
        Msg::Refused(m) => Message::Refused { id: m.id },
        Msg::AwaitAll(m) => Message::AwaitAll {
            id: m.id,
            index: m.index,
        },
        Msg::AllDone(m) => Message::AllDone {
            id: m.id,
            index: m.index,
        },
        Msg::TimeoutNow(m) => Message::TimeoutNow {
            term: m.term,
            stays: m.stays,
        },
        Msg::Leaving(m) => Message::Leaving { term: m.term },
        Msg::Removed(m) => Message::Removed { term: m.term },
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn round_trip(msg: Message) {
        let bytes = to_wire(&msg).encode_to_vec();
        let back = pb::Core::decode(bytes.as_slice()).unwrap();
        assert_eq!(from_wire(back).unwrap(), msg);
    }

    /// One of every message.
    fn samples() -> Vec<Message> {
        let id = LogId::new(3, 9);
        let put = Arc::new(Op::Put {
            cache: "c".into(),
            key: "k".into(),
            value: vec![1, 2],
            ttl_ms: Some(5),
            schema: Some(7 << 32 | 0xabc),
        });
        vec![
            Message::PreVote {
                term: 4,
                last: id,
                config: 3,
                cluster: 9,
                first: vec![1, 4, 6],
            },
            Message::PreVoteReply {
                term: 4,
                granted: true,
            },
            Message::Vote {
                term: 4,
                last: id,
                transfer: true,
                config: 0,
                cluster: 0,
            },
            Message::VoteReply {
                term: 4,
                granted: false,
            },
            Message::Append(Append {
                term: 3,
                prev: LogId::new(3, 8),
                entries: vec![
                    Entry {
                        id,
                        op: Arc::clone(&put),
                        origin: Some(2),
                        request: Some(Request {
                            incarnation: 11,
                            id: 5,
                        }),
                    },
                    Entry {
                        id: LogId::new(3, 10),
                        op: Arc::new(Op::Clear { cache: "c".into() }),
                        origin: None,
                        request: None,
                    },
                ],
                commit: 7,
                stamp: Duration::from_nanos(77),
                echo: Some(Duration::from_nanos(66)),
                lease: true,
            }),
            Message::AppendReply(AppendReply {
                term: 3,
                ok: true,
                last: 9,
                applied: 8,
                needs_snapshot: false,
                leaving: true,
                stamp: Duration::from_nanos(1),
                own: Duration::from_nanos(2),
                batch: true,
            }),
            Message::Snapshot(SnapshotChunk {
                term: 3,
                last: id,
                seq: 4,
                end: Some(12),
                data: Arc::new(vec![7; 300]),
                membership: Some((
                    5,
                    Arc::new(
                        Membership::new([0, 2], [1, 4])
                            .expect("valid")
                            .with_removed_any(true)
                            .with_cluster(77),
                    ),
                )),
            }),
            Message::Snapshot(SnapshotChunk {
                term: 3,
                last: id,
                seq: 0,
                end: None,
                data: Arc::new(Vec::new()),
                membership: None,
            }),
            Message::Forward {
                id: 6,
                op: Arc::new(Op::Membership(Membership::voters_only(3).with_learner(7))),
                ack: Ack::Quorum,
            },
            Message::Forward {
                id: 5,
                op: put,
                ack: Ack::All,
            },
            Message::Accepted { id: 5, at: id },
            Message::Refused { id: 5 },
            Message::AwaitAll { id: 5, index: 9 },
            Message::AllDone { id: 5, index: 9 },
            Message::TimeoutNow {
                term: 3,
                stays: true,
            },
            Message::Leaving { term: 3 },
            Message::Removed { term: 3 },
        ]
    }

    #[test]
    fn every_message_survives_the_wire() {
        for msg in samples() {
            round_trip(msg);
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(from_wire(pb::Core { msg: None }).is_err());
        let no_last = pb::Core {
            msg: Some(Msg::Vote(pb::Vote {
                term: 1,
                last: None,
                transfer: false,
                config: 0,
                cluster: 0,
            })),
        };
        assert!(from_wire(no_last).is_err());
        let gap = pb::Core {
            msg: Some(Msg::Append(pb::Append {
                term: 1,
                prev: log_id(LogId::new(1, 1)),
                entries: vec![pb::Entry {
                    id: log_id(LogId::new(1, 5)),
                    op: Some(op_to_wire(&Op::Noop)),
                    origin: None,
                    request: None,
                }],
                ..Default::default()
            })),
        };
        assert!(from_wire(gap).is_err());
        let no_start = pb::Core {
            msg: Some(Msg::Snapshot(pb::SnapshotChunk {
                term: 1,
                last: None,
                ..Default::default()
            })),
        };
        assert!(from_wire(no_start).is_err());
        for (voters, learners) in [(vec![], vec![1]), (vec![0, 1], vec![1])] {
            let bad_membership = pb::Core {
                msg: Some(Msg::Forward(pb::Forward {
                    id: 1,
                    op: Some(pb::Op {
                        kind: Some(pb::op::Kind::Membership(pb::Membership {
                            voters,
                            learners,
                            removed_any: false,
                            cluster: 0,
                        })),
                    }),
                    ack: pb::Ack::Quorum.into(),
                })),
            };
            assert!(from_wire(bad_membership).is_err());
        }
        assert!(super::super::snapshot::decode_chunk(&[0xff; 12]).is_err());
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Whatever bytes a peer sends as a core message (a valid one
            /// with bytes changed, or noise) are refused or decoded, never a
            /// panic; what decodes survives a round trip.
            #[test]
            fn any_core_bytes_decode_or_are_refused(
                sample in 0usize..20,
                changes in vec((any::<usize>(), any::<u8>()), 0..4),
                noise in vec(any::<u8>(), 0..64),
            ) {
                let samples = samples();
                let mut bytes = match samples.get(sample) {
                    Some(m) => to_wire(m).encode_to_vec(),
                    None => noise,
                };
                for (at, byte) in changes {
                    if !bytes.is_empty() {
                        let i = at % bytes.len();
                        bytes[i] = byte;
                    }
                }
                if let Ok(core) = pb::Core::decode(bytes.as_slice())
                    && let Ok(m) = from_wire(core)
                {
                    let back = from_wire(to_wire(&m));
                    prop_assert!(matches!(back, Ok(ref b) if *b == m));
                }
            }
        }
    }
}
