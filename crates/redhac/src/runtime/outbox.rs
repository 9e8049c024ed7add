//! The links' sending side: each link's bounded channel and, behind it, an
//! ordered backlog of frames and snapshot streams.
//!
//! Frames to a peer go through its link's channel; what finds it full waits,
//! in order, in the link's bounded backlog. A peer that leaves the backlog
//! full loses its link. A snapshot waits in the backlog as a stream: its
//! chunks are cut from the caches only as the link takes them (at most
//! `SNAPSHOT_AHEAD` in its channel), and what is sent to that peer later
//! waits behind it.

use std::collections::{BTreeMap, VecDeque};

use redhac_membership::{Index, Term};
use redhac_proto::{Frame, frame};
use redhac_store::Store;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::snapshot::SnapshotStream;
use crate::transport::link::Held;

/// Snapshot chunks a link's channel may hold at once: the leader's memory
/// for a snapshot is this many chunks (about 1 MiB each) and the key list.
const SNAPSHOT_AHEAD: usize = 4;

/// Frames, and bytes, a link may hold back before its peer counts as stuck
/// and the link is dropped. Request intake stops at the first frame held
/// back, so what gets here is a burst the core makes by itself (queued
/// writes re-routed to a new leader, a snapshot's chunks).
const MAX_BACKLOG: usize = 1 << 16;
const MAX_BACKLOG_BYTES: usize = 512 << 20;

/// An authenticated link to a peer, on its sending side; dropping it (and
/// its inbound stream) closes the link.
#[derive(Debug)]
struct Link {
    id: u64,
    /// The protocol version the link speaks.
    version: u32,
    tx: mpsc::Sender<Frame>,
    /// Frames that found the channel full, and snapshot streams, sent in
    /// order as room frees up.
    backlog: VecDeque<Queued>,
    /// The encoded size of the frames in `backlog`.
    backlog_bytes: usize,
    _held: Held,
}

/// What waits in a link's backlog.
#[derive(Debug)]
enum Queued {
    /// A frame and its encoded size.
    Frame(Frame, usize),
    /// A snapshot, cut into chunks as the link takes them.
    Snapshot(Box<SnapshotStream>),
}

/// The peer's link must go: its channel closed, or it stopped reading.
#[derive(Debug)]
pub(super) struct LinkLost;

/// Every link's sending side, by peer.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    links: BTreeMap<u32, Link>,
}

impl Outbox {
    /// Adds the link `id` to `peer`, speaking protocol `version`; returns
    /// the id of the link it replaces.
    pub(super) fn insert(
        &mut self,
        peer: u32,
        (id, version): (u64, u32),
        tx: mpsc::Sender<Frame>,
        held: Held,
    ) -> Option<u64> {
        let link = Link {
            id,
            version,
            tx,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            _held: held,
        };
        self.links.insert(peer, link).map(|old| old.id)
    }

    /// Drops the link to `peer`; whether there was one.
    pub(super) fn remove(&mut self, peer: u32) -> bool {
        self.links.remove(&peer).is_some()
    }

    pub(super) fn clear(&mut self) {
        self.links.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    /// The peers a link is up to.
    pub(super) fn peers(&self) -> impl Iterator<Item = u32> + '_ {
        self.links.keys().copied()
    }

    /// Every link's channel, to watch it drain.
    pub(super) fn senders(&self) -> Vec<mpsc::Sender<Frame>> {
        self.links.values().map(|l| l.tx.clone()).collect()
    }

    /// The protocol version of the link to `peer`.
    pub(super) fn version(&self, peer: u32) -> Option<u32> {
        self.links.get(&peer).map(|l| l.version)
    }

    pub(super) fn contains(&self, peer: u32) -> bool {
        self.links.contains_key(&peer)
    }

