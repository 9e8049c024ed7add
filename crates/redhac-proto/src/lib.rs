//! Wire protocol of redhac: the gRPC service and protobuf messages generated
//! from `proto/redhac.proto` (compiled in `build.rs` by protox, a pure-Rust
//! protobuf compiler, so no `protoc` is needed).
//!
//! It depends on neither the cluster core nor the store: the runtime in the
//! `redhac` crate translates between core messages and these wire messages.

/// Version of the wire protocol carried in every Hello. Members refuse a link
/// whose version differs from their own.
pub const PROTOCOL_VERSION: u32 = 2;

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
