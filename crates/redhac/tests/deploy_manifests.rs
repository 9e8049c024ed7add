//! The Kubernetes manifests agree with the code: ports, variable names, probe
//! paths, and the headless service the members find each other through, for
//! the StatefulSet (deploy/k8s) and the Deployment with dynamic membership
//! (deploy/k8s/dynamic). The alert rules and the Grafana dashboard read only
//! metrics redhac records.

use std::path::PathBuf;
use std::time::Duration;

use redhac::Config;
use serde_yaml_ng::Value;

/// The StatefulSet's manifests: `deploy/k8s`.
const STATIC: &str = "";
/// The Deployment's, with dynamic membership: `deploy/k8s/dynamic`.
const DYNAMIC: &str = "dynamic";

/// A manifest of `deploy/k8s`.
fn manifest(name: &str) -> Value {
    manifest_in(STATIC, name)
}

/// A manifest of `deploy/k8s/<dir>`.
fn manifest_in(dir: &str, name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/k8s")
        .join(dir)
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The container's env, every variable one redhac, the node example or
/// the manifest itself (`own`, from the downward API) reads.
fn known_env(container: &Value, own: &str) -> Vec<(String, Option<String>)> {
    let env = env(container);
    let known: Vec<&str> = Config::ENV_VARS
        .iter()
        .copied()
        .chain(["NODE_HTTP_ADDR", "NODE_CACHE_MAX_BYTES", own])
        .collect();
    for (name, _) in &env {
        assert!(
            known.contains(&name.as_str()),
            "{name} is not a variable redhac or the node example reads"
        );
    }
    env
}

/// Members find each other through a headless service (one name for every
/// pod IP), ready or not: readiness needs a leader, which needs the members
/// linked first (and a new dynamic member is ready only once added).
fn assert_headless_and_unready_listed(svc: &Value) {
    assert_eq!(
        str_at(svc, "spec.clusterIP"),
        "None",
        "the service must be headless"
    );
    assert_eq!(
        get(svc, "spec.publishNotReadyAddresses").as_bool(),
        Some(true),
        "members must find members that are not ready yet"
    );
}

/// TLS files come from the mounted secret.
fn assert_tls_from_the_mount(container: &Value, value: impl Fn(&str) -> String) {
    let mount = str_at(container, "volumeMounts.0.mountPath");
    for var in [
        "CACHE_TLS_SERVER_CERT",
        "CACHE_TLS_SERVER_KEY",
        "CACHE_TLS_CA_SERVER",
    ] {
        assert!(
            value(var).starts_with(mount),
            "{var} is outside the TLS mount"
        );
    }
}

fn env(container: &Value) -> Vec<(String, Option<String>)> {
    get(container, "env")
        .as_sequence()
        .expect("env is a list")
        .iter()
        .map(|e| {
            (
                str_at(e, "name").to_owned(),
                e["value"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn port(container: &Value, name: &str) -> u64 {
    get(container, "ports")
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

#[test]
fn statefulset_service_and_code_agree() {
    let sts = manifest("statefulset.yaml");
    let svc = manifest("service.yaml");
    let pdb = manifest("pdb.yaml");
    assert_eq!(str_at(&sts, "kind"), "StatefulSet");
    assert_headless_and_unready_listed(&svc);
    let service = str_at(&svc, "metadata.name");
    assert_eq!(str_at(&sts, "spec.serviceName"), service);
    let sts_name = str_at(&sts, "metadata.name");
    let replicas = get(&sts, "spec.replicas").as_u64().expect("replicas") as usize;
    assert_eq!(
        get(&pdb, "spec.maxUnavailable").as_u64(),
        Some((replicas as u64 - 1) / 2),
        "the PDB must keep a majority"
    );

    let container = get(&sts, "spec.template.spec.containers.0");
    let env = known_env(container, "POD_NAME");
    let value = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} has no literal value"))
    };

    // The config the pods get is valid, and each pod finds itself in HA_HOSTS.
    let cluster_port = port(container, "cluster");
    let hosts = value("HA_HOSTS");
    let config = Config::from_vars([
        ("HA_MODE", value("HA_MODE")),
        ("HA_HOSTS", hosts.clone()),
        ("CACHE_AUTH_TOKEN", "from-the-secret-0123456789".into()),
    ])
    .expect("the manifest's configuration is valid");
    let members = config.members().unwrap();
    assert_eq!(members.len(), replicas);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(
            m.host,
            format!("{sts_name}-{i}.{service}"),
            "HA_HOSTS entry {i}"
        );
        assert_eq!(u64::from(m.port), cluster_port, "HA_HOSTS entry {i} port");
    }
    assert_eq!(
        value("HOSTNAME_OVERWRITE"),
        format!("$(POD_NAME).{service}")
    );

    // HTTP: the node listens where the probes and the service look.
    let http_port = port(container, "http");
    let addr: std::net::SocketAddr = value("NODE_HTTP_ADDR").parse().expect("NODE_HTTP_ADDR");
    assert_eq!(u64::from(addr.port()), http_port);
    assert_eq!(
        str_at(container, "readinessProbe.httpGet.path"),
        "/health/ready"
    );
    assert_eq!(
        str_at(container, "livenessProbe.httpGet.path"),
        "/health/live"
    );
    assert_eq!(str_at(container, "readinessProbe.httpGet.port"), "http");
    let svc_ports: Vec<&str> = get(&svc, "spec.ports")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["targetPort"].as_str().unwrap())
        .collect();
    assert_eq!(svc_ports, ["cluster", "http"]);

    assert_tls_from_the_mount(container, value);
    assert!(
        get(&sts, "spec.template.spec.terminationGracePeriodSeconds")
            .as_u64()
            .unwrap()
            >= 10
    );
}

/// An example pod IP, for `$(POD_IP)`.
const EXAMPLE_POD_IP: &str = "10.0.0.7";

#[test]
fn dynamic_deployment_service_and_code_agree() {
    let deployment = manifest_in(DYNAMIC, "deployment.yaml");
    let svc = manifest_in(DYNAMIC, "service.yaml");
    let pdb = manifest_in(DYNAMIC, "pdb.yaml");
    assert_eq!(str_at(&deployment, "kind"), "Deployment");
    let labels = get(&deployment, "spec.template.metadata.labels");
    assert_eq!(get(&deployment, "spec.selector.matchLabels"), labels);
    // Both variants may run in one namespace: neither's services, PDB or
    // network policy select the other's pods.
    let sts = manifest("statefulset.yaml");
    assert_ne!(
        get(&sts, "spec.template.metadata.labels"),
        labels,
        "the Deployment's pods must be labelled apart from the StatefulSet's"
    );
    let replicas = get(&deployment, "spec.replicas")
        .as_u64()
        .expect("replicas") as usize;

    assert_headless_and_unready_listed(&svc);
    assert_eq!(&svc["spec"]["selector"], labels);

    let container = get(&deployment, "spec.template.spec.containers.0");
    let env = known_env(container, "POD_IP");
    for name in ["HA_HOSTS", "HA_LEARNERS", "HOSTNAME_OVERWRITE"] {
        assert!(
            env.iter().all(|(n, _)| n != name),
            "{name} is for the static mode"
        );
    }
    let position = |name: &str| {
        env.iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not set"))
    };
    let value = |name: &str| {
        env[position(name)]
            .1
            .clone()
            .unwrap_or_else(|| panic!("{name} has no literal value"))
    };

    // HA_ADVERTISE is the pod IP, from the downward API, defined before it
    // (Kubernetes expands `$(VAR)` only from earlier variables).
    let pod_ip = &get(container, "env")[position("POD_IP")];
    assert_eq!(
        str_at(pod_ip, "valueFrom.fieldRef.fieldPath"),
        "status.podIP"
    );
    assert_eq!(value("HA_ADVERTISE"), "$(POD_IP)");
    assert!(position("POD_IP") < position("HA_ADVERTISE"));

    // The config the pods get is valid: the manifest's literal values, the
    // pod IP expanded, the token as the secret gives it. (TLS files are
    // opened only when the transport starts.)
    let vars: Vec<(String, String)> = env
        .iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref()?.replace("$(POD_IP)", EXAMPLE_POD_IP);
            assert!(!value.contains("$("), "{name}: {value} is left unexpanded");
            Some((name.clone(), value))
        })
        .chain([(
            "CACHE_AUTH_TOKEN".to_owned(),
            "from-the-secret-0123456789".to_owned(),
        )])
        .collect();
    let config = Config::from_vars(vars).expect("the manifest's configuration is valid");
    assert!(config.ha_mode);
    assert!(config.dynamic(), "HA_DISCOVER selects the dynamic mode");
    assert_eq!(
        config.advertise().unwrap(),
        Some((EXAMPLE_POD_IP.parse().unwrap(), None)),
        "HA_ADVERTISE is the pod IP"
    );

    // HA_DISCOVER names the headless service at its cluster port, which is
    // the pods' cluster port too: its name resolves to pod IPs, dialled
    // directly, and a member listens on the first entry's port.
    let cluster_port = port(container, "cluster");
    let svc_cluster = get(&svc, "spec.ports")
        .as_sequence()
        .expect("service ports")
        .iter()
        .find(|p| p["name"].as_str() == Some("cluster"))
        .expect("the service's cluster port");
    assert_eq!(str_at(svc_cluster, "targetPort"), "cluster");
    let discover = config.discover().unwrap();
    assert!(!discover.is_empty());
    for (i, entry) in discover.iter().enumerate() {
        assert_eq!(
            entry.host,
            str_at(&svc, "metadata.name"),
            "HA_DISCOVER entry {i} host"
        );
        assert_eq!(
            Some(u64::from(entry.port)),
            svc_cluster["port"].as_u64(),
            "HA_DISCOVER entry {i} port"
        );
        assert_eq!(
            u64::from(entry.port),
            cluster_port,
            "HA_DISCOVER entry {i} port"
        );
        assert_eq!(
            entry.scheme,
            if config.tls { "https" } else { "http" },
            "HA_DISCOVER entry {i} scheme"
        );
    }
    // The member listens on the first entry's port (or CACHE_LISTEN_ADDR's).
    let listens = config
        .listen_addr
        .map_or(discover[0].port, |addr| addr.port());
    assert_eq!(
        u64::from(listens),
        cluster_port,
        "the member listens elsewhere"
    );

    // No two clusters form: that takes twice HA_BOOTSTRAP_EXPECT members
    // started before the first elects a leader. And the first one can form.
    let expect = config.ha_bootstrap_expect;
    assert!(
        expect * 2 > replicas,
        "HA_BOOTSTRAP_EXPECT {expect} is not above half of {replicas} replicas"
    );
    assert!(
        expect <= replicas,
        "HA_BOOTSTRAP_EXPECT {expect} exceeds {replicas} replicas: no cluster forms"
    );
    let voters = config.ha_voters;
    assert!(
        voters % 2 == 1 && voters <= replicas,
        "HA_VOTERS {voters}: odd, and at most {replicas} replicas"
    );

    // A member shutting down votes until the leader removed it, for at most
    // the autopilot's leave timeout (10 election timeouts), after the preStop
    // sleep and before about 5 s of handover and shutdown.
    let pod = get(&deployment, "spec.template.spec");
    let grace = Duration::from_secs(
        get(pod, "terminationGracePeriodSeconds")
            .as_u64()
            .expect("terminationGracePeriodSeconds"),
    );
    let pre_stop = Duration::from_secs(
        get(container, "lifecycle.preStop.sleep.seconds")
            .as_u64()
            .expect("a preStop sleep"),
    );
    let leave = redhac::Autopilot::new(voters, config.election_timeout).leave_timeout;
    assert_eq!(leave, config.election_timeout * 10);
    assert!(
        grace > pre_stop + leave + Duration::from_secs(5),
        "terminationGracePeriodSeconds {grace:?} leaves no time to leave: preStop {pre_stop:?} \
         + leave timeout {leave:?} + 5 s"
    );

    // A new pod joins before an old one leaves.
    assert_eq!(str_at(&deployment, "spec.strategy.type"), "RollingUpdate");
    assert_eq!(
        get(&deployment, "spec.strategy.rollingUpdate.maxUnavailable").as_u64(),
        Some(0)
    );
    assert!(
        get(&deployment, "spec.strategy.rollingUpdate.maxSurge")
            .as_u64()
            .is_some_and(|n| n >= 1),
        "a rolling update needs a pod beyond the replicas"
    );

    // The PDB keeps a majority of the voters, whichever pods they are.
    let max_unavailable = get(&pdb, "spec.maxUnavailable")
        .as_u64()
        .expect("the PDB's maxUnavailable") as usize;
    assert!(
        max_unavailable <= (voters - 1) / 2,
        "the PDB lets {max_unavailable} of {voters} voters go"
    );
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);

    // HTTP: the node listens where the probes look; ready means serving reads.
    let http_port = port(container, "http");
    let addr: std::net::SocketAddr = value("NODE_HTTP_ADDR").parse().expect("NODE_HTTP_ADDR");
    assert_eq!(u64::from(addr.port()), http_port);
    assert_eq!(
        str_at(container, "readinessProbe.httpGet.path"),
        "/health/ready"
    );
    assert_eq!(str_at(container, "readinessProbe.httpGet.port"), "http");
    assert_eq!(
        str_at(container, "livenessProbe.httpGet.path"),
        "/health/live"
    );

    // The same container as the StatefulSet's but for the membership
    // variables: image, ports, probes, resources, hardening, TLS, the token.
    let sts_container = get(&sts, "spec.template.spec.containers.0");
    let without_env = |c: &Value| {
        let mut c = c.clone();
        c.as_mapping_mut().expect("a container").remove("env");
        c
    };
    assert_eq!(without_env(container), without_env(sts_container));
    let entries = |c: &Value| get(c, "env").as_sequence().expect("env").clone();
    let ours = entries(container);
    for theirs in entries(sts_container) {
        let name = str_at(&theirs, "name");
        if ["POD_NAME", "HA_HOSTS", "HOSTNAME_OVERWRITE"].contains(&name) {
            continue;
        }
        assert!(
            ours.contains(&theirs),
            "{name} differs from the StatefulSet's, or is missing"
        );
    }
    for key in ["securityContext", "volumes"] {
        assert_eq!(
            &pod[key], &sts["spec"]["template"]["spec"][key],
            "the pod's {key} differs from the StatefulSet's"
        );
    }
    assert_tls_from_the_mount(container, value);
}

