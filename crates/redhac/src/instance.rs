//! A running node: its cache handles, status, health and shutdown, and the
//! state every cache handle shares with it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use redhac_store::{Store, Value};

use crate::builder::Builder;
use crate::cache::Cache;
use crate::config::Config;
use crate::gate::ReadGate;
use crate::loader::KeyLocks;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::status::{Health, Role, Status};
use crate::{Error, Result};

/// How long a shutdown waits for the handover and the tasks.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// State shared by the node and every cache handle.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) loads: BTreeMap<String, Arc<KeyLocks>>,
    /// Writes are accepted until shutdown.
    pub(crate) open: AtomicBool,
    /// Reads are answered while this is open.
    pub(crate) reads: Arc<ReadGate>,
    pub(crate) health: watch::Sender<Health>,
    /// The links and runtime of a cluster member; `None` when standalone.
    pub(crate) cluster: Option<Runtime>,
}

impl Shared {
    /// Whether local reads may be answered.
    #[inline]
    pub(crate) fn serving(&self) -> bool {
        self.reads.open()
    }

    pub(crate) fn cluster(&self) -> Option<&Runtime> {
        self.cluster.as_ref()
    }

    /// The largest encoded value a replicated write may carry.
    pub(crate) fn max_value_size(&self) -> usize {
        self.config.max_value_size
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::ShutDown)
        }
    }
}

/// A running redhac node: the caches of this application instance.
///
/// Cloning gives another handle on the same node.
#[derive(Clone)]
pub struct Redhac {
    shared: Arc<Shared>,
}

impl fmt::Debug for Redhac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redhac")
            .field("config", &self.shared.config)
            .field("store", &self.shared.store)
            .finish()
    }
}

