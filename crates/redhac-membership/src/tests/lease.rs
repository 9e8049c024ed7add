//! The read lease: renewed only after a whole snapshot and past its end.

use super::*;

#[test]
fn a_follower_installs_a_snapshot_in_chunks_and_serves_only_after_a_renewal() {
    let mut n = following_1_in_term_2();
    // A lease from its leader first.
    let renew = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 1),
        entries: Vec::new(),
        commit: 1,
        stamp: ms(11),
        echo: Some(ms(10)),
        lease: true,
    });
    receive(&mut n, 12, 1, renew.clone());
    assert!(n.serving(ms(13)));
    let last = LogId::new(2, 5);
    let out = receive(&mut n, 20, 1, chunk(2, last, 0, None));
    assert!(!n.serving(ms(21)), "the lease goes at the first chunk");
    // Installed, answered (still asking for a snapshot: the stream is not
    // done), and the gate closed.
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::InstallChunk {
                    first: true,
                    done: false,
                    ..
                },
                Output::Send {
                    to: 1,
                    msg: Message::AppendReply(AppendReply {
                        ok: false,
                        needs_snapshot: true,
                        leaving: false,
                        batch: false,
                        ..
                    })
                },
                Output::Serving(None)
            ]
        ),
        "{out:?}"
    );
    receive(&mut n, 22, 1, chunk(2, last, 1, None));
    // A renewal mid-install (it cannot come from a correct leader, which
    // sends nothing else meanwhile) renews nothing.
    receive(&mut n, 23, 1, renew);
    assert!(!n.serving(ms(24)));
    let out = receive(&mut n, 25, 1, chunk(2, last, 2, Some(7)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::InstallChunk {
            first: false,
            done: true,
            ..
        }
    )));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 1,
                msg: Message::AppendReply(AppendReply {
                    ok: true,
                    last: 5,
                    batch: true,
                    ..
                })
            }
        )),
        "{out:?}"
    );
    assert_eq!(n.status().applied, 5);
    assert!(!n.serving(ms(26)), "no lease until the leader renews it");
    let renew = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 5),
        entries: Vec::new(),
        commit: 5,
        stamp: ms(26),
        echo: Some(ms(25)),
        lease: true,
    });
    receive(&mut n, 27, 1, renew);
    // Its caches may show entries up to the snapshot's end, 7: a renewal
    // that committed only 5 (applied here) is not enough.
    assert!(
        !n.serving(ms(28)),
        "serving inside the snapshot's fuzzy window"
    );
    let replay = Message::Append(Append {
        term: 2,
        prev: LogId::new(2, 5),
        entries: vec![entry(2, 6, &put("x")), entry(2, 7, &put("y"))],
        commit: 7,
        stamp: ms(28),
        echo: Some(ms(27)),
        lease: true,
    });
    receive(&mut n, 29, 1, replay);
    assert_eq!(n.status().applied, 7);
    assert!(n.serving(ms(30)));
}
