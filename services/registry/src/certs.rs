//! TLS material per registry as containers/image finds it (`docker/docker_client.go`
//! `dockerCertDir`, `pkg/tlsclientconfig`): the system roots plus, from ONE directory per
//! `host[:port]` — the first that exists of `$HOME/.config/containers/certs.d/<host:port>`,
//! `/etc/containers/certs.d/<host:port>`, `/etc/docker/certs.d/<host:port>` —
//! every `*.crt` as an extra CA, and every `*.cert`/`*.key` pair as a client identity
//! (a `.cert` without its `.key`, or the reverse, is an error).
//!
//! Docker Hub's directory is `docker.io` (the name users see), not its API host.
//! This module returns paths and PEM bytes only; the client builds its TLS
//! configuration (system roots + [`TlsFiles::ca_pems`], identity from
//! [`TlsFiles::client_identity`]).

use std::path::{Path, PathBuf};

use crate::conf::Env;

/// Why a certificate directory could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    /// A directory or file could not be read.
    #[error("reading {path:?}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("{0}")]
    Unpaired(String),
}

/// A client certificate and its private key (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The `.cert` file.
    pub cert_path: PathBuf,
    /// The `.key` file.
    pub key_path: PathBuf,
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM (hidden from `Debug`).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// What one registry's certificate directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// The directory used (`None`: none exists; system roots only).
    pub dir: Option<PathBuf>,
    /// `*.crt` files, in name order.
    pub ca_files: Vec<PathBuf>,
    /// `(cert, key)` pairs, in name order of the `.cert` files.
    pub client_pairs: Vec<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// The CA files' contents (PEM), to add to the system roots. A file that vanished
    /// since listing is skipped, as containers/image does.
    pub fn ca_pems(&self) -> Result<Vec<Vec<u8>>, CertError> {
        let mut out = Vec::with_capacity(self.ca_files.len());
        for p in &self.ca_files {
            match std::fs::read(p) {
                Ok(b) => out.push(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %p.display(), "certificate vanished");
                }
                Err(e) => return Err(io(p, &e)),
            }
        }
        Ok(out)
    }

    /// The first client identity (the one a TLS client presents), read.
    pub fn client_identity(&self) -> Result<Option<ClientIdentity>, CertError> {
        let Some((cert, key)) = self.client_pairs.first() else {
            return Ok(None);
        };
        Ok(Some(ClientIdentity {
            cert_pem: std::fs::read(cert).map_err(|e| io(cert, &e))?,
            key_pem: std::fs::read(key).map_err(|e| io(key, &e))?,
            cert_path: cert.clone(),
            key_path: key.clone(),
        }))
    }
}

fn io(p: &Path, e: &std::io::Error) -> CertError {
    CertError::Io {
        path: p.to_owned(),
        message: e.to_string(),
    }
}

/// The candidate `certs.d` roots, in the order they are tried.
pub fn cert_roots(env: &Env) -> Vec<PathBuf> {
    vec![
        env.home_path(".config/containers/certs.d"),
        env.sys_path("/etc/containers/certs.d"),
        env.sys_path("/etc/docker/certs.d"),
    ]
}

/// The certificate directory of `host_port` (`registry.example.com:5000`): the first
/// root that has it. Unreadable candidates (permissions) are skipped.
pub fn cert_dir(env: &Env, host_port: &str) -> Option<PathBuf> {
    if host_port.is_empty() || host_port.contains('/') || host_port.starts_with('.') {
        return None;
    }
    cert_roots(env)
        .into_iter()
        .map(|r| r.join(host_port))
        .find(|d| std::fs::metadata(d).is_ok())
}

/// The CA files and client pairs for `host_port`.
pub fn tls_files(env: &Env, host_port: &str) -> Result<TlsFiles, CertError> {
    let Some(dir) = cert_dir(env, host_port) else {
        return Ok(TlsFiles::default());
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(TlsFiles::default());
        }
        Err(e) => return Err(io(&dir, &e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io(&dir, &e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut files = TlsFiles {
        dir: Some(dir.clone()),
        ..TlsFiles::default()
    };
    for name in &names {
        if name.ends_with(".crt") {
            files.ca_files.push(dir.join(name));
        }
        if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !has(&key) {
                return Err(CertError::Unpaired(format!(
                    "missing key {key} for client certificate {name}. Note that CA certificates should use the extension .crt"
                )));
            }
            files.client_pairs.push((dir.join(name), dir.join(key)));
        }
        if let Some(stem) = name.strip_suffix(".key") {
            let cert = format!("{stem}.cert");
            if !has(&cert) {
                return Err(CertError::Unpaired(format!(
                    "missing client certificate {cert} for key {name}"
                )));
            }
        }
    }
    Ok(files)
}

/// The extra CA files for `host_port` (empty: system roots only).
pub fn ca_files(env: &Env, host_port: &str) -> Result<Vec<PathBuf>, CertError> {
    tls_files(env, host_port).map(|f| f.ca_files)
}

/// The client identity for `host_port`, if its directory has a `.cert`/`.key` pair.
pub fn client_identity(env: &Env, host_port: &str) -> Result<Option<ClientIdentity>, CertError> {
    tls_files(env, host_port)?.client_identity()
}