impl Redhac {
    pub(crate) fn new(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Starts building a node.
    pub fn builder() -> Builder {
        Builder {
            config: None,
            caches: Vec::new(),
            cluster: RuntimeOptions::default(),
        }
    }

    /// The typed handle of a registered cache.
    ///
    /// # Errors
    /// [`Error::Store`] with [`StoreError::UnknownCache`](crate::StoreError::UnknownCache) for a name that was
    /// not registered, or [`StoreError::TypeMismatch`](crate::StoreError::TypeMismatch) for another type.
    pub fn cache<V: Value>(&self, name: &str) -> Result<Cache<V>> {
        let typed = self.shared.store.typed::<V>(name)?;
        let loads = self.shared.loads.get(name).cloned().unwrap_or_default();
        Ok(Cache::new(typed, loads, Arc::clone(&self.shared)))
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Health by links, as a watch: `borrow()` for now, `changed()` to wait.
    /// Always [`Health::Good`] in standalone mode.
    pub fn health(&self) -> watch::Receiver<Health> {
        self.shared.health.subscribe()
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> Status {
        match &self.shared.cluster {
            Some(cluster) => Status {
                // The read gate itself, not what the runtime last
                // published: a runtime that died publishes nothing more.
                serving: self.shared.serving(),
                ..cluster.status()
            },
            None => Status::standalone(self.shared.serving()),
        }
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops this node as a crash would (no handover): what
    /// [`crate::testing::TestCluster::kill`] does.
    #[cfg(any(feature = "testing", feature = "test-support"))]
    pub(crate) fn kill(&self) {
        self.shared.open.store(false, Ordering::Release);
        self.shared.reads.close();
        if let Some(cluster) = &self.shared.cluster {
            cluster.abort();
        }
    }

    /// Whether this node works: false after [`Redhac::shutdown`], and false
    /// once its runtime task or a link task died (a bug: the reason is
    /// logged at error level; the node then answers no reads and takes no
    /// writes). What a liveness probe asks: restart the process when false.
    pub fn is_running(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
            && self.shared.cluster().is_none_or(Runtime::running)
    }

    /// The changes of this node's role, leader, health and serving, as
    /// they happen: what an application that routes by leadership, or
    /// reports readiness, waits on instead of polling [`Redhac::status`].
    ///
    /// ```no_run
    /// # async fn f(redhac: redhac::Redhac) {
    /// let mut changes = redhac.watch();
    /// while let Ok(status) = changes.changed().await {
    ///     println!("{:?}, leader {:?}, serving {}", status.role, status.leader, status.serving);
    /// }
    /// // Err: the node shut down.
    /// # }
    /// ```
    pub fn watch(&self) -> StatusWatch {
        StatusWatch {
            node: self.clone(),
            published: self.shared.cluster().map(Runtime::watch_status),
            last: None,
        }
    }

    /// Waits until this node serves reads (a cluster member: it follows a
    /// leader that holds a majority, and caught up), at most `timeout`:
    /// what a readiness probe, or an application that must not start on
    /// empty caches, waits for. At once in standalone mode.
    ///
    /// ```no_run
    /// # async fn f(redhac: redhac::Redhac) -> Result<(), redhac::Error> {
    /// redhac.wait_serving(std::time::Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Timeout`] when it does not serve within `timeout`;
    /// [`Error::ShutDown`] once the node was shut down.
    pub async fn wait_serving(&self, timeout: std::time::Duration) -> Result<()> {
        let mut changes = self.watch();
        let serving = async {
            while !changes.changed().await?.serving {}
            Ok(())
        };
        tokio::time::timeout(timeout, serving)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Hands leadership over to the most up-to-date voter, this member
    /// going on as a follower: before a planned restart or drain of its
    /// process, so the cluster elects while this member still answers, and
    /// the writes in between are held back rather than failed. Returns once
    /// this member follows the new leader (so a [`Redhac::shutdown`] right
    /// after tells that leader it leaves, and its `All` writes stop waiting
    /// for this member's lease): at once when it did not lead, and in
    /// standalone mode. The new leader bounds this member's read lease like
    /// any follower's, so `All` writes stay exact.
    ///
    /// ```no_run
    /// # async fn f(redhac: redhac::Redhac) {
    /// // SIGTERM: move leadership away while requests still drain.
    /// if let Err(e) = redhac.step_down().await {
    ///     eprintln!("keeping leadership: {e}");
    /// }
    /// // ... drain, then:
    /// redhac.shutdown().await.ok();
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Handover`] when no voter is linked, a member runs a release
    /// that cannot tell a step-down from a shutdown, or no voter caught up
    /// within one and a half election timeouts (the handover is given up
    /// and this member leads on, taking writes again);
    /// [`Error::ShutDown`] once the node was shut down.
    pub async fn step_down(&self) -> Result<()> {
        self.shared.check_open()?;
        match self.shared.cluster() {
            Some(cluster) => cluster.step_down().await,
            None => Ok(()),
        }
    }

    /// Every member of the cluster as this node knows it, itself included,
    /// with whether each votes: the static mode's lists, or in the dynamic
    /// mode (`HA_DISCOVER`) the membership as the cluster changed it (a
    /// change shows once this member holds its entry; a new member once it
    /// was added). Empty in standalone mode. The same as
    /// [`Status::members`].
    pub fn members(&self) -> Vec<crate::MemberStatus> {
        self.status().members
    }

    /// The dynamic mode, on the leader: adds the linked member `id` as a
    /// learner (the autopilot adds new members by itself; this is for an
    /// operator who turned it off or will not wait). Returns once the
    /// change committed.
    ///
    /// # Errors
    /// [`Error::Membership`] when refused (the static mode, not the
    /// leader, another change in flight, the member already listed);
    /// [`Error::Timeout`]; [`Error::ShutDown`].
    pub async fn add_learner(&self, id: u32) -> Result<()> {
        self.change(crate::runtime::Change::AddLearner(id)).await
    }

    /// The dynamic mode, on the leader: makes the learner `id` a voter,
    /// once it holds the log up to the commit index. The autopilot may
    /// demote a voter beyond `HA_VOTERS` later.
    ///
    /// # Errors
    /// As [`Redhac::add_learner`], and when `id` is not caught up.
    pub async fn promote(&self, id: u32) -> Result<()> {
        self.change(crate::runtime::Change::Promote(id)).await
    }

    /// The dynamic mode, on the leader: removes member `id` (a learner, or
    /// a voter while a majority of the voters left answers). It stops
    /// counting at once and is told it was removed: a process still running
    /// rejoins as a new member with a new id, which the autopilot adds as a
    /// learner. What an operator does for a member known dead, rather than
    /// waiting for the autopilot to remove it.
    ///
    /// ```no_run
    /// # async fn f(redhac: redhac::Redhac, dead: u32) -> Result<(), redhac::Error> {
    /// redhac.remove(dead).await?;
    /// assert!(redhac.members().iter().all(|m| m.id != dead));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Redhac::add_learner`], and for the leader itself (hand over
    /// first: [`Redhac::step_down`]).
    pub async fn remove(&self, id: u32) -> Result<()> {
        self.change(crate::runtime::Change::Remove(id)).await
    }

    async fn change(&self, change: crate::runtime::Change) -> Result<()> {
        self.shared.check_open()?;
        match self.shared.cluster() {
            Some(cluster) => cluster.change(change, crate::DEFAULT_WRITE_TIMEOUT).await,
            None => Err(Error::Membership(
                "a standalone node has no members to change".into(),
            )),
        }
    }

    /// Stops the node: later writes fail with [`Error::ShutDown`] and reads
    /// miss. Idempotent.
    ///
    /// In HA mode a leader hands leadership over first: it waits at most
    /// 5 s for the handover, then at most 5 s for its tasks to stop. In the
    /// dynamic mode (`HA_DISCOVER`) a member the membership lists then goes
    /// on acknowledging and voting until the leader removed it, serving
    /// nothing: at most `HA_LEAVE_TIMEOUT` (10 election timeouts) more, so
    /// no rolling update or scale-down leaves the voters short of the one
    /// that left. Give the process a grace period above it.
    ///
    /// # Errors
    /// None today: a handover that does not finish in time is given up and
    /// the node stops anyway. The `Result` leaves room for a failure the
    /// caller should see.
    pub async fn shutdown(&self) -> Result<()> {
        if self.shared.open.swap(false, Ordering::AcqRel) {
            self.shared.reads.close();
            if let Some(cluster) = &self.shared.cluster {
                cluster.shutdown(SHUTDOWN_TIMEOUT).await;
            }
            tracing::info!("redhac shut down");
        }
        Ok(())
    }
}

/// Changes of a node's role, leader, health and serving: see
/// [`Redhac::watch`].
#[derive(Debug)]
pub struct StatusWatch {
    node: Redhac,
    /// The runtime's published status; none in standalone mode.
    published: Option<watch::Receiver<Status>>,
    /// What the last answer said.
    last: Option<(Role, Option<u32>, Health, bool)>,
}

impl StatusWatch {
    /// The node's status: at once on the first call, then once its role,
    /// leader, health or serving differs from what the previous call
    /// returned. Changes that come and go between two calls are not
    /// replayed; the status returned is always the current one.
    ///
    /// # Errors
    /// [`Error::ShutDown`] once the node stopped: shut down, or its runtime
    /// task died (a standalone node never changes: after the first call
    /// this waits until shutdown).
    pub async fn changed(&mut self) -> Result<Status> {
        loop {
            self.node.shared.check_open()?;
            let status = self.node.status();
            let now = (status.role, status.leader, status.health, status.serving);
            if self.last != Some(now) {
                self.last = Some(now);
                return Ok(status);
            }
            match self.published.as_mut() {
                // Published on every change (and every tick).
                Some(p) => p.changed().await.map_err(|_| Error::ShutDown)?,
                None => {
                    // Standalone: serving ends only with shutdown.
                    while self.node.shared.check_open().is_ok() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}
