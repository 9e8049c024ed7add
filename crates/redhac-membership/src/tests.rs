//! One input, the exact outputs (openraft's engine-test style).

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Input, Output};
use crate::message::{Append, AppendReply, Message, PeerHello, SnapshotChunk};
use crate::types::{Entry, Health, LogId, Op, Role};
use crate::{Config, Node, Timing};

const T: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn node(me: u32, members: usize) -> Node {
    Node::new(Config::new(me, members, Timing::new(T), 7), Duration::ZERO)
}

fn put(key: &str) -> Arc<Op> {
    Arc::new(Op::Put {
        cache: "c".into(),
        key: key.into(),
        value: vec![1],
        ttl_ms: None,
    })
}

fn entry(term: u64, index: u64, op: &Arc<Op>) -> Entry {
    Entry {
        id: LogId::new(term, index),
        op: Arc::clone(op),
        origin: Some(1),
    }
}

fn connect_all(n: &mut Node, now: Duration, peers: &[u32], term: u64) -> Vec<Output> {
    let mut out = Vec::new();
    for &peer in peers {
        let hello = PeerHello {
            term,
            last: LogId::default(),
        };
        out.extend(n.step(now, Input::Connected { peer, hello }));
    }
    out
}

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

fn reply(term: u64, ok: bool, last: u64, applied: u64, now: Duration) -> Output {
    Output::Send {
        to: 1,
        msg: Message::AppendReply(AppendReply {
            term,
            ok,
            last,
            applied,
            needs_snapshot: false,
            stamp: ms(1),
            own: now,
            batch: true,
        }),
    }
}

#[test]
fn a_follower_refuses_a_pre_vote_while_its_leader_is_live() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 1);
    n.step(
        ms(10),
        Input::Receive {
            from: 1,
            msg: append(1, LogId::default(), vec![], 0),
        },
    );
    let out = n.step(
        ms(20),
        Input::Receive {
            from: 2,
            msg: Message::PreVote {
                term: 2,
                last: LogId::new(1, 5),
            },
        },
    );
    assert_eq!(
        out,
        vec![Output::Send {
            to: 2,
            msg: Message::PreVoteReply {
                term: 2,
                granted: false
            }
        }]
    );
}

#[test]
fn a_whole_cold_cluster_elects_without_the_restart_delay() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 0);
    // Well before one maximum election timeout: the cold start rule allows it.
    let out = n.step(ms(100), Input::Tick);
    let pre_votes = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    msg: Message::PreVote { term: 1, .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(pre_votes, 2, "{out:?}");
    let out = n.step(
        ms(101),
        Input::Receive {
            from: 1,
            msg: Message::PreVoteReply {
                term: 1,
                granted: true,
            },
        },
    );
    assert!(out.contains(&Output::State {
        term: 1,
        role: Role::Candidate,
        leader: None
    }));
    let out = n.step(
        ms(102),
        Input::Receive {
            from: 2,
            msg: Message::VoteReply {
                term: 1,
                granted: true,
            },
        },
    );
    assert!(out.contains(&Output::State {
        term: 1,
        role: Role::Leader,
        leader: Some(0)
    }));
}

#[test]
fn a_restarted_member_waits_out_the_vote_guard() {
    let mut n = node(0, 3);
    // A peer with a non-empty log: not a cold start, so a leader may exist.
    let hello = PeerHello {
        term: 4,
        last: LogId::new(4, 9),
    };
    n.step(ms(0), Input::Connected { peer: 1, hello });
    let vote = |term| Input::Receive {
        from: 1,
        msg: Message::Vote {
            term,
            last: LogId::new(4, 9),
            transfer: false,
        },
    };
    let refused = Output::Send {
        to: 1,
        msg: Message::VoteReply {
            term: 0,
            granted: false,
        },
    };
    assert_eq!(n.step(ms(10), vote(5)), vec![refused]);
    let out = n.step(T, vote(5));
    assert!(
        out.contains(&Output::Send {
            to: 1,
            msg: Message::VoteReply {
                term: 5,
                granted: true
            }
        }),
        "{out:?}"
    );
}

