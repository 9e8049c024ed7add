//! Hostile input: arbitrary messages, from members and non-members, at any
//! time, in any order. The core never panics, and its own state stays sound:
//! it applies only what it holds, in order, and serves nothing in Bad.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use redhac_membership::{
    Ack, Append, AppendReply, Entry, Health, Input, LogId, Message, Node, NodeConfig, Op, Output,
    PeerHello, SnapshotChunk, Timing,
};

fn log_id() -> impl Strategy<Value = LogId> {
    (0u64..6, 0u64..12).prop_map(|(t, i)| LogId::new(t, i))
}

fn op() -> impl Strategy<Value = Arc<Op>> {
    prop_oneof![
        ("[a-c]", "[k-m]", any::<Vec<u8>>(), any::<Option<u64>>()).prop_map(|(c, k, v, ttl)| {
            Op::Put {
                cache: c,
                key: k,
                value: v,
                ttl_ms: ttl,
                schema: None,
            }
        }),
        ("[a-c]", "[k-m]").prop_map(|(c, k)| Op::Delete { cache: c, key: k }),
        "[a-c]".prop_map(|c| Op::Clear { cache: c }),
        Just(Op::Noop),
    ]
    .prop_map(Arc::new)
}

fn ack() -> impl Strategy<Value = Ack> {
    prop_oneof![
        Just(Ack::None),
        Just(Ack::Leader),
        Just(Ack::Quorum),
        Just(Ack::All)
    ]
}

fn ms() -> impl Strategy<Value = Duration> {
    (0u64..10_000).prop_map(Duration::from_millis)
}

