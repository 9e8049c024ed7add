#![doc = include_str!("../README.md")]

mod builder;
mod cache;
mod config;
mod error;
mod gate;
mod instance;
mod loader;
pub mod metrics;
mod runtime;
mod status;
#[cfg(feature = "test-support")]
pub mod test_support;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;
mod write;

pub use builder::Builder;
pub use cache::{Cache, MAX_KEY_LEN, Read};
pub use config::{Config, Secret};
pub use error::{Error, Result, StoreError};
pub use instance::{Redhac, StatusWatch};
pub use redhac_membership::{Autopilot, HostEntry, Timing};
pub use redhac_store::{
    CacheOptions, Capacity, Event, EventKind, Events, EventsError, Origin, Schema, Value,
};
pub use status::{Health, MemberStatus, Role, Status};
pub use write::{AckLevel, DEFAULT_WRITE_TIMEOUT, WriteOptions};

/// The names most programs need: `use redhac::prelude::*;`.
pub mod prelude {
    pub use crate::{AckLevel, Cache, CacheOptions, Config, Error, Redhac, WriteOptions};
}
