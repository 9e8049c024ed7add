//! The HA runtime: links, the cluster core, and the store, wired together.
//!
//! One task owns the core (`redhac-membership`); it is fed by the link tasks
//! (links up), by the links' incoming frames, by the application (writes,
//! lookups), and by a ticker, and it carries out the core's outputs. Its
//! parts, one file each:
//! - `handle`: the application's side ([`Runtime`]): start, ask, stop;
//! - `driver`: the task's loop and its one-line-per-output dispatch;
//! - `outbox`: links' send channels and ordered backlogs;
//! - `effects`: what outputs do to the store (apply, invalidate, install);
//! - `snapshot`: snapshot streams cut from the caches, and chunks decoded;
//! - `lookups`: a follower's reads answered by the leader;
//! - `pending`: the application's writes waiting for the core;
//! - `report`: status and gauges published from the core's state;
//! - `wire` and `convert`: the core's types to the wire's and the facade's.

mod convert;
mod driver;
mod effects;
#[cfg(test)]
mod frame_bound_tests;
mod handle;
mod lookups;
mod outbox;
mod pending;
mod report;
mod snapshot;
mod wire;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::Result;
use crate::write::AckLevel;

pub(crate) use handle::{Runtime, RuntimeOptions};
#[cfg(feature = "test-support")]
pub(crate) use wire::{from_wire, to_wire};

/// A change the application asks the cluster to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteOp {
    Put {
        cache: String,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
        /// The schema the value was encoded with ([`redhac_store::Schema::id`]).
        schema: u64,
    },
    Delete {
        cache: String,
        key: String,
    },
    Clear {
        cache: String,
    },
}

impl WriteOp {
    /// The cache the change is for.
    pub(crate) fn cache(&self) -> &str {
        match self {
            Self::Put { cache, .. } | Self::Delete { cache, .. } | Self::Clear { cache } => cache,
        }
    }

    /// What the change does, for spans and logs (never the key).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Put { .. } => "put",
            Self::Delete { .. } => "delete",
            Self::Clear { .. } => "clear",
        }
    }
}

/// A membership change an operator asks for (the dynamic mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    AddLearner(u32),
    Promote(u32),
    Remove(u32),
}

impl Change {
    /// `current` changed so.
    pub(crate) fn apply(
        self,
        current: &redhac_membership::Membership,
    ) -> redhac_membership::Membership {
        match self {
            Self::AddLearner(id) => current.with_learner(id),
            Self::Promote(id) => current.promoted(id),
            Self::Remove(id) => current.without(id),
        }
    }
}

/// What the application asks of the runtime task.
#[derive(Debug)]
pub(crate) enum Command {
    Write {
        op: WriteOp,
        ack: AckLevel,
        /// The write's deadline, counted from when the runtime receives it.
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    },
    Lookup {
        cache: String,
        key: String,
        /// The encoded value, when the key is there.
        reply: oneshot::Sender<Result<Option<Vec<u8>>>>,
    },
    /// Change the membership (the dynamic mode), answered once committed.
    Change {
        change: Change,
        timeout: Duration,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Hand leadership over, then stop.
    Shutdown { reply: oneshot::Sender<()> },
    /// Hand leadership over and follow on; answered once asked of the
    /// core (true), when not leading (false), or refused.
    StepDown {
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Tests only: the runtime task panics, as a bug would make it.
    #[cfg(feature = "test-support")]
    Crash,
}

/// Runs a member's task; a panic ends it with an error log that says so
/// (a member whose runtime or link task died no longer works: restart it),
/// after `on_death` undid what must not outlive it.
pub(crate) async fn guarded(
    task: &'static str,
    fut: impl std::future::Future<Output = ()>,
    on_death: impl FnOnce(),
) {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    let mut on_death = Some(on_death);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let reason = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                if let Some(undo) = on_death.take() {
                    undo();
                }
                tracing::error!(
                    task,
                    reason,
                    "a redhac task died: this member stopped serving and replicating; restart it \
                 (Redhac::is_running is false)"
                );
                Poll::Ready(())
            }
        },
    )
    .await;
}

/// How long a remote lookup waits for the leader's answer.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
