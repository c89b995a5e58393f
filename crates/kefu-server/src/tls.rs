//! The optional HTTPS listener, so clients that hard-code
//! `https://api.weixin.qq.com` can reach kefu through DNS, a hosts entry or a proxy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::HttpsConfig;

/// Names a generated certificate is valid for.
pub const SELF_SIGNED_NAMES: &[&str] = &["api.weixin.qq.com", "localhost", "127.0.0.1"];

/// The certificate in use and where its PEM lives (for clients to trust).
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The server configuration.
    pub config: Arc<ServerConfig>,
    /// The certificate's PEM file.
    pub cert_path: PathBuf,
    /// Whether kefu generated it.
    pub generated: bool,
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// Loads the configured certificate, or the generated one (creating it on first use).
pub fn load(https: &HttpsConfig) -> Result<TlsMaterial, String> {
    let (cert_path, key_path, generated) = match &https.cert_and_key {
        Some((cert, key)) => (cert.clone(), key.clone(), false),
        None => {
            let cert = https.generated_dir.join("cert.pem");
            let key = https.generated_dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate(&https.generated_dir, &cert, &key)?;
            }
            (cert, key, true)
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| io_error(&cert_path, e))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| io_error(&key_path, e))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| io_error(&cert_path, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        cert_path,
        generated,
    })
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

fn generate(dir: &Path, cert: &Path, key: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    std::fs::write(cert, generated.cert.pem()).map_err(|e| io_error(cert, e))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| io_error(key, e))?;
    Ok(())
}
