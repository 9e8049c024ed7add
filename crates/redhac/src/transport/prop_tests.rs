//! Hostile input at the handshake: random frames never open a link and never panic.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use proptest::prelude::*;
use redhac_proto::{Auth, Frame, Hello, LookupRequest, LookupResponse, PROTOCOL_VERSION, frame};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::auth::{Tokens, fingerprint};
use super::handshake::{Expect, Handshake, HelloState, VERSIONS};
use super::link::{LinkError, LinkSettings, LinkSetup, LinkState};
use redhac_membership::HostEntry;

fn setup() -> (LinkSetup, Vec<u8>) {
    let hosts = vec![
        "http://a:1".to_string(),
        "http://b:1".to_string(),
        "http://c:1".to_string(),
    ];
    let fp = fingerprint(&hosts);
    let (events, _) = mpsc::channel(1);
    let s = LinkSetup {
        handshake: Handshake {
            address: String::new(),
            generation: 1,
            fingerprint: fp.clone(),
            tokens: Tokens::new("the-real-token-0123", None),
            versions: VERSIONS,
            timeout: Duration::from_millis(200),
        },
        settings: LinkSettings {
            members: hosts.iter().map(|h| HostEntry::parse(h).unwrap()).collect(),
            dynamic: false,
            buf_server: 8,
            buf_client: 8,
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            reconnect: (Duration::from_millis(10), Duration::from_millis(20)),
            redial_cap: Duration::from_secs(1),
            tls: None,
        },
        state: LinkState::new(
            watch::channel(HelloState {
                me: 1,
                ..HelloState::default()
            })
            .1,
            events,
            Arc::new(AtomicU64::new(0)),
            watch::channel(Default::default()).1,
        ),
    };
    (s, fp)
}

fn bytes(max: usize) -> impl Strategy<Value = bytes::Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(bytes::Bytes::from)
}

/// Frames an attacker could send: anything, and Hellos that pass the cheap
/// checks (right version and member list) so the proof itself is tested.
fn frame(fp: Vec<u8>) -> impl Strategy<Value = Result<Frame, Status>> {
    let hello = (
        any::<bool>(),
        0u32..5,
        any::<u64>(),
        bytes(40),
        any::<u64>(),
    )
        .prop_map(move |(good, member, generation, challenge, term)| Hello {
            protocol_version: if good {
                PROTOCOL_VERSION
            } else {
                PROTOCOL_VERSION + 1
            },
            member,
            generation,
            members_fingerprint: if good {
                fp.clone().into()
            } else {
                bytes::Bytes::new()
            },
            challenge,
            term,
            last_log_term: 0,
            last_log_index: 0,
            max_protocol_version: 0,
            term_floor: term / 2,
            cluster: 0,
            address: String::new(),
        });
    let kind = prop_oneof![
        hello.prop_map(frame::Kind::Hello),
        (bytes(48), bytes(48)).prop_map(|(proof, previous_proof)| frame::Kind::Auth(Auth {
            proof,
            previous_proof
        })),
        (any::<u64>(), ".{0,8}", ".{0,8}").prop_map(|(id, cache, key)| frame::Kind::LookupRequest(
            LookupRequest { id, cache, key }
        )),
        (
            any::<u64>(),
            proptest::option::of(bytes(16)),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(id, value, applied, schema)| {
                frame::Kind::LookupResponse(LookupResponse {
                    id,
                    value,
                    applied,
                    schema,
                })
            }),
    ];
    prop_oneof![
        8 => proptest::option::of(kind).prop_map(|kind| Ok(Frame { kind })),
        1 => Just(Err(Status::internal("broken stream"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_frames_never_complete_a_handshake(frames in proptest::collection::vec(frame(setup().1), 0..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (s, _) = setup();
        let (tx, _rx) = mpsc::channel(8);
        let mut inbound = tokio_stream::iter(frames);
        let result = rt.block_on(s.handshake(&mut inbound, &tx, Expect::Below(2)));
        prop_assert!(result.is_err(), "a handshake passed without the token: {:?}", result);
        if let Err(LinkError::Random(e)) = result {
            prop_assert!(false, "unexpected error {}", e);
        }
    }
}
