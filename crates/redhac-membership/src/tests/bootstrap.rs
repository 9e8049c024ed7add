//! The dynamic mode's bootstrap: choosing the first membership, cluster ids
//! in votes, the unanimous first election and the lock it takes.

use super::learners::sends;
use super::*;

/// Member `me` in no cluster, waiting for 3 to bootstrap; discovery lists
/// `discovered` other members.
fn unformed(me: u32, discovered: usize) -> Node {
    let mut c = NodeConfig::new(me, 1, Timing::new(T), 7);
    c.bootstrap_expect = Some(3);
    let mut n = Node::new(c, Duration::ZERO);
    n.step(ms(0), Input::Discovered { peers: discovered });
    n
}

/// Links `peer`, whose log ends at `last` (0: in no cluster yet).
fn link(n: &mut Node, at: u64, peer: u32, last: u64) {
    let hello = PeerHello {
        term: 0,
        last: LogId::new(u64::from(last > 0), last),
        incarnation: 0,
        floor: 0,
    };
    n.step(ms(at), Input::Connected { peer, hello });
}

/// A vote asked in a first election (the candidate's log empty) of
/// `cluster`, term 1.
fn first_vote(cluster: u64) -> Message {
    Message::Vote {
        term: 1,
        last: LogId::default(),
        transfer: false,
        config: 0,
        cluster,
    }
}

/// `me` linked to 2, 7 and 9 (all in no cluster), past the settle time:
/// it chose the 3 smallest of 2, 7, 9 and itself.
fn chosen(me: u32) -> Node {
    let mut n = unformed(me, 3);
    for peer in [2, 7, 9] {
        link(&mut n, 10, peer, 0);
    }
    n.step(ms(400), Input::Tick);
    n
}

#[test]
fn a_member_chooses_the_smallest_ids_once_linked_to_every_member_discovered() {
    let mut n = unformed(5, 3);
    assert!(n.membership().is_empty());
    assert_eq!(n.status().health, Health::Bad);
    link(&mut n, 10, 2, 0);
    link(&mut n, 10, 7, 0);
    n.step(ms(400), Input::Tick);
    assert!(n.membership().is_empty(), "3 discovered, 2 linked");
    link(&mut n, 410, 9, 0);
    n.step(ms(420), Input::Tick);
    assert!(n.membership().is_empty(), "its view has not settled yet");
    n.step(ms(700), Input::Tick);
    let first = Membership::bootstrap([2, 5, 7]).expect("valid");
    assert_eq!(n.membership(), &first);
    assert_ne!(first.cluster(), 0);
    assert!(n.status().voter);
    // Outside its choice, a member waits to be added.
    let outside = chosen(9);
    assert!(outside.membership().is_empty());
}

#[test]
fn a_member_linked_to_one_in_a_cluster_chooses_nothing() {
    let mut n = unformed(5, 3);
    link(&mut n, 10, 2, 0);
    link(&mut n, 10, 7, 4);
    link(&mut n, 10, 9, 0);
    n.step(ms(700), Input::Tick);
    assert!(n.membership().is_empty());
}

#[test]
fn a_member_votes_only_for_a_candidate_of_its_own_cluster() {
    let ask = |cluster| Message::PreVote {
        term: 1,
        last: LogId::default(),
        config: 0,
        cluster,
        first: Vec::new(),
    };
    let granted = |out: &[Output]| {
        sends(out, 2, |m| {
            matches!(m, Message::PreVoteReply { granted: true, .. })
        })
    };
    let mut n = chosen(5);
    let own = n.membership().cluster();
    assert!(!granted(&receive(&mut n, 500, 2, ask(own ^ 1))));
    assert!(granted(&receive(&mut n, 501, 2, ask(own))));
    // In no cluster yet, it votes for no one.
    let mut none = unformed(5, 0);
    link(&mut none, 10, 2, 0);
    assert!(!granted(&receive(&mut none, 20, 2, ask(own))));
}

