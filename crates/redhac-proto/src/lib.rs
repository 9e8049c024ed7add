//! Wire protocol of redhac.
//!
//! This crate will hold the gRPC and protobuf types generated from
//! `proto/redhac.proto` (compiled in `build.rs` by a pure-Rust protobuf
//! compiler, so no `protoc` is needed) and the small conversions around them.
//! It depends on neither the cluster core nor the store: the runtime in the
//! `redhac` crate translates between core messages and these wire messages.
//!
//! Until the HA runtime lands it only names the protocol version.

/// Version of the wire protocol carried in every Hello. Members refuse a link
/// whose version differs from their own.
pub const PROTOCOL_VERSION: u32 = 1;
