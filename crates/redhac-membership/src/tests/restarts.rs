//! Restarts and shutdowns: a restarted member follows the live leader at
//! once and counts in no majority until the others confirm the leader; a
//! member that stops tells the leader it serves no more reads.

use super::*;

/// `peer`'s link drops at `at` ms and comes back a millisecond later with
/// `hello` (a new incarnation, for a restart).
fn relink(n: &mut Node, at: u64, peer: u32, hello: PeerHello) {
    n.step(ms(at), Input::Disconnected { peer });
    n.step(ms(at + 1), Input::Connected { peer, hello });
}

/// Member 2 of [`leader_of_three`] comes back at `at` ms as `incarnation`
/// (0 is the one it had), reporting the leader's term and log.
fn relink_2(n: &mut Node, at: u64, incarnation: u64) {
    let hello = PeerHello {
        term: 1,
        last: LogId::new(1, 1),
        incarnation,
        floor: 0,
    };
    relink(n, at, 2, hello);
}

/// Whether `out` resolves write `id`.
fn resolves(out: &[Output], id: u64) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Resolve { id: i, result: Ok(_) } if *i == id))
}

#[test]
fn a_restarted_member_counts_in_no_majority_until_the_others_confirm_the_leader() {
    let mut n = leader_of_three();
    relink_2(&mut n, 200, 9);
    propose(&mut n, 210, 7, &put("x"), Ack::Quorum);
    // Member 2 holds entry 2: with the leader, a majority, but it may have
    // voted in a newer term before its restart and forgotten it.
    receive(&mut n, 220, 2, ack(2, 220));
    assert_eq!(n.status().commit, 1, "a restarted member counted at once");
    // Member 1 echoes a stamp sent after member 2 came back: no newer term
    // had a majority then, so member 2 counts from now on.
    let confirm = AppendReply {
        stamp: ms(215),
        ..ack_reply(1, 230)
    };
    receive(&mut n, 230, 1, Message::AppendReply(confirm));
    assert_eq!(n.status().commit, 2);
}

#[test]
fn a_restarted_member_gets_no_lease_until_it_counts() {
    let mut n = leader_of_three();
    // Member 1 echoes a stamp of 195 ms: the leader holds a lease (and
    // grants them) past the moment member 2 comes back.
    let fresh = AppendReply {
        stamp: ms(195),
        ..ack_reply(1, 199)
    };
    receive(&mut n, 199, 1, Message::AppendReply(fresh));
    relink_2(&mut n, 200, 9);
    let leases = |out: &[Output]| -> Vec<bool> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    to: 2,
                    msg: Message::Append(a),
                } => Some(a.lease),
                _ => None,
            })
            .collect()
    };
    // It answers, echoing the leader's stamps: it would get a lease, but
    // it may have voted in a newer term it forgot, so it serves nothing yet
    // (and a rollout waiting for it to be ready waits for its confirmation).
    let mut out = receive(&mut n, 210, 2, ack(1, 210));
    out.extend(n.step(ms(300), Input::Tick));
    assert!(
        !leases(&out).is_empty() && leases(&out).iter().all(|l| !l),
        "{out:?}"
    );
    let confirm = AppendReply {
        stamp: ms(215),
        ..ack_reply(1, 310)
    };
    receive(&mut n, 310, 1, Message::AppendReply(confirm));
    receive(&mut n, 311, 2, ack(1, 311));
    // Within the leader's own lease (from the stamps echoed at 310).
    let out = n.step(ms(350), Input::Tick);
    assert!(
        leases(&out).contains(&true),
        "confirmed, it is leased: {out:?}"
    );
}

/// The broken rule: a leader that counts a restarted member at once lets
/// it make a majority the moment it holds an entry, though before its
/// restart it may have voted for a newer leader it forgot.
#[cfg(feature = "faults")]
#[test]
fn a_leader_counting_a_restarted_member_at_once_commits_with_it_alone() {
    let mut n = elected({
        let mut c = NodeConfig::new(0, 3, Timing::new(T), 7);
        c.faults.count_restarted = true;
        Node::new(c, Duration::ZERO)
    });
    relink_2(&mut n, 200, 9);
    propose(&mut n, 210, 7, &put("x"), Ack::Quorum);
    receive(&mut n, 220, 2, ack(2, 220));
    assert_eq!(n.status().commit, 2);
}

#[test]
fn the_same_incarnation_relinking_counts_at_once() {
    let mut n = leader_of_three();
    relink_2(&mut n, 200, 0);
    propose(&mut n, 210, 7, &put("x"), Ack::Quorum);
    receive(&mut n, 220, 2, ack(2, 220));
    assert_eq!(n.status().commit, 2);
}

