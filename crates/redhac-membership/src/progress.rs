//! Replication progress: the leader's view of one follower, and how each
//! reply, link change and snapshot moves it.

use std::time::Duration;

use crate::message::AppendReply;
use crate::types::{Index, LogId};

/// The leader's view of one follower.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// The next index to send.
    pub(crate) next: Index,
    /// The follower holds the leader's log up to here.
    pub(crate) matched: Index,
    /// The follower applied up to here.
    pub(crate) applied: Index,
    /// Frames with entries sent and not yet answered.
    pub(crate) inflight: usize,
    /// After a rejection: one frame at a time until one is accepted.
    pub(crate) probing: bool,
    /// When the latest reply arrived (leader's clock).
    pub(crate) last_ack: Option<Duration>,
    /// The follower's own stamp from that reply, echoed back.
    pub(crate) echo: Option<Duration>,
    /// When the latest reply arrived whose stamp this leader echoed in an
    /// append granting a lease: the follower's lease, if it holds one from
    /// this leader, counts from no later than that. A follower catching up
    /// (a snapshot streams, no append goes to it) renews none.
    pub(crate) lease_from: Option<Duration>,
    /// The latest leader stamp the follower echoed.
    pub(crate) stamp: Option<Duration>,
    /// The follower's caches were cleared: send it a snapshot.
    pub(crate) wants_snapshot: bool,
    /// When a snapshot last went out to it.
    pub(crate) snapshot_sent: Option<Duration>,
    /// The snapshot being streamed to it, until it acknowledges it: nothing
    /// else of the log goes to it meanwhile, and the log keeps what follows.
    pub(crate) streaming: Option<LogId>,
    /// Its first echo arrived: send at once, so its lease starts now rather
    /// than at the next heartbeat.
    pub(crate) prompt: bool,
    /// When the leader last sent this follower anything.
    pub(crate) last_sent: Duration,
    /// A new incarnation of it linked then, and no majority without it has
    /// echoed a stamp sent since: it forgot the votes it cast, so it counts
    /// in no majority yet (see `Leading::confirm_relinked`).
    pub(crate) relinked_at: Option<Duration>,
    /// Its link is up. What it holds counts toward a commit only then: logs
    /// live in memory, and a member whose link dropped may have crashed
    /// with the entries it acknowledged.
    pub(crate) linked: bool,
    /// It said it serves no more reads (it is shutting down): its lease is
    /// over, whatever it answers.
    pub(crate) left: bool,
    /// When the leader began tracking it on this link (listed and linked):
    /// the autopilot counts its silence from there until it first answers.
    pub(crate) created: Duration,
}

impl Progress {
    /// A follower to probe from `next`, sent nothing yet.
    pub(crate) fn new(next: Index, now: Duration) -> Self {
        Self {
            next,
            matched: 0,
            applied: 0,
            inflight: 0,
            probing: true,
            last_ack: None,
            echo: None,
            lease_from: None,
            stamp: None,
            wants_snapshot: false,
            snapshot_sent: None,
            streaming: None,
            prompt: false,
            last_sent: now.saturating_sub(Duration::from_secs(3600)),
            relinked_at: None,
            linked: true,
            left: false,
            created: now,
        }
    }

    /// Whether it counts in the leader's majorities (commit, lease,
    /// check-quorum).
    pub(crate) fn counts(&self) -> bool {
        self.relinked_at.is_none()
    }

    /// A new link to the follower: what was in flight on the old one is
    /// lost. The same incarnation's last answer still bounds its lease. A
    /// new incarnation (`restarted`) holds no lease the old one was granted
    /// (that process is gone), but forgot the votes it cast: it counts in no
    /// majority until confirmed.
    pub(crate) fn relinked(
        next: Index,
        now: Duration,
        old: Option<&Self>,
        restarted: bool,
    ) -> Self {
        let mut p = Self::new(next, now);
        if restarted {
            p.relinked_at = Some(now);
        } else if let Some(old) = old {
            p.last_ack = old.last_ack;
            p.lease_from = old.lease_from;
        }
        p
    }

    /// Its link went down: nothing is in flight, and a stream ended with it.
    pub(crate) fn link_lost(&mut self) {
        self.linked = false;
        self.inflight = 0;
        self.probing = true;
        self.streaming = None;
    }

    /// Something went out to it now.
    pub(crate) fn sent(&mut self, now: Duration) {
        self.last_sent = now;
        self.prompt = false;
    }

    /// A frame of entries up to `next - 1` went out.
    pub(crate) fn sent_entries(&mut self, next: Index) {
        self.next = next;
        self.inflight += 1;
    }

    /// A snapshot of the caches at `last` starts streaming to it now.
    pub(crate) fn snapshot_started(&mut self, last: LogId, now: Duration) {
        self.next = last.index + 1;
        self.wants_snapshot = false;
        self.snapshot_sent = Some(now);
        self.streaming = Some(last);
        self.inflight += 1;
        self.probing = false;
        self.last_sent = now;
    }

    /// Gives up on the snapshot streaming to this follower; it gets a
    /// newer one at the next flush.
    pub(crate) fn restart_snapshot(&mut self) {
        self.streaming = None;
        self.wants_snapshot = true;
    }

    /// A follower answers every chunk: a stream it has not answered for
    /// `timeout` lost a chunk (or the follower).
    pub(crate) fn stream_stalled(&self, now: Duration, timeout: Duration) -> bool {
        self.streaming.is_some()
            && self.snapshot_sent.is_some_and(|s| now >= s + timeout)
            && self.last_ack.is_none_or(|a| now >= a + timeout)
    }

    /// Its reply `r` arrived now. A snapshot asked for is sent at most once
    /// per `snapshot_retry`.
    pub(crate) fn on_reply(&mut self, r: &AppendReply, now: Duration, snapshot_retry: Duration) {
        if r.batch {
            self.inflight = self.inflight.saturating_sub(1);
        }
        self.last_ack = Some(now);
        self.left |= r.leaving;
        self.prompt |= self.echo.is_none();
        self.echo = Some(r.own);
        if r.stamp > Duration::ZERO {
            self.stamp = Some(self.stamp.map_or(r.stamp, |s| s.max(r.stamp)));
        }
        self.applied = r.applied;
        if let Some(s) = self.streaming {
            // Until the follower answers the snapshot's last chunk (a reply
            // with no stamp: it answers no append), replies to what was sent
            // before it neither end the stream nor ask for another. Its
            // answer ends the stream whether it installed the snapshot or
            // refused it as older than its log: a refused one still wants a
            // snapshot, a newer one.
            if r.ok && r.stamp.is_zero() && r.last >= s.index {
                self.streaming = None;
            }
        } else if r.needs_snapshot && self.snapshot_sent.is_none_or(|t| now >= t + snapshot_retry) {
            self.wants_snapshot = true;
        }
        if r.ok {
            self.matched = self.matched.max(r.last);
            self.next = self.next.max(r.last + 1);
            self.probing = false;
        } else {
            self.next = (r.last + 1).max(self.matched + 1).min(self.next);
            self.probing = true;
            self.inflight = 0;
        }
    }
}
