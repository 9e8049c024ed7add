//! Raw protocol pieces for tests that play a hand-made or hostile member
//! over a real socket: the handshake's proof and the core's messages on the
//! wire. Behind the `test-support` feature; not a stable API.

use redhac_membership::Message;

use crate::transport::auth::{self, TokenKey, Transcript};

/// Largest frame a member accepts.
pub const MAX_FRAME_BYTES: usize = crate::transport::link::MAX_FRAME_BYTES;

/// The fingerprint of an `HA_HOSTS` list that a Hello carries.
pub fn fingerprint(hosts: &[String]) -> Vec<u8> {
    auth::fingerprint(hosts)
}

/// A fresh random challenge for a Hello.
///
/// # Errors
/// When the OS has no randomness to give.
pub fn challenge() -> std::io::Result<Vec<u8>> {
    auth::challenge().map(|c| c.to_vec())
}

/// The Auth proof that `prover` knows `token`, for the link whose Hellos
/// carried `fingerprint` and these challenges.
pub fn proof(
    token: &str,
    fingerprint: &[u8],
    prover: u32,
    verifier: u32,
    verifier_challenge: &[u8],
    prover_challenge: &[u8],
) -> Vec<u8> {
    TokenKey::new(token).prove(&Transcript {
        fingerprint,
        prover,
        verifier,
        verifier_challenge,
        prover_challenge,
    })
}

/// A core message as a member puts it on the wire.
pub fn to_wire(msg: &Message) -> redhac_proto::Core {
    crate::runtime::to_wire(msg)
}

/// A core message from the wire, as a member reads it.
///
/// # Errors
/// What is wrong with it, as a member's refusal says.
pub fn from_wire(core: redhac_proto::Core) -> Result<Message, &'static str> {
    crate::runtime::from_wire(core)
}

/// Makes `node`'s runtime task panic, as a bug in it would (HA mode; a
/// standalone node has no runtime task).
pub async fn crash_runtime(node: &crate::Redhac) {
    if let Some(runtime) = node.shared().cluster() {
        runtime.crash().await;
    }
}

/// Crashes `node`: no handover, no goodbye; its links close with its tasks.
pub fn kill(node: &crate::Redhac) {
    node.kill();
}
