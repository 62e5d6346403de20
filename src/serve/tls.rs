//! TLS for `weir serve`: the server's certificate chain and key (PEM), and
//! with a client CA, mutual TLS: a client must then show a certificate that
//! CA signed, or its handshake fails before any request is read.
//!
//! rustls with ring, as for weir's outgoing HTTPS (no OpenSSL to build).

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the service's TLS material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Clients must show a certificate signed by one of these CAs (PEM):
    /// mutual TLS. None: any client may connect.
    pub client_ca: Option<PathBuf>,
}

/// Files this big are not certificates or keys.
const MAX_PEM_BYTES: u64 = 1 << 20;

impl TlsFiles {
    /// The server configuration these files make; errors name the file and
    /// the flag it came from.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = certificates(&self.cert, "--tls-cert")?;
        let key =
            PrivateKeyDer::from_pem_slice(&read(&self.key, "--tls-key")?).with_context(|| {
                format!(
                    "--tls-key {}: no private key in it (PEM)",
                    self.key.display()
                )
            })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(path, "--tls-client-ca")? {
                    roots.add(cert).with_context(|| {
                        format!("--tls-client-ca {}: not a CA certificate", path.display())
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .with_context(|| format!("--tls-client-ca {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "--tls-cert {} and --tls-key {} do not make a usable pair",
                self.cert.display(),
                self.key.display()
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut pem))
        .with_context(|| format!("{flag} {}", path.display()))?;
    anyhow::ensure!(
        pem.len() as u64 <= MAX_PEM_BYTES,
        "{flag} {}: over {MAX_PEM_BYTES} bytes is not a PEM file",
        path.display()
    );
    Ok(pem)
}

fn certificates(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: not PEM certificates", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{flag} {}: no certificate in it (PEM, `-----BEGIN CERTIFICATE-----`)",
        path.display()
    );
    Ok(certs)
}
