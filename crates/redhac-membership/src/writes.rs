//! Client writes: routing to the leader, ack levels, resolution, timeouts.
//!
//! A write is routed to the leader (appended when this node leads, else
//! forwarded over the leader's link, else queued until a leader is known).
//! Once ordered at a (term, index) it resolves by its ack level: `Leader` at
//! once; `Quorum` when this node applied that very entry (it applies only
//! committed entries, so a majority holds it: read-your-writes); `All` when,
//! in addition, the leader reports every member applied it or provably
//! stopped serving. An entry truncated away is routed again.

use std::sync::Arc;
use std::time::Duration;

use crate::events::Output;
use crate::faults::broken;
use crate::leading::Leading;
use crate::message::Message;
use crate::node::Node;
use crate::types::{
    Ack, Health, Index, LogId, MemberId, NodeRole, Op, Request, RequestId, Term, WriteError,
};

/// Where a write is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Waiting for a leader (not before the given time).
    Queued(Duration),
    /// Sent to the leader of `term`.
    Forwarded(MemberId, Term),
    /// Refused by the leader of `term` (it is handing over): sent again to
    /// the next leader as soon as one is known, or to the same one at the
    /// given time.
    Refused(MemberId, Term, Duration),
    /// Ordered at `at`; for `All`, whether the leader reported every member
    /// done, and which leader (and term) was asked.
    Ordered {
        at: LogId,
        all_done: bool,
        asked: Option<(MemberId, Term)>,
        /// This node applied it, its entry in the log then: it is committed
        /// there for good, even once compaction took the entry (and a later
        /// term's base says nothing of it).
        applied: bool,
    },
}

/// A write made on this node and not yet resolved.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    op: Arc<Op>,
    ack: Ack,
    deadline: Duration,
    route: Route,
}

impl Node {
    pub(crate) fn propose(&mut self, id: RequestId, op: Arc<Op>, ack: Ack, deadline: Duration) {
        let refuse = if self.shutting_down {
            Some(WriteError::ShuttingDown)
        } else if self.health == Health::Bad {
            Some(WriteError::NoQuorum)
        } else if let Op::Membership(next) = &*op {
            self.admit_change(next).err().map(WriteError::Membership)
        } else {
            None
        };
        if let Some(e) = refuse {
            self.out.push(Output::Resolve { id, result: Err(e) });
            return;
        }
        if ack == Ack::None {
            self.out.push(Output::Resolve {
                id,
                result: Ok(None),
            });
        }
        self.pending.insert(
            id,
            Pending {
                op,
                ack,
                deadline,
                route: Route::Queued(Duration::ZERO),
            },
        );
        self.route(id);
    }