/// A quantity like `256Mi` or `1Gi` in bytes.
fn bytes(quantity: &str) -> u64 {
    let (n, unit) = quantity.split_at(
        quantity
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(quantity.len()),
    );
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("{quantity} is not a quantity"));
    n * match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => panic!("{quantity}: unit {unit} not handled"),
    }
}

#[test]
fn pods_are_hardened_bounded_spread_and_routed_by_readiness() {
    hardened_bounded_spread_and_routed_by_readiness(STATIC, "statefulset.yaml");
}

#[test]
fn dynamic_pods_are_hardened_bounded_spread_and_routed_by_readiness() {
    hardened_bounded_spread_and_routed_by_readiness(DYNAMIC, "deployment.yaml");
}

/// The pods of `workload` in `deploy/k8s/<dir>`, and the PDB, application
/// service and network policy beside it.
fn hardened_bounded_spread_and_routed_by_readiness(dir: &str, workload: &str) {
    let workload = manifest_in(dir, workload);
    let pod = get(&workload, "spec.template.spec");
    let labels = get(&workload, "spec.template.metadata.labels");
    let container = get(pod, "containers.0");

    // Restricted Pod Security Standard.
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(
        str_at(pod, "securityContext.seccompProfile.type"),
        "RuntimeDefault"
    );
    let sc = get(container, "securityContext");
    assert_eq!(get(sc, "allowPrivilegeEscalation").as_bool(), Some(false));
    assert_eq!(get(sc, "readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(str_at(sc, "capabilities.drop.0"), "ALL");

    // Memory bounded, and above what the cache may hold.
    let limit = bytes(str_at(container, "resources.limits.memory"));
    assert_eq!(limit, bytes(str_at(container, "resources.requests.memory")));
    let cache_bytes: u64 = env(container)
        .iter()
        .find(|(n, _)| n == "NODE_CACHE_MAX_BYTES")
        .and_then(|(_, v)| v.as_deref()?.parse().ok())
        .expect("NODE_CACHE_MAX_BYTES bounds the cache");
    // Entries of about 100 B take about 5x their bytes in memory
    // (benches/README.md), plus the runtime's own.
    assert!(
        limit >= 6 * cache_bytes + (64 << 20),
        "{limit} bytes for a {cache_bytes}-byte cache"
    );

    // One member per node where possible.
    let spread = get(pod, "topologySpreadConstraints.0");
    assert_eq!(str_at(spread, "topologyKey"), "kubernetes.io/hostname");
    assert_eq!(&spread["labelSelector"]["matchLabels"], labels);

    // A drain never waits on a member that is not ready.
    let pdb = manifest_in(dir, "pdb.yaml");
    assert_eq!(
        str_at(&pdb, "spec.unhealthyPodEvictionPolicy"),
        "AlwaysAllow"
    );
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);

    // The application's service follows readiness; it selects the members.
    let app = manifest_in(dir, "service-app.yaml");
    assert_eq!(str_at(&app, "spec.type"), "ClusterIP");
    assert!(app["spec"]["publishNotReadyAddresses"].as_bool() != Some(true));
    assert_eq!(&app["spec"]["selector"], labels);
    assert_eq!(str_at(&app, "spec.ports.0.targetPort"), "http");

    // Only members reach the cluster port.
    let np = manifest_in(dir, "networkpolicy.yaml");
    assert_eq!(&np["spec"]["podSelector"]["matchLabels"], labels);
    let rules = get(&np, "spec.ingress")
        .as_sequence()
        .expect("ingress rules");
    for rule in rules {
        let ports: Vec<&str> = rule["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .filter_map(|p| p["port"].as_str())
            .collect();
        if ports.contains(&"cluster") {
            let from = rule["from"].as_sequence().expect("from");
            assert!(
                from.iter()
                    .all(|f| &f["podSelector"]["matchLabels"] == labels),
                "the cluster port is open beyond the members: {rule:?}"
            );
        }
    }
    assert!(
        rules
            .iter()
            .any(|r| r["ports"][0]["port"].as_str() == Some("cluster")),
        "no rule for the cluster port"
    );
}

/// Every metric `redhac::metrics` names, by constant and name;
/// `the_metric_list_is_what_redhac_records` holds it to `metrics.rs` and to
/// the code that records them.
macro_rules! metric_list {
    ($($constant:ident),* $(,)?) => {
        [$((stringify!($constant), redhac::metrics::$constant)),*]
    };
}
const RECORDED: [(&str, &str); 24] = metric_list![
    CACHE_HITS,
    CACHE_MISSES,
    LINKS_REFUSED,
    MESSAGES_REFUSED,
    LINKS_UP,
    LINKS_SILENT,
    LINKS_CONNECTED,
    HEALTH,
    LEADER,
    SERVING,
    MEMBERS,
    WRITES,
    WRITE_SECONDS,
    LOADER_WRITES_FAILED,
    SCHEMA_MISMATCHES,
    DECODE_ERRORS,
    SNAPSHOTS_SENT,
    SNAPSHOTS_INSTALLED,
    ELECTIONS,
    TERM,
    REPLICATION_LAG,
    CACHE_ENTRIES,
    BYTES_IN,
    BYTES_OUT,
];
/// The histograms among them.
const HISTOGRAMS: [&str; 1] = [redhac::metrics::WRITE_SECONDS];

/// The series names redhac's metrics appear under in Prometheus: each
/// metric's name, and for a histogram its `_bucket`, `_sum` and `_count`
/// series (rendered as a summary, its name carries the quantiles).
fn recorded_series() -> Vec<String> {
    RECORDED
        .iter()
        .flat_map(|&(_, name)| {
            let suffixes: &[&str] = if HISTOGRAMS.contains(&name) {
                &["", "_bucket", "_sum", "_count"]
            } else {
                &[""]
            };
            suffixes.iter().map(move |s| format!("{name}{s}"))
        })
        .collect()
}

/// The metric names a PromQL expression reads: identifiers other than
/// functions, aggregations, keywords, label names and values, durations
/// and numbers.
fn metric_names(expr: &str) -> Vec<&str> {
    // Aggregations are among them: `sum by (pod) (...)` calls `sum`.
    const KEYWORDS: [&str; 21] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let skip_to = |from: usize, end: u8| {
        b[from..]
            .iter()
            .position(|&c| c == end)
            .map_or(b.len(), |p| from + p + 1)
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    // Inside `{...}`: label matchers, no metric names.
    let (mut names, mut i, mut matchers) = (Vec::new(), 0, false);
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            // A Grafana variable: `$name` or `${name}`.
            b'$' if b.get(i + 1) == Some(&b'{') => i = skip_to(i, b'}'),
            b'$' => i += 1 + b[i + 1..].iter().take_while(|&&c| ident(c)).count(),
            c if c.is_ascii_digit() || c == b'.' => {
                i += b[i..]
                    .iter()
                    .take_while(|&&c| ident(c) || c == b'.')
                    .count();
            }
            c if ident(c) => {
                let len = b[i..].iter().take_while(|&&c| ident(c)).count();
                let word = &expr[i..i + len];
                let lower = word.to_ascii_lowercase();
                i += len;
                if matchers {
                    continue;
                }
                let next = b[i..]
                    .iter()
                    .position(|c| !c.is_ascii_whitespace())
                    .map(|p| i + p);
                let call = next.is_some_and(|n| b[n] == b'(');
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if let Some(n) = next.filter(|_| call) {
                        i = skip_to(n, b')');
                    }
                } else if !call && !KEYWORDS.contains(&lower.as_str()) {
                    names.push(word);
                }
            }
            b'[' => i = skip_to(i, b']'),
            c => {
                matchers = (matchers || c == b'{') && c != b'}';
                i += 1;
            }
        }
    }
    names
}

