//! The runtime task: owns the links and (once it lands) the cluster core.
//!
//! It tracks one link per member, replacing an older link when a newer one
//! comes up, and derives health from them (DESIGN §2): Good with a link to
//! every member, Degraded with links to a majority (this member included),
//! Bad with fewer, in which case it clears every cache. Frames to a peer go
//! through that link's bounded channel; a peer that does not keep up loses its
//! link rather than being buffered for.

use std::collections::BTreeMap;
use std::sync::Arc;

use redhac_proto::{Frame, LookupResponse, frame};
use redhac_store::{Origin, Store};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use super::{Request, WriteOp};
use crate::gate::ReadGate;
use crate::status::{Health, MemberStatus, Role, Status};
use crate::transport::link::{LinkEvent, PeerHello, stopped};
use crate::{Error, Result};
use redhac_membership::HostEntry;

/// What the driver is built from.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) me: u32,
    pub(crate) members: Vec<HostEntry>,
    pub(crate) store: Store,
    pub(crate) gate: Arc<ReadGate>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) status: watch::Sender<Status>,
}

/// An authenticated link to a peer.
#[derive(Debug)]
struct Link {
    id: u64,
    tx: mpsc::Sender<Frame>,
    /// What the peer said at connect (generation, election state): the core's
    /// input once it lands.
    #[allow(dead_code)]
    hello: PeerHello,
}

/// The runtime task's state.
#[derive(Debug)]
pub(crate) struct Driver {
    parts: Parts,
    links: BTreeMap<u32, Link>,
    health: Health,
}

/// Health by links, counting this member as linked to itself.
pub(crate) fn health_by_links(linked: usize, members: usize) -> Health {
    if linked >= members {
        Health::Good
    } else if linked > members / 2 {
        Health::Degraded
    } else {
        Health::Bad
    }
}

impl Driver {
    pub(crate) fn new(parts: Parts) -> Result<Self> {
        let health = health_by_links(1, parts.members.len());
        let driver = Self {
            parts,
            links: BTreeMap::new(),
            health,
        };
        driver.parts.health.send_replace(health);
        driver.publish_status();
        Ok(driver)
    }

    /// Runs until shutdown.
    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<LinkEvent>,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                Some(event) = events.recv() => self.on_link(event),
                Some(request) = requests.recv() => self.on_request(request),
                () = stopped(&mut stop) => break,
            }
        }
        self.links.clear();
        self.parts.gate.close();
        tracing::info!(me = self.parts.me, "cluster runtime stopped");
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Up {
                peer,
                link,
                hello,
                tx,
            } => {
                if let Some(old) = self.links.insert(
                    peer,
                    Link {
                        id: link,
                        tx,
                        hello,
                    },
                ) {
                    tracing::debug!(
                        peer,
                        old = old.id,
                        new = link,
                        "a newer link replaces the old one"
                    );
                }
            }
            LinkEvent::Down { peer, link, reason } => {
                if self.links.get(&peer).is_some_and(|l| l.id == link) {
                    self.links.remove(&peer);
                    tracing::debug!(peer, link, %reason, "link removed");
                }
            }
            LinkEvent::Frame { peer, link, frame } => self.on_frame(peer, link, frame),
        }
        self.update_health();
    }

    fn on_frame(&mut self, peer: u32, link: u64, frame: frame::Kind) {
        if self.links.get(&peer).is_none_or(|l| l.id != link) {
            return; // from a link already replaced
        }
        match frame {
            // Not serving (no core yet): a lookup finds nothing here.
            frame::Kind::LookupRequest(r) => self.send(
                peer,
                frame::Kind::LookupResponse(LookupResponse {
                    id: r.id,
                    value: None,
                    ttl_ms: None,
                }),
            ),
            frame::Kind::LookupResponse(_) | frame::Kind::Core(_) => {}
            frame::Kind::Hello(_) | frame::Kind::Auth(_) => {
                tracing::warn!(peer, "a handshake frame on an open link; closing it");
                self.links.remove(&peer);
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Write { op, ack, reply } => {
                let cache = match &op {
                    WriteOp::Put { cache, .. }
                    | WriteOp::Delete { cache, .. }
                    | WriteOp::Clear { cache } => cache,
                };
                tracing::debug!(cache, ?ack, "write refused: no cluster core yet");
                let _ = reply.send(match self.parts.store.erased(cache) {
                    Err(e) => Err(e.into()),
                    Ok(_) => Err(Error::Unsupported(
                        "replicated writes need the cluster core, which is not built yet; run with HA_MODE=false",
                    )),
                });
            }
            Request::Lookup { cache, key, reply } => {
                tracing::trace!(cache, key, "lookup: no leader to ask yet");
                let _ = reply.send(
                    self.parts
                        .store
                        .erased(&cache)
                        .map(|_| None)
                        .map_err(Into::into),
                );
            }
            Request::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// Sends to a peer without waiting: a full channel means the peer does not
    /// keep up, and it loses its link instead of being buffered for.
    fn send(&mut self, peer: u32, kind: frame::Kind) {
        let Some(link) = self.links.get(&peer) else {
            return;
        };
        match link.tx.try_send(Frame { kind: Some(kind) }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    peer,
                    "peer does not keep up with its link; dropping the link"
                );
                self.links.remove(&peer);
                self.update_health();
            }
            Err(TrySendError::Closed(_)) => {
                self.links.remove(&peer);
                self.update_health();
            }
        }
    }

    fn update_health(&mut self) {
        let health = health_by_links(self.links.len() + 1, self.parts.members.len());
        let changed = health != self.health;
        if changed {
            tracing::info!(me = self.parts.me, from = ?self.health, to = ?health, links = self.links.len(), "health changed");
            if health == Health::Bad {
                // Cut off from a majority: nothing here can be proven current.
                self.parts.gate.close();
                self.parts.store.clear_all(Origin::Local);
            }
            self.health = health;
        }
        // Status first: whoever wakes on the health watch sees a status that
        // already agrees with it.
        self.publish_status();
        metrics::gauge!(crate::metrics::LINKS_CONNECTED).set(self.links.len() as f64);
        metrics::gauge!(crate::metrics::HEALTH).set(match health {
            Health::Good => 2.0,
            Health::Degraded => 1.0,
            Health::Bad => 0.0,
        });
        if changed {
            self.parts.health.send_replace(health);
        }
    }

    fn publish_status(&self) {
        let members = self
            .parts
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberStatus {
                id: i as u32,
                address: m.to_string(),
                connected: i as u32 == self.parts.me || self.links.contains_key(&(i as u32)),
                lag: None,
            })
            .collect();
        self.parts.status.send_replace(Status {
            me: self.parts.me,
            term: 0,
            role: Role::Follower,
            leader: None,
            health: self.health,
            serving: self.parts.gate.open(),
            members,
            applied_index: 0,
            commit_index: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_by_links_table() {
        // (linked including me, members, health)
        for (linked, members, health) in [
            (1, 1, Health::Good),
            (3, 3, Health::Good),
            (2, 3, Health::Degraded),
            (1, 3, Health::Bad),
            (5, 5, Health::Good),
            (3, 5, Health::Degraded),
            (2, 5, Health::Bad),
            (2, 4, Health::Bad),
            (3, 4, Health::Degraded),
        ] {
            assert_eq!(
                health_by_links(linked, members),
                health,
                "{linked} of {members}"
            );
        }
    }
}