    /// Sends in order without waiting: what finds the channel full waits in
    /// the link's backlog. A frame to a peer without a link is dropped.
    ///
    /// # Errors
    /// [`LinkLost`] when the channel closed or the peer left `MAX_BACKLOG`
    /// frames or `MAX_BACKLOG_BYTES` unread: it is not buffered for without
    /// end.
    pub(super) fn send(&mut self, peer: u32, kind: frame::Kind) -> Result<(), LinkLost> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        let frame = Frame { kind: Some(kind) };
        let bytes = prost::Message::encoded_len(&frame);
        metrics::counter!(crate::metrics::BYTES_OUT).increment(bytes as u64);
        if !link.backlog.is_empty() {
            link.backlog.push_back(Queued::Frame(frame, bytes));
        } else {
            match link.tx.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(frame)) => {
                    link.backlog.push_back(Queued::Frame(frame, bytes))
                }
                Err(TrySendError::Closed(_)) => return Err(LinkLost),
            }
        }
        link.backlog_bytes += bytes;
        if link.backlog.len() > MAX_BACKLOG || link.backlog_bytes > MAX_BACKLOG_BYTES {
            tracing::warn!(
                peer,
                frames = link.backlog.len(),
                bytes = link.backlog_bytes,
                "peer does not keep up with its link; dropping the link"
            );
            return Err(LinkLost);
        }
        Ok(())
    }

    /// Queues a snapshot for `to`, in place of one already queued for it;
    /// whether `to` has a link.
    pub(super) fn queue_snapshot(&mut self, to: u32, stream: SnapshotStream) -> bool {
        let Some(link) = self.links.get_mut(&to) else {
            return false;
        };
        link.backlog.retain(|q| !matches!(q, Queued::Snapshot(_)));
        link.backlog.push_back(Queued::Snapshot(Box::new(stream)));
        true
    }

    /// The queued stream `id` and its peer, if it is still queued.
    pub(super) fn stream(&mut self, id: u64) -> Option<(u32, &mut SnapshotStream)> {
        self.links.iter_mut().find_map(|(peer, l)| {
            l.backlog.iter_mut().find_map(|q| match q {
                Queued::Snapshot(s) if s.id == id => Some((*peer, &mut **s)),
                _ => None,
            })
        })
    }

    /// Drops the snapshot streams of another term than `term`, or every
    /// one when this member no longer leads: their followers get a new
    /// leader's snapshot.
    pub(super) fn drop_streams(&mut self, term: Term, leading: bool) {
        for link in self.links.values_mut() {
            link.backlog
                .retain(|q| !matches!(q, Queued::Snapshot(s) if !leading || s.term != term));
        }
    }

    /// Moves every link's backlog into its channel while there is room,
    /// cutting snapshot chunks from `store` as they go (at most
    /// `SNAPSHOT_AHEAD` of them in a channel; `applied` is how far the
    /// caches are). Returns the peers whose channel closed.
    pub(super) fn flush(&mut self, store: &Store, applied: Index) -> Vec<u32> {
        let mut closed = Vec::new();
        for (peer, link) in &mut self.links {
            if link.flush(*peer, store, applied).is_err() {
                closed.push(*peer);
            }
        }
        closed
    }

    /// A link with a backlog and how many free slots in its channel let the
    /// backlog move on: the runtime waits for them. `None` when no link is
    /// waiting for room.
    pub(super) fn waiting_for_room(&self) -> Option<(mpsc::Sender<Frame>, usize)> {
        self.links
            .values()
            .find_map(|l| Some((l.tx.clone(), l.room_needed()?)))
    }

    /// Whether the link to `peer` holds frames back.
    pub(super) fn backlogged(&self, peer: u32) -> bool {
        self.links.get(&peer).is_some_and(|l| !l.backlog.is_empty())
    }
}

impl Link {
    /// Moves the backlog into the channel while there is room; one snapshot
    /// chunk a turn at most: cutting one takes about a millisecond, and
    /// writes and frames are served between two.
    fn flush(&mut self, peer: u32, store: &Store, applied: Index) -> Result<(), LinkLost> {
        let mut cut = false;
        while let Some(queued) = self.backlog.pop_front() {
            let (frame, bytes) = match queued {
                Queued::Frame(frame, bytes) => (frame, bytes),
                Queued::Snapshot(mut stream) => {
                    if stream.done() {
                        metrics::counter!(crate::metrics::SNAPSHOTS_SENT).increment(1);
                        tracing::info!(
                            peer,
                            entries = stream.entries,
                            bytes = stream.bytes,
                            ms = stream.started.elapsed().as_millis() as u64,
                            "snapshot sent"
                        );
                        continue;
                    }
                    let in_channel = self.tx.max_capacity() - self.tx.capacity();
                    let chunk = if in_channel < SNAPSHOT_AHEAD && !cut {
                        stream.next_chunk(store, applied)
                    } else {
                        None
                    };
                    self.backlog.push_front(Queued::Snapshot(stream));
                    let Some(chunk) = chunk else {
                        break; // no room for a chunk, one was cut, or not ready
                    };
                    cut = true;
                    let frame = Frame {
                        kind: Some(frame::Kind::Core(redhac_proto::Core {
                            msg: Some(redhac_proto::core::Msg::Snapshot(chunk)),
                        })),
                    };
                    let bytes = prost::Message::encoded_len(&frame);
                    metrics::counter!(crate::metrics::BYTES_OUT).increment(bytes as u64);
                    // Counted as held back until it leaves, like a frame.
                    self.backlog_bytes += bytes;
                    (frame, bytes)
                }
            };
            self.backlog_bytes -= bytes;
            match self.tx.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(frame)) => {
                    self.backlog_bytes += bytes;
                    self.backlog.push_front(Queued::Frame(frame, bytes));
                    break;
                }
                Err(TrySendError::Closed(_)) => return Err(LinkLost),
            }
        }
        Ok(())
    }

    /// How many free slots wake the runtime for this backlog: one for a
    /// frame; for a snapshot, enough that fewer than `SNAPSHOT_AHEAD`
    /// chunks are left in the channel. `None`: nothing to wait for (an empty
    /// backlog, or a snapshot whose keys are still being listed).
    fn room_needed(&self) -> Option<usize> {
        match self.backlog.front()? {
            Queued::Snapshot(s) if !s.ready() => None,
            Queued::Snapshot(_) => Some(
                (self.tx.max_capacity() + 1)
                    .saturating_sub(SNAPSHOT_AHEAD)
                    .max(1),
            ),
            Queued::Frame(..) => Some(1),
        }
    }
}
