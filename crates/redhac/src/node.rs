//! The node: builder, start, cache handles, shutdown.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use redhac_store::{CacheOptions, Store, StoreBuilder, StoreError, Value};

use crate::cache::Cache;
use crate::config::Config;
use crate::gate::ReadGate;
use crate::loader::KeyLocks;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::status::{Health, Status};
use crate::{Error, Result};

/// How long a shutdown waits for the handover and the tasks.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

type Register = Box<dyn FnOnce(&mut StoreBuilder) -> Result<(), StoreError> + Send>;

/// Collects the configuration and the caches, then starts a node.
///
/// ```
/// use std::time::Duration;
/// use redhac::{CacheOptions, Config, Redhac};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let redhac = Redhac::builder()
///     .config(Config::default())
///     .cache::<String>("sessions", CacheOptions::default().time_to_live(Duration::from_secs(900)))
///     .start()
///     .await?;
/// let sessions = redhac.cache::<String>("sessions")?;
/// sessions.put("alice", "token-1".to_string()).await?;
/// assert_eq!(sessions.get("alice").as_deref().map(String::as_str), Some("token-1"));
/// redhac.shutdown().await?;
/// # Ok::<(), redhac::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a builder does nothing until start() is awaited"]
pub struct Builder {
    config: Option<Config>,
    caches: Vec<(String, Register)>,
    cluster: RuntimeOptions,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field(
                "caches",
                &self.caches.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Builder {
    /// Sets the configuration. Default: [`Config::default()`], a standalone
    /// cache (the environment is only read through [`Config::from_env`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// HA mode: listen for members on this already bound listener instead of
    /// binding the port of this member's `HA_HOSTS` entry on all interfaces.
    /// Tests bind `127.0.0.1:0` first, then write `HA_HOSTS` with the ports.
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.cluster.listener = Some(listener);
        self
    }

    /// HA mode: the name that finds this member in `HA_HOSTS` (`host` or
    /// `host:port`). Default: `HOSTNAME_OVERWRITE`, else the OS hostname.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.cluster.hostname = Some(name.into());
        self
    }

    /// HA mode, advanced: the cluster core's timeouts and limits. Default:
    /// [`Timing::new`](redhac_membership::Timing::new) of
    /// `CACHE_ELECTION_TIMEOUT`. Every member should use the same.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut timing = redhac::Timing::new(Duration::from_secs(2));
    /// timing.log_capacity = 1024; // fall back to snapshots sooner
    /// let builder = redhac::Redhac::builder().timing(timing);
    /// # drop(builder);
    /// ```
    pub fn timing(mut self, timing: redhac_membership::Timing) -> Self {
        self.cluster.timing = Some(timing);
        self
    }

    /// Registers a cache of `V` values under `name`. Every member of a
    /// cluster must register the same caches with the same types.
    pub fn cache<V: Value>(mut self, name: impl Into<String>, options: CacheOptions) -> Self {
        let name = name.into();
        let n = name.clone();
        self.caches.push((
            name,
            Box::new(move |store: &mut StoreBuilder| store.add::<V>(&n, options)),
        ));
        self
    }

    /// Validates the configuration, creates the caches and starts the node.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::Store`] for a
    /// cache registered twice or with invalid options.
    pub async fn start(self) -> Result<Redhac> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let mut store = Store::builder();
        let mut loads = BTreeMap::new();
        for (name, register) in self.caches {
            register(&mut store)?;
            loads.insert(name, Arc::new(KeyLocks::default()));
        }
        let store = store.build();
        let caches: Vec<&String> = loads.keys().collect();
        let (health, _) = watch::channel(Health::Good);
        let (reads, cluster) = if config.ha_mode {
            let reads = Arc::new(ReadGate::closed());
            let cluster = Runtime::start(
                &config,
                self.cluster,
                store.clone(),
                Arc::clone(&reads),
                health.clone(),
            )
            .await?;
            tracing::info!(?caches, "redhac started as a cluster member");
            (reads, Some(cluster))
        } else {
            tracing::info!(?caches, "redhac started in standalone mode");
            (Arc::new(ReadGate::always_open()), None)
        };
        Ok(Redhac {
            shared: Arc::new(Shared {
                config,
                store,
                loads,
                open: AtomicBool::new(true),
                reads,
                health,
                cluster,
            }),
        })
    }
}

/// State shared by the node and every cache handle.
pub(crate) struct Shared {
    config: Config,
    store: Store,
    loads: BTreeMap<String, Arc<KeyLocks>>,
    /// Writes are accepted until shutdown.
    open: AtomicBool,
    /// Reads are answered while this is open.
    reads: Arc<ReadGate>,
    health: watch::Sender<Health>,
    /// The links and runtime of a cluster member; `None` when standalone.
    cluster: Option<Runtime>,
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
    /// [`Error::Store`] with [`StoreError::UnknownCache`] for a name that was
    /// not registered, or [`StoreError::TypeMismatch`] for another type.
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
            Some(cluster) => cluster.status(),
            None => Status::standalone(self.shared.serving()),
        }
    }

    /// Stops the node: later writes fail with [`Error::ShutDown`] and reads
    /// miss. Idempotent.
    ///
    /// # Errors
    /// None in standalone mode; the signature leaves room for the HA handover.
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
