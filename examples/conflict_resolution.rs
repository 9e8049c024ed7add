//! The original redhac's stress case, on real sockets: three members start
//! at the same instant, again and again, and must always end with exactly
//! one leader that every member follows, never two leaders in one term.
//!
//! Each round binds three ephemeral ports on 127.0.0.1, starts the three
//! members concurrently, polls their status until one leader is agreed on
//! and every member serves reads (at most 20 s), then shuts them down. At the
//! end it prints the time-to-leader distribution.
//!
//! Run from the repository root:
//! `cargo run --release --example conflict_resolution -- --rounds 100`
//! (default 100 rounds). Exits 1 if any round saw two leaders in one term or
//! no agreed leader within the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use redhac::{CacheOptions, Config, Redhac, Role, Status};

/// How long a round may take to agree on a leader.
const DEADLINE: Duration = Duration::from_secs(20);

type BoxError = Box<dyn std::error::Error>;

fn parse_rounds() -> Result<usize, String> {
    let usage = "usage: conflict_resolution [--rounds N]";
    let mut args = std::env::args().skip(1);
    let mut rounds = 100;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--rounds needs a positive number; {usage}"))?;
            }
            other => return Err(format!("unknown argument {other:?}; {usage}")),
        }
    }
    Ok(rounds)
}

async fn start(listener: TcpListener, hosts: &str) -> Result<Redhac, BoxError> {
    let me = format!("127.0.0.1:{}", listener.local_addr()?.port());
    let config = Config::from_vars([
        ("HA_MODE", "true"),
        ("HA_HOSTS", hosts),
        ("CACHE_AUTH_TOKEN", "conflict-resolution-token-0123456789"),
        ("CACHE_TLS", "false"),
    ])?;
    Ok(Redhac::builder()
        .config(config)
        .listener(listener)
        .hostname(me)
        .cache::<String>("sessions", CacheOptions::default())
        .start()
        .await?)
}

/// Polls until one leader is agreed on by all and every member serves.
/// Fails as soon as two members were seen leading the same term.
async fn elect(nodes: &[Redhac], started: Instant) -> Result<(Duration, u32, u64), String> {
    let mut leaders: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    loop {
        let s: Vec<Status> = nodes.iter().map(Redhac::status).collect();
        for x in s.iter().filter(|x| x.role == Role::Leader) {
            let claimed = leaders.entry(x.term).or_default();
            claimed.insert(x.me);
            if claimed.len() > 1 {
                return Err(format!(
                    "two leaders in term {}: members {claimed:?}",
                    x.term
                ));
            }
        }
        let current: Vec<&Status> = s.iter().filter(|x| x.role == Role::Leader).collect();
        if let [l] = current.as_slice()
            && s.iter()
                .all(|x| x.leader == Some(l.me) && x.term == l.term && x.serving)
        {
            return Ok((started.elapsed(), l.me, l.term));
        }
        if started.elapsed() > DEADLINE {
            return Err(format!("no agreed leader within {DEADLINE:?}: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One round: start three members at once, wait for the leader, shut down.
async fn round() -> Result<Result<(Duration, u32, u64), String>, BoxError> {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let [l0, l1, l2] = [bind()?, bind()?, bind()?];
    let hosts = [&l0, &l1, &l2]
        .iter()
        .map(|l| Ok(format!("http://127.0.0.1:{}", l.local_addr()?.port())))
        .collect::<Result<Vec<_>, std::io::Error>>()?
        .join(",");
    let started = Instant::now();
    let (a, b, c) = tokio::join!(start(l0, &hosts), start(l1, &hosts), start(l2, &hosts));
    let nodes = [a?, b?, c?];
    let outcome = elect(&nodes, started).await;
    // The leader first, so it hands over to a follower that is still up.
    let leader = outcome.as_ref().map_or(0, |(_, l, _)| *l as usize);
    for i in (0..nodes.len()).map(|i| (leader + i) % nodes.len()) {
        nodes[i].shutdown().await?;
    }
    Ok(outcome)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run() -> Result<(), BoxError> {
    let rounds = parse_rounds()?;
    println!("{rounds} rounds of three members starting at the same instant");
    let mut times = Vec::with_capacity(rounds);
    let mut failures = Vec::new();
    for n in 1..=rounds {
        match round().await? {
            Ok((took, leader, term)) => {
                println!(
                    "  round {n}/{rounds}: member {leader} leads term {term} after {} ms",
                    took.as_millis()
                );
                times.push(took);
            }
            Err(e) => {
                println!("  round {n}/{rounds}: FAILED: {e}");
                failures.push(format!("round {n}: {e}"));
            }
        }
    }
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        println!(
            "time to leader over {} rounds (ms): min {} p50 {} p90 {} p99 {} max {}",
            times.len(),
            ms(*min),
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 90.0)),
            ms(percentile(&times, 99.0)),
            ms(*max)
        );
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} of {rounds} rounds failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
        .into());
    }
    println!("done: {rounds} rounds, one leader per term in every round");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conflict_resolution FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
