//! TLS and mTLS for links, with rustls (ring provider).
//!
//! Clients validate a member's certificate against the CA in
//! `CACHE_TLS_CA_SERVER` and the name in `CACHE_TLS_CLIENT_VALIDATE_DOMAIN`,
//! and send `CACHE_TLS_SNI_OVERWRITE` as SNI when it is set. Servers require a
//! client certificate from the CA in `CACHE_TLS_CA_CLIENT` when it is set
//! (mTLS). Every file problem is a start-up [`Error::Config`] naming the
//! variable.

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tonic::codegen::Service;
use tonic::transport::Uri;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::{Config, Error, Result};

/// Ready-to-use TLS configurations of one node.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    sni: ServerName<'static>,
    mtls: bool,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSetup")
            .field("sni", &self.sni)
            .field("mtls", &self.mtls)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(var: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let read = |e: &dyn fmt::Display| {
        Error::Config(format!(
            "{var}: cannot read certificates from {}: {e}; point {var} at a PEM file \
             (`cargo run --example gen_certs` writes a test set)",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| read(&e))?;
    if certs.is_empty() {
        return Err(read(&"the file holds no CERTIFICATE block"));
    }
    Ok(certs)
}

fn key(var: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::Config(format!(
            "{var}: cannot read a private key from {}: {e}; point {var} at a PEM file with \
             one PRIVATE KEY block",
            path.display()
        ))
    })
}

fn roots(var: &str, path: &Path) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for cert in certs(var, path)? {
        store.add(cert).map_err(|e| {
            Error::Config(format!(
                "{var}: {} holds an unusable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(Arc::new(store))
}

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> Error + '_ {
    move |e| Error::Config(format!("{what}: {e}"))
}

impl TlsSetup {
    /// Reads and checks every TLS file the configuration names; `None` when
    /// `CACHE_TLS` is false.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and the fix.
    pub(crate) fn load(config: &Config) -> Result<Option<Self>> {
        if !config.tls {
            return Ok(None);
        }
        let p = provider();
        let chain = certs("CACHE_TLS_SERVER_CERT", &config.tls_server_cert)?;
        let server_key = key("CACHE_TLS_SERVER_KEY", &config.tls_server_key)?;
        let server = ServerConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("TLS versions"))?;
        let server = match &config.tls_ca_client {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    roots("CACHE_TLS_CA_CLIENT", ca)?,
                    p.clone(),
                )
                .build()
                .map_err(|e| Error::Config(format!("CACHE_TLS_CA_CLIENT: {e}")))?;
                server.with_client_cert_verifier(verifier)
            }
            None => server.with_no_client_auth(),
        };
        let mut server = server.with_single_cert(chain, server_key).map_err(|e| {
            Error::Config(format!(
                "CACHE_TLS_SERVER_CERT / CACHE_TLS_SERVER_KEY: {e}; give the key that belongs to the certificate"
            ))
        })?;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let ca = config.tls_ca_server.as_ref().ok_or_else(|| {
            Error::Config(
                "CACHE_TLS is true but CACHE_TLS_CA_SERVER is not set; point it at the CA that signed \
                 the members' certificates, or set CACHE_TLS=false"
                    .into(),
            )
        })?;
        let validate =
            ServerName::try_from(config.tls_client_validate_domain.clone()).map_err(|e| {
                Error::Config(format!(
                    "CACHE_TLS_CLIENT_VALIDATE_DOMAIN {:?} is not a DNS name or IP address: {e}",
                    config.tls_client_validate_domain
                ))
            })?;
        let sni = match &config.tls_sni_overwrite {
            Some(name) => ServerName::try_from(name.clone()).map_err(|e| {
                Error::Config(format!(
                    "CACHE_TLS_SNI_OVERWRITE {name:?} is not a DNS name or IP address: {e}"
                ))
            })?,
            None => validate.clone(),
        };
        let inner = WebPkiServerVerifier::builder_with_provider(
            roots("CACHE_TLS_CA_SERVER", ca)?,
            p.clone(),
        )
        .build()
        .map_err(|e| Error::Config(format!("CACHE_TLS_CA_SERVER: {e}")))?;
        let client = ClientConfig::builder_with_provider(p)
            .with_safe_default_protocol_versions()
            .map_err(tls_err("TLS versions"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FixedNameVerifier {
                inner,
                name: validate,
            }));
        let mut client = match (&config.tls_client_cert, &config.tls_client_key) {
            (Some(cert), Some(k)) => client
                .with_client_auth_cert(certs("CACHE_TLS_CLIENT_CERT", cert)?, key("CACHE_TLS_CLIENT_KEY", k)?)
                .map_err(|e| {
                    Error::Config(format!(
                        "CACHE_TLS_CLIENT_CERT / CACHE_TLS_CLIENT_KEY: {e}; give the key that belongs to the certificate"
                    ))
                })?,
            (None, None) => client.with_no_client_auth(),
            _ => {
                return Err(Error::Config(
                    "CACHE_TLS_CLIENT_CERT and CACHE_TLS_CLIENT_KEY go together; set both for mTLS or neither".into(),
                ));
            }
        };
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            sni,
            mtls: config.tls_ca_client.is_some(),
        }))
    }

    /// A connector for tonic's `Endpoint::connect_with_connector`; a failed
    /// handshake is logged and counted in `refused`.
    pub(crate) fn connector(&self, refused: Arc<AtomicU64>) -> TlsConnector {
        TlsConnector {
            connector: tokio_rustls::TlsConnector::from(Arc::clone(&self.client)),
            sni: self.sni.clone(),
            refused,
        }
    }

    /// Accepts TCP connections and hands on those that complete the TLS
    /// handshake; a failed handshake is logged with the peer's address and
    /// counted in `refused`.
    pub(crate) fn incoming(
        &self,
        listener: TcpListener,
        handshake_timeout: Duration,
        refused: Arc<AtomicU64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> mpsc::Receiver<io::Result<TlsConn>> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    },
                    () = super::link::stopped(&mut shutdown) => return,
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx, refused) = (acceptor.clone(), tx.clone(), Arc::clone(&refused));
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(TlsConn(tls))).await;
                        }
                        Ok(Err(e)) => {
                            super::count_refused(&refused);
                            tracing::warn!(peer_addr = %peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => {
                            super::count_refused(&refused);
                            tracing::warn!(peer_addr = %peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        rx
    }
}

/// Validates server certificates against one configured name, whatever SNI
/// the client sends.
#[derive(Debug)]
struct FixedNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Dials a member and runs the TLS client handshake.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    sni: ServerName<'static>,
    refused: Arc<AtomicU64>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("sni", &self.sni)
            .finish()
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = BoxFuture<io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (connector, sni, refused) = (
            self.connector.clone(),
            self.sni.clone(),
            Arc::clone(&self.refused),
        );
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no host:port in the member address",
                    )
                })?
                .as_str()
                .to_owned();
            let tcp = TcpStream::connect(authority.as_str()).await?;
            tcp.set_nodelay(true)?;
            match connector.connect(sni, tcp).await {
                Ok(tls) => Ok(TokioIo::new(tls)),
                Err(e) => {
                    super::count_refused(&refused);
                    tracing::warn!(peer_addr = %authority, error = %e, "TLS handshake with a member failed");
                    Err(e)
                }
            }
        })
    }
}

/// An accepted TLS connection, as tonic's server wants it.
#[derive(Debug)]
pub(crate) struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
