//! The usual alternative: Redis 7, a primary and two replicas on loopback; a
//! quorum write is `SET` then `WAIT 1` (one replica besides the primary: a
//! majority of three).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value, json};

use crate::w1::{KEYS, key, val};

const COLD_STARTS: usize = 20;

/// Three redis-server processes, killed on drop.
struct Cluster {
    procs: Vec<Child>,
    ports: [u16; 3],
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start() -> Result<Cluster, String> {
    let ports = [free_port(), free_port(), free_port()];
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        // Replicas write the primary's RDB into their working directory.
        let dir = std::env::temp_dir().join(format!("redhac-bench-redis-{port}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cmd = Command::new("redis-server");
        cmd.arg("--dir").arg(&dir).args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if i > 0 {
            cmd.args(["--replicaof", "127.0.0.1", &ports[0].to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run redis-server ({e}); install it with `apt-get install redis-server`"
                )
            })?;
        procs.push(child);
    }
    Ok(Cluster { procs, ports })
}

async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
        .get_multiplexed_async_connection()
        .await?;
    // The client's default 500 ms response timeout is shorter than WAIT's
    // own 1 s: under load on 2 cores it cut WAITs short.
    conn.set_response_timeout(Duration::from_secs(10));
    Ok(conn)
}

/// Waits until both replicas are linked to the primary.
async fn ready(c: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut conn) = connect(c.ports[0]).await {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let online = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count();
            if online == 2 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the redis replicas did not come online within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn quorum_set(conn: &mut MultiplexedConnection, k: &str, v: &[u8]) -> redis::RedisResult<()> {
    let () = redis::cmd("SET").arg(k).arg(v).query_async(conn).await?;
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query_async(conn)
        .await?;
    if acked < 1 {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "WAIT timed out",
        )));
    }
    Ok(())
}

pub(crate) async fn row() -> Result<Map<String, Value>, String> {
    let which = Command::new("redis-server").arg("--version").output();
    if which.is_err() {
        return Err(
            "redis-server is not installed; `apt-get install redis-server` adds this baseline"
                .into(),
        );
    }

    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        let t = Instant::now();
        let c = start()?;
        ready(&c).await?;
        cold.push(t.elapsed());
        drop(c);
    }
    let (cold_p50, cold_p99, _) = crate::percentiles_us(cold);

    let cluster = start()?;
    ready(&cluster).await?;
    let primary = cluster.ports[0];
    let bytes: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..KEYS)
            .map(|i| postcard::to_allocvec(&val(i)).expect("encode"))
            .collect(),
    );

    // Sequential quorum writes from one task.
    let b = bytes.clone();
    let samples = tokio::spawn(async move {
        let mut conn = connect(primary).await?;
        let mut samples = Vec::with_capacity(10_000);
        for i in 0..11_000 {
            let t = Instant::now();
            quorum_set(&mut conn, &key(i % KEYS), &b[i % KEYS]).await?;
            if i >= 1_000 {
                samples.push(t.elapsed());
            }
        }
        Ok::<_, redis::RedisError>(samples)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let (w_p50, w_p99, w_mean) = crate::percentiles_us(samples);

    // 64 writers, one connection each, for 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..64 {
        let (stop, done, b) = (stop.clone(), done.clone(), bytes.clone());
        writers.push(tokio::spawn(async move {
            let mut conn = connect(primary).await?;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                // Counted only when a replica acknowledged, as redhac's
                // writers count only acknowledged writes.
                if quorum_set(&mut conn, &key(i % KEYS), &b[i % KEYS])
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 64;
            }
            Ok::<_, redis::RedisError>(())
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let tput = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();

    // 100,000 GETs of present keys on a replica.
    let replica = cluster.ports[1];
    let get_ns = tokio::spawn(async move {
        let mut conn = connect(replica).await?;
        let t = Instant::now();
        for i in 0..100_000 {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key(i % KEYS))
                .query_async(&mut conn)
                .await?;
            assert!(v.is_some(), "a W1 key is missing on the replica");
        }
        Ok::<_, redis::RedisError>(t.elapsed().as_nanos() as f64 / 100_000.0)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;

    let version = String::from_utf8_lossy(&which.map(|o| o.stdout).unwrap_or_default())
        .trim()
        .to_owned();
    Ok(crate::row(
        "redis",
        json!({
            "version": version,
            "cold_start_p50_ms": cold_p50 / 1e3,
            "cold_start_p99_ms": cold_p99 / 1e3,
            "w_leader_p50_us": w_p50,
            "w_leader_p99_us": w_p99,
            "w_leader_mean_us": w_mean,
            "w_tput_ops": tput,
            "get_ns": get_ns,
        }),
    ))
}
