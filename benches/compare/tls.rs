//! W1 over mutual TLS beside plaintext, in one run (`REDHAC_PROBE_TLS=1`):
//! three members in this process, default timing, certificates made here by
//! rcgen (one CA, one certificate per cluster for server and client use).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use redhac::{Cache, Redhac};
use serde_json::{Map, Value, json};

use crate::cluster::{leader, shutdown, start_cluster, start_cluster_tls};
use crate::ha::{latency, writers_ops};
use crate::w1::Val;

/// The `CACHE_TLS*` variables of a member with a CA and a certificate
/// written to `dir`: TLS, client certificates required (mTLS), the server
/// name checked (`redhac.local`, the default).
fn tls_vars(dir: &Path) -> Vec<(&'static str, String)> {
    std::fs::create_dir_all(dir).expect("a directory for the certificates");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "redhac bench CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key")).expect("a CA");
    let mut params = CertificateParams::new(vec!["redhac.local".to_owned()]).expect("params");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, &ca).expect("a certificate");
    let write = |name: &str, pem: String| -> String {
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, pem).expect("a certificate file");
        path.display().to_string()
    };
    let (ca, cert, key) = (
        write("ca.pem", ca.pem()),
        write("cert.pem", cert.pem()),
        write("key.pem", key.serialize_pem()),
    );
    vec![
        ("CACHE_TLS", "true".to_owned()),
        ("CACHE_TLS_SERVER_CERT", cert.clone()),
        ("CACHE_TLS_SERVER_KEY", key.clone()),
        ("CACHE_TLS_CA_SERVER", ca.clone()),
        ("CACHE_TLS_CA_CLIENT", ca),
        ("CACHE_TLS_CLIENT_CERT", cert),
        ("CACHE_TLS_CLIENT_KEY", key),
    ]
}

async fn start(tls: Option<&[(&'static str, String)]>) -> Vec<Redhac> {
    match tls {
        Some(vars) => start_cluster_tls::<Val>(3, vars).await,
        None => start_cluster::<Val>(3).await,
    }
}

/// One mode's figures: cold start (10 runs), Quorum write latency on the
/// leader and a follower, 64 writers at Quorum on the leader.
fn row(rt: &tokio::runtime::Runtime, tls: Option<&[(&'static str, String)]>) -> Map<String, Value> {
    let mut cold = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let nodes = rt.block_on(start(tls));
        rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
        cold.push(t.elapsed());
        rt.block_on(shutdown(nodes));
    }
    let (cold_p50, cold_p99, _) = crate::percentiles_us(cold);
    let nodes = rt.block_on(start(tls));
    let l = rt.block_on(leader(&nodes.iter().collect::<Vec<_>>()));
    let cache = |i: usize| -> Cache<Val> { nodes[i].cache::<Val>("w1").expect("cache") };
    let (lp50, lp99, _) = rt.block_on(latency(cache(l)));
    let (fp50, fp99, _) = rt.block_on(latency(cache((l + 1) % 3)));
    let ops = rt.block_on(writers_ops(
        vec![cache(l)],
        64,
        redhac::AckLevel::Quorum,
        std::time::Duration::from_secs(5),
    ));
    rt.block_on(shutdown(nodes));
    let mut m = Map::new();
    m.insert(
        "mode".into(),
        json!(if tls.is_some() { "mTLS" } else { "plaintext" }),
    );
    for (k, v) in [
        ("cold_start_p50_ms", cold_p50 / 1e3),
        ("cold_start_p99_ms", cold_p99 / 1e3),
        ("w_leader_p50_us", lp50),
        ("w_leader_p99_us", lp99),
        ("w_follower_p50_us", fp50),
        ("w_follower_p99_us", fp99),
        ("w64_leader_ops", ops),
    ] {
        m.insert(k.into(), json!(v));
    }
    m
}

/// Plaintext and mTLS alternating, two rounds; one JSON line per row.
/// `REDHAC_PROBE_TLS=plain` or `=tls` runs one mode only (to profile it).
pub(crate) fn probe(rt: &tokio::runtime::Runtime) {
    let dir = std::env::temp_dir().join(format!("redhac-bench-tls-{}", std::process::id()));
    let vars = tls_vars(&dir);
    let only = std::env::var("REDHAC_PROBE_TLS").unwrap_or_default();
    let modes: Vec<Option<&[(&'static str, String)]>> = match only.as_str() {
        "plain" => vec![None],
        "tls" => vec![Some(vars.as_slice())],
        _ => vec![None, Some(vars.as_slice())],
    };
    for round in 1..=2 {
        for &tls in &modes {
            let mut r = row(rt, tls);
            r.insert("round".into(), json!(round));
            println!("{}", Value::Object(r));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