#[test]
fn a_restarted_member_follows_an_older_term_without_an_election_but_never_votes_in_it() {
    // Its floor is far above the live leader's term 2.
    let mut n = floored(0, 1 << 40);
    connect_all(&mut n, ms(0), &[1, 2], 2);
    let out = receive(
        &mut n,
        10,
        1,
        append(2, LogId::default(), vec![entry(2, 1, &put("a"))], 1),
    );
    assert!(out.contains(&reply(2, true, 1, 1, ms(10))), "{out:?}");
    let s = n.status();
    assert_eq!((s.term, s.role, s.leader), (2, NodeRole::Follower, Some(1)));
    // A vote in a term below its floor is refused, whatever the guards.
    let out = receive(
        &mut n,
        5_000,
        2,
        Message::Vote {
            term: 3,
            last: LogId::new(2, 1),
            transfer: true,
            config: 0,
            cluster: 0,
        },
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 2,
                msg: Message::VoteReply { granted: false, .. }
            }
        )),
        "{out:?}"
    );
}

/// [`leader_of_three`] whose member 2 answers at 1,690 ms: the leader, which
/// holds its lease, echoes that answer at once and so grants member 2 a
/// lease until about 2,690 ms.
fn member_2_leased() -> Node {
    let mut n = leader_of_three();
    receive(&mut n, 1_690, 2, ack(1, 1_690));
    n
}

/// An `All` write (id 7, entry 2) proposed at 1,700 ms, which member 1
/// applies at 1,710 ms: the outputs of that answer.
fn all_write_applied_by_1(n: &mut Node) -> Vec<Output> {
    propose(n, 1_700, 7, &put("x"), Ack::All);
    receive(n, 1_710, 1, ack(2, 1_710))
}

#[test]
fn an_all_write_waits_for_a_members_lease_but_not_for_one_that_restarted_or_left() {
    // Member 2 is linked, or its link dropped: its lease may still run.
    let mut n = member_2_leased();
    assert!(!resolves(&all_write_applied_by_1(&mut n), 7));
    let mut n = member_2_leased();
    relink_2(&mut n, 1_692, 0);
    assert!(!resolves(&all_write_applied_by_1(&mut n), 7));

    // It restarted: its old lease ended with its process.
    let mut n = member_2_leased();
    relink_2(&mut n, 1_692, 9);
    assert!(resolves(&all_write_applied_by_1(&mut n), 7));

    // It said it is leaving: it serves no more reads.
    let mut n = member_2_leased();
    all_write_applied_by_1(&mut n);
    let out = receive(&mut n, 1_720, 2, Message::Leaving { term: 1 });
    assert!(resolves(&out, 7), "{out:?}");
}

#[test]
fn a_member_that_answers_but_was_granted_no_lease_holds_none() {
    // Member 2 answers an old append (stamped at 1 ms), so the leader holds
    // no lease and no append granting one echoes the answer: member 2
    // cannot be serving (it might be catching up by a snapshot).
    let mut n = leader_of_three();
    let late = AppendReply {
        stamp: ms(1),
        ..ack_reply(1, 1_500)
    };
    receive(&mut n, 1_500, 2, Message::AppendReply(late));
    let out = all_write_applied_by_1(&mut n);
    assert!(resolves(&out, 7), "{out:?}");
}

#[test]
fn a_follower_shutting_down_stops_serving_and_tells_its_leader() {
    let mut n = following_1_in_term_2();
    let out = n.step(ms(20), Input::Shutdown);
    assert!(
        out.contains(&Output::Send {
            to: 1,
            msg: Message::Leaving { term: 2 }
        }),
        "{out:?}"
    );
    assert!(out.contains(&Output::ShutdownReady));
    assert_eq!(n.status().serving_until, None);
}

/// A reply of member `from`'s in term 3 accepting everything up to `last`.
fn acked_in_3(last: u64, at: u64) -> Message {
    Message::AppendReply(AppendReply {
        term: 3,
        ..ack_reply(last, at)
    })
}

/// [`following_1_in_term_2`] told by member 1 to stand (its handover as it
/// shuts down) at 500 ms; `meanwhile` runs before member 2's vote makes it
/// leader of term 3, which member 2 then acknowledges. Returns the outputs
/// of an `All` write (id 7, entry 3) member 2 applied.
fn all_write_after_handover(meanwhile: impl FnOnce(&mut Node)) -> Vec<Output> {
    all_write_after(false, meanwhile)
}

