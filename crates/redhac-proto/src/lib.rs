//! Wire protocol of redhac: the gRPC service and protobuf messages generated
//! from `proto/redhac.proto` (compiled in `build.rs` by protox, a pure-Rust
//! protobuf compiler, so no `protoc` is needed).
//!
//! It depends on neither the cluster core nor the store: the runtime in the
//! `redhac` crate translates between core messages and these wire messages.

/// The newest version of the wire protocol this release speaks.
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest version of the wire protocol this release speaks. Every
/// Hello carries the range; a link speaks the highest version both ends
/// speak and is refused when they have none in common. Policy: a release
/// speaks its own version and the previous one, so a rolling upgrade between
/// adjacent releases always links. (Version 2 is the first with ranges:
/// members of version 1 accepted exactly their own version.)
///
/// What each version added: 3, the `Leaving` message (a follower shutting
/// down tells its leader it serves no more reads), `TimeoutNow.stays` (a
/// leader stepping down stays a member) and `Entry.request` (the write that
/// made an entry; a peer of version 2 ignores it and orders a write sent
/// again a second time).
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// Generated messages and the `Cluster` service.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod v1 {
    tonic::include_proto!("redhac.v1");
}

pub use v1::*;
