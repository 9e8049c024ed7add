//! Learners: they follow and serve, but never stand, and their votes and
//! answers count in no majority; `All` writes and health `Good` include them.

use super::*;
use crate::types::Health;

/// Whether `out` sends `to` a message `pick` accepts.
pub(super) fn sends(out: &[Output], to: u32, pick: impl Fn(&Message) -> bool) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Send { to: t, msg } if *t == to && pick(msg)))
}

#[test]
fn a_learner_never_stands_even_with_no_leader() {
    let mut n = with_learners(3);
    let out = connect_all(&mut n, ms(0), &[0, 1, 2, 4], 0);
    assert!(out.contains(&Output::Health(Health::Good)), "{out:?}");
    for at in [100, 5_000, 20_000] {
        let out = n.step(ms(at), Input::Tick);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Send { .. })),
            "a learner asked for votes at {at} ms: {out:?}"
        );
        assert_eq!(n.status().role, NodeRole::Follower);
    }
    assert!(!n.status().voter);
}

#[test]
fn votes_are_granted_whatever_the_voters_own_membership_says() {
    // A learner in its own view (its membership may lag: it was promoted,
    // or restarted) answers like any member; the candidate counts only the
    // voters of its own membership.
    let mut learner = with_learners(3);
    connect_all(&mut learner, ms(0), &[0, 1, 2, 4], 0);
    let vote = Message::Vote {
        term: 5,
        last: LogId::new(4, 9),
        transfer: false,
        config: 0,
        cluster: 0,
    };
    let out = receive(&mut learner, 10, 0, vote);
    assert!(
        sends(&out, 0, |m| matches!(
            m,
            Message::VoteReply { granted: true, .. }
        )),
        "{out:?}"
    );
    assert_eq!(learner.status().role, NodeRole::Follower);
}

/// Node 0 of voters 0-2 and learners 3-4, elected by voter 1 (the
/// learners' grants would not count), its noop committed by voter 1.
pub(super) fn leader_with_learners() -> Node {
    let mut n = with_learners(0);
    let out = connect_all(&mut n, ms(0), &[1, 2, 3, 4], 0);
    assert!(out.contains(&Output::Health(Health::Good)), "{out:?}");
    let out = n.step(ms(100), Input::Tick);
    for peer in [1, 2] {
        assert!(sends(&out, peer, |m| matches!(m, Message::PreVote { .. })));
    }
    for learner in [3, 4] {
        assert!(
            !sends(&out, learner, |m| matches!(m, Message::PreVote { .. })),
            "asked learner {learner}: {out:?}"
        );
    }
    // Two learners "granting" is no majority, in the pre-vote or the vote;
    // voter 1 granting is.
    let pre = Message::PreVoteReply {
        term: 1,
        granted: true,
    };
    let vote = Message::VoteReply {
        term: 1,
        granted: true,
    };
    for (reply, at, before, then) in [
        (pre, 101, NodeRole::PreCandidate, NodeRole::Candidate),
        (vote, 103, NodeRole::Candidate, NodeRole::Leader),
    ] {
        for learner in [3, 4] {
            receive(&mut n, at, learner, reply.clone());
        }
        assert_eq!(n.status().role, before, "learners decided it");
        receive(&mut n, at + 1, 1, reply);
        assert_eq!(n.status().role, then);
    }
    receive(&mut n, 105, 1, ack(1, 105));
    assert_eq!(n.status().commit, 1);
    n
}

#[test]
fn learners_count_in_no_commit_and_are_sent_the_log() {
    let mut n = leader_with_learners();
    let out = propose(&mut n, 200, 1, &put("a"), Ack::Quorum);
    for peer in 1..5 {
        assert_eq!(appended(&out, peer), vec![vec![2]], "to {peer}: {out:?}");
    }
    // Both learners hold it: no commit, they are no majority.
    receive(&mut n, 201, 3, ack(2, 201));
    receive(&mut n, 202, 4, ack(2, 202));
    assert_eq!(n.status().commit, 1);
    // A voter holds it: committed.
    receive(&mut n, 203, 2, ack(2, 203));
    assert_eq!(n.status().commit, 2);
}

#[test]
fn check_quorum_hears_voters_only() {
    let mut n = leader_with_learners();
    // Only the learners answer for a whole election timeout.
    for at in (300..=2_400).step_by(300) {
        receive(&mut n, at, 3, ack(1, at));
        receive(&mut n, at, 4, ack(1, at));
        n.step(ms(at), Input::Tick);
    }
    assert_eq!(
        n.status().role,
        NodeRole::Follower,
        "learners kept it leading"
    );
}

#[test]
fn all_waits_for_a_learner() {
    let mut n = leader_with_learners();
    let out = propose(&mut n, 200, 1, &put("a"), Ack::All);
    assert_eq!(appended(&out, 3), vec![vec![2]]);
    for peer in [1, 2, 4] {
        receive(&mut n, 201, peer, ack(2, 201));
    }
    assert_eq!(n.status().commit, 2);
    let resolved = |out: &[Output]| {
        out.iter().any(|o| {
            matches!(
                o,
                Output::Resolve {
                    id: 1,
                    result: Ok(_)
                }
            )
        })
    };
    // Learner 3 has not applied it, and may hold a lease: not yet.
    let out = n.step(ms(300), Input::Tick);
    assert!(!resolved(&out), "{out:?}");
    let out = receive(&mut n, 301, 3, ack(2, 301));
    assert!(resolved(&out), "{out:?}");
}

#[test]
fn health_counts_voters_for_a_majority_and_everyone_for_good() {
    let mut n = with_learners(3);
    // Two learners and one voter: no majority of the voters.
    let out = connect_all(&mut n, ms(0), &[4, 0], 0);
    assert!(!out.contains(&Output::Health(Health::Degraded)), "{out:?}");
    assert_eq!(n.status().health, Health::Bad);
    let out = connect_all(&mut n, ms(1), &[1], 0);
    assert!(out.contains(&Output::Health(Health::Degraded)), "{out:?}");
    let out = connect_all(&mut n, ms(2), &[2], 0);
    assert!(out.contains(&Output::Health(Health::Good)), "{out:?}");
}

#[test]
fn a_leader_hands_over_to_a_voter_not_a_learner_ahead_of_it() {
    let mut n = leader_with_learners();
    propose(&mut n, 200, 1, &put("a"), Ack::Leader);
    // Learner 3 holds everything; voters 1 and 2 lag behind.
    receive(&mut n, 201, 3, ack(2, 201));
    let out = n.step(ms(300), Input::Shutdown);
    assert!(!sends(&out, 3, |m| matches!(m, Message::TimeoutNow { .. })));
    let out = receive(&mut n, 301, 1, ack(2, 301));
    assert!(
        sends(&out, 1, |m| matches!(m, Message::TimeoutNow { .. })),
        "{out:?}"
    );
}
