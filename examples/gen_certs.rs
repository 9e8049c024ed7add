//! Writes a CA and a member certificate for a TLS cluster, in the file names
//! the configuration defaults expect.
//!
//! ```sh
//! cargo run --example gen_certs                      # SAN redhac.local, into tls/
//! cargo run --example gen_certs -- --out certs redhac.local redhac-0.redhac redhac-1.redhac
//! ```
//!
//! Files (all PEM):
//! - `ca-chain.cert.pem`: the CA; use it for `CACHE_TLS_CA_SERVER` (and
//!   `CACHE_TLS_CA_CLIENT` for mTLS);
//! - `redhac.cert-chain.pem` and `redhac.key.pem`: the member certificate
//!   (chain: member, then CA) and its key, the defaults of
//!   `CACHE_TLS_SERVER_CERT`/`_KEY`; the certificate is valid for server and
//!   client use, so it also serves as `CACHE_TLS_CLIENT_CERT`/`_KEY`.
//!
//! Every member may share this one certificate when its SANs hold the name
//! clients validate (`CACHE_TLS_CLIENT_VALIDATE_DOMAIN`, default `redhac.local`).
//! For production, issue certificates from your own CA (cert-manager, Vault).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from("tls");
    let mut sans = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: gen_certs [--out DIR] [SAN ...]   (default: --out tls redhac.local)"
                );
                return Ok(());
            }
            san => sans.push(san.to_owned()),
        }
    }
    if sans.is_empty() {
        sans.push("redhac.local".to_owned());
    }
    std::fs::create_dir_all(&out)?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "redhac CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(sans.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, sans[0].as_str());
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let files = [
        ("ca-chain.cert.pem", ca.pem()),
        (
            "redhac.cert-chain.pem",
            format!("{}{}", cert.pem(), ca.pem()),
        ),
        ("redhac.key.pem", key.serialize_pem()),
    ];
    for (name, pem) in files {
        let path = out.join(name);
        std::fs::write(&path, pem)?;
        println!("wrote {}", path.display());
    }
    println!("certificate SANs: {}", sans.join(", "));
    println!(
        "use: CACHE_TLS=true CACHE_TLS_SERVER_CERT={d}/redhac.cert-chain.pem CACHE_TLS_SERVER_KEY={d}/redhac.key.pem \
         CACHE_TLS_CA_SERVER={d}/ca-chain.cert.pem CACHE_TLS_CLIENT_VALIDATE_DOMAIN={san}",
        d = out.display(),
        san = sans[0]
    );
    Ok(())
}
