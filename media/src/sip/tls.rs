//! SIP over TLS's server side: our certificate chain and key (PEM files,
//! read again on SIGHUP so a renewed certificate needs no restart), and,
//! when `sip.tls_client_ca` names CAs, the client certificate a trunk
//! must present. rustls with the aws-lc-rs provider, named explicitly
//! (another provider is in the build: see CRATES.md).

use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::SipConfig;

/// A certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("SIP TLS: {0}")]
pub struct TlsError(String);

fn fail(what: &str, path: &str) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError {
    let message = format!("reading {what} {path:?}");
    move |e| TlsError(format!("{message}: {e}"))
}

/// The acceptor in use; a reload swaps it for new connections.
#[derive(Clone)]
pub(super) struct Certificate(Arc<RwLock<TlsAcceptor>>);

impl Certificate {
    /// The configured certificate, or `None` when TLS is not configured.
    ///
    /// # Errors
    /// Only one of `tls_cert` and `tls_key` set, or a file that does not
    /// hold a usable chain, key or CA list.
    pub(super) fn load(config: &SipConfig) -> Result<Option<Self>, TlsError> {
        if config.tls_cert.is_empty() && config.tls_key.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self(Arc::new(RwLock::new(acceptor(config)?)))))
    }

    /// The acceptor for a connection starting now.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Our certificate chain and key, from `sip.tls_cert` and `sip.tls_key`.
fn ours(config: &SipConfig) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_file_iter(&config.tls_cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(fail("the certificate chain", &config.tls_cert))?;
    if chain.is_empty() {
        return Err(TlsError(format!("no certificate in {:?}", config.tls_cert)));
    }
    let key =
        PrivateKeyDer::from_pem_file(&config.tls_key).map_err(fail("the private key", &config.tls_key))?;
    Ok((chain, key))
}

/// A TLS server configuration from `config`'s files.
fn acceptor(config: &SipConfig) -> Result<TlsAcceptor, TlsError> {
    if config.tls_cert.is_empty() || config.tls_key.is_empty() {
        return Err(TlsError("sip.tls_cert and sip.tls_key are set together".into()));
    }
    let (chain, key) = ours(config)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = if config.tls_client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&config.tls_client_ca)
            .map_err(fail("the client CAs", &config.tls_client_ca))?
        {
            let ca = ca.map_err(fail("the client CAs", &config.tls_client_ca))?;
            roots.add(ca).map_err(|e| TlsError(format!("a client CA: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError(format!("the client CAs: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("the certificate and key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Reads the files again at every SIGHUP; a failure keeps the old
/// certificate and says why.
pub(super) async fn reload_on_sighup(cert: Certificate, config: SipConfig, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the SIP certificate will not be reloaded");
            return;
        }
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match acceptor(&config) {
            Ok(fresh) => {
                *cert.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                tracing::info!(cert = %config.tls_cert, "SIP TLS certificate reloaded");
            }
            Err(e) => tracing::error!(error = %e, "SIP TLS certificate not reloaded; the old one stays"),
        }
    }
}

/// A TLS connection of ours to a trunk.
pub(super) type ClientStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Connects over TLS to `addr`, the trunk's `host`: its certificate must
/// name `host` and chain to a CA of `ca` (a PEM file), or with `ca` empty
/// to one of the system's roots. Our own certificate (`sip.tls_cert`) goes
/// with it, for a trunk that asks for one.
///
/// # Errors
/// The CA file unusable, the connection refused, or the handshake failed
/// (a certificate that does not check out) within `timeout`.
pub(super) async fn connect(
    host: &str,
    addr: std::net::SocketAddr,
    ca: &str,
    ours: &SipConfig,
    timeout: std::time::Duration,
) -> Result<ClientStream, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if ca.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(TlsError("no system CA certificates to check the trunk's against".into()));
        }
    } else {
        for cert in CertificateDer::pem_file_iter(ca).map_err(fail("the trunk's CAs", ca))? {
            let cert = cert.map_err(fail("the trunk's CAs", ca))?;
            roots.add(cert).map_err(|e| TlsError(format!("a trunk CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots);
    let config = if ours.tls_cert.is_empty() || ours.tls_key.is_empty() {
        builder.with_no_client_auth()
    } else {
        let (chain, key) = self::ours(ours)?;
        builder.with_client_auth_cert(chain, key).map_err(|e| TlsError(format!("our certificate: {e}")))?
    };
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| TlsError(format!("{host:?} cannot name a TLS server: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connecting = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| TlsError(format!("connecting to {addr}: {e}")))?;
        connector.connect(name, tcp).await.map_err(|e| TlsError(format!("TLS with {host} ({addr}): {e}")))
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| TlsError(format!("TLS with {host} ({addr}): no handshake within {timeout:?}")))?
}
