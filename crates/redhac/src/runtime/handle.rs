//! The application's side of a running cluster member: starts the link
//! tasks and the runtime task, asks the runtime, and stops them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redhac_membership::find_me;
use redhac_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Command, WriteOp, driver, guarded};
use crate::config::Config;
use crate::gate::ReadGate;
use crate::status::{Health, Status};
use crate::transport::accept::{listen_any, serve};
use crate::transport::auth::{Tokens, fingerprint};
use crate::transport::dial::{Target, dial};
use crate::transport::discover::{Discovery, discover};
use crate::transport::handshake::{Handshake, HelloState, VERSIONS};
use crate::transport::link::{LinkSettings, LinkSetup, LinkState};
use crate::transport::tls::TlsSetup;
use crate::{Error, Result, Secret};

/// What the builder passes on for cluster mode.
#[derive(Debug, Default)]
pub(crate) struct RuntimeOptions {
    /// A listener bound by the caller (tests bind port 0 first).
    pub(crate) listener: Option<std::net::TcpListener>,
    /// The name that finds this member in `HA_HOSTS`.
    pub(crate) hostname: Option<String>,
    /// The core's timing, when not derived from the election timeout.
    pub(crate) timing: Option<redhac_membership::Timing>,
    /// The protocol versions to speak, when not this release's (tests).
    pub(crate) protocol_versions: Option<std::ops::RangeInclusive<u32>>,
    /// The dynamic mode's autopilot, when not derived from the
    /// configuration.
    pub(crate) autopilot: Option<redhac_membership::Autopilot>,
}

/// The application's side of a running cluster member.
#[derive(Debug)]
pub(crate) struct Runtime {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    links_refused: Arc<AtomicU64>,
    messages_refused: Arc<AtomicU64>,
    /// The caches, for the counters `status` sums.
    store: Store,
    /// The core's election timeout: a step-down is given up after it.
    election_timeout: Duration,
    /// The dynamic mode: how long a member shutting down may wait for the
    /// leader to remove it (zero in the static mode).
    leave_timeout: Duration,
}

