//! Membership changes through the log: one at a time, by the leader, in
//! force as soon as a log holds them; a removed member's lease is waited
//! out.

use super::learners::{leader_with_learners, sends};
use super::*;
use crate::{ChangeError, Membership, WriteError};

fn change(to: Membership) -> Arc<Op> {
    Arc::new(Op::Membership(to))
}

fn refused(out: &[Output], id: u64) -> Option<ChangeError> {
    out.iter().find_map(|o| match o {
        Output::Resolve {
            id: i,
            result: Err(WriteError::Membership(e)),
        } if *i == id => Some(*e),
        _ => None,
    })
}

fn resolved(out: &[Output], id: u64) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Resolve { id: i, result: Ok(_) } if *i == id))
}

#[test]
fn a_leader_adds_a_learner_at_once_and_one_change_at_a_time() {
    let mut n = leader_with_learners();
    let m0 = n.membership().clone();
    // Member 5 is linked but not listed: it is sent nothing.
    connect_all(&mut n, ms(150), &[5], 1);
    let out = propose(&mut n, 200, 1, &put("a"), Ack::Leader);
    assert!(appended(&out, 5).is_empty(), "{out:?}");

    let m1 = m0.with_learner(5);
    let out = propose(&mut n, 210, 2, &change(m1.clone()), Ack::Quorum);
    assert_eq!(n.membership(), &m1, "in force once in the log");
    assert!(
        sends(&out, 5, |m| matches!(m, Message::Append(_))),
        "the new learner is probed at once: {out:?}"
    );
    assert_eq!(appended(&out, 1), vec![vec![3]]);

    // A second change before the first commits: refused.
    let out = propose(&mut n, 211, 3, &change(m1.promoted(3)), Ack::Quorum);
    assert_eq!(refused(&out, 3), Some(ChangeError::InFlight));
    // Committed by a majority of the voters (entries 2 and 3): the next may go.
    let out = receive(&mut n, 220, 1, ack(3, 220));
    assert!(resolved(&out, 2), "{out:?}");
    // Not one change: two learners at once, or a stale view.
    let out = propose(
        &mut n,
        230,
        4,
        &change(m1.with_learner(6).with_learner(7)),
        Ack::Quorum,
    );
    assert_eq!(refused(&out, 4), Some(ChangeError::NotOneChange));
    let out = propose(&mut n, 231, 5, &change(m0.with_learner(6)), Ack::Quorum);
    assert_eq!(refused(&out, 5), Some(ChangeError::NotOneChange));
    // The leader is not removed or demoted: it hands over first.
    let out = propose(&mut n, 232, 6, &change(m1.without(0)), Ack::Quorum);
    assert_eq!(refused(&out, 6), Some(ChangeError::Leader));
    // A learner that does not hold the log is not promoted.
    let out = propose(&mut n, 233, 7, &change(m1.promoted(5)), Ack::Quorum);
    assert_eq!(refused(&out, 7), Some(ChangeError::NotCaughtUp));
    receive(&mut n, 240, 5, ack(3, 240));
    let out = propose(&mut n, 241, 8, &change(m1.promoted(5)), Ack::Quorum);
    assert_eq!(refused(&out, 8), None, "{out:?}");
    assert!(n.membership().is_voter(5));
}

