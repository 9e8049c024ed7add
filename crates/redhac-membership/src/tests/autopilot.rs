//! The autopilot: new members added as learners, a silent voter replaced
//! by a caught-up learner and removed later, one change at a time; members
//! no longer listed told they were removed, and leaving when told.

use super::learners::sends;
use super::*;
use crate::{Autopilot, WriteError};

/// Node 0 of 3, elected (member 1 answers, member 2 is linked and
/// silent), its autopilot keeping 3 voters, replacing after 3 s and
/// removing after 6 s.
fn piloted() -> Node {
    elected(Node::new(piloted_config(0), Duration::ZERO))
}

/// Member `me` of 3 in the dynamic mode: the autopilot keeps 3 voters,
/// replaces after 3 s, removes after 6 s; a voter shutting down waits 4 s
/// at most to be removed.
fn piloted_config(me: u32) -> NodeConfig {
    let mut c = NodeConfig::new(me, 3, Timing::new(T), 7);
    c.autopilot = Some(Autopilot {
        voters: 3,
        replace_after: ms(3000),
        remove_after: ms(6000),
        leave_timeout: ms(4000),
    });
    c
}

/// Node 0 of 3 in the dynamic mode, following member 1 in term 2 with
/// entry (2, 1) applied.
fn piloted_follower() -> Node {
    let mut n = Node::new(piloted_config(0), Duration::ZERO);
    connect_all(&mut n, ms(0), &[1, 2], 2);
    let first = vec![entry(2, 1, &put("a"))];
    receive(&mut n, 10, 1, append(2, LogId::default(), first, 1));
    n
}

/// A peer's hello reporting a log that ends at `last` (0: empty, a new
/// member).
fn hello(last: u64) -> PeerHello {
    PeerHello {
        term: 1,
        last: LogId::new(u64::from(last > 0), last),
        incarnation: 0,
        floor: 0,
    }
}

/// Links `peer`, whose log ends at `last`, at `at` ms.
fn link(n: &mut Node, at: u64, peer: u32, last: u64) -> Vec<Output> {
    let hello = hello(last);
    n.step(ms(at), Input::Connected { peer, hello })
}

fn tick(n: &mut Node, at: u64) -> Vec<Output> {
    n.step(ms(at), Input::Tick)
}

#[test]
fn the_autopilot_adds_a_new_member_then_replaces_a_silent_voter_with_it() {
    let mut n = piloted();
    let m0 = n.membership().clone();
    // A new member links (its log empty): added as a learner.
    link(&mut n, 200, 5, 0);
    tick(&mut n, 210);
    assert_eq!(n.membership(), &m0.with_learner(5));
    // One change at a time: nothing more before it commits.
    tick(&mut n, 215);
    assert_eq!(n.status().last.index, 2);
    receive(&mut n, 220, 1, ack(2, 220));
    receive(&mut n, 221, 5, ack(2, 221));
    assert_eq!(n.status().commit, 2);
    // Voter 2 stays silent; 1 and 5 answer. Before 3 s nothing changes.
    for at in [1500, 2900] {
        receive(&mut n, at, 1, ack(2, at));
        receive(&mut n, at + 1, 5, ack(2, at + 1));
        tick(&mut n, at + 2);
    }
    assert_eq!(n.membership(), &m0.with_learner(5));
    // Silent past 3 s: the caught-up learner is promoted in its place.
    tick(&mut n, 3200);
    let m1 = m0.with_learner(5).promoted(5);
    assert_eq!(n.membership(), &m1);
    for at in [3210, 4500, 6000] {
        receive(&mut n, at, 1, ack(3, at));
        receive(&mut n, at + 1, 5, ack(3, at + 1));
        tick(&mut n, at + 2);
    }
    assert_eq!(n.status().commit, 3);
    assert_eq!(n.membership(), &m1, "not removed before 6 s");
    // Silent past 6 s: removed.
    tick(&mut n, 6200);
    assert_eq!(n.membership(), &m1.without(2));
    assert_eq!(n.membership().voters().collect::<Vec<_>>(), [0, 1, 5]);
}

