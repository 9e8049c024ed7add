//! An in-process cluster for an application's own tests (feature `testing`).
//!
//! [`TestCluster`] starts `n` members on 127.0.0.1, plaintext, each behind a
//! fault-injecting [`Proxy`], and lets a test wait for a leader, crash,
//! stop and restart a member, and cut a member off, while the application's
//! code talks to the members' caches as it would in production.
//!
//! ```
//! use std::time::Duration;
//! use redhac::CacheOptions;
//! use redhac::testing::TestCluster;
//!
//! # #[tokio::main] async fn main() -> Result<(), redhac::Error> {
//! let mut cluster = TestCluster::start(3, |b| {
//!     b.cache::<String>("sessions", CacheOptions::default())
//! })
//! .await?;
//! let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
//! let follower = (leader + 1) % 3;
//! let sessions = cluster.member(follower).cache::<String>("sessions")?;
//! sessions.put("sid-1", "alice".to_owned()).await?;
//!
//! // The leader crashes: the others elect anew and keep the value.
//! cluster.kill(leader);
//! cluster.wait_leader(Duration::from_secs(10)).await?;
//! assert_eq!(sessions.get("sid-1").as_deref().map(String::as_str), Some("alice"));
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

mod proxy;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

pub use proxy::Proxy;

use crate::{Builder, Config, Error, Redhac, Result, Role};

/// The token the members of a [`TestCluster`] share.
pub const TOKEN: &str = "a-test-cluster-token-0123456789";

type Register = Arc<dyn Fn(Builder) -> Builder + Send + Sync>;

/// `n` members in this process on 127.0.0.1 (see the module docs).
pub struct TestCluster {
    members: Vec<Option<Redhac>>,
    proxies: Vec<Proxy>,
    /// `HA_HOSTS` (the voters) and `HA_LEARNERS`.
    hosts: String,
    learners: String,
    register: Register,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("hosts", &self.hosts)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

fn io(what: &str, e: &std::io::Error) -> Error {
    Error::Config(format!("test cluster: {what}: {e}"))
}

impl TestCluster {
    /// Starts `n` members, each registering its caches with `register`
    /// (the same on every member, as in production).
    ///
    /// # Errors
    /// When a port cannot be bound or a member does not start.
    pub async fn start(
        n: usize,
        register: impl Fn(Builder) -> Builder + Send + Sync + 'static,
    ) -> Result<Self> {
        Self::start_with_learners(n, 0, register).await
    }

    /// Starts `voters` members and `learners` more that never vote (listed
    /// in `HA_LEARNERS`): members `voters..voters + learners`.
    ///
    /// # Errors
    /// When a port cannot be bound or a member does not start.
    pub async fn start_with_learners(
        voters: usize,
        learners: usize,
        register: impl Fn(Builder) -> Builder + Send + Sync + 'static,
    ) -> Result<Self> {
        let mut proxies = Vec::new();
        let mut listeners = Vec::new();
        for _ in 0..voters + learners {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind", &e))?;
            let addr = l.local_addr().map_err(|e| io("bind", &e))?;
            proxies.push(Proxy::start(addr).await.map_err(|e| io("proxy", &e))?);
            listeners.push(l);
        }
        let list = |ps: &[Proxy]| {
            ps.iter()
                .map(|p| format!("http://{}", p.addr()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (hosts, learners) = (list(&proxies[..voters]), list(&proxies[voters..]));
        let mut cluster = Self {
            members: Vec::new(),
            proxies,
            hosts,
            learners,
            register: Arc::new(register),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            let member = cluster.start_member(i, l).await?;
            cluster.members.push(Some(member));
        }
        Ok(cluster)
    }

    async fn start_member(&self, i: usize, listener: TcpListener) -> Result<Redhac> {
        let addr = listener.local_addr().map_err(|e| io("bind", &e))?;
        self.proxies[i].retarget(addr);
        let config = Config::from_vars([
            ("HA_MODE", "true"),
            ("HA_HOSTS", self.hosts.as_str()),
            ("HA_LEARNERS", self.learners.as_str()),
            ("CACHE_AUTH_TOKEN", TOKEN),
            ("CACHE_TLS", "false"),
            ("CACHE_RECONNECT_TIMEOUT_LOWER", "10"),
            ("CACHE_RECONNECT_TIMEOUT_UPPER", "50"),
        ])?;
        let builder = Redhac::builder()
            .config(config)
            .listener(listener)
            .hostname(self.proxies[i].addr().to_string());
        (self.register)(builder).start().await
    }

    /// Member `i`.
    ///
    /// # Panics
    /// When member `i` is stopped (killed, or stopped and not restarted).
    pub fn member(&self, i: usize) -> &Redhac {
        // Only a test's own code reaches this (no peer, network or
        // configuration does): asking a member it stopped is its mistake.
        self.members[i]
            .as_ref()
            .unwrap_or_else(|| panic!("member {i} is stopped"))
    }

    /// Whether each member runs.
    pub fn running(&self) -> Vec<bool> {
        self.members.iter().map(Option::is_some).collect()
    }

    /// Waits until one running member leads and every running member
    /// serves under it; its position.
    ///
    /// # Errors
    /// [`Error::Timeout`] when that does not happen within `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let statuses: Vec<(usize, crate::Status)> = self
                .members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| Some((i, m.as_ref()?.status())))
                .collect();
            let leaders: Vec<usize> = statuses
                .iter()
                .filter(|(_, s)| s.role == Role::Leader)
                .map(|(i, _)| *i)
                .collect();
            if let [l] = leaders.as_slice() {
                let me = statuses.iter().find(|(i, _)| i == l).map(|(_, s)| s.me);
                if statuses.iter().all(|(_, s)| s.serving && s.leader == me) {
                    return Ok(*l);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Crashes member `i`: no handover, no goodbye; its links close. Cache
    /// handles taken from it miss every read and fail every write.
    pub fn kill(&mut self, i: usize) {
        if let Some(member) = self.members[i].take() {
            member.kill();
        }
    }

    /// Stops member `i` gracefully (a leader hands over first), as at SIGTERM.
    ///
    /// # Errors
    /// As [`Redhac::shutdown`].
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        match self.members[i].take() {
            Some(member) => member.shutdown().await,
            None => Ok(()),
        }
    }

    /// Starts member `i` again (stopping it first if it runs), as a new
    /// process would: empty caches, a new incarnation, the same address.
    ///
    /// # Errors
    /// When no port can be bound or the member does not start.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.stop(i).await?;
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind", &e))?;
        let member = self.start_member(i, l).await?;
        self.members[i] = Some(member);
        Ok(())
    }

    /// Cuts the connections to member `i`: they close and new ones are
    /// refused, until [`TestCluster::heal`]. A member dials the members
    /// listed after it, through their proxies: cutting the last member cuts
    /// all its links; member `i`'s links to later members need their proxies
    /// cut too.
    pub fn cut(&self, i: usize) {
        self.proxies[i].cut();
    }

    /// Lets connections to member `i` through again.
    pub fn heal(&self, i: usize) {
        self.proxies[i].heal();
    }

    /// Member `i`'s proxy, for finer faults (stalls, half-open connections).
    pub fn proxy(&self, i: usize) -> &Proxy {
        &self.proxies[i]
    }

    /// Stops every running member gracefully.
    pub async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            let _ = self.stop(i).await;
        }
    }
}