fn floored(me: u32, floor: u64) -> Node {
    let mut c = Config::new(me, 3, Timing::new(T), 7);
    c.term_floor = floor;
    Node::new(c, Duration::ZERO)
}

#[test]
fn a_member_never_votes_below_its_term_floor_and_says_so() {
    let mut n = floored(0, 1000);
    connect_all(&mut n, ms(0), &[1, 2], 4);
    let out = n.step(
        T,
        Input::Receive {
            from: 1,
            msg: Message::Vote {
                term: 5,
                last: LogId::new(4, 9),
                transfer: false,
            },
        },
    );
    assert_eq!(
        out,
        vec![Output::Send {
            to: 1,
            msg: Message::VoteReply {
                term: 1000,
                granted: false
            }
        }]
    );
}

#[test]
fn a_leader_meeting_a_restarted_members_floor_stands_again_above_it() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 0);
    n.step(ms(100), Input::Tick);
    n.step(
        ms(101),
        Input::Receive {
            from: 1,
            msg: Message::PreVoteReply {
                term: 1,
                granted: true,
            },
        },
    );
    n.step(
        ms(102),
        Input::Receive {
            from: 1,
            msg: Message::VoteReply {
                term: 1,
                granted: true,
            },
        },
    );
    // Its noop commits with member 1's ack.
    n.step(
        ms(103),
        Input::Receive {
            from: 1,
            msg: Message::AppendReply(AppendReply {
                term: 1,
                ok: true,
                last: 1,
                applied: 0,
                needs_snapshot: false,
                stamp: ms(102),
                own: ms(103),
                batch: true,
            }),
        },
    );
    assert_eq!(n.status().commit, 1);
    // Member 2 restarted: its terms start at its floor, 5000.
    let out = n.step(
        ms(104),
        Input::Receive {
            from: 2,
            msg: Message::AppendReply(AppendReply {
                term: 5000,
                ok: false,
                last: 0,
                applied: 0,
                needs_snapshot: false,
                stamp: ms(102),
                own: ms(1),
                batch: true,
            }),
        },
    );
    let vote = Message::Vote {
        term: 5001,
        last: LogId::new(1, 1),
        transfer: true,
    };
    assert!(
        out.contains(&Output::Send {
            to: 1,
            msg: vote.clone()
        }) && out.contains(&Output::Send { to: 2, msg: vote }),
        "{out:?}"
    );
}

#[test]
fn losing_the_majority_clears_the_caches_and_refuses_writes() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 1);
    assert_eq!(
        n.step(ms(1), Input::Disconnected { peer: 1 }),
        vec![Output::Health(Health::Degraded)]
    );
    assert_eq!(
        n.step(ms(2), Input::Disconnected { peer: 2 }),
        vec![Output::Health(Health::Bad), Output::InvalidateAll]
    );
    let out = n.step(
        ms(3),
        Input::Propose {
            id: 9,
            op: put("k"),
            ack: crate::Ack::Quorum,
            deadline: ms(5000),
        },
    );
    assert_eq!(
        out,
        vec![Output::Resolve {
            id: 9,
            result: Err(crate::WriteError::NoQuorum)
        }]
    );
}

#[test]
fn a_follower_applies_committed_entries_and_acks() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 1);
    let (a, b) = (put("a"), put("b"));
    let out = n.step(
        ms(10),
        Input::Receive {
            from: 1,
            msg: append(
                1,
                LogId::default(),
                vec![entry(1, 1, &a), entry(1, 2, &b)],
                1,
            ),
        },
    );
    assert_eq!(
        out,
        vec![
            Output::State {
                term: 1,
                role: Role::Follower,
                leader: Some(1)
            },
            Output::Apply(entry(1, 1, &a)),
            reply(1, true, 2, 1, ms(10)),
        ]
    );
}