#[test]
fn a_leader_without_autopilot_changes_nothing_by_itself() {
    let mut n = leader_of_three();
    let m0 = n.membership().clone();
    link(&mut n, 200, 5, 0);
    for at in [1500, 2900, 4500, 6000] {
        receive(&mut n, at, 1, ack(1, at));
        tick(&mut n, at + 2);
    }
    tick(&mut n, 7000);
    assert_eq!(n.membership(), &m0);
}

#[test]
fn a_member_that_is_no_longer_listed_is_told_once_per_link() {
    let mut n = piloted();
    // Member 5 holds entries but is not listed: it was removed.
    link(&mut n, 200, 5, 7);
    let told = |out: &[Output]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        to: 5,
                        msg: Message::Removed { term: 1 }
                    }
                )
            })
            .count()
    };
    // Not while the leader holds no lease (its last echo is from its
    // election): a newer leader might have added it back.
    assert_eq!(told(&tick(&mut n, 205)), 0);
    receive(&mut n, 208, 1, ack(1, 208));
    assert_eq!(told(&tick(&mut n, 210)), 1);
    assert_eq!(told(&tick(&mut n, 220)), 0, "once per link");
    n.step(ms(230), Input::Disconnected { peer: 5 });
    link(&mut n, 240, 5, 7);
    receive(&mut n, 245, 1, ack(1, 245));
    assert_eq!(told(&tick(&mut n, 250)), 1, "again on a new link");
    // It was not added: it is no new member.
    assert!(!n.membership().contains(5));
}

#[test]
fn a_member_told_it_was_removed_leaves() {
    let mut n = following_1_in_term_2();
    let out = receive(&mut n, 20, 1, Message::Removed { term: 2 });
    assert!(out.contains(&Output::Removed), "{out:?}");
    assert!(!n.serving(ms(21)));
    let out = propose(&mut n, 22, 1, &put("a"), Ack::Quorum);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Resolve {
                id: 1,
                result: Err(WriteError::ShuttingDown)
            }
        )),
        "{out:?}"
    );
    let out = receive(&mut n, 23, 1, Message::Removed { term: 2 });
    assert!(!out.contains(&Output::Removed), "said once: {out:?}");
    // Not from an older leader, nor from another member than its leader
    // in its term; a leader of a newer term is believed (a removed member
    // is sent nothing else, so it may not know that term yet).
    for (from, term, believed) in [(1, 1, false), (2, 2, false), (2, 3, true)] {
        let mut m = following_1_in_term_2();
        let out = receive(&mut m, 20, from, Message::Removed { term });
        assert_eq!(
            out.contains(&Output::Removed),
            believed,
            "{from} {term}: {out:?}"
        );
    }
}

fn ready(out: &[Output]) -> bool {
    out.contains(&Output::ShutdownReady)
}

/// Member 2 asks for a vote in term 3 at `at` ms (the leader long silent).
fn asked_for_vote(n: &mut Node, at: u64) -> Vec<Output> {
    let vote = Message::Vote {
        term: 3,
        last: LogId::new(2, 1),
        transfer: false,
        config: 0,
        cluster: 0,
    };
    receive(n, at, 2, vote)
}

fn granted(out: &[Output]) -> bool {
    out.iter().any(|o| {
        matches!(
            o,
            Output::Send {
                to: 2,
                msg: Message::VoteReply { granted: true, .. }
            }
        )
    })
}

