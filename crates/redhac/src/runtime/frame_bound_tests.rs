//! No frame a leader builds can exceed what a receiver accepts, whatever
//! the sizes of the entries it replicates (within the key, cache name and
//! value limits a write is checked against).

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use redhac_membership::{
    Ack, AppendReply, Input, LogId, Message, Node, NodeConfig, NodeRole, Op, Output, PeerHello,
    Timing,
};
use redhac_proto::{Frame, frame};

use super::{snapshot, wire};
use crate::transport::link::MAX_FRAME_BYTES;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ack(last: u64, at: u64) -> Input {
    Input::Receive {
        from: 1,
        msg: Message::AppendReply(AppendReply {
            term: 1,
            ok: true,
            last,
            applied: last,
            needs_snapshot: false,
            leaving: false,
            stamp: ms(at),
            own: ms(at),
            batch: true,
        }),
    }
}

/// Member 0 of 2, elected leader of term 1 by member 1.
fn leader() -> Node {
    let mut n = Node::new(NodeConfig::new(0, 2, Timing::default(), 3), Duration::ZERO);
    let hello = PeerHello {
        term: 0,
        last: LogId::default(),
        incarnation: 0,
        floor: 0,
    };
    n.step(ms(0), Input::Connected { peer: 1, hello });
    n.step(ms(100), Input::Tick);
    for msg in [
        Message::PreVoteReply {
            term: 1,
            granted: true,
        },
        Message::VoteReply {
            term: 1,
            granted: true,
        },
    ] {
        n.step(ms(101), Input::Receive { from: 1, msg });
    }
    n.step(ms(102), ack(1, 102));
    assert_eq!(n.status().role, NodeRole::Leader);
    n
}

/// The encoded size of every append frame in `out`, and the last index sent.
fn frames(out: &[Output]) -> Vec<(usize, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: msg @ Message::Append(a),
                ..
            } if !a.entries.is_empty() => {
                let last = a.prev.index + a.entries.len() as u64;
                let f = Frame {
                    kind: Some(frame::Kind::Core(wire::to_wire(msg))),
                };
                Some((prost::Message::encoded_len(&f), last))
            }
            _ => None,
        })
        .collect()
}

fn value_len() -> impl Strategy<Value = usize> {
    let limit = crate::Config::MAX_VALUE_SIZE_LIMIT;
    prop_oneof![
        3 => 0usize..4096,
        2 => (1usize << 20)..(5 << 20),
        1 => Just(limit),
        1 => (limit - 4096)..=limit,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn no_append_frame_exceeds_the_receivers_limit(
        sizes in proptest::collection::vec(
            (value_len(), 0..=crate::MAX_KEY_LEN, 1usize..=255),
            1..14,
        )
    ) {
        let mut n = leader();
        let mut sent = Vec::new();
        let count = sizes.len() as u64;
        for (id, (value, key, cache)) in sizes.into_iter().enumerate() {
            let op = Arc::new(Op::Put {
                cache: "c".repeat(cache),
                key: "k".repeat(key),
                value: vec![0xa5; value],
                ttl_ms: Some(u64::MAX),
                schema: Some(u64::MAX),
            });
            sent.extend(frames(&n.step(ms(103), Input::Propose {
                id: id as u64,
                op,
                ack: Ack::Leader,
                deadline: ms(60_000),
            })));
        }
        // Acknowledge frame by frame until every entry went out (the noop is 1).
        let mut at = 104;
        while sent.last().map(|(_, last)| *last) != Some(count + 1) {
            let last = sent.last().map_or(1, |(_, l)| *l);
            let more = frames(&n.step(ms(at), ack(last, at)));
            prop_assert!(!more.is_empty(), "nothing more sent after {last}");
            sent.extend(more);
            at += 1;
        }
        for (bytes, _) in sent {
            prop_assert!(bytes <= MAX_FRAME_BYTES, "a frame of {bytes} bytes");
        }
    }
}

/// A store with one cache of byte values of the given sizes, keys "k{i}"
/// of `key` bytes.
fn store_with(sizes: &[usize], key: usize) -> redhac_store::Store {
    let mut b = redhac_store::Store::builder();
    b.add::<Vec<u8>>(&"c".repeat(255), redhac_store::CacheOptions::default())
        .unwrap();
    let store = b.build();
    let c = store.erased(&"c".repeat(255)).unwrap();
    for (i, size) in sizes.iter().enumerate() {
        let value = postcard::to_allocvec(&vec![i as u8; *size]).unwrap();
        let k = format!("{i:0>width$}", width = key.max(8));
        c.apply_put(k, &value, c.schema(), None, redhac_store::Origin::Peer)
            .unwrap();
    }
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Snapshot chunks fit a frame whatever the values' sizes (up to the
    /// largest value a write may carry), and together hold every entry.
    #[test]
    fn no_snapshot_chunk_exceeds_the_receivers_limit(
        sizes in proptest::collection::vec(value_len(), 1..6),
        key in 0..=crate::MAX_KEY_LEN,
    ) {
        // Encoded values stay within the limit (postcard adds a length).
        let sizes: Vec<usize> = sizes
            .into_iter()
            .map(|s| s.min(crate::Config::MAX_VALUE_SIZE_LIMIT - 8))
            .collect();
        let store = store_with(&sizes, key);
        let caches: Vec<_> = store.caches().cloned().collect();
        // Keys arrive in batches, as from the listing task, cut as they come.
        let mut stream = snapshot::SnapshotStream::new(1, 1, LogId::new(1, 1));
        let mut batches = Vec::new();
        let all = snapshot::list_keys(&caches, |cache, keys| {
            batches.push((cache, keys));
            true
        });
        prop_assert!(all, "every key listed");
        let mut chunks = Vec::new();
        for (cache, keys) in batches {
            stream.add_keys(cache, keys);
            chunks.extend(stream.next_chunk(&store, 7));
        }
        stream.all_listed();
        chunks.extend(std::iter::from_fn(|| stream.next_chunk(&store, 7)));
        let mut entries = 0;
        let mut ended = false;
        for chunk in chunks {
            prop_assert!(!ended, "a chunk after the last");
            ended = chunk.end.is_some();
            let held: Vec<usize> = snapshot::decode_chunk(&chunk.data)
                .unwrap()
                .iter()
                .flat_map(|c| c.entries.iter().map(|e| e.key.len() + e.value.len()))
                .collect();
            // A chunk holds about SNAPSHOT_CHUNK bytes of entries, or one.
            prop_assert!(
                held.len() <= 1 || held.iter().sum::<usize>() <= snapshot::SNAPSHOT_CHUNK,
                "a chunk of {} entries, {} bytes", held.len(), held.iter().sum::<usize>()
            );
            entries += held.len();
            let f = Frame {
                kind: Some(frame::Kind::Core(redhac_proto::Core {
                    msg: Some(redhac_proto::core::Msg::Snapshot(chunk)),
                })),
            };
            let bytes = prost::Message::encoded_len(&f);
            prop_assert!(bytes <= MAX_FRAME_BYTES, "a chunk of {bytes} bytes");
        }
        prop_assert!(ended, "the last chunk says so");
        prop_assert_eq!(entries, sizes.len());
    }
}
