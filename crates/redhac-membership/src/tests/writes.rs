//! Client writes: forwarding to the leader and resolving.

use super::*;

#[test]
fn a_forwarded_write_that_a_snapshot_covers_resolves_instead_of_going_again() {
    let mut n = following_1_in_term_2();
    let out = propose(&mut n, 11, 9, &put("w"), Ack::Quorum);
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
