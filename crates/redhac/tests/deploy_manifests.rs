//! The Kubernetes manifests agree with the code: ports, variable names, probe
//! paths, and the headless service the members find each other through.

use std::path::PathBuf;

use redhac::Config;
use serde_yaml_ng::Value;

fn manifest(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/k8s")
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
    assert_eq!(
        str_at(&svc, "spec.clusterIP"),
        "None",
        "the service must be headless"
    );
    assert_eq!(
        get(&svc, "spec.publishNotReadyAddresses").as_bool(),
        Some(true)
    );
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
    let env = env(container);
    let known: Vec<&str> = Config::ENV_VARS
        .iter()
        .copied()
        .chain(["NODE_HTTP_ADDR", "NODE_CACHE_MAX_BYTES", "POD_NAME"])
        .collect();
    for (name, _) in &env {
        assert!(
            known.contains(&name.as_str()),
            "{name} is not a variable redhac or the node example reads"
        );
    }
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

    // TLS files come from the mounted secret.
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
    assert!(
        get(&sts, "spec.template.spec.terminationGracePeriodSeconds")
            .as_u64()
            .unwrap()
            >= 10
    );
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
    let sts = manifest("statefulset.yaml");
    let pod = get(&sts, "spec.template.spec");
    let labels = get(&sts, "spec.template.metadata.labels");
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
    assert!(
        limit >= 3 * cache_bytes,
        "{limit} bytes for a {cache_bytes}-byte cache"
    );

    // One member per node where possible.
    let spread = get(pod, "topologySpreadConstraints.0");
    assert_eq!(str_at(spread, "topologyKey"), "kubernetes.io/hostname");
    assert_eq!(&spread["labelSelector"]["matchLabels"], labels);

    // A drain never waits on a member that is not ready.
    let pdb = manifest("pdb.yaml");
    assert_eq!(
        str_at(&pdb, "spec.unhealthyPodEvictionPolicy"),
        "AlwaysAllow"
    );

    // The application's service follows readiness; it selects the members.
    let app = manifest("service-app.yaml");
    assert_eq!(str_at(&app, "spec.type"), "ClusterIP");
    assert!(app["spec"]["publishNotReadyAddresses"].as_bool() != Some(true));
    assert_eq!(&app["spec"]["selector"], labels);
    assert_eq!(str_at(&app, "spec.ports.0.targetPort"), "http");

    // Only members reach the cluster port.
    let np = manifest("networkpolicy.yaml");
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

#[test]
fn the_alert_rules_use_metrics_redhac_records() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring/prometheus-rule.yaml");
    let text = std::fs::read_to_string(&path).expect("the PrometheusRule");
    let rule: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(str_at(&rule, "kind"), "PrometheusRule");
    let recorded = [
        redhac::metrics::LEADER,
        redhac::metrics::SERVING,
        redhac::metrics::HEALTH,
        redhac::metrics::REPLICATION_LAG,
        redhac::metrics::LINKS_REFUSED,
        redhac::metrics::LINKS_SILENT,
    ];
    let rules = get(&rule, "spec.groups.0.rules")
        .as_sequence()
        .expect("rules");
    assert!(
        rules.len() >= 4,
        "no leader, not serving, lag, refused links"
    );
    for r in rules {
        let expr = str_at(r, "expr");
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("redhac_"))
            .collect();
        assert!(!names.is_empty(), "{expr} uses no redhac metric");
        for name in names {
            assert!(
                recorded.contains(&name),
                "{name} in {expr} is not a metric redhac records"
            );
        }
    }
}
