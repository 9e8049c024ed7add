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
