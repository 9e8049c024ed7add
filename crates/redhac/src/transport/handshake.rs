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

/// Who this member is and the election state a Hello carries, as the
/// runtime publishes them (one read: a handshake never pairs the id of one
/// incarnation with the state of another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HelloState {
    /// This member's id: fixed in the static mode; in the dynamic mode a
    /// new one when the member rejoins.
    pub(crate) me: u32,
    pub(crate) term: u64,
    pub(crate) last_log_term: u64,
    pub(crate) last_log_index: u64,
    pub(crate) term_floor: u64,
    /// The dynamic mode: the cluster this member is in (0: none yet, or
    /// not in its log yet: a bootstrap's choice is no cluster until formed).
    pub(crate) cluster: u64,
}

/// Who a peer proved to be, and what it said about itself in its Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Introduced {
    pub(crate) member: u32,
    /// The id this member introduced itself with (the dynamic mode gives
    /// a member a new one when it rejoins: a link shaken under the old one
    /// is dropped).
    pub(crate) as_me: u32,
    /// The address the peer advertises (`HA_ADVERTISE`), empty if none.
    pub(crate) address: String,
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
    /// The dynamic mode: any member but this one (who is behind an
    /// address is learnt from its Hello).
    Anyone,
}

/// What this member shows and checks in every handshake.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// The address shown to peers (`HA_ADVERTISE`), empty if none.
    pub(crate) address: String,
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
        let me = state.me;
        let hello = Hello {
            protocol_version: *self.versions.start(),
            max_protocol_version: *self.versions.end(),
            member: me,
            generation: self.generation,
            members_fingerprint: self.fingerprint.clone().into(),
            challenge: mine.to_vec().into(),
            term: state.term,
            last_log_term: state.last_log_term,
            last_log_index: state.last_log_index,
            term_floor: state.term_floor,
            cluster: state.cluster,
            address: self.address.clone(),
        };
        send(tx, frame::Kind::Hello(hello)).await?;
        let theirs = match self.next(inbound).await? {
            frame::Kind::Hello(h) => h,
            _ => return Err(LinkError::Protocol("the first frame is not a Hello".into())),
        };
        let version = self.check_hello(me, state.cluster, &theirs, expect)?;
        let (proof, previous_proof) = self.tokens.prove(&Transcript {
            fingerprint: &self.fingerprint,
            prover: me,
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
                verifier: me,
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
            as_me: me,
            address: theirs.address,
            generation: theirs.generation,
            state: HelloState {
                me: theirs.member,
                term: theirs.term,
                last_log_term: theirs.last_log_term,
                last_log_index: theirs.last_log_index,
                term_floor: theirs.term_floor,
                cluster: theirs.cluster,
            },
            version,
        })
    }

    /// Checks the peer's Hello; returns the protocol version the link speaks.
    fn check_hello(
        &self,
        me: u32,
        cluster: u64,
        h: &Hello,
        expect: Expect,
    ) -> Result<u32, LinkError> {
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
        if matches!(expect, Expect::Anyone) && h.member == me {
            return Err(LinkError::Myself);
        }
        if cluster != 0 && h.cluster != 0 && cluster != h.cluster {
            return bad(format!(
                "the peer is in another cluster ({:016x}, this member {cluster:016x}): two \
                 clusters share a discovery name or a token; give each its own",
                h.cluster
            ));
        }
        let ok = match expect {
            Expect::Exactly(p) => h.member == p,
            Expect::Below(me) => h.member < me,
            Expect::Anyone => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Handshake {
        Handshake {
            address: String::new(),
            generation: 1,
            fingerprint: vec![1, 2, 3],
            tokens: Tokens::new("a-token-0123456789", None),
            versions: VERSIONS,
            timeout: Duration::from_secs(1),
        }
    }

    fn hello(member: u32, cluster: u64) -> Hello {
        Hello {
            protocol_version: *VERSIONS.start(),
            max_protocol_version: *VERSIONS.end(),
            member,
            members_fingerprint: vec![1, 2, 3].into(),
            challenge: vec![0; CHALLENGE_LEN].into(),
            cluster,
            ..Hello::default()
        }
    }

    #[test]
    fn a_dynamic_member_refuses_itself_and_members_of_another_cluster() {
        let h = handshake();
        let check = |mine: u64, theirs: &Hello| h.check_hello(5, mine, theirs, Expect::Anyone);
        // Any other id, in no cluster yet or in this one.
        assert!(check(0, &hello(7, 0)).is_ok());
        assert!(check(9, &hello(7, 0)).is_ok());
        assert!(check(0, &hello(7, 9)).is_ok());
        assert!(check(9, &hello(7, 9)).is_ok());
        assert!(check(9, &hello(3, 9)).is_ok());
        // Its own address, found through discovery.
        assert!(matches!(check(0, &hello(5, 0)), Err(LinkError::Myself)));
        // Another cluster.
        let Err(LinkError::Protocol(why)) = check(9, &hello(7, 8)) else {
            panic!("a member of another cluster is accepted");
        };
        assert!(why.contains("another cluster"), "{why}");
        // The static mode still takes only whom it expects.
        assert!(h.check_hello(5, 0, &hello(3, 0), Expect::Below(5)).is_ok());
        assert!(h.check_hello(5, 0, &hello(6, 0), Expect::Below(5)).is_err());
    }
}
