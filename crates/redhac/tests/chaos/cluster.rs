//! The compose cluster of deploy/compose, driven through the docker CLI: up,
//! down, and the faults (kill, restart, pause, network disconnect).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::http;

/// Three members started by docker-compose under a project of their own,
/// removed on drop.
pub(crate) struct Cluster {
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    ports: [u16; 3],
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether a Docker engine answers.
pub(crate) fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the multi-host suite runs: `REDHAC_CHAOS=1` with a Docker
/// engine (panics when it is asked for and impossible, or when CI skips it).
pub(crate) fn wanted() -> bool {
    let chaos = std::env::var("REDHAC_CHAOS").is_ok_and(|v| v == "1");
    if chaos && !docker_available() {
        panic!("REDHAC_CHAOS=1 but no Docker engine is reachable (`docker info` fails)");
    }
    if !chaos && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but REDHAC_CHAOS is not 1: CI must run the multi-host suite (see .ci/run)");
    }
    chaos
}

/// Builds the node image without a registry (deploy/docker/build-image.sh).
pub(crate) fn build_image(tag: &str) -> Result<(), String> {
    run(Command::new("bash")
        .arg(root().join("deploy/docker/build-image.sh"))
        .arg(tag))
    .map(drop)
}

/// Builds `tag` from the image `base` with `env` set: another release of
/// the node, as far as its behaviour goes.
pub(crate) fn derive_image(base: &str, tag: &str, env: &[(&str, &str)]) -> Result<(), String> {
    use std::io::Write;
    let mut dockerfile = format!("FROM {base}\n");
    for (k, v) in env {
        dockerfile.push_str(&format!("ENV {k}={v}\n"));
    }
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("docker build: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(dockerfile.as_bytes())
        .map_err(|e| format!("docker build: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("docker build: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker build of {tag} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    /// Starts the cluster of `image` with the compose file and `overlays`,
    /// `extra` variables over the defaults.
    pub(crate) fn up(
        project: &str,
        image: &str,
        overlays: &[&Path],
        extra: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut files = vec![root().join("deploy/compose/docker-compose.yml")];
        files.extend(overlays.iter().map(|p| p.to_path_buf()));
        let ports = [free_port(), free_port(), free_port()];
        let mut env = vec![
            ("REDHAC_IMAGE".to_owned(), image.to_owned()),
            (
                "CACHE_AUTH_TOKEN".to_owned(),
                format!("chaos-token-{}-{}", std::process::id(), ports[0]),
            ),
        ];
        for (i, p) in ports.iter().enumerate() {
            env.push((format!("REDHAC_HTTP_PORT_{i}"), p.to_string()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let cluster = Self {
            project: project.to_owned(),
            files,
            env,
            ports,
        };
        cluster.compose(&["up", "-d"])?;
        Ok(cluster)
    }

    fn compose(&self, args: &[&str]) -> Result<String, String> {
        self.compose_with(args, &[])
    }

    /// Runs docker-compose with `env` over the cluster's variables.
    fn compose_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["-p", &self.project]);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied());
        run(&mut cmd)
    }

    /// The shared token the cluster started with.
    pub(crate) fn token(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "CACHE_AUTH_TOKEN")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// Replaces member `i`'s container by one of `image` with `env` (a
    /// graceful stop, as a Kubernetes rollout does, then a new container
    /// under the same hostname).
    pub(crate) fn replace(
        &self,
        i: usize,
        image: &str,
        env: &[(&str, &str)],
    ) -> Result<(), String> {
        let service = format!("redhac-{i}");
        let mut env = env.to_vec();
        env.push(("REDHAC_IMAGE", image));
        self.compose_with(
            &[
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                "-t",
                "15",
                &service,
            ],
            &env,
        )
        .map(drop)
    }

    /// Everything member `i`'s current container has logged.
    pub(crate) fn all_logs(&self, i: usize) -> String {
        match Command::new("docker")
            .args(["logs", &self.container(i)])
            .output()
        {
            Ok(out) => {
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            }
            Err(e) => format!("docker logs: {e}"),
        }
    }

    pub(crate) fn container(&self, i: usize) -> String {
        format!("{}_redhac-{i}_1", self.project)
    }

    fn network(&self) -> String {
        format!("{}_redhac", self.project)
    }

    /// The host address of member `i`'s HTTP API.
    pub(crate) fn http(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    pub(crate) fn kill(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["kill", "-s", "KILL", &self.container(i)])).map(drop)
    }

    pub(crate) fn start(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["start", &self.container(i)])).map(drop)
    }

    /// A graceful stop (SIGTERM, then the grace period) and a start.
    pub(crate) fn restart(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["restart", "-t", "15", &self.container(i)])).map(drop)
    }

    pub(crate) fn pause(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["pause", &self.container(i)])).map(drop)
    }

    pub(crate) fn unpause(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args(["unpause", &self.container(i)])).map(drop)
    }

    pub(crate) fn disconnect(&self, i: usize) -> Result<(), String> {
        run(Command::new("docker").args([
            "network",
            "disconnect",
            &self.network(),
            &self.container(i),
        ]))
        .map(drop)
    }

    /// Reconnects a member under its hostname, so the others find it again.
    pub(crate) fn connect(&self, i: usize) -> Result<(), String> {
        let alias = format!("redhac-{i}");
        run(Command::new("docker").args([
            "network",
            "connect",
            "--alias",
            &alias,
            &self.network(),
            &self.container(i),
        ]))
        .map(drop)
    }

    fn inspect(&self, i: usize, format: &str) -> Result<String, String> {
        run(Command::new("docker").args(["inspect", "-f", format, &self.container(i)]))
            .map(|s| s.trim().to_owned())
    }

    /// Runs `iptables args` in member `i`'s network namespace, from the
    /// host (the image has no tools and the members no privileges).
    fn iptables(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let pid = self.inspect(i, "{{.State.Pid}}")?;
        run(Command::new("nsenter")
            .args(["-t", &pid, "-n", "iptables"])
            .args(args))
    }

    /// Whether this host can filter a member's traffic one way (root, with
    /// `nsenter` and `iptables`, and the Docker engine on this kernel).
    pub(crate) fn can_filter(&self) -> bool {
        self.iptables(0, &["-L", "INPUT", "-n"]).is_ok()
    }

    /// Member `i` hears nothing more from the members `from` (their packets
    /// to it are dropped; its own go out).
    pub(crate) fn deafen(&self, i: usize, from: &[usize]) -> Result<(), String> {
        for &j in from {
            let ip = self.inspect(
                j,
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            )?;
            self.iptables(i, &["-A", "INPUT", "-s", &ip, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Member `i` hears everyone again.
    pub(crate) fn undeafen(&self, i: usize) -> Result<(), String> {
        self.iptables(i, &["-F", "INPUT"]).map(drop)
    }

    /// Member `i`'s status as JSON, if it answers.
    pub(crate) async fn status(&self, i: usize) -> Option<serde_json::Value> {
        match http::request(
            &self.http(i),
            "GET",
            "/v1/status",
            "",
            Duration::from_secs(2),
        )
        .await
        {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// Waits until member `i` reports `health` ("Good", "Degraded", "Bad").
    pub(crate) async fn wait_health(
        &self,
        i: usize,
        health: &str,
        deadline: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < deadline {
            let status = self.status(i).await;
            if status.as_ref().and_then(|s| s["health"].as_str()) == Some(health) {
                return Ok(start.elapsed());
            }
            last = status;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "member {i} did not reach {health} within {deadline:?}; last status {last:?}"
        ))
    }

    pub(crate) fn logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "40"])
            .unwrap_or_else(|e| e)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-t", "2", "-v"]);
    }
}