fn message() -> impl Strategy<Value = Message> {
    let entries = prop::collection::vec((0u64..6, op()), 0..4);
    prop_oneof![
        (
            0u64..8,
            log_id(),
            0u64..20,
            0u64..3,
            prop::collection::vec(0u32..6, 0..4)
        )
            .prop_map(|(term, last, config, cluster, first)| Message::PreVote {
                term,
                last,
                config,
                cluster,
                first,
            }),
        (0u64..8, any::<bool>())
            .prop_map(|(term, granted)| Message::PreVoteReply { term, granted }),
        (0u64..8, log_id(), any::<bool>(), 0u64..20, 0u64..3).prop_map(
            |(term, last, transfer, config, cluster)| Message::Vote {
                term,
                last,
                transfer,
                config,
                cluster,
            }
        ),
        (0u64..8, any::<bool>()).prop_map(|(term, granted)| Message::VoteReply { term, granted }),
        (
            0u64..8,
            log_id(),
            entries,
            0u64..14,
            ms(),
            proptest::option::of(ms()),
            any::<bool>()
        )
            .prop_map(|(term, prev, es, commit, stamp, echo, lease)| {
                // Entries follow prev, as the wire decoder enforces; their
                // terms mostly fit a leader's log (between prev's and the
                // message's, not decreasing), sometimes not.
                let mut terms: Vec<u64> = es.iter().map(|(t, _)| *t).collect();
                if term >= prev.term && term % 4 != 0 {
                    for t in &mut terms {
                        *t = prev.term + *t % (term - prev.term + 1);
                    }
                    terms.sort_unstable();
                }
                let entries = es
                    .into_iter()
                    .zip(terms)
                    .enumerate()
                    .map(|(i, ((_, op), t))| Entry {
                        id: LogId::new(t, prev.index + 1 + i as u64),
                        op,
                        origin: None,
                        request: None,
                    })
                    .collect();
                Message::Append(Append {
                    term,
                    prev,
                    entries,
                    commit,
                    stamp,
                    echo,
                    lease,
                })
            }),
        (
            0u64..8,
            any::<bool>(),
            0u64..14,
            0u64..14,
            any::<bool>(),
            ms(),
            ms(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(term, ok, last, applied, needs_snapshot, stamp, own, batch, leaving)| {
                    Message::AppendReply(AppendReply {
                        term,
                        ok,
                        last,
                        applied,
                        needs_snapshot,
                        leaving,
                        stamp,
                        own,
                        batch,
                    })
                }
            ),
        (
            0u64..8,
            log_id(),
            0u64..3,
            proptest::option::of(0u64..14),
            any::<Vec<u8>>()
        )
            .prop_map(
                |(term, last, seq, end, d)| Message::Snapshot(SnapshotChunk {
                    term,
                    last,
                    seq,
                    end,
                    data: Arc::new(d),
                    membership: None,
                })
            ),
        (0u64..9, op(), ack()).prop_map(|(id, op, ack)| Message::Forward { id, op, ack }),
        (0u64..9, log_id()).prop_map(|(id, at)| Message::Accepted { id, at }),
        (0u64..9).prop_map(|id| Message::Refused { id }),
        (0u64..9, 0u64..14).prop_map(|(id, index)| Message::AwaitAll { id, index }),
        (0u64..9, 0u64..14).prop_map(|(id, index)| Message::AllDone { id, index }),
        (0u64..8, any::<bool>()).prop_map(|(term, stays)| Message::TimeoutNow { term, stays }),
        (0u64..8).prop_map(|term| Message::Leaving { term }),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    // Peers 0..4 of a 3-member cluster: 0 is the node itself, 3 is no member.
    let peer = 0u32..4;
    prop_oneof![
        Just(Input::Tick),
        (peer.clone(), 0u64..8, log_id(), 0u64..3, 0u64..10).prop_map(
            |(peer, term, last, incarnation, floor)| Input::Connected {
                peer,
                hello: PeerHello {
                    term,
                    last,
                    incarnation,
                    floor,
                },
            }
        ),
        peer.clone().prop_map(|peer| Input::Disconnected { peer }),
        (peer.clone(), message()).prop_map(|(from, msg)| Input::Receive { from, msg }),
        (peer, message()).prop_map(|(from, msg)| Input::Receive { from, msg }),
        (0u64..9, op(), ack(), ms()).prop_map(|(id, op, ack, deadline)| Input::Propose {
            id,
            op,
            ack,
            deadline
        }),
        Just(Input::Shutdown),
        Just(Input::StepDown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_panic_and_keep_the_node_sound(
        steps in prop::collection::vec((0u64..400, input()), 1..80),
        floor in 0u64..3,
    ) {
        let mut config = NodeConfig::new(1, 3, Timing::new(Duration::from_secs(2)), 5);
        config.term_floor = floor;
        let mut node = Node::new(config, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut applied = 0u64;
        let mut health = Health::Bad;
        // Linked peers: a node sends only over a link (any authenticated
        // peer links, member or not: one not listed may be added).
        let mut linked = std::collections::BTreeSet::new();
        for (advance, input) in steps {
            now += Duration::from_millis(advance);
            match &input {
                Input::Connected { peer, .. } if *peer != 1 => {
                    linked.insert(*peer);
                }
                Input::Disconnected { peer } => {
                    linked.remove(peer);
                }
                _ => {}
            }
            let out = node.step(now, input);
            let mut rewound = false;
            for o in &out {
                match o {
                    // A truncation of applied entries applies again from there.
                    Output::InvalidateKeys(_) | Output::InvalidateAll => rewound = true,
                    Output::Apply(e) => {
                        if rewound {
                            prop_assert!(e.id.index <= applied + 1, "entries apply in order");
                        } else {
                            prop_assert_eq!(e.id.index, applied + 1, "entries apply in order");
                        }
                        rewound = false;
                        applied = e.id.index;
                    }
                    Output::InstallChunk {
                        last, done: true, ..
                    } => applied = last.index,
                    Output::Health(h) => health = *h,
                    Output::Send { to, .. } => {
                        prop_assert!(linked.contains(to), "sends only over a link: {}", to);
                    }
                    Output::SendSnapshot { to, .. } => {
                        prop_assert!(*to != 1 && *to < 3, "streams only to members: {}", to);
                    }
                    Output::ResetLink { peer } => {
                        linked.remove(peer);
                    }
                    _ => {}
                }
            }
            let s = node.status();
            applied = s.applied; // a truncation may lower it
            prop_assert!(s.applied <= s.commit, "{:?}", s);
            prop_assert!(s.commit <= s.last.index, "{:?}", s);
            prop_assert_eq!(s.health, health);
            if s.health == Health::Bad {
                prop_assert!(!node.serving(now), "serves in Bad: {:?}", s);
            }
        }
    }
}
