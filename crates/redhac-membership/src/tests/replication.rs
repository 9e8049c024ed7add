//! Replication: a follower matching the leader's log, refusing what no
//! leader of its term sends, and the leader's frames.

use super::*;
use crate::events::Rejection;

#[test]
fn a_follower_applies_committed_entries_and_acks() {
    let mut n = linked(1);
    let (a, b) = (put("a"), put("b"));
    let entries = vec![entry(1, 1, &a), entry(1, 2, &b)];
    let out = receive(&mut n, 10, 1, append(1, LogId::default(), entries, 1));
    assert_eq!(
        out,
        vec![
            Output::State {
                term: 1,
                role: NodeRole::Follower,
                leader: Some(1)
            },
            Output::Apply(entry(1, 1, &a)),
            reply(1, true, 2, 1, ms(10)),
        ]
    );
}

#[test]
fn truncating_applied_entries_invalidates_their_keys() {
    let mut n = linked(1);
    let (a, b, c) = (put("a"), put("b"), put("c"));
    let entries = vec![entry(1, 1, &a), entry(1, 2, &b)];
    receive(&mut n, 10, 1, append(1, LogId::default(), entries, 2));
    // A leader of a later term holds another entry at index 2 (only possible
    // after a majority lost its memory): the applied "b" cannot be undone.
    let out = receive(
        &mut n,
        20,
        1,
        append(3, LogId::new(1, 1), vec![entry(3, 2, &c)], 2),
    );
    assert_eq!(
        out,
        vec![
            Output::State {
                term: 3,
                role: NodeRole::Follower,
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
    let mut n = linked(1);
    let out = receive(
        &mut n,
        10,
        1,
        append(1, LogId::new(1, 7), vec![entry(1, 8, &put("x"))], 7),
    );
    assert_eq!(out.last(), Some(&reply(1, false, 0, 0, ms(10))));
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
            why: Rejection::NotTheLeader
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
            why: Rejection::NotTheLeader,
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
                why: Rejection::StaleTerm
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
            why: Rejection::Malformed
        }]
    ));
    let out = receive(&mut n, 30, 1, chunk(2, LogId::new(5, 9), 0, Some(9)));
    assert!(matches!(
        out.as_slice(),
        [Output::Rejected {
            why: Rejection::Malformed,
            ..
        }]
    ));
    for from in [0, 7] {
        let out = receive(&mut n, 40, from, append(9, LogId::default(), Vec::new(), 0));
        assert!(matches!(
            out.as_slice(),
            [Output::Rejected {
                why: Rejection::NotLinked,
                ..
            }]
        ));
    }
    assert_eq!((n.status().term, n.status().last.index), (2, 1));
}

#[test]
fn a_lagging_follower_gets_frames_bounded_by_bytes() {
    let mut n = leader_of_three();
    let big = Arc::new(Op::Put {
        cache: "c".into(),
        key: "k".into(),
        value: vec![7; 1 << 20],
        ttl_ms: None,
        schema: None,
    });
    let mut out = Vec::new();
    for id in 0..12 {
        out.extend(propose(&mut n, 104, id, &big, Ack::Leader));
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
        schema: None,
    });
    let small = put("s");
    let mut out = Vec::new();
    for (id, op) in [&small, &small, &small, &small, &huge, &small]
        .into_iter()
        .enumerate()
    {
        out.extend(propose(&mut n, 104, id as u64, op, Ack::Leader));
    }
    assert_eq!(appended(&out, 1).len(), 4, "four small frames in flight");
    let out = receive(&mut n, 105, 1, ack(5, 105));
    assert_eq!(appended(&out, 1), vec![vec![6]], "the huge entry alone");
    let out = receive(&mut n, 106, 1, ack(6, 106));
    assert_eq!(appended(&out, 1), vec![vec![7]]);
}

#[test]
fn writes_proposed_in_one_turn_go_to_each_follower_in_one_frame() {
    let proposals = |first: u64| {
        (first..first + 5).map(|id| Input::Propose {
            id,
            op: put("k"),
            ack: Ack::Quorum,
            deadline: ms(10_000),
        })
    };
    // One write per step: a frame per write, up to the in-flight limit.
    let mut n = leader_of_three();
    let mut out = Vec::new();
    for input in proposals(0) {
        out.extend(n.step(ms(104), input));
    }
    assert_eq!(appended(&out, 1), vec![vec![2], vec![3], vec![4], vec![5]]);
    // The same writes in one turn: one frame per follower holds them all.
    let mut n = leader_of_three();
    let out = n.step_batch(ms(104), proposals(0));
    assert_eq!(appended(&out, 1), vec![vec![2, 3, 4, 5, 6]]);
    assert_eq!(appended(&out, 2), vec![vec![2, 3, 4, 5, 6]]);
    // One reply commits the batch and resolves every write of it, in order.
    let out = receive(&mut n, 105, 1, ack(6, 105));
    let resolved: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Resolve { id, result: Ok(_) } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(resolved, vec![0, 1, 2, 3, 4]);
}
