//! The registry client: transport (one `oci_client::Client` per registry host and TLS
//! choice), reference resolution and credentials (the seams `conf` and `auth` plug into),
//! the per-digest in-flight map that makes concurrent pulls fetch a blob once, and the
//! mapping of transport failures to imaged's error kinds.

use std::collections::HashMap;
use std::error::Error as _;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use imaged_core::digest::Digest;
use imaged_core::engine::Engine;
use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::model::Platform;
use imaged_core::transfer::{
    Credentials, PullOutcome, PullRequest, PushOutcome, PushRequest, Registry, TlsVerify,
    TransferEvent,
};
use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

/// How the client is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registries (`host[:port]`) that may be reached over plain HTTP (what
    /// `registries.conf` marks `insecure = true`, until `conf` is wired in).
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM files) trusted for every registry.
    pub ca_files: Vec<PathBuf>,
    /// The platform pulled from a manifest list when the request names none (default:
    /// this host's).
    pub default_platform: Option<Platform>,
}

/// One place a reference may be pulled from.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The fully-qualified reference.
    pub reference: Reference,
    /// Plain HTTP allowed (and TLS not verified).
    pub insecure: bool,
}

/// A registry client implementing [`Registry`].
pub struct RegistryClient {
    /// Always `Some` until `Drop` shuts it down without blocking (a runtime dropped on an
    /// async thread panics, and the daemon drops its services on one).
    runtime: Option<tokio::runtime::Runtime>,
    opts: Options,
    clients: Mutex<HashMap<(String, bool), Arc<oci_client::Client>>>,
    pub(crate) inflight: Inflight,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Drop for RegistryClient {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl RegistryClient {
    /// The client's I/O runtime.
    pub(crate) fn rt(&self) -> &tokio::runtime::Runtime {
        match &self.runtime {
            Some(rt) => rt,
            None => unreachable!("the runtime is only taken by Drop"),
        }
    }

    /// A client with its own small I/O runtime (its calls block; run them off the async
    /// runtime, e.g. in `spawn_blocking`).
    pub fn new(opts: Options) -> Result<Self> {
        // reqwest is built without a default crypto provider (aws-lc needs cmake);
        // install ring's once for the process (an error means one is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imaged-registry")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("starting the registry runtime: {e}")))?;
        Ok(Self {
            runtime: Some(rt),
            opts,
            clients: Mutex::new(HashMap::new()),
            inflight: Inflight::default(),
        })
    }

    /// The default platform for manifest lists.
    pub(crate) fn default_platform(&self) -> Platform {
        self.opts
            .default_platform
            .clone()
            .unwrap_or_else(|| Platform {
                os: "linux".to_owned(),
                architecture: host_arch().to_owned(),
                variant: String::new(),
            })
    }

    /// Where `reference` may be pulled from, in order. Seam for `conf::RegistriesConf`
    /// (short names, aliases, mirrors): until it lands, only fully-qualified references
    /// are accepted and pulled from their own registry.
    pub(crate) fn candidates(&self, reference: &str, tls: TlsVerify) -> Result<Vec<Candidate>> {
        let r = parse_qualified(reference)?;
        let insecure = self.is_insecure(r.resolve_registry(), tls);
        Ok(vec![Candidate {
            reference: r,
            insecure,
        }])
    }

    /// Whether `host` may be reached over plain HTTP.
    pub(crate) fn is_insecure(&self, host: &str, tls: TlsVerify) -> bool {
        match tls {
            TlsVerify::Skip => true,
            TlsVerify::Verify => false,
            TlsVerify::Default => self.opts.insecure_registries.iter().any(|h| h == host),
        }
    }

    /// The credentials to use for `host`/`repo`. Seam for `auth::lookup` (auth files,
    /// credential helpers): until it lands, the request's credentials or anonymous.
    pub(crate) fn auth(
        &self,
        given: Option<&Credentials>,
        _host: &str,
        _repo: &str,
    ) -> RegistryAuth {
        match given {
            Some(c) if !c.registry_token.is_empty() => {
                RegistryAuth::Bearer(c.registry_token.clone())
            }
            Some(c) if !c.username.is_empty() => {
                RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }
            _ => RegistryAuth::Anonymous,
        }
    }

    /// The transport for `host` (plain HTTP allowed when `insecure`).
    pub(crate) fn client_for(&self, host: &str, insecure: bool) -> Result<Arc<oci_client::Client>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(&(host.to_owned(), insecure)) {
            return Ok(Arc::clone(c));
        }
        let mut extra = Vec::new();
        for f in &self.opts.ca_files {
            let data = std::fs::read(f).map_err(|e| {
                Error::new(
                    ErrorKind::TlsFailure,
                    format!("reading CA file {}: {e}", f.display()),
                )
            })?;
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::HttpsExcept(vec![host.to_owned()])
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: insecure,
            extra_root_certificates: extra,
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let c = Arc::new(oci_client::Client::new(config));
        clients.insert((host.to_owned(), insecure), Arc::clone(&c));
        Ok(c)
    }
}

impl Registry for RegistryClient {
    fn pull(
        &self,
        engine: &Engine,
        req: &PullRequest,
        progress: &mut dyn FnMut(TransferEvent),
    ) -> Result<PullOutcome> {
        crate::pull::pull(self, engine, req, progress)
    }

    fn push(
        &self,
        engine: &Engine,
        req: &PushRequest,
        progress: &mut dyn FnMut(TransferEvent),
    ) -> Result<PushOutcome> {
        crate::push::push(self, engine, req, progress)
    }
}

/// The architecture name OCI uses for this host.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    }
}

/// Parses a fully-qualified reference (its first component names a registry).
pub(crate) fn parse_qualified(reference: &str) -> Result<Reference> {
    let invalid = |why: &str| {
        Error::new(ErrorKind::InvalidReference, format!("{reference}: {why}"))
            .with_meta("reference", reference)
    };
    let first = reference.split('/').next().unwrap_or_default();
    let qualified = reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if !qualified {
        return Err(invalid(
            "short names are not resolved yet: use a fully-qualified reference (registry/repository:tag)",
        ));
    }
    reference
        .parse::<Reference>()
        .map_err(|e| invalid(&e.to_string()))
}

/// The core digest of an `oci_client` digest string.
pub(crate) fn digest_of(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("registry sent an unsupported digest {s:?}: {e}"),
        )
    })
}

