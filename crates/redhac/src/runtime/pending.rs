//! The application's writes waiting for the core to resolve them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redhac_membership::{LogId, RequestId, WriteError};
use tokio::sync::oneshot;

use crate::write::AckLevel;
use crate::{Error, Result};

/// A write waiting for the core.
#[derive(Debug)]
struct Waiting {
    reply: oneshot::Sender<Result<()>>,
    ack: AckLevel,
    started: Instant,
    timeout: Duration,
}

/// Writes proposed to the core and not resolved yet, by request id.
#[derive(Debug)]
pub(super) struct PendingWrites {
    waiting: HashMap<RequestId, Waiting>,
    next_id: RequestId,
}

impl Default for PendingWrites {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
            next_id: 1,
        }
    }
}

impl PendingWrites {
    /// Tracks a write; returns the id to propose it under.
    pub(super) fn track(
        &mut self,
        reply: oneshot::Sender<Result<()>>,
        ack: AckLevel,
        timeout: Duration,
    ) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        metrics::counter!(crate::metrics::WRITES, "ack" => ack.label()).increment(1);
        self.waiting.insert(
            id,
            Waiting {
                reply,
                ack,
                started: Instant::now(),
                timeout,
            },
        );
        id
    }

    /// Answers the write `id` with the core's result.
    pub(super) fn resolve(
        &mut self,
        id: RequestId,
        result: std::result::Result<Option<LogId>, WriteError>,
    ) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(WriteError::NoQuorum) => "no_quorum",
            Err(WriteError::Timeout) => "timeout",
            Err(WriteError::ShuttingDown) => "shut_down",
            Err(WriteError::Membership(_)) => "membership_refused",
        };
        let labels = [("ack", w.ack.label()), ("outcome", outcome)];
        metrics::histogram!(crate::metrics::WRITE_SECONDS, &labels)
            .record(w.started.elapsed().as_secs_f64());
        let result = match result {
            Ok(_) => Ok(()),
            Err(WriteError::NoQuorum) => Err(Error::NoQuorum),
            Err(WriteError::Timeout) => Err(Error::Timeout(w.timeout)),
            Err(WriteError::ShuttingDown) => Err(Error::ShutDown),
            Err(WriteError::Membership(e)) => Err(Error::Membership(e.to_string())),
        };
        let _ = w.reply.send(result);
    }

    /// Fails every waiting write: the runtime stopped.
    pub(super) fn shut_down(&mut self) {
        for (_, w) in self.waiting.drain() {
            let _ = w.reply.send(Err(Error::ShutDown));
        }
    }

    /// Fails every write waiting: this member rejoined as a new member, and
    /// its old core's writes will never be answered (they may still apply).
    pub(super) fn fail_all(&mut self) {
        for (_, w) in self.waiting.drain() {
            let _ = w.reply.send(Err(Error::Timeout(w.timeout)));
        }
    }
}