#[test]
fn truncating_applied_entries_invalidates_their_keys() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 1);
    let (a, b, c) = (put("a"), put("b"), put("c"));
    n.step(
        ms(10),
        Input::Receive {
            from: 1,
            msg: append(
                1,
                LogId::default(),
                vec![entry(1, 1, &a), entry(1, 2, &b)],
                2,
            ),
        },
    );
    // A leader of a later term holds another entry at index 2 (only possible
    // after a majority lost its memory): the applied "b" cannot be undone.
    let out = n.step(
        ms(20),
        Input::Receive {
            from: 1,
            msg: append(3, LogId::new(1, 1), vec![entry(3, 2, &c)], 2),
        },
    );
    assert_eq!(
        out,
        vec![
            Output::State {
                term: 3,
                role: Role::Follower,
                leader: Some(1)
            },
            Output::InvalidateKeys(vec![("c".into(), Some("b".into()))]),
            Output::Apply(entry(3, 2, &c)),
            reply(3, true, 2, 2, ms(20)),
        ]
    );
}

#[test]
fn a_follower_that_lacks_the_previous_entry_says_where_to_resume() {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 1);
    let out = n.step(
        ms(10),
        Input::Receive {
            from: 1,
            msg: append(1, LogId::new(1, 7), vec![entry(1, 8, &put("x"))], 7),
        },
    );
    assert_eq!(out.last(), Some(&reply(1, false, 0, 0, ms(10))));
}

/// `msg` from `from` at `at` ms.
fn receive(n: &mut Node, at: u64, from: u32, msg: Message) -> Vec<Output> {
    n.step(ms(at), Input::Receive { from, msg })
}

/// Follows member 1 in term 2, with entry (2, 1) applied.
fn following_1_in_term_2() -> Node {
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 2);
    receive(
        &mut n,
        10,
        1,
        append(2, LogId::default(), vec![entry(2, 1, &put("a"))], 1),
    );
    n
}

#[test]
fn entries_from_a_member_that_is_not_the_leader_of_their_term_are_refused() {
    let mut n = following_1_in_term_2();
    // Member 2 claims term 2 too, which member 1 leads: no term has two leaders.
    let forged = || append(2, LogId::new(2, 1), vec![entry(2, 2, &put("evil"))], 2);
    let out = receive(&mut n, 20, 2, forged());
    assert_eq!(
        out,
        vec![Output::Rejected {
            from: 2,
            what: "append",
            why: crate::Rejection::NotTheLeader
        }]
    );
    let s = n.status();
    assert_eq!(
        (s.term, s.leader, s.last.index, s.applied),
        (2, Some(1), 1, 1)
    );
    // Still refused after the leader's link drops: the term's leader is known.
    n.step(ms(30), Input::Disconnected { peer: 1 });
    let out = receive(&mut n, 40, 2, forged());
    assert!(matches!(
        out.as_slice(),
        [Output::Rejected {
            from: 2,
            why: crate::Rejection::NotTheLeader,
            ..
        }]
    ));
    assert_eq!(n.status().last.index, 1);
}

#[test]
fn a_stale_term_is_answered_with_the_current_one_and_reported() {
    let mut n = following_1_in_term_2();
    let out = receive(
        &mut n,
        20,
        2,
        append(1, LogId::default(), vec![entry(1, 1, &put("old"))], 1),
    );
    let mut refusal = reply(2, false, 1, 1, ms(20));
    if let Output::Send { to, .. } = &mut refusal {
        *to = 2;
    }
    assert_eq!(
        out,
        vec![
            Output::Rejected {
                from: 2,
                what: "append",
                why: crate::Rejection::StaleTerm
            },
            refusal,
        ]
    );
    assert_eq!(n.status().leader, Some(1));
}