/// What a transport error means to imaged. `NotFoundInRegistries` is returned for
/// "manifest/blob unknown" (the caller adds the candidates tried).
pub(crate) fn map_err(e: OciDistributionError, what: &str) -> Error {
    use OciDistributionError as E;
    let not_found = || {
        Error::new(
            ErrorKind::NotFoundInRegistries,
            format!("{what}: not found"),
        )
    };
    let unauthorized = || {
        Error::new(
            ErrorKind::RegistryUnauthorized,
            format!("{what}: the registry refused the credentials (unauthorized)"),
        )
    };
    match e {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => unauthorized(),
        E::ImageManifestNotFoundError(_) => not_found(),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|x| format!("{:?}", x.code).to_uppercase())
                .collect();
            if codes
                .iter()
                .any(|c| c.contains("UNKNOWN") && !c.contains("UNSUPPORTED"))
            {
                not_found()
            } else if codes
                .iter()
                .any(|c| c.contains("UNAUTHORIZED") || c.contains("DENIED"))
            {
                unauthorized()
            } else {
                Error::new(
                    ErrorKind::RegistryUnreachable,
                    format!("{what}: registry error {}", codes.join(", ")),
                )
            }
        }
        E::ServerError { code, message, .. } => match code {
            404 => not_found(),
            401 | 403 => unauthorized(),
            _ => Error::new(
                ErrorKind::RegistryUnreachable,
                format!("{what}: registry answered {code}: {message}"),
            ),
        },
        E::DigestError(d) => Error::new(ErrorKind::DigestMismatch, format!("{what}: {d}")),
        E::RequestError(r) => request_error(&r, what),
        E::IoError(io) => io_error(&io, what),
        other => Error::new(ErrorKind::RegistryUnreachable, format!("{what}: {other}")),
    }
}

/// A reqwest failure: TLS, or the registry unreachable.
fn request_error(r: &reqwest::Error, what: &str) -> Error {
    let mut chain = r.to_string();
    let mut src = r.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    if let Some(s) = r.status() {
        return match s.as_u16() {
            404 => Error::new(
                ErrorKind::NotFoundInRegistries,
                format!("{what}: not found"),
            ),
            401 | 403 => Error::new(
                ErrorKind::RegistryUnauthorized,
                format!("{what}: the registry refused the credentials (unauthorized)"),
            ),
            _ => Error::new(ErrorKind::RegistryUnreachable, format!("{what}: {chain}")),
        };
    }
    let lower = chain.to_lowercase();
    if ["certificate", "tls", "handshake", "unknownissuer", "x509"]
        .iter()
        .any(|k| lower.contains(k))
    {
        Error::new(ErrorKind::TlsFailure, format!("{what}: {chain}"))
    } else {
        Error::new(ErrorKind::RegistryUnreachable, format!("{what}: {chain}"))
    }
}

/// An I/O failure while streaming: a digest check by `oci_client`, or the connection.
pub(crate) fn io_error(e: &std::io::Error, what: &str) -> Error {
    let msg = e.to_string();
    if msg.to_lowercase().contains("digest") {
        Error::new(ErrorKind::DigestMismatch, format!("{what}: {msg}"))
    } else {
        Error::new(ErrorKind::RegistryUnreachable, format!("{what}: {msg}"))
    }
}

/// Blobs being fetched right now, by digest: a pull that wants a blob another pull is
/// fetching waits for it instead of fetching it again.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    map: Mutex<HashMap<Digest, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Outcome of [`Inflight::claim`].
pub(crate) enum Claim<'a> {
    /// This pull fetches it; dropping the guard wakes the waiters.
    Owner(OwnerGuard<'a>),
    /// Another pull fetched it (or gave up): look again.
    Waited,
}

/// Held by the pull fetching a blob.
pub(crate) struct OwnerGuard<'a> {
    inflight: &'a Inflight,
    digest: Digest,
    slot: Arc<Slot>,
}

impl Inflight {
    /// Claims `digest`, or waits until the pull fetching it is done.
    pub(crate) fn claim(&self, digest: Digest) -> Claim<'_> {
        let slot = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(&digest) {
                Some(s) => Arc::clone(s),
                None => {
                    let slot = Arc::new(Slot::default());
                    map.insert(digest, Arc::clone(&slot));
                    return Claim::Owner(OwnerGuard {
                        inflight: self,
                        digest,
                        slot,
                    });
                }
            }
        };
        let mut done = slot.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            done = slot.cv.wait(done).unwrap_or_else(PoisonError::into_inner);
        }
        Claim::Waited
    }
}

impl Drop for OwnerGuard<'_> {
    fn drop(&mut self) {
        self.inflight
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.digest);
        *self
            .slot
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.slot.cv.notify_all();
    }
}
