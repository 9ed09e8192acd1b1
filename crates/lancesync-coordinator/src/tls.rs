//! The instance's session to PostgreSQL over TLS when `COORDINATOR_URL` says
//! `sslmode=require`: rustls, the server's certificate checked against `COORDINATOR_CA_FILE`
//! (or the system's roots) and the URL's host name. Other modes stay unencrypted, as they
//! were: a server with TLS on but an untrusted certificate (Debian's default) keeps working.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Error, Result};

/// How the session travels.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Unencrypted (no `sslmode=require`).
    Plain,
    /// TLS, the server's certificate verified.
    Tls(MakeRustlsConnect),
}

impl Transport {
    /// The transport `config` asks for; `ca_file`: the authorities to trust (the system's
    /// roots when `None`).
    pub(crate) fn for_config(config: &Config, ca_file: Option<&Path>) -> Result<Self> {
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Transport::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::BadUrl(format!(
                        "asks for TLS, but COORDINATOR_CA_FILE={} cannot be read: {e}",
                        path.display()
                    ))
                })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error::BadUrl(format!(
                            "asks for TLS, but COORDINATOR_CA_FILE={} is not PEM certificates: {e}",
                            path.display()
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::BadUrl(format!(
                            "asks for TLS, but COORDINATOR_CA_FILE={} holds a certificate rustls refuses: {e}",
                            path.display()
                        ))
                    })?;
                }
                if roots.is_empty() {
                    return Err(Error::BadUrl(format!(
                        "asks for TLS, but COORDINATOR_CA_FILE={} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error::BadUrl(
                        "asks for TLS, but this system has no trusted roots: set COORDINATOR_CA_FILE to the authority that signed PostgreSQL's certificate".into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::BadUrl(format!("asks for TLS, which cannot be set up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Transport::Tls(MakeRustlsConnect::new(tls)))
    }

    /// Connect within `wait`; the connection runs in a task of its own.
    pub(crate) async fn connect(
        &self,
        config: &Config,
        wait: Duration,
    ) -> Result<(Client, JoinHandle<()>)> {
        let timed_out = || Error::Query(format!("no answer within {} s", wait.as_secs()));
        match self {
            Transport::Plain => {
                let (client, connection) = tokio::time::timeout(wait, config.connect(NoTls))
                    .await
                    .map_err(|_| timed_out())??;
                Ok((client, tokio::spawn(run(connection))))
            }
            Transport::Tls(tls) => {
                let (client, connection) = tokio::time::timeout(wait, config.connect(tls.clone()))
                    .await
                    .map_err(|_| timed_out())??;
                Ok((client, tokio::spawn(run(connection))))
            }
        }
    }
}

async fn run(connection: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "coordinator connection ended");
    }
}
