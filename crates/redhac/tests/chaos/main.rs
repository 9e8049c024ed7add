//! The multi-host suite: the compose cluster of `deploy/compose` (three
//! containers found by their hostnames), with faults injected through Docker.
//!
//! Runs when `REDHAC_CHAOS=1` (`.ci/run` sets it when a Docker engine is
//! reachable); with `CI=true` and no engine it fails instead of skipping.
//! The faults end with a rolling restart and a rolling upgrade to a "next
//! release" (another value type, protocol range and token), each reported
//! on one line of the summary; then the members' logs are searched for the
//! keys and values written, which no log line may print.
//! Members find each other by hostname and health by links follows every
//! fault; meanwhile a client per member writes and reads through the HTTP
//! API, and the checker (`checker.rs`) verifies the whole history against
//! docs/architecture.md §3: no stale read after an `All` write, none older than the lease
//! after a `Quorum` write, no acknowledged write lost, no write acknowledged
//! by a cut-off minority, every member converged.

mod checker;
mod cluster;
mod http;
mod workload;

use std::time::{Duration, Instant};

use checker::Fault;
use cluster::Cluster;
use tokio::sync::watch;

/// The members' election timeout T in seconds: the compose file's 1 s, or
/// `REDHAC_CHAOS_ELECTION_TIMEOUT` (2 measures redhac's default timing).
fn election_timeout() -> u64 {
    std::env::var("REDHAC_CHAOS_ELECTION_TIMEOUT")
        .ok()
        .map(|v| {
            v.parse()
                .expect("REDHAC_CHAOS_ELECTION_TIMEOUT is a number of seconds")
        })
        .unwrap_or(1)
}

const IMAGE: &str = "redhac-node:chaos";
/// The next release of the application, played by the same binary: its
/// value type gained a field (schema version 2) and it speaks the wire
/// protocol of this build and the next one (a test override).
const IMAGE_V2: &str = "redhac-node:chaos-v2";
const NEXT_TOKEN: &str = "chaos-next-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(60);

