//! Links over TLS and mTLS, with certificates made here by rcgen.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use super::tests::{Spec, TOKEN, assert_link_up, assert_refused, assert_refused_by, pair};
use super::tls::TlsSetup;
use crate::{Config, Error};

/// A CA and one node certificate (server and client use) it signed, in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn pki(dir: &Path, prefix: &str, san: &str) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{prefix} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca: write(dir, &format!("{prefix}-ca.pem"), &ca.pem()),
        cert: write(dir, &format!("{prefix}-cert.pem"), &cert.pem()),
        key: write(dir, &format!("{prefix}-key.pem"), &key.serialize_pem()),
    }
}

fn temp_dir(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("redhac-tls-{test}-{}", std::process::id()))
}

/// A TLS config: server identity and server CA from `pki`.
fn config(pki: &Pki) -> Config {
    Config {
        tls: true,
        tls_server_cert: pki.cert.clone(),
        tls_server_key: pki.key.clone(),
        tls_ca_server: Some(pki.ca.clone()),
        ..Config::default()
    }
}

fn with_mtls(mut c: Config, ca_client: &Path, client: Option<&Pki>) -> Config {
    c.tls_ca_client = Some(ca_client.to_owned());
    c.tls_client_cert = client.map(|p| p.cert.clone());
    c.tls_client_key = client.map(|p| p.key.clone());
    c
}

fn load(c: &Config) -> TlsSetup {
    TlsSetup::load(c).unwrap().expect("TLS is on")
}

fn spec(tls0: &Config, tls1: &Config) -> Spec {
    Spec {
        tokens: [TOKEN, TOKEN],
        tls: [Some(load(tls0)), Some(load(tls1))],
        ..Spec::default()
    }
}

#[tokio::test]
async fn a_tls_link_forms() {
    let p = pki(&temp_dir("forms"), "a", "redhac.local");
    let (mut a, mut b, stop) = pair(spec(&config(&p), &config(&p))).await;
    assert_link_up(&mut a, &mut b).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn an_mtls_link_forms_with_a_client_certificate() {
    let p = pki(&temp_dir("mtls"), "a", "redhac.local");
    let c = with_mtls(config(&p), &p.ca, Some(&p));
    let (mut a, mut b, stop) = pair(spec(&c, &c)).await;
    assert_link_up(&mut a, &mut b).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let p = pki(&temp_dir("nocert"), "a", "redhac.local");
    let server = with_mtls(config(&p), &p.ca, Some(&p));
    let (mut a, mut b, stop) = pair(spec(&config(&p), &server)).await;
    assert_refused_by(&mut a, &mut b, [false, true]).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn mtls_refuses_a_client_certificate_from_another_ca() {
    let dir = temp_dir("otherca");
    let (p, other) = (
        pki(&dir, "a", "redhac.local"),
        pki(&dir, "b", "redhac.local"),
    );
    let server = with_mtls(config(&p), &p.ca, Some(&p));
    let client = with_mtls(config(&p), &p.ca, Some(&other));
    let (mut a, mut b, stop) = pair(spec(&client, &server)).await;
    assert_refused_by(&mut a, &mut b, [false, true]).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_wrong_server_name_fails_validation_unless_overridden() {
    let p = pki(&temp_dir("name"), "a", "redhac-1.internal");
    // The default CACHE_TLS_CLIENT_VALIDATE_DOMAIN, redhac.local, is not in the certificate.
    let (mut a, mut b, stop) = pair(spec(&config(&p), &config(&p))).await;
    assert_refused_by(&mut a, &mut b, [true, false]).await;
    let _ = stop.send(true);

    let overridden = Config {
        tls_client_validate_domain: "redhac-1.internal".into(),
        tls_sni_overwrite: Some("lb.example".into()),
        ..config(&p)
    };
    let (mut a, mut b, stop) = pair(spec(&overridden, &config(&p))).await;
    assert_link_up(&mut a, &mut b).await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_wrong_token_is_refused_over_tls() {
    let p = pki(&temp_dir("token"), "a", "redhac.local");
    let mut s = spec(&config(&p), &config(&p));
    s.tokens = [TOKEN, "another-token-xyz"];
    let (mut a, mut b, stop) = pair(s).await;
    assert_refused(&mut a, &mut b).await;
    let _ = stop.send(true);
}

fn config_error(c: &Config) -> String {
    match TlsSetup::load(c) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn tls_configuration_errors_name_the_variable() {
    let dir = temp_dir("errors");
    let (p, other) = (
        pki(&dir, "a", "redhac.local"),
        pki(&dir, "b", "redhac.local"),
    );
    let missing = Config {
        tls_server_cert: dir.join("nope.pem"),
        ..config(&p)
    };
    assert!(config_error(&missing).contains("CACHE_TLS_SERVER_CERT"));
    let mismatched = Config {
        tls_server_key: other.key.clone(),
        ..config(&p)
    };
    let m = config_error(&mismatched);
    assert!(
        m.contains("CACHE_TLS_SERVER_KEY") && m.contains("belongs"),
        "{m}"
    );
    let no_ca = Config {
        tls_ca_server: None,
        ..config(&p)
    };
    assert!(config_error(&no_ca).contains("CACHE_TLS_CA_SERVER"));
    let half_client = Config {
        tls_client_cert: Some(p.cert.clone()),
        ..config(&p)
    };
    assert!(config_error(&half_client).contains("CACHE_TLS_CLIENT_KEY"));
    let not_pem = Config {
        tls_server_key: p.cert.clone(),
        ..config(&p)
    };
    assert!(config_error(&not_pem).contains("CACHE_TLS_SERVER_KEY"));
    assert!(
        TlsSetup::load(&Config {
            tls: false,
            ..config(&p)
        })
        .unwrap()
        .is_none()
    );
}