/// Asserts that `expr` reads a metric, and only metrics redhac records.
fn assert_reads_recorded_metrics(expr: &str, recorded: &[String], what: &str) -> Vec<String> {
    let names = metric_names(expr);
    assert!(!names.is_empty(), "{what}: {expr} reads no redhac metric");
    for name in &names {
        assert!(
            recorded.iter().any(|r| r == name),
            "{what}: {name} in {expr} is not a metric redhac records"
        );
    }
    names.into_iter().map(str::to_owned).collect()
}

#[test]
fn the_metric_list_is_what_redhac_records() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let defined: Vec<(String, String)> = std::fs::read_to_string(src.join("metrics.rs"))
        .expect("metrics.rs")
        .lines()
        .filter_map(|l| {
            let (constant, rest) = l.strip_prefix("pub const ")?.split_once(": &str = \"")?;
            Some((constant.to_owned(), rest.strip_suffix("\";")?.to_owned()))
        })
        .collect();
    let mut listed: Vec<(String, String)> = RECORDED
        .iter()
        .map(|&(c, n)| (c.to_owned(), n.to_owned()))
        .collect();
    let mut sorted = defined.clone();
    sorted.sort();
    listed.sort();
    assert_eq!(
        listed, sorted,
        "RECORDED must list every metric of metrics.rs"
    );

    // Each is recorded somewhere, and as a histogram exactly if listed so.
    fn sources(dir: &std::path::Path, code: &mut String) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, code);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("metrics.rs") {
                code.push_str(&std::fs::read_to_string(&path).expect("source"));
            }
        }
    }
    let mut code = String::new();
    sources(&src, &mut code);
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    for (constant, name) in &defined {
        let recorded_as: Vec<&str> = ["counter", "gauge", "histogram"]
            .into_iter()
            .filter(|kind| {
                let call = format!("metrics::{kind}!(crate::metrics::{constant}");
                code.match_indices(&call).any(|(at, _)| {
                    matches!(code.as_bytes().get(at + call.len()), Some(b')' | b','))
                })
            })
            .collect();
        assert!(
            !recorded_as.is_empty(),
            "{constant} ({name}) is never recorded"
        );
        assert_eq!(
            recorded_as.contains(&"histogram"),
            HISTOGRAMS.contains(&name.as_str()),
            "{constant} is recorded as {recorded_as:?}: HISTOGRAMS is wrong"
        );
    }
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, SUM by (le, ack) (rate(redhac_write_duration_seconds_bucket{job="redhac", pod=~"$pod"}[$__rate_interval]))) > 1e3"#
        ),
        ["redhac_write_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "redhac_a{x=\"}\", y!~'{z}'} and ON (pod) (up == bool 1) / ignoring(b) group_left c offset 5m"
        ),
        ["redhac_a", "up", "c"]
    );
}