#[test]
fn only_a_leader_that_committed_its_term_changes_the_membership() {
    let mut follower = following_1_in_term_2();
    let m = follower.membership().with_learner(5);
    let out = propose(&mut follower, 20, 1, &change(m), Ack::Quorum);
    assert_eq!(refused(&out, 1), Some(ChangeError::NotLeader));

    // Elected, its noop not yet committed.
    let mut n = node(0, 3);
    connect_all(&mut n, ms(0), &[1, 2], 0);
    n.step(ms(100), Input::Tick);
    let pre = Message::PreVoteReply {
        term: 1,
        granted: true,
    };
    receive(&mut n, 101, 1, pre);
    let vote = Message::VoteReply {
        term: 1,
        granted: true,
    };
    receive(&mut n, 102, 1, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
    let m = n.membership().with_learner(5);
    let out = propose(&mut n, 103, 1, &change(m.clone()), Ack::Quorum);
    assert_eq!(refused(&out, 1), Some(ChangeError::NotReady));
    receive(&mut n, 104, 1, ack(1, 104));
    let out = propose(&mut n, 105, 2, &change(m), Ack::Quorum);
    assert_eq!(refused(&out, 2), None, "{out:?}");
}

/// A leader of voters 0, 1, 2 and learners 3, 4 that removed learner 4
/// (entry 3, committed at 3330 ms). Long after its election (a lease after
/// it is past), every member answered; 4's lease counts from its reply at
/// 3300 ms.
fn leader_that_removed_4() -> Node {
    let mut n = leader_with_learners();
    for peer in [1, 2, 3, 4] {
        receive(&mut n, 2900, peer, ack(1, 2900));
    }
    propose(&mut n, 3290, 1, &put("a"), Ack::Leader);
    for peer in [1, 2, 3, 4] {
        receive(&mut n, 3300, peer, ack(2, 3300));
    }
    n.step(ms(3310), Input::Tick); // a heartbeat echoes their stamps
    let m = n.membership().without(4);
    let out = propose(&mut n, 3320, 2, &change(m), Ack::Quorum);
    assert!(appended(&out, 4).is_empty() && !appended(&out, 3).is_empty());
    receive(&mut n, 3330, 1, ack(3, 3330));
    assert_eq!(n.status().commit, 3);
    assert!(!n.status().peers.iter().any(|p| p.id == 4));
    n
}

#[test]
fn a_removed_member_is_sent_nothing_and_all_waits_out_its_lease() {
    let mut n = leader_that_removed_4();
    // An All write every member listed applies: it still waits for 4.
    let out = propose(&mut n, 3340, 3, &put("b"), Ack::All);
    assert!(!sends(&out, 4, |_| true), "{out:?}");
    for peer in [1, 2, 3] {
        receive(&mut n, 3350, peer, ack(4, 3350));
    }
    let out = n.step(ms(3400), Input::Tick);
    assert!(!resolved(&out, 3), "{out:?}");
    // Past 4's lease (a read lease from its reply at 3300 ms, plus the drift margin).
    let out = n.step(ms(3310) + T / 2 + T / 16 + ms(1), Input::Tick);
    assert!(resolved(&out, 3), "{out:?}");
}

#[test]
fn a_member_removed_again_keeps_the_lease_bound_of_its_first_removal() {
    let mut n = leader_that_removed_4();
    let m = n.membership().clone();
    // Added again, and removed again before it answered: the leader knows
    // of no lease of its second time, but the first may still run.
    propose(&mut n, 3331, 3, &change(m.with_learner(4)), Ack::Quorum);
    receive(&mut n, 3332, 1, ack(4, 3332));
    propose(&mut n, 3333, 4, &change(m.clone()), Ack::Quorum);
    receive(&mut n, 3334, 1, ack(5, 3334));
    assert_eq!((n.status().commit, n.membership()), (5, &m));

    let out = propose(&mut n, 3340, 5, &put("b"), Ack::All);
    assert!(!sends(&out, 4, |_| true), "{out:?}");
    for peer in [1, 2, 3] {
        receive(&mut n, 3350, peer, ack(6, 3350));
    }
    let out = n.step(ms(3400), Input::Tick);
    assert!(!resolved(&out, 5), "{out:?}");
    let out = n.step(ms(3310) + T / 2 + T / 16 + ms(1), Input::Tick);
    assert!(resolved(&out, 5), "{out:?}");
}

#[test]
fn a_truncated_membership_entry_no_longer_counts() {
    let mut n = following_1_in_term_2();
    let m0 = n.membership().clone();
    let m1 = m0.with_learner(5);
    let e = Entry {
        id: LogId::new(2, 2),
        op: change(m1.clone()),
        origin: Some(1),
        request: None,
    };
    receive(&mut n, 20, 1, append(2, LogId::new(2, 1), vec![e], 1));
    assert_eq!(n.membership(), &m1);
    // The leader of term 3 never had it: entry 2 is replaced.
    let other = entry(3, 2, &put("x"));
    receive(&mut n, 30, 2, append(3, LogId::new(2, 1), vec![other], 1));
    assert_eq!(n.membership(), &m0);
}

#[test]
fn a_change_that_would_leave_no_answering_majority_is_refused() {
    // Voters 0, 1, 2: member 1 answers the leader, member 2 is linked but
    // silent (gone).
    let mut n = leader_of_three();
    let m = n.membership().clone();
    // Demoting 1 leaves voters 0 and 2, of whom only the leader answers:
    // that change could never commit, and the cluster would stop.
    let out = propose(&mut n, 200, 1, &change(m.demoted(1)), Ack::Quorum);
    assert_eq!(refused(&out, 1), Some(ChangeError::NoMajority), "{out:?}");
    let out = propose(&mut n, 201, 2, &change(m.without(1)), Ack::Quorum);
    assert_eq!(refused(&out, 2), Some(ChangeError::NoMajority));
    // Removing the silent one leaves voters 0 and 1, both answering.
    let out = propose(&mut n, 202, 3, &change(m.without(2)), Ack::Quorum);
    assert_eq!(refused(&out, 3), None, "{out:?}");
    assert_eq!(n.membership(), &m.without(2));
}

/// Node 0 of 3 following member 1 in term 2, holding an entry (2, 2) that
/// demotes it which no one else got; its leader failed. Returns it and
/// the membership of that entry.
fn demoted_alone() -> (Node, Membership) {
    let mut n = following_1_in_term_2();
    let demoted = Membership::new([1, 2], [0]).expect("valid");
    let second = vec![entry(2, 2, &change(demoted.clone()))];
    receive(&mut n, 20, 1, append(2, LogId::new(2, 1), second, 1));
    assert!(!n.status().voter);
    (n, demoted)
}

/// `n` (see [`demoted_alone`]) stands in term 3 and is elected by 1 and 2.
fn elected_by_both(n: &mut Node) {
    n.step(ms(20_000), Input::Tick);
    let pre = Message::PreVoteReply {
        term: 3,
        granted: true,
    };
    receive(n, 20_001, 1, pre.clone());
    receive(n, 20_002, 2, pre);
    let vote = Message::VoteReply {
        term: 3,
        granted: true,
    };
    receive(n, 20_003, 1, vote.clone());
    receive(n, 20_004, 2, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
}

/// A follower's acknowledgement of entry (3, 3) at `at` ms.
fn acked_3(at: u64) -> Message {
    Message::AppendReply(AppendReply {
        term: 3,
        ..ack_reply(3, at)
    })
}

#[test]
fn a_voter_demoted_by_an_entry_not_committed_stands_counts_only_the_others_and_hands_over() {
    // Only 0 can be elected: no voter gives a shorter log its vote.
    let (mut n, demoted) = demoted_alone();
    let out = n.step(ms(20_000), Input::Tick);
    assert_eq!(n.status().role, NodeRole::PreCandidate, "{out:?}");
    // Its own vote counts for nothing: it needs both 1 and 2.
    let pre = Message::PreVoteReply {
        term: 3,
        granted: true,
    };
    receive(&mut n, 20_001, 2, pre.clone());
    assert_eq!(n.status().role, NodeRole::PreCandidate);
    receive(&mut n, 20_002, 1, pre);
    assert_eq!(n.status().role, NodeRole::Candidate);
    let vote = Message::VoteReply {
        term: 3,
        granted: true,
    };
    receive(&mut n, 20_003, 2, vote.clone());
    assert_eq!(n.status().role, NodeRole::Candidate);
    receive(&mut n, 20_004, 1, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
    // Leading, it counts itself in no majority either: 2's ack of its
    // first entry (3) commits nothing, 1's too does (and the demotion).
    receive(&mut n, 20_010, 2, acked_3(20_010));
    assert_eq!(n.status().commit, 1);
    receive(&mut n, 20_011, 1, acked_3(20_011));
    assert_eq!(n.status().commit, 3);
    // Then it hands leadership to a voter, and follows.
    let out = n.step(ms(20_100), Input::Tick);
    assert!(
        sends(&out, 1, |m| matches!(
            m,
            Message::TimeoutNow { term: 3, .. }
        )),
        "{out:?}"
    );
    assert_eq!(n.status().role, NodeRole::Follower);
    assert_eq!(n.membership(), &demoted);
}

#[test]
fn a_leader_that_is_no_voter_keeps_leading_only_while_both_voters_answer() {
    let (mut n, _) = demoted_alone();
    elected_by_both(&mut n);
    // Only 2 answers: an election timeout after it won, having heard from
    // one voter of two since (itself not counted), it steps down.
    receive(&mut n, 20_010, 2, acked_3(20_010));
    receive(&mut n, 22_000, 2, acked_3(22_000));
    n.step(ms(21_900), Input::Tick);
    assert_eq!(n.status().role, NodeRole::Leader);
    n.step(ms(22_100), Input::Tick);
    assert_eq!(n.status().role, NodeRole::Follower);
}
