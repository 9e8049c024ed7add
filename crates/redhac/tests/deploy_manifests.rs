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
        .chain(["NODE_HTTP_ADDR", "POD_NAME"])
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