#[test]
fn the_alert_rules_use_metrics_redhac_records() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring/prometheus-rule.yaml");
    let text = std::fs::read_to_string(&path).expect("the PrometheusRule");
    let rule: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(str_at(&rule, "kind"), "PrometheusRule");
    let recorded = recorded_series();
    let rules = get(&rule, "spec.groups.0.rules")
        .as_sequence()
        .expect("rules");
    assert!(
        rules.len() >= 4,
        "no leader, not serving, lag, refused links"
    );
    for r in rules {
        assert_reads_recorded_metrics(str_at(r, "expr"), &recorded, str_at(r, "alert"));
    }
}

/// Every panel of a Grafana dashboard, those in rows included.
fn panels(list: &serde_json::Value) -> Vec<&serde_json::Value> {
    list.as_array()
        .map(|list| {
            list.iter()
                .flat_map(|p| std::iter::once(p).chain(panels(&p["panels"])))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_dashboard_uses_metrics_redhac_records() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for key in ["uid", "title"] {
        assert!(
            dashboard[key].as_str().is_some_and(|s| !s.is_empty()),
            "the dashboard has no {key}"
        );
    }
    let recorded = recorded_series();

    // Template variables: the data source, and queries of redhac's metrics.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no `datasource` variable of type prometheus"
    );
    for v in variables.iter().filter(|v| v["type"] == "query") {
        let name = v["name"].as_str().expect("variable name");
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("variable {name} has no query"));
        // `label_values(selector, label)`: the selector is PromQL.
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map_or(query, |(selector, _)| selector);
        assert_reads_recorded_metrics(selector, &recorded, &format!("variable {name}"));
    }
    assert!(
        ["namespace", "job", "pod"]
            .iter()
            .all(|n| variables.iter().any(|v| v["name"] == *n)),
        "the dashboard picks the cluster by namespace and job and its members by pod"
    );

    // Panels: titled, on the chosen data source, reading redhac's metrics.
    let mut read = Vec::new();
    let panels = panels(&dashboard["panels"]);
    for panel in &panels {
        let title = panel["title"]
            .as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("a panel has no title: {panel}"));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a query of {title} has no expr"));
            read.extend(assert_reads_recorded_metrics(expr, &recorded, title));
        }
    }
    assert!(panels.len() >= 20, "{} panels", panels.len());

    // Every metric redhac records has a panel.
    for (_, name) in RECORDED {
        assert!(
            read.iter().any(|r| r
                .strip_prefix(name)
                .is_some_and(|suffix| ["", "_bucket", "_sum", "_count"].contains(&suffix))),
            "no panel shows {name}"
        );
    }
    for quantile in ["histogram_quantile(0.5,", "histogram_quantile(0.99,"] {
        assert!(text.contains(quantile), "no write latency {quantile}");
    }
}
