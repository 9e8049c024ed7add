//! The link handshake's proof of the shared token.
//!
//! Each side sends a fresh random challenge in its Hello and answers the
//! other's with `HMAC-SHA256(token, label | fingerprint | prover | verifier |
//! verifier's challenge | prover's challenge)`. The token never crosses the
//! wire, a proof is bound to one link's challenges (a replayed Hello or Auth
//! fails), and proofs are compared in constant time.
//!
//! During a token rotation a member holds two tokens: it sends a proof made
//! with each, and accepts a peer's proof made with either (`Tokens`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"redhac-auth-v1";

/// Length of a challenge in bytes.
pub(crate) const CHALLENGE_LEN: usize = 32;

/// The shared token as the handshake uses it: what both ends of a link
/// must agree on before trusting each other.
#[derive(Clone)]
pub(crate) struct TokenKey {
    token: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// The parties and challenges one proof covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transcript<'a> {
    pub(crate) fingerprint: &'a [u8],
    pub(crate) prover: u32,
    pub(crate) verifier: u32,
    pub(crate) verifier_challenge: &'a [u8],
    pub(crate) prover_challenge: &'a [u8],
}

impl TokenKey {
    pub(crate) fn new(token: &str) -> Self {
        Self {
            token: token.as_bytes().to_vec(),
        }
    }

    fn mac(&self, t: &Transcript<'_>) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.token).unwrap_or_else(|_| unreachable!());
        mac.update(LABEL);
        for part in [t.fingerprint, t.verifier_challenge, t.prover_challenge] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&t.prover.to_be_bytes());
        mac.update(&t.verifier.to_be_bytes());
        mac
    }

    /// The proof the prover sends.
    pub(crate) fn prove(&self, t: &Transcript<'_>) -> Vec<u8> {
        self.mac(t).finalize().into_bytes().to_vec()
    }

    /// Checks a proof in constant time.
    pub(crate) fn verify(&self, t: &Transcript<'_>, proof: &[u8]) -> bool {
        self.mac(t).verify_slice(proof).is_ok()
    }
}

/// The tokens a member proves itself with and accepts: the current one and,
/// while a rotation is under way, the previous one.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    current: TokenKey,
    previous: Option<TokenKey>,
}

impl Tokens {
    pub(crate) fn new(current: &str, previous: Option<&str>) -> Self {
        Self {
            current: TokenKey::new(current),
            previous: previous.map(TokenKey::new),
        }
    }

    /// The proof with the current token, and with the previous one (empty
    /// when there is none).
    pub(crate) fn prove(&self, t: &Transcript<'_>) -> (Vec<u8>, Vec<u8>) {
        let previous = self.previous.as_ref().map(|k| k.prove(t));
        (self.current.prove(t), previous.unwrap_or_default())
    }

    /// Whether either proof was made with either token.
    pub(crate) fn verify(&self, t: &Transcript<'_>, proofs: [&[u8]; 2]) -> bool {
        let keys = std::iter::once(&self.current).chain(&self.previous);
        let mut genuine = false;
        // Every pair is checked (no early exit) so the time taken says
        // nothing about which token matched.
        for key in keys {
            for proof in proofs.iter().filter(|p| !p.is_empty()) {
                genuine |= key.verify(t, proof);
            }
        }
        genuine
    }
}

/// A fresh random challenge.
pub(crate) fn challenge() -> std::io::Result<[u8; CHALLENGE_LEN]> {
    let mut c = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut c).map_err(std::io::Error::other)?;
    Ok(c)
}

/// The fingerprint of a member list: all members must be given the same list.
pub(crate) fn fingerprint(members: &[String]) -> Vec<u8> {
    let mut h = Sha256::new();
    for m in members {
        h.update((m.len() as u64).to_be_bytes());
        h.update(m.as_bytes());
    }
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(fp: &'a [u8], a: &'a [u8], b: &'a [u8]) -> Transcript<'a> {
        Transcript {
            fingerprint: fp,
            prover: 1,
            verifier: 2,
            verifier_challenge: a,
            prover_challenge: b,
        }
    }

    #[test]
    fn proofs_bind_token_parties_and_challenges() {
        let s = TokenKey::new("shared-secret-token");
        let (c1, c2) = (challenge().unwrap(), challenge().unwrap());
        assert_ne!(c1, c2);
        let t = transcript(b"fp", &c1, &c2);
        let p = s.prove(&t);
        assert!(s.verify(&t, &p));
        assert!(
            !TokenKey::new("other-token").verify(&t, &p),
            "another token"
        );
        assert!(
            !s.verify(&transcript(b"fp", &c2, &c1), &p),
            "swapped challenges"
        );
        assert!(
            !s.verify(&transcript(b"fq", &c1, &c2), &p),
            "another member list"
        );
        let fresh = challenge().unwrap();
        assert!(
            !s.verify(&transcript(b"fp", &fresh, &c2), &p),
            "a replay against a fresh challenge"
        );
        let mut swapped = t;
        swapped.prover = 2;
        swapped.verifier = 1;
        assert!(!s.verify(&swapped, &p), "reflected back to its sender");
        assert!(!s.verify(&t, &p[..31]), "truncated");
    }

    #[test]
    fn during_a_rotation_either_proof_with_either_token_passes() {
        let (c1, c2) = (challenge().unwrap(), challenge().unwrap());
        let t = transcript(b"fp", &c1, &c2);
        let old = Tokens::new("token-one-0123456789", None);
        let both = Tokens::new("token-two-0123456789", Some("token-one-0123456789"));
        let new = Tokens::new("token-two-0123456789", None);
        let other = Tokens::new("token-three-012345678", None);
        let proofs = |tokens: &Tokens| tokens.prove(&t);
        let passes = |verifier: &Tokens, (a, b): &(Vec<u8>, Vec<u8>)| verifier.verify(&t, [a, b]);
        // Roll one: members with both tokens link with the old and each other.
        assert!(passes(&old, &proofs(&both)));
        assert!(passes(&both, &proofs(&old)));
        assert!(passes(&both, &proofs(&both)));
        // Roll two: members with the new token alone link with the others.
        assert!(passes(&both, &proofs(&new)));
        assert!(passes(&new, &proofs(&both)));
        // Never: the old and the new token alone, or a stranger.
        assert!(!passes(&old, &proofs(&new)));
        assert!(!passes(&new, &proofs(&old)));
        assert!(!passes(&both, &proofs(&other)));
        assert!(!passes(&other, &proofs(&both)));
        assert!(
            proofs(&old).1.is_empty(),
            "no second proof without a rotation"
        );
    }

    #[test]
    fn fingerprint_depends_on_order_and_boundaries() {
        let a = fingerprint(&["http://a:1".into(), "http://b:1".into()]);
        assert_eq!(a, fingerprint(&["http://a:1".into(), "http://b:1".into()]));
        assert_ne!(a, fingerprint(&["http://b:1".into(), "http://a:1".into()]));
        assert_ne!(
            fingerprint(&["ab".into(), "c".into()]),
            fingerprint(&["a".into(), "bc".into()])
        );
    }
}
