//! What both peers share: the write and get loops, percentiles, ports and
//! the JSON row.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

pub(crate) use crate::value::{KEYS, Val, key, val};

/// Gets per round in `get_ns` (as in benches/compare/w1.rs).
pub(crate) const GETS: usize = 100_000;

/// One member's handle, as the loops below see it.
pub(crate) trait Member: Clone + Send + Sync + 'static {
    /// Writes W1's `key(i % KEYS)` = `val(i)` at the strongest ack.
    fn put(&self, i: usize) -> impl Future<Output = Result<(), String>> + Send;
}

/// (p50, p99, mean) in µs.
pub(crate) fn percentiles_us(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64 * 1e6;
    (at(0.5), at(0.99), mean)
}

/// A system's row: its name, `fields` and the `more` field sets.
pub(crate) fn row(
    system: &str,
    fields: Value,
    more: impl IntoIterator<Item = Map<String, Value>>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("system".into(), json!(system));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    for f in more {
        m.extend(f);
    }
    m
}

/// 1,000 warm-up then 10,000 sequential writes on `m`, as a spawned task:
/// (p50, p99, mean) in µs.
pub(crate) async fn latency<M: Member>(m: M) -> (f64, f64, f64) {
    tokio::spawn(async move {
        for i in 0..1_000 {
            m.put(i).await.expect("warm-up write");
        }
        let mut samples = Vec::with_capacity(10_000);
        for i in 0..10_000 {
            let t = Instant::now();
            m.put(i).await.expect("write");
            samples.push(t.elapsed());
        }
        percentiles_us(samples)
    })
    .await
    .expect("the latency task")
}

/// 64 writer tasks for 5 s, writer t on `members[t % len]`, writing
/// `key((t + k*64) % KEYS)`: ops/s.
pub(crate) async fn throughput<M: Member>(members: Vec<M>) -> f64 {
    const WRITERS: usize = 64;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (m, done, failed, stop) = (
                members[t % members.len()].clone(),
                done.clone(),
                failed.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    if m.put(i).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += WRITERS;
                }
            })
        })
        .collect();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    for task in tasks {
        task.await.expect("a writer");
    }
    let f = failed.load(Ordering::Relaxed);
    if f > 0 {
        eprintln!("   ({f} writes failed during the throughput run; not counted)");
    }
    n as f64 / secs
}

/// ns per get over 100,000 gets of present keys (`get` returns whether the
/// key was found), run as a spawned task; the median of five rounds. As
/// benches/compare/w1.rs `get_ns`, with an async get.
pub(crate) fn get_ns<G, F>(rt: &tokio::runtime::Runtime, get: G) -> f64
where
    G: Fn(String) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = bool> + Send + 'static,
{
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(key).collect());
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let (keys, get) = (keys.clone(), get.clone());
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for i in 0..GETS {
                        let found = get(std::hint::black_box(keys[i % KEYS].clone())).await;
                        assert!(std::hint::black_box(found), "a W1 key is missing");
                    }
                    start.elapsed().as_nanos() as f64 / GETS as f64
                })
                .await
                .expect("the get task")
            })
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// `n` free 127.0.0.1 ports (bound, read, released).
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("a local address").port())
        .collect()
}

/// A multi-thread runtime with `workers` worker threads.
pub(crate) fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Ten cold starts, each `start`ing a cluster on a fresh 2-worker runtime
/// that is dropped afterwards (which ends every task of that cluster and
/// closes its sockets): the cold-start fields of a row, in ms. The members
/// are never dropped: their handles lead into the dropped runtime (and
/// redhac 0.10.5's exit task panics when its last `CacheConfig` goes).
pub(crate) fn cold_starts<T, F: Future<Output = T>>(start: impl Fn() -> F) -> Map<String, Value> {
    let mut cold = Vec::new();
    for run in 0..10 {
        let crt = runtime(2);
        let t = Instant::now();
        let members = crt.block_on(start());
        cold.push(t.elapsed());
        crt.shutdown_background();
        std::mem::forget(members);
        eprintln!(
            "   cold start {run}: {:.1} ms",
            cold[run].as_secs_f64() * 1e3
        );
    }
    let (p50, p99, _) = percentiles_us(cold);
    let mut fields = Map::new();
    fields.insert("cold_start_p50_ms".into(), json!(p50 / 1e3));
    fields.insert("cold_start_p99_ms".into(), json!(p99 / 1e3));
    fields
}

/// One failover run on `members`, each on its own runtime (`rts`, in the
/// same order), `l` the leader: the leader's runtime is dropped (a crash:
/// its tasks end, its sockets close) while the survivors are written
/// through (see [`failover`]); then every runtime is dropped.
pub(crate) fn crash_leader<M: Member>(
    rt: &tokio::runtime::Runtime,
    rts: Vec<tokio::runtime::Runtime>,
    members: Vec<M>,
    l: usize,
) -> Failover {
    let survivors: Vec<M> = (0..members.len())
        .filter(|&i| i != l)
        .map(|i| members[i].clone())
        .collect();
    let mut rts: Vec<Option<tokio::runtime::Runtime>> = rts.into_iter().map(Some).collect();
    let leader_rt = rts[l].take().expect("the leader's runtime");
    let f = rt.block_on(failover(survivors, move || leader_rt.shutdown_background()));
    eprintln!(
        "   failover: {:.1} ms, {} stranded, {} errors after the stop",
        f.elapsed.as_secs_f64() * 1e3,
        f.stranded,
        f.errors_after
    );
    for r in rts.into_iter().flatten() {
        r.shutdown_background();
    }
    // As in `cold_starts`: never dropped.
    std::mem::forget(members);
    f
}

