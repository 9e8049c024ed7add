//! The network between members: gRPC links with an authenticated handshake.

pub(crate) mod auth;
pub(crate) mod link;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
pub(crate) mod tls;
#[cfg(test)]
mod tls_tests;
