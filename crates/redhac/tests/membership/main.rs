//! The multi-host suite's dynamic membership scenario: members of the node
//! example in containers on one Docker network, found by one DNS name (a
//! network alias every container shares, as a Kubernetes headless service
//! gives every pod), under the same history-checked workload as
//! `tests/chaos`. Three start and form a cluster; four more join as
//! learners; a voter is killed for good and the autopilot replaces it;
//! then the cluster shrinks back to three by graceful stops (the leader
//! among them). No other member restarts; the checker verifies every read
//! and write, and that no acknowledged write is lost.
//!
//! Runs when `REDHAC_CHAOS=1` (set by `.ci/run` when a Docker engine is
//! reachable), after `tests/chaos` in the same run.

#[allow(dead_code)]
#[path = "../chaos/checker.rs"]
mod checker;
#[allow(dead_code)]
#[path = "../chaos/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../chaos/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../chaos/workload.rs"]
mod workload;

use std::process::Command;
use std::time::{Duration, Instant};

use checker::{Fault, Violation};
use cluster::{free_port, run};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const IMAGE: &str = "redhac-node:chaos";
/// The DNS name every member's container answers to.
const PEERS: &str = "redhac-peers";
/// Election timeout T in seconds; the read lease is T/2.
const T: u64 = 1;
const WAIT: Duration = Duration::from_secs(90);

/// Members in containers, started and stopped one by one.
struct Fleet {
    prefix: String,
    network: String,
    token: String,
    /// Per member ever started: its container and HTTP port on the host.
    members: Vec<(String, u16)>,
}

impl Fleet {
    fn new(prefix: &str) -> Result<Self, String> {
        let network = format!("{prefix}-net");
        run(Command::new("docker").args(["network", "create", &network]))?;
        Ok(Self {
            prefix: prefix.to_owned(),
            network,
            token: format!("{prefix}-token-0123456789abcdef"),
            members: Vec::new(),
        })
    }

    /// Starts one more member; returns its index.
    fn start(&mut self) -> Result<usize, String> {
        let i = self.members.len();
        let name = format!("{}-{i}", self.prefix);
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:8080");
        let env = [
            "HA_MODE=true".to_owned(),
            format!("HA_DISCOVER=http://{PEERS}:8001"),
            "HA_DISCOVER_INTERVAL=500ms".to_owned(),
            "HA_BOOTSTRAP_EXPECT=2".to_owned(),
            "HA_VOTERS=3".to_owned(),
            "HA_REPLACE_AFTER=3s".to_owned(),
            "HA_REMOVE_AFTER=10s".to_owned(),
            format!("CACHE_AUTH_TOKEN={}", self.token),
            "CACHE_TLS=false".to_owned(),
            format!("CACHE_ELECTION_TIMEOUT={T}"),
            "NODE_HTTP_ADDR=0.0.0.0:8080".to_owned(),
            "RUST_LOG=info".to_owned(),
        ];
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--name", &name, "--hostname", &name])
            .args(["--network", &self.network, "--network-alias", PEERS])
            .args(["-p", &publish]);
        for e in &env {
            cmd.args(["-e", e]);
        }
        run(cmd.arg(IMAGE))?;
        self.members.push((name, port));
        Ok(i)
    }

