//! Pre-votes, votes, the guards that keep a cluster calm, and term floors.

use super::*;

#[test]
fn a_follower_refuses_a_pre_vote_while_its_leader_is_live() {
    let mut n = linked(1);
    receive(&mut n, 10, 1, append(1, LogId::default(), vec![], 0));
    let pre_vote = Message::PreVote {
        term: 2,
        last: LogId::new(1, 5),
        config: 0,
        cluster: 0,
        first: Vec::new(),
    };
    let out = receive(&mut n, 20, 2, pre_vote);
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
    let mut n = linked(0);
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
    let granted = Message::PreVoteReply {
        term: 1,
        granted: true,
    };
    let out = receive(&mut n, 101, 1, granted);
    assert!(out.contains(&Output::State {
        term: 1,
        role: NodeRole::Candidate,
        leader: None
    }));
    let vote = Message::VoteReply {
        term: 1,
        granted: true,
    };
    let out = receive(&mut n, 102, 2, vote);
    assert!(out.contains(&Output::State {
        term: 1,
        role: NodeRole::Leader,
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
        incarnation: 0,
        floor: 0,
    };
    n.step(ms(0), Input::Connected { peer: 1, hello });
    let vote = |term| Message::Vote {
        term,
        last: LogId::new(4, 9),
        transfer: false,
        config: 0,
        cluster: 0,
    };
    let refused = Output::Send {
        to: 1,
        msg: Message::VoteReply {
            term: 0,
            granted: false,
        },
    };
    assert_eq!(receive(&mut n, 10, 1, vote(5)), vec![refused]);
    let out = receive(&mut n, T.as_millis() as u64, 1, vote(5));
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

#[test]
fn a_member_never_votes_below_its_term_floor_and_says_so() {
    let mut n = floored(0, 1000);
    connect_all(&mut n, ms(0), &[1, 2], 4);
    let vote = Message::Vote {
        term: 5,
        last: LogId::new(4, 9),
        transfer: false,
        config: 0,
        cluster: 0,
    };
    let out = receive(&mut n, T.as_millis() as u64, 1, vote);
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
    // Its noop is committed with member 1's ack.
    let mut n = leader_of_three();
    // Member 2 restarted: its terms start at its floor, 5000.
    let refusal = Message::AppendReply(AppendReply {
        term: 5000,
        ok: false,
        last: 0,
        applied: 0,
        needs_snapshot: false,
        leaving: false,
        stamp: ms(102),
        own: ms(1),
        batch: true,
    });
    let out = receive(&mut n, 104, 2, refusal);
    let vote = Message::Vote {
        term: 5001,
        last: LogId::new(1, 1),
        transfer: true,
        config: 0,
        cluster: 0,
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
fn a_pre_vote_below_a_voters_floor_is_asked_again_at_once_at_that_floor() {
    // Members that start milliseconds apart have floors that far apart.
    let mut n = linked(0);
    let out = n.step(ms(100), Input::Tick);
    let asked = |out: &[Output]| -> Vec<u64> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    msg: Message::PreVote { term, .. },
                    ..
                } => Some(*term),
                _ => None,
            })
            .collect()
    };
    assert_eq!(asked(&out), vec![1, 1]);
    let refused = Message::PreVoteReply {
        term: 5_000,
        granted: false,
    };
    let out = receive(&mut n, 101, 1, refused);
    assert_eq!(asked(&out), vec![5_000, 5_000], "{out:?}");
    let granted = Message::PreVoteReply {
        term: 5_000,
        granted: true,
    };
    let out = receive(&mut n, 102, 1, granted);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: Message::Vote { term: 5_000, .. },
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn a_pre_vote_below_the_voters_term_is_told_where_to_stand() {
    // Following 1 in term 2: a pre-vote for term 2 is refused, and the
    // answer names term 3, above this voter's, so the candidate (its log
    // may be the longest) stands there next rather than below for ever.
    let mut n = following_1_in_term_2();
    let last = LogId::new(2, 1);
    // (asked term, answer): below or at its term, its term plus one; above
    // it, refused for another reason (its leader is live), the asked term.
    for (at, asked, answered) in [(20, 2, 3), (21, 3, 3)] {
        let ask = Message::PreVote {
            term: asked,
            last,
            config: 0,
            cluster: 0,
            first: Vec::new(),
        };
        let out = receive(&mut n, at, 2, ask);
        let reply = Message::PreVoteReply {
            term: answered,
            granted: false,
        };
        assert!(
            out.contains(&Output::Send { to: 2, msg: reply }),
            "{asked}: {out:?}"
        );
    }
}