/// [`all_write_after_handover`], member 1 staying a member when `stays`
/// (its step-down).
fn all_write_after(stays: bool, meanwhile: impl FnOnce(&mut Node)) -> Vec<Output> {
    let mut n = following_1_in_term_2();
    receive(&mut n, 500, 1, Message::TimeoutNow { term: 2, stays });
    meanwhile(&mut n);
    let vote = Message::VoteReply {
        term: 3,
        granted: true,
    };
    receive(&mut n, 504, 2, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
    receive(&mut n, 510, 2, acked_in_3(2, 510));
    receive(&mut n, 520, 1, acked_in_3(2, 520));
    propose(&mut n, 600, 7, &put("x"), Ack::All);
    receive(&mut n, 610, 2, acked_in_3(3, 610))
}

#[test]
fn a_leader_handed_over_to_does_not_wait_for_the_old_leaders_lease() {
    // Member 1 handed over: it serves nothing, so member 2 applying is enough.
    let out = all_write_after_handover(|_| {});
    assert!(resolves(&out, 7), "{out:?}");
}

#[test]
fn a_leader_stepped_down_to_waits_for_the_old_leaders_lease() {
    // Member 1 stepped down and follows on: this leader's appends may renew
    // its lease, so an `All` write waits until it applied, or until its
    // lease is over.
    let out = all_write_after(true, |_| {});
    assert!(!resolves(&out, 7), "{out:?}");
}

#[test]
fn a_leader_that_steps_down_hands_over_and_follows_on() {
    // Member 1 holds everything, but started too recently to vote (its
    // guard, longer here than the defaults, runs from its start, at most
    // when this leader first saw it, at 0): told now, it would refuse, and
    // the cluster would wait for an ordinary election.
    let mut n = leader_of_three();
    n.timing.vote_guard = ms(250);
    let out = n.step(ms(110), Input::StepDown);
    let told = |m: &Message| {
        matches!(
            m,
            Message::TimeoutNow {
                term: 1,
                stays: true
            }
        )
    };
    assert!(!super::learners::sends(&out, 1, told), "{out:?}");
    assert_eq!(n.status().serving_until, None, "handing over");
    // Once its guard is over, it is told to stand.
    let out = n.step(ms(300), Input::Tick);
    assert!(super::learners::sends(&out, 1, told), "{out:?}");
    // It stays: no goodbye, no stop, and no lease of its own meanwhile.
    let leaving = |m: &Message| matches!(m, Message::Leaving { .. });
    assert!(!super::learners::sends(&out, 2, leaving), "{out:?}");
    assert!(!out.contains(&Output::ShutdownReady), "{out:?}");
    assert_eq!(n.status().role, NodeRole::Follower);
    assert_eq!(n.status().serving_until, None);
    // The new leader's append, granting a lease: it follows and serves.
    let granting = Message::Append(Append {
        term: 2,
        prev: LogId::new(1, 1),
        entries: Vec::new(),
        commit: 1,
        stamp: ms(400),
        echo: Some(ms(390)),
        lease: true,
    });
    receive(&mut n, 400, 1, granting);
    let s = n.status();
    assert_eq!((s.role, s.term, s.leader), (NodeRole::Follower, 2, Some(1)));
    assert!(s.serving_until.is_some_and(|u| u > ms(400)), "{s:?}");
}

#[test]
fn a_step_down_no_voter_catches_up_for_is_given_up_and_the_leader_leads_on() {
    let mut n = leader_of_three();
    propose(&mut n, 300, 7, &put("x"), Ack::Quorum);
    let out = n.step(ms(301), Input::StepDown);
    let told = |m: &Message| matches!(m, Message::TimeoutNow { .. });
    assert!(!super::learners::sends(&out, 1, told), "{out:?}");
    // Handing over: no lease, no new writes.
    assert_eq!(n.status().serving_until, None);
    let out = propose(&mut n, 302, 8, &put("y"), Ack::Quorum);
    assert!(
        !resolves(&out, 8) && appended(&out, 1).is_empty(),
        "{out:?}"
    );
    // Member 1 answers heartbeats but never gets entry 2.
    let mut at = 400;
    let mut sent = Vec::new();
    while at < 300 + T.as_millis() as u64 + 100 {
        receive(&mut n, at, 1, ack(1, at));
        let out = n.step(ms(at + 1), Input::Tick);
        sent.extend(appended(&out, 1).concat());
        at += 100;
    }
    assert_eq!(n.status().role, NodeRole::Leader);
    assert!(n.status().serving_until.is_some(), "{:?}", n.status());
    // It took the write it held back once it gave up: entry 3 went out.
    assert!(sent.contains(&3), "{sent:?}");
}

#[test]
fn a_leader_handed_over_to_skips_the_old_leaders_lease_even_once_it_is_gone() {
    // Member 1 stops right after its handover: its link closes before this
    // node's election ends (seen in-process: an All write then waited a
    // whole lease for a member that serves nothing).
    let out = all_write_after_handover(|n| {
        n.step(ms(502), Input::Disconnected { peer: 1 });
    });
    assert!(resolves(&out, 7), "{out:?}");
}

#[test]
fn a_handover_says_nothing_of_the_old_leaders_next_incarnation() {
    // Member 1 restarts before this node's election ends: the new process
    // may hold a lease by the time this node leads.
    let out = all_write_after_handover(|n| {
        let hello = PeerHello {
            term: 2,
            last: LogId::new(2, 1),
            incarnation: 9,
            floor: 0,
        };
        relink(n, 502, 1, hello);
    });
    assert!(!resolves(&out, 7), "member 1's new lease ignored: {out:?}");
}

#[test]
fn a_node_that_shuts_down_mid_pre_vote_stands_for_nothing() {
    let mut n = linked(0);
    n.step(ms(5_000), Input::Tick);
    assert_eq!(n.status().role, NodeRole::PreCandidate);
    n.step(ms(5_001), Input::Shutdown);
    let granted = Message::PreVoteReply {
        term: 1,
        granted: true,
    };
    let out = receive(&mut n, 5_002, 1, granted);
    assert_eq!(n.status().role, NodeRole::Follower);
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: Message::Vote { .. },
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn a_write_refused_by_a_leader_handing_over_goes_to_the_next_leader_at_once() {
    let mut n = following_1_in_term_2();
    let out = propose(&mut n, 500, 7, &put("x"), Ack::Quorum);
    let forwarded = |out: &[Output], to: u32| {
        out.iter().any(|o| {
            matches!(o, Output::Send { to: t, msg: Message::Forward { id: 7, .. } } if *t == to)
        })
    };
    assert!(forwarded(&out, 1), "{out:?}");
    // Member 1 is handing over: it refuses, and member 2 leads term 3 a
    // millisecond later, well before a heartbeat passed.
    receive(&mut n, 501, 1, Message::Refused { id: 7 });
    let out = receive(&mut n, 502, 2, append(3, LogId::new(2, 1), vec![], 1));
    assert!(forwarded(&out, 2), "{out:?}");

    // Refused by a leader that stays: sent to it again after a heartbeat.
    let mut n = following_1_in_term_2();
    propose(&mut n, 500, 7, &put("x"), Ack::Quorum);
    receive(&mut n, 501, 1, Message::Refused { id: 7 });
    let heartbeat = n.timing.heartbeat;
    let out = n.step(ms(502), Input::Tick);
    assert!(!forwarded(&out, 1), "not at once: {out:?}");
    let out = n.step(ms(501) + heartbeat, Input::Tick);
    assert!(forwarded(&out, 1), "{out:?}");
}

#[test]
fn a_handover_stands_above_the_floor_of_a_member_restarted_since_the_term_began() {
    let mut n = following_1_in_term_2();
    // Member 2 restarted: a new incarnation whose floor is far above term 2.
    let hello = PeerHello {
        term: 0,
        last: LogId::new(2, 1),
        incarnation: 9,
        floor: 1_000,
    };
    relink(&mut n, 400, 2, hello);
    let out = receive(
        &mut n,
        500,
        1,
        Message::TimeoutNow {
            term: 2,
            stays: false,
        },
    );
    let asked: Vec<(u32, u64, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: Message::Vote { term, transfer, .. },
            } => Some((*to, *term, *transfer)),
            _ => None,
        })
        .collect();
    assert!(
        asked.contains(&(2, 1_000, true)),
        "at member 2's floor, as the handover: {out:?}"
    );
    // Member 2 grants it: the handover completes, and skips member 1's lease.
    let vote = Message::VoteReply {
        term: 1_000,
        granted: true,
    };
    receive(&mut n, 504, 2, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
    let acked = |last, at| {
        Message::AppendReply(AppendReply {
            term: 1_000,
            ..ack_reply(last, at)
        })
    };
    receive(&mut n, 510, 2, acked(2, 510));
    propose(&mut n, 600, 7, &put("x"), Ack::All);
    let out = receive(&mut n, 610, 2, acked(3, 610));
    assert!(resolves(&out, 7), "{out:?}");
}