    /// Appends (as leader) or forwards a queued write. A membership change
    /// is appended only by the leader, and only when it may be (see
    /// `Node::admit_change`).
    fn route(&mut self, id: RequestId) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let (op, ack) = (Arc::clone(&p.op), p.ack);
        if let Op::Membership(next) = &*op
            && let Err(e) = self.admit_change(next)
        {
            // Refused when routed again (its entry was truncated away).
            self.pending.remove(&id);
            if ack != Ack::None {
                self.out.push(Output::Resolve {
                    id,
                    result: Err(WriteError::Membership(e)),
                });
            }
            return;
        }
        if self.leading.as_ref().is_some_and(Leading::takes_writes) {
            let request = Request {
                incarnation: self.incarnation,
                id,
            };
            // Forwarded before this node led, its entry may be here already.
            let at = match self.log.find(self.me, request) {
                Some(at) if !broken!(self, forwards_ordered_twice) => at,
                _ => self.append_local(op, self.me, Some(request)),
            };
            if ack == Ack::All
                && let Some(lead) = self.leading.as_mut()
            {
                lead.awaiting_all.push((None, id, at.index));
            }
            self.ordered(id, at, None);
        } else if let Some(leader) = self.leader.filter(|l| self.links.contains_key(l)) {
            self.send(leader, Message::Forward { id, op, ack });
            let term = self.term;
            match ack {
                Ack::None => {
                    self.pending.remove(&id);
                }
                _ => self.set_route(id, Route::Forwarded(leader, term)),
            }
        }
    }

    fn set_route(&mut self, id: RequestId, route: Route) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.route = route;
        }
    }

    /// The write `id` is at `at`.
    fn ordered(&mut self, id: RequestId, at: LogId, asked: Option<(MemberId, Term)>) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        match p.ack {
            Ack::None => {
                self.pending.remove(&id);
            }
            Ack::Leader => {
                self.pending.remove(&id);
                self.out.push(Output::Resolve {
                    id,
                    result: Ok(Some(at)),
                });
            }
            Ack::Quorum | Ack::All => {
                p.route = Route::Ordered {
                    at,
                    all_done: false,
                    asked,
                    applied: false,
                };
            }
        }
    }

    pub(crate) fn on_forward(&mut self, from: MemberId, id: RequestId, op: Arc<Op>, ack: Ack) {
        let request = self.links.get(&from).map(|h| Request {
            incarnation: h.incarnation,
            id,
        });
        // Sent again (the answer was lost with a link, or the write went to
        // the leader before this one): the entry that holds it answers.
        // Ordered twice, it could land after a later write to its key.
        let ordered = request
            .filter(|_| self.leading.is_some() && !broken!(self, forwards_ordered_twice))
            .and_then(|r| self.log.find(from, r));
        let at = match ordered {
            Some(at) => at,
            None => {
                let refused_change =
                    matches!(&*op, Op::Membership(next) if self.admit_change(next).is_err());
                if !self.leading.as_ref().is_some_and(Leading::takes_writes) || refused_change {
                    self.send(from, Message::Refused { id });
                    return;
                }
                self.append_local(op, from, request)
            }
        };
        if ack == Ack::None {
            return;
        }
        if ack == Ack::All
            && let Some(lead) = self.leading.as_mut()
            && !lead.awaiting_all.contains(&(Some(from), id, at.index))
        {
            lead.awaiting_all.push((Some(from), id, at.index));
        }
        self.send(from, Message::Accepted { id, at });
    }

    pub(crate) fn on_accepted(&mut self, from: MemberId, id: RequestId, at: LogId) {
        if let Some(Route::Forwarded(..)) = self.pending.get(&id).map(|p| &p.route) {
            let term = self.term;
            self.ordered(id, at, Some((from, term)));
        }
    }

    pub(crate) fn on_refused(&mut self, id: RequestId) {
        if let Some(&Route::Forwarded(to, term)) = self.pending.get(&id).map(|p| &p.route) {
            let retry = self.now + self.timing.heartbeat;
            self.set_route(id, Route::Refused(to, term, retry));
        }
    }

    pub(crate) fn on_all_done(&mut self, id: RequestId, index: Index) {
        if let Some(p) = self.pending.get_mut(&id)
            && let Route::Ordered { all_done, at, .. } = &mut p.route
            && at.index == index
        {
            *all_done = true;
        }
    }

    /// The link to `peer` closed: what was forwarded to it may be lost.
    pub(crate) fn requeue_forwarded_to(&mut self, peer: MemberId) {
        for p in self.pending.values_mut() {
            if matches!(p.route, Route::Forwarded(to, _) | Route::Refused(to, ..) if to == peer) {
                p.route = Route::Queued(Duration::ZERO);
            }
        }
    }

    /// After every input: route, resolve and expire writes; answer `All`
    /// waiters (leader); trim the log.
    pub(crate) fn settle(&mut self) {
        self.check_awaiting_all();
        let ids: Vec<RequestId> = self.pending.keys().copied().collect();
        for id in ids {
            self.settle_one(id);
        }
        self.compact();
    }

    fn settle_one(&mut self, id: RequestId) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let ack = p.ack;
        if self.now >= p.deadline {
            // An `Ack::None` write resolved when proposed; one that found no
            // leader before its deadline is dropped.
            if p.ack != Ack::None {
                let result = Err(WriteError::Timeout);
                self.out.push(Output::Resolve { id, result });
            }
            self.pending.remove(&id);
            return;
        }
        match p.route.clone() {
            Route::Queued(not_before) => {
                if self.now >= not_before {
                    self.route(id);
                }
            }
            Route::Refused(by, term, retry) => {
                let next_leader = self.leader.is_some_and(|l| l != by) || self.term != term;
                if next_leader || self.now >= retry {
                    self.set_route(id, Route::Queued(Duration::ZERO));
                    self.route(id);
                }
            }
            Route::Forwarded(to, term) => {
                if self.leader != Some(to) || self.term != term {
                    self.set_route(id, Route::Queued(Duration::ZERO));
                    self.route(id);
                }
            }
            Route::Ordered {
                at,
                all_done,
                asked,
                applied: seen,
            } => {
                // A snapshot may have covered it: an entry of the same term
                // at or before the log's start is in the committed prefix
                // (a term has one leader, whose entries never change).
                let base = self.log.base();
                let covered = at.index <= base.index && at.term == base.term;
                // The leader of this term answered that its log holds `at`
                // (it never drops its own entries), and this node applied
                // that far: it is committed there, whatever this log's base.
                let vouched = asked
                    .is_some_and(|(by, term)| term == self.term && self.leader == Some(by))
                    && self.applied >= at.index;
                let applied =
                    seen || vouched || self.applied >= at.index && (self.log.has(at) || covered);
                let last = self.log.last();
                // Another entry holds its place, or a later term's entries
                // end before it (terms never decrease along a log), or a
                // snapshot jumped over it unseen.
                let gone = self.log.term_at(at.index).is_some_and(|t| t != at.term)
                    || (at.index > last.index && last.term > at.term)
                    || (at.index <= self.log.base().index && !applied);
                if gone {
                    // A new leader truncated it: route it again.
                    self.set_route(id, Route::Queued(Duration::ZERO));
                    self.route(id);
                    return;
                }
                if !applied {
                    return;
                }
                if !seen && !broken!(self, forget_applied_writes) {
                    self.set_route(
                        id,
                        Route::Ordered {
                            at,
                            all_done,
                            asked,
                            applied: true,
                        },
                    );
                }
                if ack == Ack::Quorum || all_done {
                    self.pending.remove(&id);
                    self.out.push(Output::Resolve {
                        id,
                        result: Ok(Some(at)),
                    });
                } else if self.role != NodeRole::Leader
                    && let Some(leader) = self.leader.filter(|l| self.links.contains_key(l))
                    && asked != Some((leader, self.term))
                {
                    // The leader that ordered it is gone; ask the new one.
                    let index = at.index;
                    self.send(leader, Message::AwaitAll { id, index });
                    let term = self.term;
                    self.set_route(
                        id,
                        Route::Ordered {
                            at,
                            all_done,
                            asked: Some((leader, term)),
                            applied: true,
                        },
                    );
                } else if asked.is_some()
                    && let Some(lead) = self.leading.as_mut()
                    && !lead
                        .awaiting_all
                        .iter()
                        .any(|(o, i, _)| o.is_none() && *i == id)
                {
                    // Forwarded earlier, and this node leads now.
                    lead.awaiting_all.push((None, id, at.index));
                    self.set_route(
                        id,
                        Route::Ordered {
                            at,
                            all_done,
                            asked: None,
                            applied: true,
                        },
                    );
                }
            }
        }
    }

    /// Every other member applied `index` or provably stopped serving.
    fn all_applied_or_expired(&self, index: Index) -> bool {
        let Some(lead) = self.leading.as_ref() else {
            return false;
        };
        let members = self.configs.current();
        self.commit >= index
            && members.all().filter(|&m| m != self.me).all(|m| {
                lead.progress.get(&m).is_some_and(|p| p.applied >= index)
                    || self.now >= lead.lease_bound(m, self.timing.read_lease)
                    || broken!(self, all_ignores_leases)
            })
            && self.departed_leases_over(members.removed_any())
    }

    /// Members no longer listed serve no more: each removed while this node
    /// led holds no lease past the bound it had then (it was sent nothing
    /// since), and any removed before holds none granted by an earlier
    /// leader past a read lease after this one's election.
    fn departed_leases_over(&self, removed_any: bool) -> bool {
        let Some(lead) = self.leading.as_ref() else {
            return false;
        };
        if broken!(self, forget_departed_leases) {
            return true;
        }
        let l = self.timing.read_lease;
        lead.departed.values().all(|bound| self.now >= *bound)
            && (!removed_any || self.now >= lead.since + l + crate::timing::Timing::drift_margin(l))
    }

    /// Answers the `All` writes whose entry every member applied or whose
    /// leases ran out (leader).
    fn check_awaiting_all(&mut self) {
        let Some(lead) = self.leading.as_mut() else {
            return;
        };
        if lead.awaiting_all.is_empty() {
            return;
        }
        // Both lists keep their buffers from turn to turn.
        let mut waiting = std::mem::take(&mut lead.awaiting_all);
        let mut done = std::mem::take(&mut lead.all_done);
        waiting.retain(|&(origin, id, index)| {
            let answered = self.all_applied_or_expired(index);
            if answered {
                done.push((origin, id, index));
            }
            !answered
        });
        if let Some(lead) = self.leading.as_mut() {
            lead.awaiting_all = waiting;
        }
        for &(origin, id, index) in &done {
            match origin {
                None => self.on_all_done(id, index),
                Some(peer) => self.send(peer, Message::AllDone { id, index }),
            }
        }
        done.clear();
        if let Some(lead) = self.leading.as_mut() {
            lead.all_done = done;
        }
    }
}
