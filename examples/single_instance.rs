//! redhac as a single-instance typed cache.
//!
//! Run from the repository root: `cargo run --example single_instance`
//! (`RUST_LOG=debug` shows more).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redhac::{CacheOptions, Config, Redhac, WriteOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    // Unset variables mean a standalone cache; HA_MODE=true would make this a
    // cluster member once the HA runtime lands.
    let config = Config::from_env()?;
    println!("1. starting redhac (ha_mode = {})", config.ha_mode);
    let redhac = Redhac::builder()
        .config(config)
        .cache::<Session>(
            "sessions",
            CacheOptions::default()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(900)),
        )
        .start()
        .await?;
    let sessions = redhac.cache::<Session>("sessions")?;

    let mut events = sessions.subscribe();
    let alice = Session {
        user: "alice".into(),
        roles: vec!["admin".into()],
    };
    sessions.put("sid-alice", alice).await?;
    let hit = sessions.get("sid-alice");
    println!("2. put sid-alice, get -> {:?}", hit.as_deref());

    // Ten concurrent requests for a missing session: one database load.
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (sessions, loads) = (sessions.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            sessions
                .get_or_insert_with("sid-bob", || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await; // a slow database
                    Session {
                        user: "bob".into(),
                        roles: vec![],
                    }
                })
                .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "3. 10 concurrent get_or_insert_with(sid-bob) ran the loader {} time(s)",
        loads.load(Ordering::SeqCst)
    );

    sessions
        .put_with(
            "sid-temp",
            Session {
                user: "tmp".into(),
                roles: vec![],
            },
            WriteOptions::default().ttl(Duration::from_millis(100)),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    println!(
        "4. sid-temp with a 100 ms TTL, 150 ms later -> {:?}",
        sessions.get("sid-temp").map(|s| s.user.clone())
    );

    sessions.delete("sid-alice").await?;
    println!(
        "5. deleted sid-alice, get -> {:?}",
        sessions.get("sid-alice")
    );

    print!("6. events seen:");
    while let Ok(Some(event)) = events.try_recv() {
        print!(" {:?}({})", event.kind, event.key.as_deref().unwrap_or("*"));
    }
    println!();

    redhac.shutdown().await?;
    println!("7. shut down; done");
    Ok(())
}