/// How long a link's handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Runtime {
    /// Resolves this member, loads TLS, binds, and starts links and the core.
    ///
    /// # Errors
    /// [`Error::Config`] for "me" not in `HA_HOSTS`, TLS files, or a port
    /// that cannot be bound.
    pub(crate) async fn start(
        config: &Config,
        options: RuntimeOptions,
        store: Store,
        gate: Arc<ReadGate>,
        health: watch::Sender<Health>,
    ) -> Result<Self> {
        let members = config.members()?;
        let dynamic = config.dynamic();
        let (me, name) = if dynamic {
            (random_id(), String::new())
        } else {
            let name = match options.hostname.or_else(|| config.hostname_overwrite.clone()) {
                Some(name) => name,
                None => gethostname::gethostname().into_string().map_err(|raw| {
                    Error::Config(format!(
                        "the OS hostname {raw:?} is not UTF-8; set HOSTNAME_OVERWRITE to this member's host in HA_HOSTS"
                    ))
                })?,
            };
            let me = find_me(&members, &name).map_err(Error::Config)?;
            (me as u32, name)
        };
        let discover_entries = config.discover()?;
        let port = match members.get(me as usize) {
            Some(entry) if !dynamic => entry.port,
            _ => discover_entries.first().map_or(0, |e| e.port),
        };
        let tls = TlsSetup::load(config)?;
        let to_tokio = |l: std::net::TcpListener| {
            l.set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
        };
        let listener = match options.listener {
            Some(l) => to_tokio(l).map_err(|e| {
                Error::Config(format!(
                    "the listener given to the builder is unusable: {e}"
                ))
            })?,
            None => match config.listen_addr {
                Some(addr) => std::net::TcpListener::bind(addr)
                    .and_then(to_tokio)
                    .map_err(|e| {
                        Error::Config(format!(
                            "cannot listen on CACHE_LISTEN_ADDR {addr}: {e}; free the port, or \
                             give an address of this host"
                        ))
                    })?,
                None => listen_any(port).and_then(to_tokio).map_err(|e| {
                    let whose = if dynamic {
                        "the port of HA_DISCOVER's first entry".to_owned()
                    } else {
                        format!("this member's HA_HOSTS entry {}", members[me as usize])
                    };
                    Error::Config(format!(
                        "cannot listen on port {port} ({whose}): {e}; free the port, or fix \
                         HA_HOSTS or HA_DISCOVER"
                    ))
                })?,
            },
        };
        let versions = options.protocol_versions.unwrap_or(VERSIONS);
        let token = config.auth_token.as_ref().map_or("", Secret::expose);
        let previous = config.auth_token_previous.as_ref().map(Secret::expose);
        let (hello_tx, hello_rx) = watch::channel(HelloState {
            me,
            ..HelloState::default()
        });
        let (events_tx, events_rx) = mpsc::channel(config.buf_server.max(members.len() * 4));
        let (linked_tx, linked_rx) = watch::channel(std::collections::BTreeSet::new());
        let listening = listener.local_addr().ok();
        let advertised = config.advertise()?.map(|(ip, p)| {
            std::net::SocketAddr::new(ip, p.or(listening.map(|l| l.port())).unwrap_or(port))
        });
        let (stop, stop_rx) = watch::channel(false);
        let generation = generation();
        let links_refused = Arc::new(AtomicU64::new(0));
        let messages_refused = Arc::new(AtomicU64::new(0));
        let timing = options
            .timing
            .unwrap_or_else(|| redhac_membership::Timing::new(config.election_timeout));
        let setup = Arc::new(LinkSetup {
            handshake: Handshake {
                address: advertised.map(|a| a.to_string()).unwrap_or_default(),
                generation,
                fingerprint: fingerprint(&config.member_lists()),
                tokens: Tokens::new(token, previous),
                versions: versions.clone(),
                timeout: HANDSHAKE_TIMEOUT,
            },
            settings: LinkSettings {
                members: members.clone(),
                dynamic,
                buf_server: config.buf_server,
                buf_client: config.buf_client,
                keepalive_interval: config.keepalive_interval,
                keepalive_timeout: config.keepalive_timeout,
                reconnect: (
                    config.reconnect_timeout_lower,
                    config.reconnect_timeout_upper,
                ),
                redial_cap: timing.silent_link,
                tls,
            },
            state: LinkState::new(hello_rx, events_tx, Arc::clone(&links_refused), linked_rx),
        });
        if dynamic {
            tracing::info!(
                me,
                discover = ?config.ha_discover,
                advertise = ?advertised,
                bootstrap_expect = config.ha_bootstrap_expect,
                voters = config.ha_voters,
                generation,
                "starting cluster member (dynamic mode: a new member, new id)"
            );
        } else {
            tracing::info!(me, name = %name, members = members.len(), generation, "starting cluster member");
        }
        let autopilot = options
            .autopilot
            .unwrap_or_else(|| config.autopilot_with(timing.election_timeout));
        // Nothing discovered yet reads as more members than any: no
        // bootstrap before the first lookup answered.
        let (discovered_tx, discovered_rx) = watch::channel(usize::MAX);
        let member_count = members.len();
        let (commands, commands_rx) = mpsc::channel(config.buf_client.max(64));
        let (status_tx, status) = watch::channel(Status::standalone(false));
        // The core first: the Hellos of the first links carry its state
        // (its term floor above all), published as it is created.
        let driver = driver::Driver::new(driver::Parts {
            me,
            linked: linked_tx,
            dynamic: dynamic.then(|| driver::Dynamic {
                autopilot,
                bootstrap_expect: config.ha_bootstrap_expect,
                discovered: discovered_rx,
                advertised: advertised.map(|a| a.to_string()).unwrap_or_default(),
            }),
            members,
            membership: config.membership(),
            store: store.clone(),
            gate: Arc::clone(&gate),
            health,
            status: status_tx,
            hello: hello_tx,
            timing,
            seed: generation,
            refused: Arc::clone(&messages_refused),
            versions,
        });
        let serving = serve(Arc::clone(&setup), listener, stop_rx.clone());
        let mut tasks = vec![tokio::spawn(guarded("accept", serving, || {}))];
        if dynamic {
            let discovery = Discovery {
                entries: discover_entries,
                interval: config.ha_discover_interval,
                myself: advertised
                    .into_iter()
                    .chain(listening.filter(|l| !l.ip().is_unspecified()))
                    .collect(),
            };
            let discovering = discover(
                Arc::clone(&setup),
                discovery,
                discovered_tx,
                stop_rx.clone(),
            );
            tasks.push(tokio::spawn(guarded("discovery", discovering, || {})));
        } else {
            for peer in me as usize + 1..member_count {
                let dialling = dial(
                    Arc::clone(&setup),
                    Target::Member(peer as u32),
                    stop_rx.clone(),
                );
                tasks.push(tokio::spawn(guarded("dial", dialling, || {})));
            }
        }
        // The span rides with the task (never held across an await), so
        // members sharing a process log under their own ids.
        let span = tracing::info_span!("redhac", me);
        // A runtime that died must not go on answering reads from caches
        // nobody updates any more.
        let reads = gate;
        let running = driver.run(events_rx, commands_rx, stop_rx);
        tasks.push(tokio::spawn(tracing::Instrument::instrument(
            guarded("runtime", running, move || reads.close()),
            span,
        )));
        Ok(Self {
            commands,
            status,
            stop,
            tasks: std::sync::Mutex::new(tasks),
            links_refused,
            messages_refused,
            store,
            election_timeout: timing.election_timeout,
            leave_timeout: if dynamic {
                autopilot.leave_timeout
            } else {
                Duration::ZERO
            },
        })
    }

    /// Whether the runtime task and the link tasks all still run (false
    /// once one died, or after shutdown).
    pub(crate) fn running(&self) -> bool {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !tasks.is_empty() && tasks.iter().all(|t| !t.is_finished())
    }

    /// Tests only: makes the runtime task panic.
    #[cfg(feature = "test-support")]
    pub(crate) async fn crash(&self) {
        let _ = self.commands.send(Command::Crash).await;
    }

    /// Sends a command to the runtime and waits for its answer, within `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::ShutDown`], or the runtime's answer.
    pub(crate) async fn ask<T>(
        &self,
        timeout: Duration,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.commands
                .send(command(tx))
                .await
                .map_err(|_| Error::ShutDown)?;
            rx.await.map_err(|_| Error::ShutDown)?
        };
        tokio::time::timeout(timeout, asked)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Sends a write to the runtime and waits for its ack level, within the
    /// write's timeout.
    ///
    /// # Errors
    /// As [`Runtime::ask`].
    pub(crate) async fn write(&self, op: WriteOp, options: crate::WriteOptions) -> Result<()> {
        use tracing::Instrument as _;
        // The cache, the change and the ack level; never the key or value.
        let span = tracing::debug_span!("redhac.write", cache = op.cache(), op = op.kind(), ack = ?options.ack);
        // The core resolves the write with Timeout at its deadline; the
        // outer timeout only guards against a stalled runtime.
        let outer = options.timeout + Duration::from_millis(100);
        let result = self
            .ask(outer, |reply| Command::Write {
                op,
                ack: options.ack,
                timeout: options.timeout,
                reply,
            })
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            span.in_scope(|| tracing::debug!(error = %e, "write failed"));
        }
        result
    }

    /// Asks for a membership change and waits until it committed.
    ///
    /// # Errors
    /// As [`Runtime::ask`]; [`Error::Membership`] when refused.
    pub(crate) async fn change(&self, change: super::Change, timeout: Duration) -> Result<()> {
        let outer = timeout + Duration::from_millis(100);
        self.ask(outer, |reply| Command::Change {
            change,
            timeout,
            reply,
        })
        .await
    }

    /// The latest status the runtime published.
    /// The published status, to wait for its changes.
    pub(crate) fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    pub(crate) fn status(&self) -> Status {
        let mut s = self.status.borrow().clone();
        s.links_refused = self.links_refused.load(Ordering::Relaxed);
        s.messages_refused = self.messages_refused.load(Ordering::Relaxed);
        s.schema_mismatches = self.store.caches().map(|c| c.schema_mismatches()).sum();
        s
    }

    /// Hands leadership over when leading, this member following on;
    /// returns once it no longer leads and knows who does (so a shutdown
    /// right after tells that leader it leaves, in its term).
    ///
    /// # Errors
    /// [`Error::Handover`] when it cannot (no voter linked, a member that
    /// cannot tell a step-down from a shutdown) or it was given up (no voter
    /// caught up within an election timeout: this member leads on);
    /// [`Error::ShutDown`].
    pub(crate) async fn step_down(&self) -> Result<()> {
        let mut published = self.watch_status();
        let wait = self.election_timeout + self.election_timeout / 2;
        if !self.ask(wait, |reply| Command::StepDown { reply }).await? {
            return Ok(());
        }
        let stepped = async {
            loop {
                let s = published.borrow_and_update().clone();
                if s.role != crate::Role::Leader && s.leader.is_some_and(|l| l != s.me) {
                    return Ok(());
                }
                published.changed().await.map_err(|_| Error::ShutDown)?;
            }
        };
        tokio::time::timeout(wait, stepped).await.map_err(|_| {
            Error::Handover(format!(
                "no voter caught up with this leader within {wait:?}; it leads on"
            ))
        })?
    }

    /// Hands leadership over (when leading), stops links and the runtime.
    /// Waits `timeout` at most for the handover (and, in the dynamic mode,
    /// the leave timeout more for the leader to remove this member), then
    /// `timeout` at most for the tasks.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply: tx })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(timeout + self.leave_timeout, rx).await;
        }
        let _ = self.stop.send(true);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // One deadline for all: a connection left half-open (a partition)
        // keeps the server's graceful stop waiting; the node stops anyway.
        let deadline = tokio::time::Instant::now() + timeout;
        for task in tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }
}

impl Runtime {
    /// Stops at once, as a crash would: no handover, no goodbye; the links
    /// close with their tasks.
    #[cfg(any(feature = "testing", feature = "test-support"))]
    pub(crate) fn abort(&self) {
        let _ = self.stop.send(true);
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for task in tasks.iter() {
            task.abort();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // A dropped node stops its tasks; no graceful handover.
        let _ = self.stop.send(true);
    }
}

/// A dynamic member's id: drawn at random at every start (and rejoin).
pub(crate) fn random_id() -> u32 {
    generation() as u32
}

/// A number that differs between starts of one member (its incarnation).
fn generation() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) >> 1,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}