#[test]
fn malformed_leader_traffic_and_unlinked_senders_are_reported() {
    let mut n = following_1_in_term_2();
    // Entry terms above the message's term: no leader sends that.
    let out = receive(
        &mut n,
        20,
        1,
        append(2, LogId::new(2, 1), vec![entry(3, 2, &put("x"))], 2),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::Rejected {
            from: 1,
            what: "append",
            why: crate::Rejection::Malformed
        }]
    ));
    let out = receive(&mut n, 30, 1, chunk(2, LogId::new(5, 9), 0, Some(9)));
    assert!(matches!(
        out.as_slice(),
        [Output::Rejected {
            why: crate::Rejection::Malformed,
            ..
        }]
    ));
    for from in [0, 7] {
        let out = receive(&mut n, 40, from, append(9, LogId::default(), Vec::new(), 0));
        assert!(matches!(
            out.as_slice(),
            [Output::Rejected {
                why: crate::Rejection::NotLinked,
                ..
            }]
        ));
    }
    assert_eq!((n.status().term, n.status().last.index), (2, 1));
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
    assert_eq!((n.status().role, n.status().commit), (Role::Leader, 1));
    n
}

fn ack(last: u64, at: u64) -> Message {
    Message::AppendReply(ack_reply(last, at))
}

/// A follower's acceptance in term 1 of everything up to `last`, at `at` ms.
fn ack_reply(last: u64, at: u64) -> AppendReply {
    AppendReply {
        term: 1,
        ok: true,
        last,
        applied: last,
        needs_snapshot: false,
        stamp: ms(at - 1),
        own: ms(at),
        batch: true,
    }
}

/// Proposes `op` at ack `Leader` (deadline 10 s) at `at` ms.
fn propose(n: &mut Node, at: u64, id: u64, op: &Arc<Op>) -> Vec<Output> {
    n.step(
        ms(at),
        Input::Propose {
            id,
            op: Arc::clone(op),
            ack: crate::Ack::Leader,
            deadline: ms(10_000),
        },
    )
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

#[test]
fn a_lagging_follower_gets_frames_bounded_by_bytes() {
    let mut n = leader_of_three();
    let big = Arc::new(Op::Put {
        cache: "c".into(),
        key: "k".into(),
        value: vec![7; 1 << 20],
        ttl_ms: None,
    });
    let mut out = Vec::new();
    for id in 0..12 {
        out.extend(propose(&mut n, 104, id, &big));
    }
    // Four frames in flight, one entry each; the other eight wait.
    assert_eq!(appended(&out, 1), vec![vec![2], vec![3], vec![4], vec![5]]);
    // One frame's room: as many 1 MiB entries as fit in 4 MiB, not all eight.
    let out = receive(&mut n, 105, 1, ack(2, 105));
    assert_eq!(appended(&out, 1), vec![vec![6, 7, 8]]);
    let budget = Timing::new(T).max_batch_bytes;
    assert!(3 * big.size() <= budget && 4 * big.size() > budget);
}

#[test]
fn an_entry_larger_than_the_byte_budget_still_goes_alone() {
    let mut n = leader_of_three();
    let huge = Arc::new(Op::Put {
        cache: "c".into(),
        key: "k".into(),
        value: vec![7; 5 << 20],
        ttl_ms: None,
    });
    let small = put("s");
    let mut out = Vec::new();
    for (id, op) in [&small, &small, &small, &small, &huge, &small]
        .into_iter()
        .enumerate()
    {
        out.extend(propose(&mut n, 104, id as u64, op));
    }
    assert_eq!(appended(&out, 1).len(), 4, "four small frames in flight");
    let out = receive(&mut n, 105, 1, ack(5, 105));
    assert_eq!(appended(&out, 1), vec![vec![6]], "the huge entry alone");
    let out = receive(&mut n, 106, 1, ack(6, 106));
    assert_eq!(appended(&out, 1), vec![vec![7]]);
}

fn chunk(term: u64, last: LogId, seq: u64, end: Option<u64>) -> Message {
    Message::Snapshot(SnapshotChunk {
        term,
        last,
        seq,
        end,
        data: Arc::new(vec![seq as u8]),
    })
}

/// A leader of term 1 whose member 1 asked for a snapshot (its caches were
/// cleared), after `writes` more entries; returns what the leader sent.
fn streaming_to_1(writes: u64) -> (Node, Vec<Output>) {
    let mut n = leader_of_three();
    let mut out = Vec::new();
    for id in 0..writes {
        out.extend(propose(&mut n, 104, id, &put("k")));
    }
    let asks = Message::AppendReply(AppendReply {
        needs_snapshot: true,
        ..ack_reply(1, 105)
    });
    out.extend(receive(&mut n, 105, 1, asks));
    (n, out)
}

#[test]
fn a_follower_receiving_a_snapshot_gets_nothing_else_of_the_log_until_it_acks() {
    let (mut n, out) = streaming_to_1(3);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SendSnapshot { to: 1, last, .. } if last.index == 1)),
        "{out:?}"
    );
    // More writes and heartbeats: member 2 gets them, member 1 nothing.
    let mut later = Vec::new();
    for at in [106, 200, 400] {
        later.extend(propose(&mut n, at, at, &put("k")));
        later.extend(n.step(ms(at + 50), Input::Tick));
    }
    assert!(
        !later.iter().any(|o| matches!(
            o,
            Output::Send { to: 1, .. } | Output::SendSnapshot { to: 1, .. }
        )),
        "{later:?}"
    );
    assert!(
        later
            .iter()
            .any(|o| matches!(o, Output::Send { to: 2, .. }))
    );
    // A late answer to an append sent before the snapshot does not end it.
    let out = receive(&mut n, 455, 1, ack(1, 455));
    assert!(appended(&out, 1).is_empty(), "{out:?}");
    // Its ack of the snapshot (no stamp) resumes the log right after it.
    let done = Message::AppendReply(AppendReply {
        stamp: Duration::ZERO,
        ..ack_reply(1, 460)
    });
    let out = receive(&mut n, 460, 1, done);
    let sent = appended(&out, 1);
    assert_eq!(sent.first().and_then(|f| f.first()), Some(&2), "{out:?}");
}

