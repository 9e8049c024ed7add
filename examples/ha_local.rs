//! A three-member HA cache in one process on 127.0.0.1: a leader is
//! elected, a follower writes, every member reads, the leader is killed
//! (dropped without a graceful handover), a new one is elected, and every
//! value survives.
//!
//! Run from the repository root: `cargo run --example ha_local`
//! (`RUST_LOG=debug` shows the protocol at work). Exits 0 on success.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use redhac::{AckLevel, CacheOptions, Config, Redhac, Role, WriteOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
}

type BoxError = Box<dyn std::error::Error>;

async fn start(listener: TcpListener, hosts: &str) -> Result<Redhac, BoxError> {
    let me = format!("127.0.0.1:{}", listener.local_addr()?.port());
    let config = Config::from_vars([
        ("HA_MODE", "true"),
        ("HA_HOSTS", hosts),
        ("CACHE_AUTH_TOKEN", "ha-local-demo-token-0123456789"),
        ("CACHE_TLS", "false"),
    ])?;
    Ok(Redhac::builder()
        .config(config)
        .listener(listener)
        .hostname(me)
        .cache::<Session>("sessions", CacheOptions::default())
        .start()
        .await?)
}

/// Waits until the members agree on one leader and all serve reads.
async fn wait_for_leader(nodes: &[&Redhac], since: Instant) -> Result<usize, BoxError> {
    loop {
        let s: Vec<_> = nodes.iter().map(|n| n.status()).collect();
        let leaders: Vec<usize> = (0..s.len())
            .filter(|&i| s[i].role == Role::Leader)
            .collect();
        if let [l] = leaders.as_slice()
            && s.iter()
                .all(|x| x.leader == Some(s[*l].me) && x.term == s[*l].term && x.serving)
        {
            println!(
                "  member {} leads term {} ({} ms); every member serves reads",
                s[*l].me,
                s[*l].term,
                since.elapsed().as_millis()
            );
            return Ok(*l);
        }
        if since.elapsed() > Duration::from_secs(20) {
            return Err(format!("no leader within 20 s: {s:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let hosts = listeners
        .iter()
        .map(|l| Ok(format!("http://127.0.0.1:{}", l.local_addr()?.port())))
        .collect::<Result<Vec<_>, std::io::Error>>()?
        .join(",");
    println!("1. starting three members: HA_HOSTS={hosts}");
    let started = Instant::now();
    let mut nodes = Vec::new();
    for l in listeners {
        nodes.push(start(l, &hosts).await?);
    }
    let leader = wait_for_leader(&nodes.iter().collect::<Vec<_>>(), started).await?;

    let follower = (leader + 1) % 3;
    println!("2. member {follower} (a follower) writes 100 sessions at Quorum, one more at All");
    let sessions = nodes[follower].cache::<Session>("sessions")?;
    for i in 0..100 {
        let s = Session {
            user: format!("user-{i}"),
            roles: vec!["reader".into()],
        };
        sessions.put(&format!("sid-{i}"), s).await?;
    }
    let admin = Session {
        user: "admin".into(),
        roles: vec!["admin".into()],
    };
    sessions
        .put_with(
            "sid-admin",
            admin.clone(),
            WriteOptions::default().ack(AckLevel::All),
        )
        .await?;

    println!("3. every member reads them locally");
    for n in &nodes {
        let c = n.cache::<Session>("sessions")?;
        let hit = c
            .get("sid-admin")
            .ok_or("an All write missing on a member")?;
        assert_eq!(*hit, admin);
        let mut held = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while held < 100 && Instant::now() < deadline {
            held = (0..100)
                .filter(|i| c.get(&format!("sid-{i}")).is_some())
                .count();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!(
            "  member {}: {held}/100 sessions + sid-admin",
            n.status().me
        );
        if held < 100 {
            return Err("a member misses Quorum writes".into());
        }
    }

    let old = nodes.remove(leader);
    let old_term = old.status().term;
    println!(
        "4. killing the leader (member {}, term {old_term}) without a handover",
        old.status().me
    );
    let killed = Instant::now();
    drop(old);
    let survivors: Vec<&Redhac> = nodes.iter().collect();
    let new_leader = wait_for_leader(&survivors, killed).await?;
    let term = survivors[new_leader].status().term;
    if term <= old_term {
        return Err("the new leader's term is not newer".into());
    }

    println!("5. the survivors still hold every value, and take writes");
    for n in &nodes {
        let c = n.cache::<Session>("sessions")?;
        let held = (0..100)
            .filter(|i| c.get(&format!("sid-{i}")).is_some())
            .count();
        println!("  member {}: {held}/100 sessions", n.status().me);
        if held < 100 || c.get("sid-admin").is_none() {
            return Err("a value was lost in the failover".into());
        }
    }
    let w = Instant::now();
    nodes[0]
        .cache::<Session>("sessions")?
        .put("sid-after", admin)
        .await?;
    println!(
        "  a Quorum write after the failover took {} µs",
        w.elapsed().as_micros()
    );

    println!("6. graceful shutdown");
    for n in nodes {
        n.shutdown().await?;
    }
    println!("done: failover kept every value");
    Ok(())
}