#[test]
fn a_first_election_needs_every_voter_and_its_first_entry_is_the_membership() {
    let mut n = chosen(5);
    let first = n.membership().clone();
    let out = n.step(ms(500), Input::Tick);
    assert_eq!(n.status().role, NodeRole::PreCandidate, "{out:?}");
    let pre = Message::PreVoteReply {
        term: 1,
        granted: true,
    };
    receive(&mut n, 501, 2, pre.clone());
    assert_eq!(n.status().role, NodeRole::PreCandidate, "2 of 3 is not all");
    receive(&mut n, 502, 7, pre);
    assert_eq!(n.status().role, NodeRole::Candidate);
    let vote = Message::VoteReply {
        term: 1,
        granted: true,
    };
    receive(&mut n, 503, 2, vote.clone());
    assert_eq!(n.status().role, NodeRole::Candidate, "2 of 3 is not all");
    receive(&mut n, 504, 7, vote);
    assert_eq!(n.status().role, NodeRole::Leader);
    let entry = n.entry(1).expect("its first entry");
    assert!(matches!(&*entry.op, Op::Membership(m) if *m == first));
}

#[test]
fn a_member_that_voted_in_a_first_election_never_chooses_again() {
    let mut n = chosen(5);
    let first = n.membership().clone();
    let vote = first_vote(first.cluster());
    receive(&mut n, 500, 2, vote);
    // A member with a smaller id appears: its view would choose 1, 2, 5.
    n.step(ms(510), Input::Discovered { peers: 4 });
    link(&mut n, 510, 1, 0);
    n.step(ms(900), Input::Tick);
    assert_eq!(n.membership(), &first);
    // Without that vote it would have.
    let mut free = chosen(5);
    free.step(ms(510), Input::Discovered { peers: 4 });
    link(&mut free, 510, 1, 0);
    free.step(ms(900), Input::Tick);
    assert_eq!(
        free.membership(),
        &Membership::bootstrap([1, 2, 5]).expect("valid")
    );
}

#[test]
fn a_member_not_locked_adopts_the_final_choice_a_candidate_names() {
    let named = Membership::bootstrap([2, 5, 9]).expect("valid");
    let ask = |first: Vec<u32>| Message::PreVote {
        term: 1,
        last: LogId::default(),
        config: 0,
        cluster: Membership::bootstrap(first.iter().copied())
            .expect("valid")
            .cluster(),
        first,
    };
    let mut n = chosen(5);
    let own = n.membership().clone();
    // Not among the voters named: nothing changes.
    receive(&mut n, 460, 2, ask(vec![2, 7, 9]));
    assert_eq!(n.membership(), &own);
    let out = receive(&mut n, 470, 2, ask(vec![2, 5, 9]));
    assert_eq!(n.membership(), &named);
    assert!(
        sends(&out, 2, |m| matches!(
            m,
            Message::PreVoteReply { granted: true, .. }
        )),
        "{out:?}"
    );
    // Kept while its view stays as it was.
    n.step(ms(900), Input::Tick);
    assert_eq!(n.membership(), &named);
    // A member whose choice is final keeps it.
    let mut locked = chosen(5);
    let vote = first_vote(own.cluster());
    receive(&mut locked, 440, 7, vote);
    receive(&mut locked, 470, 2, ask(vec![2, 5, 9]));
    assert_eq!(locked.membership(), &own);
}

#[test]
fn a_locked_candidate_names_its_choice_in_its_pre_votes() {
    let mut n = chosen(5);
    let first = n.membership().clone();
    let vote = first_vote(first.cluster());
    receive(&mut n, 450, 2, vote);
    let out = n.step(ms(10_000), Input::Tick);
    assert!(
        sends(&out, 7, |m| matches!(
            m,
            Message::PreVote { first, .. } if *first == vec![2, 5, 7]
        )),
        "{out:?}"
    );
    // Not locked: names nothing.
    let mut free = chosen(5);
    let out = free.step(ms(500), Input::Tick);
    assert!(
        sends(&out, 7, |m| matches!(
            m,
            Message::PreVote { first, .. } if first.is_empty()
        )),
        "{out:?}"
    );
}