#[test]
fn the_leader_keeps_the_entries_after_a_streaming_snapshot_up_to_four_times_its_log() {
    let mut small = node(0, 3);
    small.timing.log_capacity = 4;
    let mut n = elected(small);
    let asks = Message::AppendReply(AppendReply {
        needs_snapshot: true,
        ..ack_reply(1, 104)
    });
    receive(&mut n, 104, 1, asks);
    let write = |n: &mut Node, id: u64| {
        propose(n, 105, id, &put("k"));
        // Member 2 holds everything: entries commit and apply at once.
        let last = n.status().last.index;
        receive(n, 105, 2, ack(last, 105));
    };
    for id in 0..10 {
        write(&mut n, id);
    }
    assert_eq!(n.log.base().index, 1, "held for member 1's snapshot at 1");
    for id in 10..20 {
        write(&mut n, id);
    }
    assert!(n.log.base().index > 1, "not beyond four times the capacity");
    assert!(n.log.len() <= 16);
    // That stream's entries are gone: a newer snapshot replaces it at once.
    let s = n
        .progress(1)
        .and_then(|p| p.streaming)
        .expect("a newer stream");
    assert!(s.index >= n.log.base().index, "{s} behind {}", n.log.base());
}

#[test]
fn a_forwarded_write_that_a_snapshot_covers_resolves_instead_of_going_again() {
    let mut n = following_1_in_term_2();
    let out = n.step(
        ms(11),
        Input::Propose {
            id: 9,
            op: put("w"),
            ack: crate::Ack::Quorum,
            deadline: ms(10_000),
        },
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            to: 1,
            msg: Message::Forward { id: 9, .. }
        }
    )));
    let at = LogId::new(2, 3);
    receive(&mut n, 12, 1, Message::Accepted { id: 9, at });
    // Before entry 3 arrives, a snapshot through 5 covers it.
    let out = receive(&mut n, 13, 1, chunk(2, LogId::new(2, 5), 0, Some(5)));
    assert!(
        out.contains(&Output::Resolve {
            id: 9,
            result: Ok(Some(at))
        }),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: Message::Forward { .. },
                ..
            }
        )),
        "forwarded again: {out:?}"
    );
}

