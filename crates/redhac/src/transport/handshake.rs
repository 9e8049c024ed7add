//! The handshake that opens a link: a Hello each way (with the protocol
//! versions each side speaks), then each side proves it knows the shared
//! token over both challenges.

use std::ops::RangeInclusive;
use std::time::Duration;

use redhac_proto::{Auth, Frame, Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, frame};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::auth::{CHALLENGE_LEN, Tokens, Transcript, challenge};
use super::link::LinkError;

/// The election state a Hello carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HelloState {
    pub(crate) term: u64,
    pub(crate) last_log_term: u64,
    pub(crate) last_log_index: u64,
    pub(crate) term_floor: u64,
}

/// Who a peer proved to be, and what it said about itself in its Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Introduced {
    pub(crate) member: u32,
    pub(crate) generation: u64,
    pub(crate) state: HelloState,
    /// The protocol version the link speaks: the highest both ends speak.
    pub(crate) version: u32,
}

/// The protocol versions this release speaks.
pub(crate) const VERSIONS: RangeInclusive<u32> = MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION;

/// The first protocol version with `Leaving` and `TimeoutNow.stays`: a link
/// of an older one is sent no `Leaving`, and a leader linked to one does not
/// step down (elected by it, that member would take the leader for gone).
pub(crate) const LEAVING_AND_STAYS: u32 = 3;

/// Which peer a handshake may accept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// The member we dialled.
    Exactly(u32),
    /// Any member listed before us (they dial us).
    Below(u32),
}

/// What this member shows and checks in every handshake.
#[derive(Debug)]
pub(crate) struct Handshake {
    pub(crate) me: u32,
    pub(crate) generation: u64,
    /// Of the `HA_HOSTS` list: members given another list refuse each other.
    pub(crate) fingerprint: Vec<u8>,
    pub(crate) tokens: Tokens,
    /// The protocol versions this member speaks ([`VERSIONS`]; tests
    /// pretend to be another release).
    pub(crate) versions: RangeInclusive<u32>,
    /// How long each of the peer's two frames may take.
    pub(crate) timeout: Duration,
}

impl Handshake {
    /// Says Hello with `state`, checks the peer's, and exchanges proofs.
    ///
    /// # Errors
    /// [`LinkError::Protocol`] for a Hello this member cannot accept,
    /// [`LinkError::Auth`] for a wrong proof, or the stream's failure.
    pub(crate) async fn run<S>(
        &self,
        state: HelloState,
        inbound: &mut S,
        tx: &mpsc::Sender<Frame>,
        expect: Expect,
    ) -> Result<Introduced, LinkError>
    where
        S: Stream<Item = Result<Frame, Status>> + Unpin,
    {
        let mine = challenge()?;
        let hello = Hello {
            protocol_version: *self.versions.start(),
            max_protocol_version: *self.versions.end(),
            member: self.me,
            generation: self.generation,
            members_fingerprint: self.fingerprint.clone().into(),
            challenge: mine.to_vec().into(),
            term: state.term,
            last_log_term: state.last_log_term,
            last_log_index: state.last_log_index,
            term_floor: state.term_floor,
        };
        send(tx, frame::Kind::Hello(hello)).await?;
        let theirs = match self.next(inbound).await? {
            frame::Kind::Hello(h) => h,
            _ => return Err(LinkError::Protocol("the first frame is not a Hello".into())),
        };
        let version = self.check_hello(&theirs, expect)?;
        let (proof, previous_proof) = self.tokens.prove(&Transcript {
            fingerprint: &self.fingerprint,
            prover: self.me,
            verifier: theirs.member,
            verifier_challenge: &theirs.challenge,
            prover_challenge: &mine,
        });
        send(
            tx,
            frame::Kind::Auth(Auth {
                proof: proof.into(),
                previous_proof: previous_proof.into(),
            }),
        )
        .await?;
        let auth = match self.next(inbound).await? {
            frame::Kind::Auth(a) => a,
            _ => {
                return Err(LinkError::Protocol(
                    "the second frame is not an Auth".into(),
                ));
            }
        };
        let genuine = self.tokens.verify(
            &Transcript {
                fingerprint: &self.fingerprint,
                prover: theirs.member,
                verifier: self.me,
                verifier_challenge: &mine,
                prover_challenge: &theirs.challenge,
            },
            [&auth.proof, &auth.previous_proof],
        );
        if !genuine {
            return Err(LinkError::Auth);
        }
        Ok(Introduced {
            member: theirs.member,
            generation: theirs.generation,
            state: HelloState {
                term: theirs.term,
                last_log_term: theirs.last_log_term,
                last_log_index: theirs.last_log_index,
                term_floor: theirs.term_floor,
            },
            version,
        })
    }

    /// Checks the peer's Hello; returns the protocol version the link speaks.
    fn check_hello(&self, h: &Hello, expect: Expect) -> Result<u32, LinkError> {
        let bad = |m: String| Err(LinkError::Protocol(m));
        // A member from before version ranges speaks exactly one version.
        let theirs = h.protocol_version..=h.max_protocol_version.max(h.protocol_version);
        let version = (*theirs.end()).min(*self.versions.end());
        if version < (*theirs.start()).max(*self.versions.start()) {
            return bad(format!(
                "no protocol version in common: the peer speaks {}..={}, this member {}..={}; \
                 roll members between adjacent releases only",
                theirs.start(),
                theirs.end(),
                self.versions.start(),
                self.versions.end()
            ));
        }
        if h.members_fingerprint.as_ref() != self.fingerprint.as_slice() {
            return bad(
                "the peer was given other member lists (HA_HOSTS, HA_LEARNERS); give every \
                 member the same lists, in the same order"
                    .into(),
            );
        }
        if h.challenge.len() != CHALLENGE_LEN {
            return bad(format!("a challenge of {} bytes", h.challenge.len()));
        }
        let ok = match expect {
            Expect::Exactly(p) => h.member == p,
            Expect::Below(me) => h.member < me,
        };
        if !ok {
            return bad(format!("unexpected member index {} ({expect:?})", h.member));
        }
        Ok(version)
    }

    async fn next<S>(&self, inbound: &mut S) -> Result<frame::Kind, LinkError>
    where
        S: Stream<Item = Result<Frame, Status>> + Unpin,
    {
        match tokio::time::timeout(self.timeout, inbound.next()).await {
            Err(_) => Err(LinkError::Timeout),
            Ok(None) => Err(LinkError::Closed),
            Ok(Some(Err(status))) => Err(status.into()),
            Ok(Some(Ok(Frame { kind: None }))) => Err(LinkError::Protocol("an empty frame".into())),
            Ok(Some(Ok(Frame { kind: Some(k) }))) => Ok(k),
        }
    }
}

async fn send(tx: &mpsc::Sender<Frame>, kind: frame::Kind) -> Result<(), LinkError> {
    tx.send(Frame { kind: Some(kind) })
        .await
        .map_err(|_| LinkError::Closed)
}
