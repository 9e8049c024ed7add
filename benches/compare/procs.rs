//! Workload W1 on redhac as users run it: three processes on 127.0.0.1, one
//! member each (this binary re-executed with `--member`), plaintext, default
//! timing. Cold start (from spawning the processes to one leader and all
//! serving), failover (the leader's process killed with SIGKILL, to a write
//! succeeding on a survivor) and Quorum write latency on a member of its own
//! process. With learners (`learners_row`): 3 voters and 0, 4 or 12 learner
//! processes, Quorum and All write latency on the leader.
//!
//! A member process reports its state on stdout (`state ROLE LEADER SERVING`
//! on each change) and takes commands on stdin: `write` (write until one
//! succeeds, then `written`), `latency N [all]` (N sequential Quorum, or
//! All, writes, then `latency P50 P99` in µs), `gets` (its gets of the W1
//! keys beside raw moka's in the same process, then `gets OURS MOKA` in ns)
//! and `quit`; it also stops when stdin closes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redhac::{AckLevel, Role, WriteOptions};
use serde_json::{Map, Value, json};

use crate::cluster::start_member_with_learners;
use crate::w1::{KEYS, Val, key, val};

/// The member process's side: `--member PORT HOSTS [LEARNERS]`.
pub(crate) fn member(args: &[String]) {
    let (port, hosts) = match args {
        [port, hosts, ..] => (port.clone(), hosts.clone()),
        _ => panic!("--member PORT HOSTS [LEARNERS]"),
    };
    let learners = args.get(2).cloned().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rt.block_on(async move {
        let l = TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind the member's port");
        let node = start_member_with_learners::<Val>(l, hosts, learners).await;
        let cache = node.cache::<Val>("w1").expect("cache");
        let mut changes = node.watch();
        let reporter = tokio::spawn(async move {
            while let Ok(s) = changes.changed().await {
                let leader = s.leader.map_or("-".to_owned(), |l| l.to_string());
                say(&format!(
                    "state {:?} {leader} {}",
                    s.role,
                    u8::from(s.serving)
                ));
            }
        });
        while let Some(command) = commands.recv().await {
            let words: Vec<&str> = command.split_whitespace().collect();
            match words.as_slice() {
                ["write"] => {
                    let opts = WriteOptions::default().timeout(Duration::from_millis(500));
                    while cache.put_with("failover", val(0), opts).await.is_err() {}
                    say("written");
                }
                ["latency", n, ack @ ..] => {
                    let n: usize = n.parse().expect("a count");
                    let ack = match ack {
                        ["all"] => AckLevel::All,
                        _ => AckLevel::Quorum,
                    };
                    let opts = WriteOptions::default().ack(ack);
                    let mut samples = Vec::with_capacity(n);
                    for i in 0..n {
                        let t = Instant::now();
                        cache
                            .put_with(key(i % KEYS), val(i), opts)
                            .await
                            .expect("write");
                        samples.push(t.elapsed());
                    }
                    let (p50, p99, _) = crate::percentiles_us(samples);
                    say(&format!("latency {p50:.1} {p99:.1}"));
                }
                ["gets"] => {
                    // This member's gets beside raw moka's in this process,
                    // three rounds alternating, medians.
                    let (ours, moka) = tokio::spawn({
                        let cache = cache.clone();
                        async move {
                            let moka = crate::w1::moka_filled();
                            let mut ours = Vec::new();
                            let mut raw = Vec::new();
                            for _ in 0..3 {
                                raw.push(crate::w1::get_rounds(&|k| moka.get(k).is_some()));
                                ours.push(crate::w1::get_rounds(&|k| cache.get(k).is_some()));
                            }
                            (crate::median(ours), crate::median(raw))
                        }
                    })
                    .await
                    .expect("the get task");
                    say(&format!("gets {ours:.1} {moka:.1}"));
                }
                ["quit"] => break,
                _ => panic!("unknown command {command:?}"),
            }
        }
        reporter.abort();
        node.shutdown().await.expect("shutdown");
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What a member process last said of its state.
#[derive(Debug, Clone, Default)]
struct State {
    role: String,
    leader: String,
    serving: bool,
}

/// Member processes and their lines.
struct Procs {
    children: Vec<Option<(Child, ChildStdin)>>,
    lines: mpsc::Receiver<(usize, String)>,
    states: Vec<State>,
    /// When the last process was spawned.
    last_spawned: Instant,
}

impl Procs {
    /// Spawns three voters, `stagger` apart.
    fn spawn(stagger: Duration) -> Self {
        Self::spawn_with_learners(stagger, 0)
    }

    /// Spawns three voters and `learners` learners, `stagger` apart.
    fn spawn_with_learners(stagger: Duration, learners: usize) -> Self {
        let ports: Vec<u16> = (0..3 + learners)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind");
                l.local_addr().expect("addr").port()
            })
            .collect();
        let list = |ports: &[u16]| {
            ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (hosts, learner_hosts) = (list(&ports[..3]), list(&ports[3..]));
        let exe = std::env::current_exe().expect("this binary");
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(stagger);
            }
            let mut child = Command::new(&exe)
                .args(["--member", &port.to_string(), &hosts, &learner_hosts])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a member process");
            let stdout = child.stdout.take().expect("stdout");
            let stdin = child.stdin.take().expect("stdin");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(Some((child, stdin)));
        }
        Self {
            children,
            lines,
            states: vec![State::default(); ports.len()],
            last_spawned: Instant::now(),
        }
    }

    /// Reads the members' lines until `done` holds of their states or of
    /// the latest line.
    fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&[State], Option<&(usize, String)>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        if done(&self.states, None) {
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, line) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("member processes: no {what} within 30 s"));
            if let Some(rest) = line.strip_prefix("state ") {
                let f: Vec<&str> = rest.split(' ').collect();
                if let [role, leader, serving] = f.as_slice() {
                    self.states[i] = State {
                        role: (*role).to_owned(),
                        leader: (*leader).to_owned(),
                        serving: *serving == "1",
                    };
                }
            }
            if done(&self.states, Some(&(i, line))) {
                return;
            }
        }
    }

    /// Waits for one leader that the living members follow, all serving;
    /// the leader's position.
    fn steady(&mut self) -> usize {
        let alive: Vec<bool> = self.children.iter().map(Option::is_some).collect();
        let mut found = 0;
        self.until("steady leader", |s, _| {
            let live: Vec<usize> = (0..alive.len()).filter(|&i| alive[i]).collect();
            let leaders: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| s[i].role == format!("{:?}", Role::Leader))
                .collect();
            let [l] = leaders.as_slice() else {
                return false;
            };
            let ok = live
                .iter()
                .all(|&i| s[i].serving && s[i].leader == s[*l].leader && s[i].leader != "-");
            found = *l;
            ok
        });
        found
    }

    fn tell(&mut self, i: usize, command: &str) {
        let (_, stdin) = self.children[i].as_mut().expect("a living member");
        writeln!(stdin, "{command}").expect("write to a member");
        stdin.flush().expect("flush");
    }

    /// Sends a command to member `i` and returns its answer starting with
    /// `answer`.
    fn ask(&mut self, i: usize, command: &str, answer: &str) -> String {
        self.tell(i, command);
        let mut got = String::new();
        self.until(answer, |_, line| match line {
            Some((from, l)) if *from == i && l.starts_with(answer) => {
                got = l.clone();
                true
            }
            _ => false,
        });
        got
    }

    fn kill(&mut self, i: usize) {
        if let Some((mut child, _)) = self.children[i].take() {
            child.kill().expect("SIGKILL a member");
            let _ = child.wait();
        }
    }

    fn quit(mut self) {
        for i in 0..self.children.len() {
            if self.children[i].is_some() {
                self.tell(i, "quit");
            }
        }
        for (mut child, stdin) in self.children.into_iter().flatten() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Cold starts, failovers and write latency of three member processes.
pub(crate) fn row() -> Map<String, Value> {
    // Cold start with all three spawned at once, then with each process
    // started 500 ms after the previous one (from the last one spawned);
    // after each, the leader's process killed.
    let mut cold = Vec::new();
    let mut staggered = Vec::new();
    let mut failover = Vec::new();
    for round in 0..20 {
        let stagger = if round < 10 {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        };
        let t = Instant::now();
        let mut procs = Procs::spawn(stagger);
        let l = procs.steady();
        if stagger.is_zero() {
            cold.push(t.elapsed());
        } else {
            staggered.push(procs.last_spawned.elapsed());
        }
        let survivor = (l + 1) % 3;
        let t = Instant::now();
        procs.kill(l);
        procs.ask(survivor, "write", "written");
        failover.push(t.elapsed());
        procs.quit();
    }
    let ms = |d: f64| d / 1e3;
    let (cold_p50, cold_p99, _) = crate::percentiles_us(cold);
    let (stag_p50, stag_p99, _) = crate::percentiles_us(staggered);
    let (fail_p50, fail_p99, _) = crate::percentiles_us(failover);
    eprintln!(
        "   cold start p50 {:.0} ms p99 {:.0} ms; 500 ms apart, from the last spawned: p50 {:.0} ms; \
         failover (SIGKILL) p50 {:.0} ms p99 {:.0} ms",
        ms(cold_p50),
        ms(cold_p99),
        ms(stag_p50),
        ms(fail_p50),
        ms(fail_p99)
    );
    let mut procs = Procs::spawn(Duration::ZERO);
    let l = procs.steady();
    let f = (l + 1) % 3;
    procs.ask(l, "latency 1000", "latency"); // warm-up
    let (w_p50, w_p99) = parse_latency(&procs.ask(l, "latency 10000", "latency"));
    let (f_p50, f_p99) = parse_latency(&procs.ask(f, "latency 10000", "latency"));
    eprintln!("   leader write p50 {w_p50:.1} µs; follower write p50 {f_p50:.1} µs");
    // Every W1 key is written now: the follower's gets in its own process.
    let (get, moka_get) = parse_latency(&procs.ask(f, "gets", "gets"));
    eprintln!(
        "   follower get {get:.1} ns, raw moka in the same process {moka_get:.1} ns ({:.2}x)",
        get / moka_get
    );
    procs.quit();
    crate::row(
        "redhac-procs",
        json!({
            "mode": "3 member processes, plaintext",
            "cold_start_p50_ms": ms(cold_p50),
            "cold_start_p99_ms": ms(cold_p99),
            "cold_start_staggered_p50_ms": ms(stag_p50),
            "cold_start_staggered_p99_ms": ms(stag_p99),
            "failover_p50_ms": ms(fail_p50),
            "failover_p99_ms": ms(fail_p99),
            "w_leader_p50_us": w_p50,
            "w_leader_p99_us": w_p99,
            "w_follower_p50_us": f_p50,
            "w_follower_p99_us": f_p99,
            "get_ns": get,
            "moka_get_ns": moka_get,
        }),
    )
}

/// Quorum and All write latency on the leader with 3 voters and 0, 4 or 12
/// learners, each member a process of its own.
pub(crate) fn learners_row() -> Map<String, Value> {
    let mut figures = Map::new();
    for learners in [0, 4, 12] {
        let mut procs = Procs::spawn_with_learners(Duration::ZERO, learners);
        let l = procs.steady();
        procs.ask(l, "latency 500", "latency"); // warm-up
        let (q_p50, q_p99) = parse_latency(&procs.ask(l, "latency 3000", "latency"));
        let (a_p50, a_p99) = parse_latency(&procs.ask(l, "latency 3000 all", "latency"));
        eprintln!(
            "   3 voters + {learners} learners: Quorum p50 {q_p50:.1} µs p99 {q_p99:.1} µs; \
             All p50 {a_p50:.1} µs p99 {a_p99:.1} µs"
        );
        for (name, v) in [
            ("quorum_p50_us", q_p50),
            ("quorum_p99_us", q_p99),
            ("all_p50_us", a_p50),
            ("all_p99_us", a_p99),
        ] {
            figures.insert(format!("l{learners}_{name}"), json!(v));
        }
        procs.quit();
    }
    figures.insert(
        "mode".into(),
        json!("3 voters + N learners, a process each, plaintext"),
    );
    crate::row("redhac-procs-learners", Value::Object(figures))
}

/// The two numbers of `latency P50 P99` (or `gets OURS MOKA`).
fn parse_latency(line: &str) -> (f64, f64) {
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v[0], v[1])
}