#[test]
fn a_listed_member_shutting_down_in_the_dynamic_mode_votes_until_it_is_removed() {
    // The static mode: ready at once, and no more votes.
    let mut s = following_1_in_term_2();
    assert!(ready(&s.step(ms(20), Input::Shutdown)));
    assert!(!granted(&asked_for_vote(&mut s, 10_000)));

    let mut n = piloted_follower();
    let out = n.step(ms(20), Input::Shutdown);
    assert!(!ready(&out), "{out:?}");
    assert!(sends(&out, 1, |m| matches!(m, Message::Leaving { .. })));
    // Every reply says it leaves (a new leader hears it too).
    let out = receive(&mut n, 30, 1, append(2, LogId::new(2, 1), Vec::new(), 1));
    assert!(sends(&out, 1, |m| matches!(
        m,
        Message::AppendReply(AppendReply { leaving: true, .. })
    )));
    assert!(!n.serving(ms(31)));
    // Still a voter: its vote may be what elects the next leader.
    assert!(granted(&asked_for_vote(&mut n, 3000)));
    // Removed by that leader: now it may stop, and answers nothing more.
    let out = receive(&mut n, 3010, 2, Message::Removed { term: 3 });
    assert!(ready(&out) && out.contains(&Output::Removed), "{out:?}");
    let out = receive(&mut n, 3020, 2, append(3, LogId::new(2, 1), Vec::new(), 1));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_member_shutting_down_leaves_after_the_leave_timeout_or_at_once_when_unlisted() {
    let mut n = piloted_follower();
    n.step(ms(20), Input::Shutdown);
    assert!(!ready(&tick(&mut n, 4019)));
    assert!(ready(&tick(&mut n, 4020)));
    // A new member no membership lists yet has nothing to wait for.
    let mut c = piloted_config(5);
    c.membership = Membership::voters_only(3);
    let mut new = Node::new(c, Duration::ZERO);
    assert!(ready(&new.step(ms(20), Input::Shutdown)));
}

#[test]
fn the_autopilot_removes_a_member_that_says_it_leaves_first() {
    let mut n = piloted();
    let m0 = n.membership().clone();
    receive(&mut n, 200, 2, ack(1, 200));
    let leaving = Message::AppendReply(AppendReply {
        leaving: true,
        ..ack_reply(1, 201)
    });
    receive(&mut n, 201, 1, leaving);
    tick(&mut n, 210);
    assert_eq!(n.membership(), &m0.without(1));
}

#[test]
fn a_removed_member_is_told_again_every_election_timeout() {
    let mut n = piloted();
    link(&mut n, 200, 5, 7);
    let told = |out: &[Output]| sends(out, 5, |m| matches!(m, Message::Removed { .. }));
    receive(&mut n, 208, 1, ack(1, 208));
    assert!(told(&tick(&mut n, 210)));
    receive(&mut n, 2100, 1, ack(1, 2100));
    assert!(!told(&tick(&mut n, 2105)), "not before T");
    receive(&mut n, 2208, 1, ack(1, 2208));
    assert!(
        told(&tick(&mut n, 2210)),
        "again: the word may have been lost"
    );
}

#[test]
fn a_member_waiting_to_be_removed_resets_links_that_bring_nothing() {
    let reset = |out: &[Output]| out.contains(&Output::ResetLink { peer: 2 });
    let mut n = piloted_follower();
    n.step(ms(20), Input::Shutdown);
    n.step(ms(30), Input::Disconnected { peer: 1 });
    // (Ticks a few hundred ms apart: a longer gap reads as a pause.)
    assert!(!reset(&tick(&mut n, 400)));
    assert!(!reset(&tick(&mut n, 800)));
    assert!(reset(&tick(&mut n, 1100)), "silent for T/2");
    // A follower with no leader that is not leaving owes nothing to wait for.
    let mut calm = piloted_follower();
    calm.step(ms(30), Input::Disconnected { peer: 1 });
    tick(&mut calm, 400);
    tick(&mut calm, 800);
    assert!(!reset(&tick(&mut calm, 1100)));
}

#[test]
fn forgets_the_members_that_came_and_went() {
    // Members not listed link and go, as every start in the dynamic mode
    // is a new member: what the node keeps per peer stays bounded.
    let mut n = piloted();
    for peer in 100..150 {
        link(&mut n, 10, peer, 0);
        n.step(ms(11), Input::Disconnected { peer });
    }
    tick(&mut n, 20);
    assert!(
        n.incarnations.len() <= 3,
        "{} incarnations kept",
        n.incarnations.len()
    );
    // The members listed and linked are kept.
    assert!(n.incarnations.contains_key(&1) && n.incarnations.contains_key(&2));
}
