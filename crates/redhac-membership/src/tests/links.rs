//! Health by links: losing the majority.

use super::*;
use crate::types::{Health, WriteError};

#[test]
fn losing_the_majority_clears_the_caches_and_refuses_writes() {
    let mut n = linked(1);
    assert_eq!(
        n.step(ms(1), Input::Disconnected { peer: 1 }),
        vec![Output::Health(Health::Degraded)]
    );
    assert_eq!(
        n.step(ms(2), Input::Disconnected { peer: 2 }),
        vec![Output::Health(Health::Bad), Output::InvalidateAll]
    );
    let out = propose(&mut n, 3, 9, &put("k"), Ack::Quorum);
    assert_eq!(
        out,
        vec![Output::Resolve {
            id: 9,
            result: Err(WriteError::NoQuorum)
        }]
    );
}

/// Ticks `n` every 10 ms from `from` to `to` ms, `each` answering for the
/// peers before every tick; the peers whose links it reset, and when.
fn resets_while_ticking(
    n: &mut Node,
    from: u64,
    to: u64,
    mut each: impl FnMut(&mut Node, u64),
) -> Vec<(u32, u64)> {
    let mut resets = Vec::new();
    for at in (from..=to).step_by(10) {
        each(n, at);
        for o in n.step(ms(at), Input::Tick) {
            if let Output::ResetLink { peer } = o {
                resets.push((peer, at));
            }
        }
    }
    resets
}

#[test]
fn a_leader_resets_the_link_of_a_follower_that_stops_answering() {
    // Member 2 never answered anything since the election; member 1 answers
    // every heartbeat.
    let mut n = leader_of_three();
    let silent = Timing::new(T).silent_link.as_millis() as u64;
    let resets = resets_while_ticking(&mut n, 110, 110 + silent, |n, at| {
        receive(n, at, 1, ack(1, at));
    });
    assert_eq!(resets.len(), 1, "{resets:?}");
    let (peer, at) = resets[0];
    assert_eq!(peer, 2);
    // Counted from the pre-vote it never answered either, at 100 ms.
    assert!((100 + silent..=110 + silent).contains(&at), "{at}");
    let s = n.status();
    assert!(!s.peers[1].connected && s.peers[1].silent_resets == 1);
    assert!(s.peers[0].connected && s.peers[0].silent_resets == 0);
}

#[test]
fn a_follower_resets_its_link_to_a_leader_it_stops_hearing_and_no_other() {
    // Heard its leader (member 1) at 10 ms; member 2, a follower, sends
    // nothing and is owed nothing.
    let mut n = following_1_in_term_2();
    let silent = Timing::new(T).silent_link.as_millis() as u64;
    let resets = resets_while_ticking(&mut n, 20, 20 + silent + 50, |_, _| {});
    assert_eq!(resets.len(), 1, "{resets:?}");
    let (peer, at) = resets[0];
    assert_eq!(peer, 1);
    assert!((10 + silent..=20 + silent).contains(&at), "{at}");
    assert_eq!(n.status().leader, None);
}

#[test]
fn silence_counts_from_the_end_of_a_pause() {
    // Stepped again only long after (a pause): the leader's silence then
    // says nothing of the link yet.
    let mut n = following_1_in_term_2();
    let silent = Timing::new(T).silent_link.as_millis() as u64;
    // (Within the election timeout, which would start an election.)
    let resumed = 10 + silent * 3 / 4;
    let resets = resets_while_ticking(&mut n, resumed, resumed + silent - 20, |_, _| {});
    assert!(resets.is_empty(), "{resets:?}");
    let resets = resets_while_ticking(
        &mut n,
        resumed + silent - 10,
        resumed + silent + 10,
        |_, _| {},
    );
    assert_eq!(resets.len(), 1, "{resets:?}");
}

#[test]
fn a_leader_that_loses_its_majority_while_handing_over_still_lets_its_runtime_stop() {
    let mut n = leader_of_three();
    // An entry member 1 has not acknowledged: the handover waits for it.
    propose(&mut n, 104, 1, &put("k"), Ack::Quorum);
    let out = n.step(ms(105), Input::Shutdown);
    assert!(!out.contains(&Output::ShutdownReady), "{out:?}");
    n.step(ms(106), Input::Disconnected { peer: 1 });
    let out = n.step(ms(107), Input::Disconnected { peer: 2 });
    assert_eq!(n.status().role, NodeRole::Follower);
    assert!(out.contains(&Output::ShutdownReady), "{out:?}");
    // Once.
    let out = n.step(ms(108), Input::Tick);
    assert!(!out.contains(&Output::ShutdownReady), "{out:?}");
}
