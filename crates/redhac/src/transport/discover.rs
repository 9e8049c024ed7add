//! The dynamic mode's discovery: `HA_DISCOVER`'s names looked up again and
//! again, a dial task for every address found, and how many other members
//! that makes (what the core's bootstrap waits for).
//!
//! Any two members that find each other may dial each other; the runtime
//! keeps one link per pair (the one the smaller id dialled, else the first
//! up), and a dial task whose address leads to a member already linked
//! waits until that link ends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redhac_membership::HostEntry;
use tokio::sync::{Notify, watch};

use super::dial::{Target, dial};
use super::link::{LinkSetup, stopped};

/// No member is known behind the address yet.
const UNKNOWN: u64 = u64::MAX;
/// The address leads to this member itself.
const MYSELF: u64 = u64::MAX - 1;

/// How often a dial task waiting for a linked member's link to end looks
/// again whether discovery still lists its address.
const RECHECK: Duration = Duration::from_secs(1);

/// The longest a lookup may take before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// An address discovery found, shared by its dial task and discovery.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) addr: SocketAddr,
    /// Whether discovery still lists it: once not, its task dials no more
    /// (a link it holds lasts until it ends).
    listed: AtomicBool,
    /// Who answered there last ([`UNKNOWN`], [`MYSELF`], or a member id).
    member: AtomicU64,
    /// Wakes discovery to count again.
    learnt: Arc<Notify>,
}

impl Found {
    /// The member at this address answered: `member`.
    pub(crate) fn leads_to(&self, member: u32) {
        self.set(u64::from(member));
    }

    /// This address leads to this member itself.
    pub(crate) fn is_myself(&self) {
        self.set(MYSELF);
    }

    fn set(&self, who: u64) {
        if self.member.swap(who, Ordering::AcqRel) != who {
            self.learnt.notify_one();
        }
    }

    /// Who answered there last.
    fn who(&self) -> u64 {
        self.member.load(Ordering::Acquire)
    }

    /// Waits while the member at this address is linked already (through
    /// another address, or it dialled this member); false once discovery
    /// lists the address no more or the node stops.
    pub(crate) async fn wait_turn(
        &self,
        setup: &LinkSetup,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut linked = setup.state.linked.clone();
        loop {
            if !self.listed.load(Ordering::Acquire) || *shutdown.borrow() {
                return false;
            }
            let who = self.who();
            let busy = u32::try_from(who).is_ok_and(|m| linked.borrow_and_update().contains(&m));
            if !busy {
                return true;
            }
            tokio::select! {
                changed = linked.changed() => if changed.is_err() {
                    return false;
                },
                () = tokio::time::sleep(RECHECK) => {}
                () = stopped(shutdown) => return false,
            }
        }
    }
}

/// What discovery works from.
#[derive(Debug)]
pub(crate) struct Discovery {
    /// `HA_DISCOVER`'s entries.
    pub(crate) entries: Vec<HostEntry>,
    /// How often they are looked up.
    pub(crate) interval: Duration,
    /// This member's own addresses, when known (`HA_ADVERTISE`, the
    /// listener's address): never dialled.
    pub(crate) myself: Vec<SocketAddr>,
}

