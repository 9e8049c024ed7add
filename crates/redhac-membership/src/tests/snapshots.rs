//! Snapshots: streaming one to a follower that asked, the log kept for it,
//! and chunks that arrive out of sequence.

use super::*;
use crate::events::Rejection;

/// A leader of term 1 whose member 1 asked for a snapshot (its caches were
/// cleared), after `writes` more entries; returns what the leader sent.
fn streaming_to_1(writes: u64) -> (Node, Vec<Output>) {
    let mut n = leader_of_three();
    let mut out = Vec::new();
    for id in 0..writes {
        out.extend(propose(&mut n, 104, id, &put("k"), Ack::Leader));
    }
    let asks = Message::AppendReply(AppendReply {
        needs_snapshot: true,
        leaving: false,
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
        later.extend(propose(&mut n, at, at, &put("k"), Ack::Leader));
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
        leaving: false,
        ..ack_reply(1, 104)
    });
    receive(&mut n, 104, 1, asks);
    let write = |n: &mut Node, id: u64| {
        propose(n, 105, id, &put("k"), Ack::Leader);
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
                why: Rejection::OutOfSequence,
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

#[test]
fn a_snapshot_older_than_one_installed_is_refused_and_ends_its_stream() {
    let mut n = following_1_in_term_2();
    // A stream at index 9 arrives whole, then one the leader had begun
    // earlier, at index 5 (a transport that let it fall behind).
    receive(&mut n, 20, 1, chunk(2, LogId::new(2, 9), 0, Some(9)));
    assert_eq!(n.status().applied, 9);
    let out = receive(&mut n, 21, 1, chunk(2, LogId::new(2, 5), 0, Some(9)));
    assert!(
        !out.iter().any(|o| matches!(o, Output::InstallChunk { .. })),
        "{out:?}"
    );
    assert!(out.contains(&Output::Rejected {
        from: 1,
        what: "snapshot",
        why: Rejection::OlderSnapshot
    }));
    // The reply ends that stream on the leader: it claims no more than
    // the older snapshot's point.
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            to: 1,
            msg: Message::AppendReply(r)
        } if r.ok && r.last == 5 && r.stamp.is_zero() && !r.needs_snapshot
    )));
    let s = n.status();
    assert_eq!((s.applied, s.last.index), (9, 9), "nothing forgotten");
}

#[test]
fn a_follower_that_applied_further_than_the_leader_gets_entries_until_it_caught_up() {
    // A new leader that committed only its election's entry; member 1
    // applied entry 3 under the leader before (this one holds it, not yet
    // committed), then its caches were cleared.
    let mut n = leader_of_three();
    let mut out = propose(&mut n, 104, 1, &put("a"), Ack::Leader);
    out.extend(propose(&mut n, 104, 2, &put("b"), Ack::Leader));
    let asks = |last, at| {
        Message::AppendReply(AppendReply {
            needs_snapshot: true,
            applied: 3,
            ..ack_reply(last, at)
        })
    };
    // A snapshot at 1 would be refused (its log moved past it): entries go.
    out.extend(receive(&mut n, 105, 1, asks(1, 105)));
    out.extend(n.step(ms(160), Input::Tick));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::SendSnapshot { to: 1, .. })),
        "{out:?}"
    );
    assert_eq!(appended(&out, 1), vec![vec![2], vec![3]]);
    // Its acknowledgement commits them; now the caches go, from 3.
    let out = receive(&mut n, 106, 1, asks(3, 106));
    assert_eq!(n.status().commit, 3);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SendSnapshot { to: 1, last, .. } if last.index == 3)),
        "{out:?}"
    );
}

#[test]
fn a_snapshot_refused_as_older_ends_its_stream() {
    let (mut n, _) = streaming_to_1(0);
    assert!(n.progress(1).is_some_and(|p| p.streaming.is_some()));
    // Its answer to the last chunk: refused (its log moved past it), it
    // still wants one.
    let refused = Message::AppendReply(AppendReply {
        needs_snapshot: true,
        stamp: Duration::ZERO,
        applied: 4,
        ..ack_reply(1, 110)
    });
    receive(&mut n, 110, 1, refused);
    assert!(n.progress(1).is_some_and(|p| p.streaming.is_none()));
    let out = propose(&mut n, 120, 1, &put("k"), Ack::Leader);
    assert_eq!(appended(&out, 1), vec![vec![2]], "the log flows again");
}