#[test]
fn a_follower_installs_a_snapshot_in_chunks_and_serves_only_after_a_renewal() {
    let mut n = following_1_in_term_2();
    // A lease from its leader first.
    let renew = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 1),
        entries: Vec::new(),
        commit: 1,
        stamp: ms(11),
        echo: Some(ms(10)),
        lease: true,
    });
    receive(&mut n, 12, 1, renew.clone());
    assert!(n.serving(ms(13)));
    let last = LogId::new(2, 5);
    let out = receive(&mut n, 20, 1, chunk(2, last, 0, None));
    assert!(!n.serving(ms(21)), "the lease goes at the first chunk");
    // Installed, answered (still asking for a snapshot: the stream is not
    // done), and the gate closed.
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::InstallChunk {
                    first: true,
                    done: false,
                    ..
                },
                Output::Send {
                    to: 1,
                    msg: Message::AppendReply(AppendReply {
                        ok: false,
                        needs_snapshot: true,
                        batch: false,
                        ..
                    })
                },
                Output::Serving(None)
            ]
        ),
        "{out:?}"
    );
    receive(&mut n, 22, 1, chunk(2, last, 1, None));
    // A renewal mid-install (it cannot come from a correct leader, which
    // sends nothing else meanwhile) renews nothing.
    receive(&mut n, 23, 1, renew);
    assert!(!n.serving(ms(24)));
    let out = receive(&mut n, 25, 1, chunk(2, last, 2, Some(7)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::InstallChunk {
            first: false,
            done: true,
            ..
        }
    )));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 1,
                msg: Message::AppendReply(AppendReply {
                    ok: true,
                    last: 5,
                    batch: true,
                    ..
                })
            }
        )),
        "{out:?}"
    );
    assert_eq!(n.status().applied, 5);
    assert!(!n.serving(ms(26)), "no lease until the leader renews it");
    let renew = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 5),
        entries: Vec::new(),
        commit: 5,
        stamp: ms(26),
        echo: Some(ms(25)),
        lease: true,
    });
    receive(&mut n, 27, 1, renew);
    // Its caches may show entries up to the snapshot's end, 7: a renewal
    // that committed only 5 (applied here) is not enough.
    assert!(
        !n.serving(ms(28)),
        "serving inside the snapshot's fuzzy window"
    );
    let replay = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 5),
        entries: vec![entry(2, 6, &put("x")), entry(2, 7, &put("y"))],
        commit: 7,
        stamp: ms(28),
        echo: Some(ms(27)),
        lease: true,
    });
    receive(&mut n, 29, 1, replay);
    assert_eq!(n.status().applied, 7);
    assert!(n.serving(ms(30)));
}

#[test]
fn a_chunk_out_of_sequence_is_refused_and_nothing_is_served_until_a_whole_snapshot() {
    let mut n = following_1_in_term_2();
    let last = LogId::new(2, 5);
    receive(&mut n, 20, 1, chunk(2, last, 0, None));
    // Chunk 1 was lost.
    let out = receive(&mut n, 21, 1, chunk(2, last, 2, Some(5)));
    assert!(
        matches!(
            out.as_slice(),
            [Output::Rejected {
                why: crate::Rejection::OutOfSequence,
                what: "snapshot",
                ..
            }]
        ),
        "{out:?}"
    );
    assert_eq!(n.status().applied, 1, "nothing installed");
    // The rest of that stream is refused too; a new stream starts over.
    let out = receive(&mut n, 22, 1, chunk(2, last, 1, None));
    assert!(
        matches!(out.as_slice(), [Output::Rejected { .. }]),
        "{out:?}"
    );
    let out = receive(&mut n, 23, 1, chunk(2, last, 0, Some(5)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::InstallChunk {
            first: true,
            done: true,
            ..
        }
    )));
}
