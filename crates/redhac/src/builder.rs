//! The builder: configuration and caches in, a started node out.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use redhac_store::{CacheOptions, Store, StoreBuilder, StoreError, Value};

use crate::Result;
use crate::config::Config;
use crate::gate::ReadGate;
use crate::instance::{Redhac, Shared};
use crate::loader::KeyLocks;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::status::Health;

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
    pub(crate) config: Option<Config>,
    pub(crate) caches: Vec<(String, Register)>,
    pub(crate) cluster: RuntimeOptions,
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

    /// The dynamic mode (`HA_DISCOVER`), advanced: what the leader's
    /// autopilot keeps and when it acts. Default:
    /// [`Autopilot::new`](redhac_membership::Autopilot::new) of `HA_VOTERS`
    /// and `CACHE_ELECTION_TIMEOUT` (a voter silent for 5 election timeouts
    /// is replaced, a member silent for 30 removed, a member shutting down
    /// waits 10 at most to be removed).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut autopilot = redhac::Autopilot::new(3, Duration::from_secs(2));
    /// autopilot.remove_after = Duration::from_secs(300); // keep a silent member longer
    /// let builder = redhac::Redhac::builder().autopilot(autopilot);
    /// # drop(builder);
    /// ```
    pub fn autopilot(mut self, autopilot: redhac_membership::Autopilot) -> Self {
        self.cluster.autopilot = Some(autopilot);
        self
    }

    /// HA mode, tests only: speak these wire protocol versions instead of
    /// this release's, to play another release in an upgrade.
    #[cfg(feature = "test-support")]
    pub fn protocol_versions(mut self, versions: std::ops::RangeInclusive<u32>) -> Self {
        self.cluster.protocol_versions = Some(versions);
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
    /// [`Error::Config`](crate::Error::Config) for an invalid configuration, [`Error::Store`](crate::Error::Store) for a
    /// cache registered twice or with invalid options.
    pub async fn start(self) -> Result<Redhac> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        crate::metrics::describe();
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
        Ok(Redhac::new(Shared {
            config,
            store,
            loads,
            open: AtomicBool::new(true),
            reads,
            health,
            cluster,
        }))
    }
}
