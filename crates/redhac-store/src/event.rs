//! Change events of a cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// This node: a write made here, or an expiry or eviction here.
    Local,
    /// Another member: a replicated write or a snapshot installed from a peer.
    Peer,
}

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A value was written.
    Put,
    /// A key was deleted (only sent when the key was present).
    Delete,
    /// The whole cache was cleared (`key` is `None`).
    Clear,
    /// An entry's TTL or TTI ran out.
    Expired,
    /// An entry was evicted to respect the capacity.
    Evicted,
}

/// One change of one cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key, or `None` for [`EventKind::Clear`].
    pub key: Option<String>,
    /// Where the change came from.
    pub origin: Origin,
}

/// Why [`Events::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// The subscriber fell behind and this many events were dropped for it;
    /// the next call returns the oldest event still buffered.
    #[error("event subscriber lagged; {0} events were skipped")]
    Lagged(u64),
    /// The cache is gone (the store was dropped).
    #[error("the cache was closed")]
    Closed,
}

/// A subscription to the change events of one cache.
///
/// Each subscriber has its own position. A subscriber that falls more than
/// the cache's `event_buffer` behind is told how many it missed
/// ([`EventsError::Lagged`]) rather than silently losing them.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    /// The sender's count of subscriptions, this one's taken back on drop.
    subscribed: Arc<AtomicUsize>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.subscribed.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Events {
    /// Waits for the next event.
    ///
    /// # Errors
    /// [`EventsError::Lagged`] when events were dropped for this subscriber,
    /// [`EventsError::Closed`] when the cache is gone.
    pub async fn recv(&mut self) -> Result<Event, EventsError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => EventsError::Lagged(n),
            broadcast::error::RecvError::Closed => EventsError::Closed,
        })
    }

    /// Returns the next event if one is buffered.
    ///
    /// # Errors
    /// As [`Events::recv`]; `Ok(None)` when nothing is buffered.
    pub fn try_recv(&mut self) -> Result<Option<Event>, EventsError> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(EventsError::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Err(EventsError::Closed),
        }
    }
}

/// The sending side, shared by a cache and its eviction listener.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: broadcast::Sender<Event>,
    /// Live subscriptions, counted here because every insert asks and the
    /// channel's own count takes its lock.
    subscribed: Arc<AtomicUsize>,
}

impl EventSender {
    pub(crate) fn new(buffer: usize) -> Self {
        Self {
            tx: broadcast::channel(buffer.max(1)).0,
            subscribed: Arc::default(),
        }
    }

    pub(crate) fn subscribe(&self) -> Events {
        // Counted before the receiver exists: an insert that sees no
        // subscriber cannot have had one that missed its event.
        self.subscribed.fetch_add(1, Ordering::SeqCst);
        Events {
            rx: self.tx.subscribe(),
            subscribed: Arc::clone(&self.subscribed),
        }
    }

    /// Whether anyone subscribed.
    pub(crate) fn listened(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst) > 0
    }

    /// Sends an event if anyone listens; the key is only copied then.
    pub(crate) fn emit(&self, kind: EventKind, key: Option<&str>, origin: Origin) {
        if self.listened() {
            let _ = self.tx.send(Event {
                kind,
                key: key.map(str::to_owned),
                origin,
            });
        }
    }
}
