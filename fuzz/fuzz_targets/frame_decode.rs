//! Any bytes a peer sends: decoding never panics, and what decodes re-encodes
//! to a frame that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use redhac_proto::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = Frame::decode(frame.encode_to_vec().as_slice()).expect("a re-encoded frame decodes");
        assert_eq!(frame, again);
    }
});