async fn all(cluster: &Cluster, members: &[usize], health: &str) -> Duration {
    let start = Instant::now();
    for &i in members {
        if let Err(e) = cluster.wait_health(i, health, WAIT).await {
            panic!("{e}\n{}", cluster.logs());
        }
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_stays_consistent_through_faults_across_containers() {
    if !cluster::wanted() {
        eprintln!("multi-host suite skipped: set REDHAC_CHAOS=1 with a Docker engine to run it");
        return;
    }
    cluster::build_image(IMAGE).expect("the node image builds");
    let now = redhac_proto::PROTOCOL_VERSION;
    let next_protocols = format!("{now}-{}", now + 1);
    cluster::derive_image(
        IMAGE,
        IMAGE_V2,
        &[
            ("NODE_VALUE_VERSION", "2"),
            ("NODE_PROTOCOL_VERSIONS", &next_protocols),
        ],
    )
    .expect("the next release's image builds");
    let project = format!("redhacchaos{}", std::process::id());
    let t = election_timeout();
    // The read lease L = T/2.
    let lease = Duration::from_millis(t * 500);
    let c = Cluster::up(
        &project,
        IMAGE,
        &[],
        &[("CACHE_ELECTION_TIMEOUT", &t.to_string())],
    )
    .expect("the compose cluster starts");
    let mut summary = vec![format!("election timeout {t} s, read lease {lease:?}")];

    let t = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!("cold start to all Good: {t:?}"));
    wait_ready(&c).await;

    let rec = workload::Recorder::new();
    let (stop, stop_rx) = watch::channel(false);
    let clients: Vec<_> = (0..3)
        .map(|i| tokio::spawn(workload::client(rec.clone(), i, c.http(i), stop_rx.clone())))
        .collect();
    let mut faults = Vec::new();
    let mut fault = |name: &str, start: Duration, minority: &[usize]| {
        faults.push(Fault {
            name: name.into(),
            start,
            end: rec.at(),
            minority: minority.to_vec(),
        });
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let begin = rec.at();
    c.kill(0).unwrap();
    let detect = all(&c, &[1, 2], "Degraded").await;
    fault("kill -9 member 0", begin, &[]);
    c.start(0).unwrap();
    let recover = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!(
        "kill -9 member 0: others Degraded after {detect:?}, all Good {recover:?} after restart"
    ));

    // Minority windows open once the fault is in place: writes acked
    // before that were acked by a majority.
    c.disconnect(2).unwrap();
    let begin = rec.at();
    let detect = all(&c, &[0, 1], "Degraded").await;
    fault("disconnect member 2", begin, &[2]);
    c.connect(2).unwrap();
    let recover = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!(
        "network disconnect member 2: Degraded after {detect:?}, Good {recover:?} after reconnect"
    ));

    // The leader cut off in a minority: the other two elect anew.
    let leader = current_leader(&c).await;
    c.disconnect(leader).unwrap();
    let begin = rec.at();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let detect = all(&c, &others, "Degraded").await;
    fault("disconnect the leader", begin, &[leader]);
    c.connect(leader).unwrap();
    let recover = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!(
        "network disconnect of the leader (member {leader}): others Degraded after {detect:?}, Good {recover:?} after reconnect"
    ));

    c.disconnect(0).unwrap();
    c.disconnect(1).unwrap();
    let begin = rec.at();
    let detect = all(&c, &[2], "Bad").await;
    fault("every member alone", begin, &[0, 1, 2]);
    c.connect(0).unwrap();
    c.connect(1).unwrap();
    let recover = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!(
        "member 2 alone: Bad after {detect:?}, Good {recover:?} after reconnect"
    ));

    c.pause(1).unwrap();
    let begin = rec.at();
    let detect = all(&c, &[0, 2], "Degraded").await;
    fault("pause member 1", begin, &[1]);
    c.unpause(1).unwrap();
    let recover = all(&c, &[0, 1, 2], "Good").await;
    summary.push(format!(
        "pause member 1: Degraded after {detect:?} (the leader: silent link; the other: keepalive), Good {recover:?} after unpause"
    ));

    // One-way partitions: TCP connections stay up but carry nothing one
    // way, and stay half-open once the network heals.
    if c.can_filter() {
        let leader = current_leader(&c).await;
        let f = (leader + 1) % 3;
        c.deafen(f, &[leader]).unwrap();
        let begin = rec.at();
        let detect = serving_until(&c, f, false).await;
        fault("a member stops hearing the leader", begin, &[f]);
        c.undeafen(f).unwrap();
        let recover = all_serving(&c).await;
        summary.push(format!(
            "one way, member {f} stops hearing the leader: it stops serving after {detect:?}, \
             all serve {recover:?} after healing"
        ));

        let leader = current_leader(&c).await;
        let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        c.deafen(leader, &followers).unwrap();
        let begin = rec.at();
        let gap = gap_until_another_leader_serves(&c, leader).await;
        fault("the leader stops hearing its followers", begin, &[leader]);
        c.undeafen(leader).unwrap();
        let recover = all_serving(&c).await;
        summary.push(format!(
            "one way, the leader (member {leader}) stops hearing its followers: no member \
             serving for {gap:?} at most, all serve {recover:?} after healing"
        ));
    } else {
        summary.push(
            "one-way partitions skipped: filtering a member's traffic needs root, nsenter and \
             iptables on the Docker host"
                .into(),
        );
    }

    let start = Instant::now();
    let begin = rec.at();
    // Each member's restart, from SIGTERM until it serves again: writes
    // sent to it meanwhile are not on a ready member.
    let mut restarting = Vec::new();
    for i in 0..3 {
        let down = rec.at();
        c.restart(i).unwrap();
        all(&c, &[0, 1, 2], "Good").await;
        wait_ready(&c).await;
        restarting.push((i, down, rec.at()));
    }
    let roll = (begin, rec.at());
    fault("rolling restart", begin, &[]);
    summary.push(format!(
        "rolling restart of 3 members: {:?}",
        start.elapsed()
    ));

    // The next release, rolled as Kubernetes would: a new value type
    // (schema 2), a new protocol range, a new token with the old one
    // accepted. Each member's refusals of the other release's values are
    // read just before it is replaced, and from the new ones at the end.
    let start = Instant::now();
    let begin = rec.at();
    let old_token = c.token().to_owned();
    let mut logs = String::new();
    let mut refused = 0;
    let mut upgrading = Vec::new();
    for i in 0..3 {
        refused += schema_mismatches(&c, i).await;
        logs.push_str(&c.all_logs(i));
        let down = rec.at();
        c.replace(
            i,
            IMAGE_V2,
            &[
                ("CACHE_AUTH_TOKEN", NEXT_TOKEN),
                ("CACHE_AUTH_TOKEN_PREVIOUS", &old_token),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        all(&c, &[0, 1, 2], "Good").await;
        wait_ready(&c).await;
        upgrading.push((i, down, rec.at()));
    }
    let upgrade = (begin, rec.at());
    fault("rolling upgrade", begin, &[]);
    summary.push(format!(
        "rolling upgrade of 3 members: {:?}",
        start.elapsed()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Stop the clients, let every member serve, then an All write as a
    // barrier: after it every serving member has applied everything.
    stop.send_replace(true);
    for client in clients {
        client.await.unwrap();
    }
    wait_ready(&c).await;
    for i in 0..3 {
        refused += schema_mismatches(&c, i).await;
        let s = c.status(i).await.unwrap_or_default();
        let links_refused = s["links_refused"].as_u64();
        assert_eq!(links_refused, Some(0), "member {i} refused a link: {s}");
    }
    // Keys last written by release 1 read as misses on release 2: write
    // each once more, so that the final check covers every key.
    workload::write_every_key(&rec, 0, &c.http(0)).await;
    let barrier = http::request(
        &c.http(0),
        "PUT",
        "/v1/cache/default/barrier?ack=all",
        "b",
        Duration::from_secs(15),
    )
    .await;
    assert!(
        matches!(barrier, Ok((200, _))),
        "the barrier write failed: {barrier:?}"
    );
    wait_ready(&c).await;
    let addrs: Vec<String> = (0..3).map(|i| c.http(i)).collect();
    let finals = workload::finals(&addrs).await;
    let history = rec.history();
    let report = checker::check(&history, &faults, lease, &finals);
    let writes = history
        .iter()
        .filter(|e| matches!(e.op, checker::Op::Write { .. }))
        .count();
    let acked = history
        .iter()
        .filter(|e| {
            matches!(
                e.op,
                checker::Op::Write {
                    outcome: checker::Outcome::Ok,
                    ..
                }
            )
        })
        .count();
    let hits = history
        .iter()
        .filter(|e| {
            matches!(
                e.op,
                checker::Op::Read {
                    seen: Ok(Some(_)),
                    ..
                }
            )
        })
        .count();
    summary.push(format!(
        "history: {} operations ({writes} writes, {acked} acknowledged; {hits} reads that hit), {} faults, {} violations, largest staleness {:?}",
        report.operations,
        faults.len(),
        report.violations.len(),
        report.max_staleness
    ));
    summary.push(roll_line(
        "rolling restart",
        &history,
        &report,
        roll,
        &restarting,
    ));
    summary.push(
        roll_line("rolling upgrade", &history, &report, upgrade, &upgrading)
            + &format!(", {refused} keys invalidated by schema"),
    );
    for (name, gap) in &report.unavailability {
        summary.push(format!(
            "longest write unavailability during {name}: {gap:?}"
        ));
    }
    println!("multi-host summary:\n  {}", summary.join("\n  "));
    for v in report.violations.iter().take(10) {
        let detail = |i: usize| format!("{:?}", history.get(i));
        let events = match v {
            checker::Violation::Phantom { read } => detail(*read),
            checker::Violation::StaleAfterAll { read, newer }
            | checker::Violation::StaleAfterQuorum { read, newer } => {
                format!("{} after {}", detail(*read), detail(*newer))
            }
            checker::Violation::MinorityAck { write, .. } => detail(*write),
            _ => String::new(),
        };
        println!("violation: {v} {events}");
    }
    assert!(
        report.violations.is_empty(),
        "the history broke the guarantees; see above\n{}",
        c.logs()
    );
    // No log line prints a key or a value: every one carries the sentinel.
    for i in 0..3 {
        logs.push_str(&c.all_logs(i));
    }
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(workload::SENTINEL))
        .take(5)
        .collect();
    assert!(
        leaks.is_empty(),
        "members logged keys or values:\n{}",
        leaks.join("\n")
    );
    assert!(
        logs.contains("values written by a member with another schema"),
        "the refusals of the other release's values were logged"
    );
}

/// Values member `i` refused since its start for their schema.
async fn schema_mismatches(c: &Cluster, i: usize) -> u64 {
    let s = c.status(i).await;
    s.and_then(|s| s["schema_mismatches"].as_u64())
        .unwrap_or_else(|| panic!("member {i} reports no schema_mismatches\n{}", c.logs()))
}

/// One line for a rolling update (`name`) within `roll`, in a form to
/// compare runs: writes on ready members (those not in `restarting`'s
/// windows) that failed, the slowest of them, and the reads and values the
/// checker found wrong.
fn roll_line(
    name: &str,
    history: &[checker::Event],
    report: &checker::Report,
    roll: (Duration, Duration),
    restarting: &[(usize, Duration, Duration)],
) -> String {
    let in_roll = |e: &checker::Event| e.start >= roll.0 && e.start <= roll.1;
    let ready = |e: &checker::Event| {
        !restarting
            .iter()
            .any(|(i, down, up)| *i == e.node && e.end >= *down && e.start <= *up)
    };
    let writes: Vec<&checker::Event> = history
        .iter()
        .filter(|e| matches!(e.op, checker::Op::Write { .. }) && in_roll(e) && ready(e))
        .collect();
    let failed = writes
        .iter()
        .filter(|e| {
            !matches!(
                e.op,
                checker::Op::Write {
                    outcome: checker::Outcome::Ok,
                    ..
                }
            )
        })
        .count();
    let slowest = writes.iter().max_by_key(|e| e.end - e.start);
    // Where the slowest one was, to tell a lease wait from an election.
    let detail = slowest.map_or(String::new(), |e| {
        let ack = match &e.op {
            checker::Op::Write { ack, .. } => format!("{ack:?}"),
            checker::Op::Read { .. } => String::new(),
        };
        let near: Vec<String> = restarting
            .iter()
            .map(|(i, down, up)| {
                let at = |t: Duration| t.as_millis() as i128 - e.start.as_millis() as i128;
                format!("member {i} down {:+} ms, up {:+} ms", at(*down), at(*up))
            })
            .collect();
        format!(
            "; the slowest: {ack} on member {}; {}",
            e.node,
            near.join(", ")
        )
    });
    let slowest = slowest.map(|e| e.end - e.start).unwrap_or_default();
    let read_in_roll = |i: &usize| history.get(*i).is_some_and(in_roll);
    let count =
        |f: &dyn Fn(&checker::Violation) -> bool| report.violations.iter().filter(|v| f(v)).count();
    let stale = count(&|v| match v {
        checker::Violation::StaleAfterAll { read, .. }
        | checker::Violation::StaleAfterQuorum { read, .. } => read_in_roll(read),
        _ => false,
    });
    let lost = count(&|v| matches!(v, checker::Violation::Lost { .. }));
    let wrong = count(&|v| matches!(v, checker::Violation::Phantom { read } if read_in_roll(read)));
    format!(
        "{name}: {failed} failed writes, slowest write {} ms, {stale} stale reads, \
         {lost} lost writes, {wrong} wrong values ({} writes on ready members{detail})",
        slowest.as_millis(),
        writes.len()
    )
}

/// The member every member names as leader (waits for agreement).
async fn current_leader(c: &Cluster) -> usize {
    let start = Instant::now();
    loop {
        let mut leaders = Vec::new();
        for i in 0..3 {
            leaders.push(c.status(i).await.and_then(|s| s["leader"].as_u64()));
        }
        if let Some(Some(l)) = leaders.first().copied()
            && leaders.iter().all(|x| *x == Some(l))
        {
            return l as usize;
        }
        assert!(
            start.elapsed() < WAIT,
            "no agreed leader: {leaders:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether member `i` says it serves reads (false when it does not answer).
async fn serving(c: &Cluster, i: usize) -> bool {
    c.status(i)
        .await
        .and_then(|s| s["serving"].as_bool())
        .unwrap_or(false)
}

/// Waits until member `i`'s serving is `wanted`; how long that took.
async fn serving_until(c: &Cluster, i: usize, wanted: bool) -> Duration {
    let start = Instant::now();
    while serving(c, i).await != wanted {
        assert!(
            start.elapsed() < WAIT,
            "member {i} never turned serving {wanted}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Waits until every member serves; how long that took.
async fn all_serving(c: &Cluster) -> Duration {
    let start = Instant::now();
    for i in 0..3 {
        serving_until(c, i, true).await;
    }
    start.elapsed()
}

/// Watches every member's serving, every 10 ms, until a member other than
/// `old` leads and serves: the longest time no member served.
async fn gap_until_another_leader_serves(c: &Cluster, old: usize) -> Duration {
    let start = Instant::now();
    let mut none_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    loop {
        let mut any = false;
        let mut new_leader = false;
        for i in 0..3 {
            let s = c.status(i).await.unwrap_or_default();
            let serves = s["serving"].as_bool() == Some(true);
            any |= serves;
            new_leader |= i != old && serves && s["role"].as_str() == Some("Leader");
        }
        match (any, none_since) {
            (true, Some(since)) => {
                longest = longest.max(since.elapsed());
                none_since = None;
            }
            (false, None) => none_since = Some(Instant::now()),
            _ => {}
        }
        if new_leader {
            return longest;
        }
        assert!(
            start.elapsed() < WAIT,
            "no other member took over from {old}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every member answers ready (serving reads).
async fn wait_ready(c: &Cluster) {
    let start = Instant::now();
    for i in 0..3 {
        loop {
            let r = http::request(
                &c.http(i),
                "GET",
                "/health/ready",
                "",
                Duration::from_secs(2),
            )
            .await;
            if matches!(r, Ok((200, _))) {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "member {i} never became ready\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