/// The failover fields of a row, from its runs.
pub(crate) fn failover_fields(runs: &[Failover]) -> Map<String, Value> {
    let (p50, p99, _) = percentiles_us(runs.iter().map(|f| f.elapsed).collect());
    let unrecovered = runs
        .iter()
        .filter(|f| f.elapsed >= Duration::from_secs(30))
        .count();
    let mut fields = Map::new();
    fields.insert("failover_p50_ms".into(), json!(p50 / 1e3));
    fields.insert("failover_p99_ms".into(), json!(p99 / 1e3));
    fields.insert(
        "stranded_writes".into(),
        json!(runs.iter().map(|f| f.stranded).sum::<u64>()),
    );
    fields.insert(
        "failover_errors_after_stop".into(),
        json!(runs.iter().map(|f| f.errors_after).sum::<u64>()),
    );
    fields.insert("failover_runs".into(), json!(runs.len()));
    fields.insert("failover_unrecovered_runs".into(), json!(unrecovered));
    fields
}

/// The result of one failover run.
pub(crate) struct Failover {
    /// From the stop to the first write succeeding on a survivor.
    pub(crate) elapsed: Duration,
    /// Writes in flight at the stop that failed or did not return in 10 s.
    pub(crate) stranded: u64,
    /// Writes started after the stop that returned an error (writers pause
    /// 10 ms after an error, then go on with the next key).
    pub(crate) errors_after: u64,
}

/// Writers (two per survivor, 10 s timeout per write) write through
/// `survivors` while `stop` kills the leader; from the stop, probe writes
/// (500 ms timeout, retried) on each survivor until the first succeeds (or a
/// writer's write started after the stop succeeds); then the writers'
/// in-flight writes finish or time out.
pub(crate) async fn failover<M: Member>(survivors: Vec<M>, stop: impl FnOnce()) -> Failover {
    const WRITERS: usize = 4;
    let stopped_at: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let first_ok: Arc<std::sync::Mutex<Option<Instant>>> = Arc::new(std::sync::Mutex::new(None));
    let stranded = Arc::new(AtomicU64::new(0));
    let errors_after = Arc::new(AtomicU64::new(0));
    let quit = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let m = survivors[t % survivors.len()].clone();
            let (stopped_at, first_ok, stranded, errors_after, quit) = (
                stopped_at.clone(),
                first_ok.clone(),
                stranded.clone(),
                errors_after.clone(),
                quit.clone(),
            );
            tokio::spawn(async move {
                let mut i = t;
                while !quit.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let before_stop = stopped_at.get().is_none();
                    let res = tokio::time::timeout(Duration::from_secs(10), m.put(i)).await;
                    let ok = matches!(res, Ok(Ok(())));
                    if let Some(&s) = stopped_at.get() {
                        if ok && started >= s {
                            let mut f = first_ok.lock().expect("first_ok lock");
                            if f.is_none() {
                                *f = Some(Instant::now());
                            }
                        }
                        if !ok {
                            if before_stop || started < s {
                                stranded.fetch_add(1, Ordering::Relaxed);
                            } else if res.is_err() {
                                // hung 10 s though started after the stop
                                stranded.fetch_add(1, Ordering::Relaxed);
                            } else {
                                errors_after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    i += WRITERS;
                }
            })
        })
        .collect();
    // Writes flowing before the stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = Instant::now();
    stopped_at.set(s).expect("stopped once");
    stop();
    // Fresh probe writes on every survivor, each with a 500 ms timeout
    // (as benches/compare/ha.rs), until one succeeds.
    let probes: Vec<_> = survivors
        .iter()
        .cloned()
        .enumerate()
        .map(|(p, m)| {
            let first_ok = first_ok.clone();
            tokio::spawn(async move {
                let mut i = 1_000_000 + p;
                loop {
                    if first_ok.lock().expect("first_ok lock").is_some() {
                        return;
                    }
                    let res = tokio::time::timeout(Duration::from_millis(500), m.put(i)).await;
                    if matches!(res, Ok(Ok(()))) {
                        let mut f = first_ok.lock().expect("first_ok lock");
                        if f.is_none() {
                            *f = Some(Instant::now());
                        }
                        return;
                    }
                    if matches!(res, Ok(Err(_))) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    i += 2;
                }
            })
        })
        .collect();
    let deadline = s + Duration::from_secs(30);
    let elapsed = loop {
        if let Some(f) = *first_ok.lock().expect("first_ok lock") {
            break f - s;
        }
        if Instant::now() > deadline {
            break Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    for p in probes {
        p.abort();
    }
    quit.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a failover writer");
    }
    Failover {
        elapsed,
        stranded: stranded.load(Ordering::Relaxed),
        errors_after: errors_after.load(Ordering::Relaxed),
    }
}