/// Looks `discovery`'s names up every interval, keeps a dial task on every
/// address found, and publishes in `peers` how many other members that
/// makes, until the node stops.
pub(crate) async fn discover(
    setup: Arc<LinkSetup>,
    discovery: Discovery,
    peers: watch::Sender<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let learnt = Arc::new(Notify::new());
    let mut found: BTreeMap<SocketAddr, Arc<Found>> = BTreeMap::new();
    // Each entry's addresses at its last good lookup: an entry whose lookup
    // fails keeps them (a DNS hiccup must not drop live members).
    let mut by_entry: Vec<BTreeSet<SocketAddr>> = vec![BTreeSet::new(); discovery.entries.len()];
    let mut failing = false;
    // Until every name was looked up once, nothing is published: a member
    // must not take "no other member" for what discovery found.
    let mut looked_up = vec![false; discovery.entries.len()];
    let mut next_lookup = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_lookup {
            let failed = tokio::select! {
                failed = lookup_all(&discovery.entries, &mut by_entry, &mut looked_up) => failed,
                () = stopped(&mut shutdown) => return,
            };
            if failed != failing {
                if failed {
                    tracing::warn!(
                        "discovery: an HA_DISCOVER name cannot be looked up; keeping the \
                         addresses it had (check the name and the DNS service)"
                    );
                } else {
                    tracing::info!("discovery: every HA_DISCOVER name is looked up again");
                }
                failing = failed;
            }
            let now: BTreeSet<SocketAddr> = by_entry
                .iter()
                .flatten()
                .filter(|a| !discovery.myself.contains(a))
                .copied()
                .collect();
            update(&setup, &mut found, &now, &learnt, &shutdown);
            next_lookup = tokio::time::Instant::now() + discovery.interval;
        }
        if looked_up.iter().all(|l| *l) {
            let count = others(found.values().map(|f| f.who()));
            peers.send_if_modified(|n| std::mem::replace(n, count) != count);
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_lookup) => {}
            () = learnt.notified() => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Looks every entry up, noting in `looked_up` those that answered; true
/// when one failed (its addresses stay).
async fn lookup_all(
    entries: &[HostEntry],
    by_entry: &mut [BTreeSet<SocketAddr>],
    looked_up: &mut [bool],
) -> bool {
    let mut failed = false;
    for ((entry, addrs), done) in entries.iter().zip(by_entry).zip(looked_up) {
        let host = entry.host.trim_start_matches('[').trim_end_matches(']');
        let lookup = tokio::net::lookup_host((host, entry.port));
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(found)) => {
                *addrs = found.collect();
                *done = true;
            }
            Ok(Err(e)) => {
                tracing::debug!(entry = %entry, error = %e, "discovery: lookup failed");
                failed = true;
            }
            Err(_) => {
                tracing::debug!(entry = %entry, "discovery: lookup timed out");
                failed = true;
            }
        }
    }
    failed
}

/// Starts a dial task on every new address, and tells the tasks of the
/// addresses gone to dial no more.
fn update(
    setup: &Arc<LinkSetup>,
    found: &mut BTreeMap<SocketAddr, Arc<Found>>,
    now: &BTreeSet<SocketAddr>,
    learnt: &Arc<Notify>,
    shutdown: &watch::Receiver<bool>,
) {
    let before = found.len();
    found.retain(|addr, f| {
        let keep = now.contains(addr);
        if !keep {
            f.listed.store(false, Ordering::Release);
        }
        keep
    });
    let gone = before - found.len();
    let mut new = 0;
    for addr in now {
        if found.contains_key(addr) {
            continue;
        }
        new += 1;
        let f = Arc::new(Found {
            addr: *addr,
            listed: AtomicBool::new(true),
            member: AtomicU64::new(UNKNOWN),
            learnt: Arc::clone(learnt),
        });
        found.insert(*addr, Arc::clone(&f));
        let dialling = dial(Arc::clone(setup), Target::Address(f), shutdown.clone());
        tokio::spawn(crate::runtime::guarded("dial", dialling, || {}));
    }
    if new > 0 || gone > 0 {
        tracing::info!(
            addresses = found.len(),
            new,
            gone,
            before,
            "discovery: the members' addresses changed"
        );
    }
}

/// How many other members the answers behind the addresses make: each
/// member once, an address not answered yet as one, this member none.
fn others(who: impl Iterator<Item = u64>) -> usize {
    let mut members = BTreeSet::new();
    let mut unknown = 0;
    for w in who {
        match w {
            MYSELF => {}
            UNKNOWN => unknown += 1,
            m => {
                members.insert(m);
            }
        }
    }
    members.len() + unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_member_once_and_leaves_itself_out() {
        assert_eq!(others([].into_iter()), 0);
        // Two addresses of one member (IPv4 and IPv6), one not answered
        // yet, this member's own.
        assert_eq!(others([7, 7, UNKNOWN, MYSELF, 9].into_iter()), 3);
        assert_eq!(others([MYSELF].into_iter()), 0);
    }
}