    fn http(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].1)
    }

    fn kill(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["kill", "-s", "KILL", &self.members[i].0])).map(drop)
    }

    /// A graceful stop (SIGTERM; the member leaves once the leader removed
    /// it), as a scale-down does.
    fn stop(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["stop", "-t", "40", &self.members[i].0])).map(drop)
    }

    async fn status(&self, i: usize) -> Option<Value> {
        let addr = self.http(i);
        let answer = http::request(&addr, "GET", "/v1/status", "", Duration::from_secs(2)).await;
        match answer {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    fn logs(&self, i: usize) -> String {
        match Command::new("docker")
            .args(["logs", &self.members[i].0])
            .output()
        {
            Ok(out) => {
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            }
            Err(e) => format!("docker logs: {e}"),
        }
    }

    fn tails(&self, live: &[usize]) -> String {
        live.iter()
            .map(|&i| {
                let logs = self.logs(i);
                let tail: Vec<&str> = logs.lines().rev().take(25).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- member {i}:\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (name, _) in &self.members {
            let _ = run(Command::new("docker").args(["rm", "-f", name]));
        }
        let _ = run(Command::new("docker").args(["network", "rm", &self.network]));
    }
}

/// Polls until every member of `live` follows one leader and serves, and
/// the leader's membership is `voters` voters and `learners` learners, all
/// linked, none of them a member of `gone`. Returns how long it took.
async fn settled(
    fleet: &Fleet,
    live: &[usize],
    voters: usize,
    learners: usize,
    gone: &[u64],
) -> Duration {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < WAIT {
        let mut statuses = Vec::new();
        for &i in live {
            statuses.push(fleet.status(i).await);
        }
        let all: Option<Vec<Value>> = statuses.iter().cloned().collect();
        if let Some(all) = all
            && let Some(leader) = all.iter().find(|s| s["role"] == "Leader")
        {
            let members = leader["members"].as_array().cloned().unwrap_or_default();
            let voting = members.iter().filter(|m| m["voter"] == true).count();
            let ok = all
                .iter()
                .all(|s| s["leader"] == leader["me"] && s["serving"] == true)
                && voting == voters
                && members.len() == voters + learners
                && members.iter().all(|m| m["connected"] == true)
                && members
                    .iter()
                    .all(|m| !gone.contains(&m["id"].as_u64().unwrap_or(0)));
            if ok {
                return start.elapsed();
            }
        }
        last = statuses;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "members {live:?} did not settle to {voters} voters and {learners} learners within \
         {WAIT:?}; last statuses {last:?}\n{}",
        fleet.tails(live)
    );
}

/// Waits until the leader among `live` counts `voters` linked voters
/// besides `dead` (which stays a voter until removed): a learner took the
/// dead voter's place.
async fn voter_replaced(fleet: &Fleet, live: &[usize], voters: usize, dead: u64) -> Duration {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        for &i in live {
            let Some(s) = fleet.status(i).await.filter(|s| s["role"] == "Leader") else {
                continue;
            };
            let members = s["members"].as_array().cloned().unwrap_or_default();
            let alive = members
                .iter()
                .filter(|m| m["voter"] == true && m["connected"] == true)
                .filter(|m| m["id"].as_u64() != Some(dead))
                .count();
            if alive >= voters {
                return start.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no learner replaced the dead voter\n{}", fleet.tails(live));
}

/// Waits until member `i` serves reads; how long it took.
async fn ready(fleet: &Fleet, i: usize) -> Duration {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if fleet.status(i).await.is_some_and(|s| s["serving"] == true) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("member {i} never served\n{}", fleet.tails(&[i]));
}

async fn member_id(fleet: &Fleet, i: usize) -> u64 {
    let s = fleet.status(i).await.expect("the member answers");
    s["me"].as_u64().expect("an id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_cluster_grows_loses_a_voter_and_shrinks_across_containers() {
    if !cluster::wanted() {
        eprintln!("multi-host suite skipped: set REDHAC_CHAOS=1 with a Docker engine to run it");
        return;
    }
    cluster::build_image(IMAGE).expect("the node image builds");
    let mut fleet = Fleet::new(&format!("redhacdyn{}", std::process::id()))
        .expect("a Docker network for the members");
    let lease = Duration::from_millis(T * 500);
    let rec = workload::Recorder::new();
    let (stop, stop_rx) = watch::channel(false);
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    let mut client = |fleet: &Fleet, i: usize| {
        let run = workload::client(rec.clone(), i, fleet.http(i), stop_rx.clone());
        clients.push(tokio::spawn(run));
    };

    // Three start and bootstrap (two are expected; the third joins).
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(fleet.start().expect("a member starts"));
    }
    let cold = settled(&fleet, &live, 3, 0, &[]).await;
    for &i in &live {
        client(&fleet, i);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Scale to seven: each new member joins as a learner and serves.
    let mut joins = Vec::new();
    for _ in 0..4 {
        let i = fleet.start().expect("a member starts");
        joins.push(ready(&fleet, i).await);
        client(&fleet, i);
        live.push(i);
    }
    settled(&fleet, &live, 3, 4, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A voter that does not lead dies for good: a learner takes its place,
    // and the dead one is removed.
    let mut dead = None;
    for &i in &live {
        let s = fleet.status(i).await.expect("every member answers");
        let me = s["me"].as_u64();
        let voter = s["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["id"].as_u64() == me && m["voter"] == true)
        });
        if voter && s["role"] != "Leader" {
            dead = Some(i);
            break;
        }
    }
    let dead = dead.expect("a voter that follows");
    let dead_id = member_id(&fleet, dead).await;
    let begin = rec.at();
    fleet.kill(dead).expect("docker kill");
    live.retain(|&i| i != dead);
    let replaced = voter_replaced(&fleet, &live, 3, dead_id).await;
    let removed = replaced + settled(&fleet, &live, 3, 3, &[dead_id]).await;
    let faults = vec![Fault {
        name: "a voter killed for good".into(),
        start: begin,
        end: rec.at(),
        minority: vec![],
    }];
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Scale back to three by graceful stops, the leader among them.
    let mut leader = None;
    for &i in &live {
        if fleet.status(i).await.is_some_and(|s| s["role"] == "Leader") {
            leader = Some(i);
        }
    }
    let leader = leader.expect("a leader");
    let mut leaving: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| i != leader)
        .take(2)
        .collect();
    leaving.push(leader);
    let mut gone = vec![dead_id];
    for &i in &leaving {
        gone.push(member_id(&fleet, i).await);
        fleet.stop(i).expect("docker stop");
        live.retain(|&j| j != i);
    }
    settled(&fleet, &live, 3, 0, &gone).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.send(true).unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let addrs: Vec<String> = live.iter().map(|&i| fleet.http(i)).collect();
    let finals = workload::finals(&addrs).await;
    let history = rec.history();
    let report = checker::check(&history, &faults, lease, &finals);
    let lost = report
        .violations
        .iter()
        .filter(|v| matches!(v, Violation::Lost { .. }))
        .count();
    let join = joins.iter().max().copied().unwrap_or_default();
    println!(
        "multi-host membership summary:\n  cold start of 3 to settled: {cold:?}\n  \
         join to ready per member: {joins:?}\n  dead voter removed after {removed:?}\n  \
         {} operations, max staleness {:?}\n  \
         membership: grew 3->7 and back, voter replaced in {} ms, join to ready {} ms, \
         {} violations, {lost} lost writes",
        report.operations,
        report.max_staleness,
        replaced.as_millis(),
        join.as_millis(),
        report.violations.len(),
    );
    for v in report.violations.iter().take(10) {
        println!("violation: {v}");
    }
    assert!(
        report.violations.is_empty(),
        "the history broke the guarantees; see above\n{}",
        fleet.tails(&live)
    );
    // No log line prints a key or a value.
    let leaks: Vec<String> = (0..fleet.members.len())
        .flat_map(|i| {
            fleet
                .logs(i)
                .lines()
                .filter(|l| l.contains(workload::SENTINEL))
                .take(3)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "members logged keys or values:\n{}",
        leaks.join("\n")
    );
}
