//! The registry client: transport (one `oci_client::Client` per registry host and TLS
//! choice), reference resolution (`conf`: short names, mirrors, `insecure`, `blocked`) and
//! credentials (the request's, else those `auth` finds where podman looks; an identity
//! token is exchanged for an access token, see `token`),
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
    Cancel, Credentials, PullOutcome, PullRequest, PushOutcome, PushRequest, Registry, TlsVerify,
    TransferEvent,
};
use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use crate::auth::{AuthOptions, credentials_for};
use crate::conf::{ConfError, Env, RegistriesConf};
use crate::token::{Target, exchange};

/// How the client is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `registries.conf` as podman reads it (short names, aliases, mirrors, `insecure`,
    /// `blocked`). `None`: only fully-qualified references, pulled from their own
    /// registry.
    pub registries: Option<Arc<RegistriesConf>>,
    /// Why `registries.conf` could not be read, said when a short name needs it.
    pub registries_error: Option<String>,
    /// The environment podman's per-user and system files are found in: stored
    /// credentials (auth files, Docker's config, credential helpers) and each registry's
    /// `certs.d` CA files. `None`: only the request's credentials and the system roots.
    pub env: Option<Env>,
    /// Registries (`host[:port]`) that may be reached over plain HTTP, besides those
    /// `registries.conf` marks `insecure = true`.
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
    /// The name the pulled image gets (fully qualified; a mirror's pull is named as the
    /// registry it mirrors).
    pub name: Reference,
    /// Where it is fetched from (the name itself, or the name rewritten for a mirror).
    pub reference: Reference,
    /// Plain HTTP allowed (and TLS not verified).
    pub insecure: bool,
    /// A mirror: any failure there moves on to the next place.
    pub mirror: bool,
}

/// A registry client implementing [`Registry`].
pub struct RegistryClient {
    /// Always `Some` until `Drop` shuts it down without blocking (a runtime dropped on an
    /// async thread panics, and the daemon drops its services on one).
    runtime: Option<tokio::runtime::Runtime>,
    opts: Options,
    /// One transport per registry, TLS choice and credentials: an oci-client `Client`
    /// keeps the first credentials it is given for a registry and the tokens they earn,
    /// so two requests with different credentials must never share one.
    clients: Mutex<HashMap<ClientKey, Arc<oci_client::Client>>>,
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
    /// Runs `fut` on the client's runtime until it completes or `cancel` fires
    /// (`Cancelled`, naming `what`).
    pub(crate) fn run<F: std::future::Future>(
        &self,
        cancel: &Cancel,
        what: &str,
        fut: F,
    ) -> Result<F::Output> {
        cancel.check(what)?;
        self.rt().block_on(async {
            tokio::select! {
                biased;
                () = cancel.cancelled() => Err(Cancel::error(what)),
                v = fut => Ok(v),
            }
        })
    }

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

    /// Where `reference` may be pulled from, in podman's order: with `registries.conf`,
    /// each name a short name resolves to (alias, or each unqualified-search registry),
    /// and for each its mirrors, then its location, blocked registries left out; without
    /// it, only a fully-qualified reference, from its own registry.
    pub(crate) fn candidates(&self, reference: &str, tls: TlsVerify) -> Result<Vec<Candidate>> {
        let Some(conf) = &self.opts.registries else {
            let r = match parse_qualified(reference) {
                Ok(r) => r,
                Err(e) => match &self.opts.registries_error {
                    Some(why) => return Err(Error::new(e.kind, format!("{}; {why}", e.message))),
                    None => return Err(e),
                },
            };
            let insecure = self.is_insecure(r.resolve_registry(), false, tls);
            return Ok(vec![Candidate {
                name: r.clone(),
                reference: r,
                insecure,
                mirror: false,
            }]);
        };
        let resolved = conf
            .pull_candidates(reference)
            .map_err(|e| conf_error(reference, &e))?;
        let mut out = Vec::new();
        for c in resolved {
            let name = parse_qualified(&c.reference)?;
            for ep in c.endpoints {
                let r = parse_qualified(&ep.reference)?;
                let insecure = self.is_insecure(r.resolve_registry(), ep.insecure, tls);
                out.push(Candidate {
                    name: name.clone(),
                    reference: r,
                    insecure,
                    mirror: ep.mirror,
                });
            }
        }
        Ok(out)
    }

    /// Whether `host` may be reached over plain HTTP (`conf_insecure`: what
    /// `registries.conf` says of it).
    pub(crate) fn is_insecure(&self, host: &str, conf_insecure: bool, tls: TlsVerify) -> bool {
        match tls {
            TlsVerify::Skip => true,
            TlsVerify::Verify => false,
            TlsVerify::Default => {
                conf_insecure || self.opts.insecure_registries.iter().any(|h| h == host)
            }
        }
    }

    /// Whether `registries.conf` marks `host` insecure (pushes).
    pub(crate) fn conf_insecure(&self, reference: &str) -> bool {
        self.opts
            .registries
            .as_ref()
            .and_then(|c| c.push_endpoint(reference).ok())
            .is_some_and(|e| e.insecure)
    }

    /// The credentials to use at `host`/`repo`: the request's own when `host` is the
    /// registry the user named (`named_host`), else the stored ones (auth files, Docker's
    /// config, the credential helpers `registries.conf` lists), else none.
    pub(crate) fn credentials(
        &self,
        given: Option<&Credentials>,
        named_host: &str,
        host: &str,
        repo: &str,
    ) -> Result<Option<Credentials>> {
        let given = given.filter(|c| {
            !c.registry_token.is_empty() || !c.identity_token.is_empty() || !c.username.is_empty()
        });
        let Some(env) = &self.opts.env else {
            return Ok(given.filter(|_| named_host == host).cloned());
        };
        let opts = AuthOptions {
            credential_helpers: self
                .opts
                .registries
                .as_ref()
                .map(|c| c.credential_helpers().to_vec())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| AuthOptions::default().credential_helpers),
            ..AuthOptions::default()
        };
        credentials_for(env, &opts, given, named_host, host, repo).map_err(|e| {
            Error::new(
                ErrorKind::RegistryUnauthorized,
                format!("looking up the credentials for {host}: {e}"),
            )
            .with_meta("registry", host)
        })
    }

    /// How requests to `target` authenticate, with the [`Self::credentials`] chosen for
    /// it: a registry token as a Bearer token; an identity token exchanged for an access
    /// token (`token`; this asks the registry, until `cancel` fires); a username and
    /// password as Basic; else anonymous.
    pub(crate) fn auth(
        &self,
        given: Option<&Credentials>,
        named_host: &str,
        target: &Target<'_>,
        cancel: &Cancel,
    ) -> Result<RegistryAuth> {
        let found = self.credentials(given, named_host, target.host, target.repo)?;
        Ok(match found {
            Some(c) if !c.registry_token.is_empty() => RegistryAuth::Bearer(c.registry_token),
            Some(c) if !c.identity_token.is_empty() => {
                let http = self.http_for(target.host, target.insecure)?;
                let what = format!("authenticating to {}", target.host);
                self.run(cancel, &what, exchange(&http, target, &c))??
            }
            Some(c) if !c.username.is_empty() => RegistryAuth::Basic(c.username, c.password),
            _ => RegistryAuth::Anonymous,
        })
    }

    /// The CA certificates (PEM) trusted at `host` besides the system roots: its
    /// `certs.d` files, then the configured CA files.
    fn extra_roots(&self, host: &str) -> Result<Vec<Vec<u8>>> {
        let mut extra = Vec::new();
        // The registry's own CA files (`certs.d/<host:port>/*.crt`), as podman trusts them.
        if let Some(env) = &self.opts.env {
            let tls = |e: crate::certs::CertError| {
                Error::new(ErrorKind::TlsFailure, format!("{host}: {e}"))
                    .with_meta("registry", host)
            };
            let files = crate::certs::tls_files(env, host).map_err(tls)?;
            extra.extend(files.ca_pems().map_err(tls)?);
        }
        for f in &self.opts.ca_files {
            extra.push(std::fs::read(f).map_err(|e| {
                Error::new(
                    ErrorKind::TlsFailure,
                    format!("reading CA file {}: {e}", f.display()),
                )
            })?);
        }
        Ok(extra)
    }

    /// A plain HTTP client trusting what the transport for `host` trusts (the token
    /// exchange talks to the registry and to its token service with it).
    fn http_for(&self, host: &str, insecure: bool) -> Result<reqwest::Client> {
        let tls = |e: reqwest::Error| {
            Error::new(ErrorKind::TlsFailure, format!("{host}: {e}")).with_meta("registry", host)
        };
        let roots = self
            .extra_roots(host)?
            .iter()
            .map(|pem| reqwest::Certificate::from_pem(pem))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(tls)?;
        reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .tls_certs_merge(roots)
            .user_agent(concat!("imaged/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(tls)
    }

    /// The transport for `host` (plain HTTP allowed when `insecure`) used with `auth`.
    pub(crate) fn client_for(
        &self,
        host: &str,
        insecure: bool,
        auth: &RegistryAuth,
    ) -> Result<Arc<oci_client::Client>> {
        let key = ClientKey {
            host: host.to_owned(),
            insecure,
            auth: auth_fingerprint(auth),
        };
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(&key) {
            return Ok(Arc::clone(c));
        }
        // A bound for callers cycling through credentials; dropping the cache only costs
        // new connections and tokens.
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let extra = self
            .extra_roots(host)?
            .into_iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
            .collect();
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
        // `Client::new` would fall back to a default client on a bad CA file, silently
        // dropping the registry's own CA; say what is wrong instead.
        let c = Arc::new(oci_client::Client::try_from(config).map_err(|e| {
            Error::new(
                ErrorKind::TlsFailure,
                format!("{host}: setting up TLS with the registry's CA files: {e}"),
            )
            .with_meta("registry", host)
        })?);
        clients.insert(key, Arc::clone(&c));
        Ok(c)
    }
}

/// Transports kept at most (see [`RegistryClient::client_for`]).
const MAX_CLIENTS: usize = 256;

/// What a transport is kept for.
#[derive(PartialEq, Eq, Hash)]
struct ClientKey {
    host: String,
    insecure: bool,
    /// A digest of the credentials (never the credentials themselves).
    auth: Digest,
}

/// The digest of credentials, naming their kind and each field unambiguously.
fn auth_fingerprint(auth: &RegistryAuth) -> Digest {
    let text = match auth {
        RegistryAuth::Anonymous => "anonymous".to_owned(),
        RegistryAuth::Basic(u, p) => format!("basic\0{}\0{u}{p}", u.len()),
        RegistryAuth::Bearer(t) => format!("bearer\0{t}"),
    };
    Digest::of(text.as_bytes())
}

impl Registry for RegistryClient {
    fn pull(
        &self,
        engine: &Engine,
        req: &PullRequest,
        progress: &mut dyn FnMut(TransferEvent),
        cancel: &Cancel,
    ) -> Result<PullOutcome> {
        crate::pull::pull(self, engine, req, progress, cancel)
    }

    fn push(
        &self,
        engine: &Engine,
        req: &PushRequest,
        progress: &mut dyn FnMut(TransferEvent),
        cancel: &Cancel,
    ) -> Result<PushOutcome> {
        crate::push::push(self, engine, req, progress, cancel)
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
/// A `registries.conf` resolution failure as an error.
fn conf_error(reference: &str, e: &ConfError) -> Error {
    let kind = match e {
        ConfError::Blocked { .. } => ErrorKind::PermissionDenied,
        ConfError::Io { .. } | ConfError::Invalid { .. } => ErrorKind::Internal,
        ConfError::Reference { .. } | ConfError::ShortName(_) => ErrorKind::InvalidReference,
    };
    Error::new(kind, e.to_string()).with_meta("reference", reference)
}

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
pub(crate) fn request_error(r: &reqwest::Error, what: &str) -> Error {
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

/// How often a pull waiting for another pull's blob looks at its own cancellation.
const CLAIM_CANCEL_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// Claims `digest`, or waits until the pull fetching it is done (or `cancel` fires:
    /// `Cancelled`).
    pub(crate) fn claim(&self, digest: Digest, cancel: &Cancel) -> Result<Claim<'_>> {
        let slot = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(&digest) {
                Some(s) => Arc::clone(s),
                None => {
                    let slot = Arc::new(Slot::default());
                    map.insert(digest, Arc::clone(&slot));
                    return Ok(Claim::Owner(OwnerGuard {
                        inflight: self,
                        digest,
                        slot,
                    }));
                }
            }
        };
        let mut done = slot.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            cancel.check(&format!("waiting for blob {digest}"))?;
            // The owner wakes us when done; the timeout only bounds how late a cancel of
            // this waiter is seen.
            done = slot
                .cv
                .wait_timeout(done, CLAIM_CANCEL_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(Claim::Waited)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod conf_tests {
    use std::path::Path;

    use super::*;

    fn client(conf: Option<&str>) -> RegistryClient {
        RegistryClient::new(Options {
            registries: conf
                .map(|t| Arc::new(RegistriesConf::from_toml(Path::new("test.conf"), t).unwrap())),
            registries_error: conf.is_none().then(|| "no registries.conf here".to_owned()),
            ..Options::default()
        })
        .unwrap()
    }

    #[test]
    fn a_broken_ca_file_is_a_tls_failure_not_a_silent_default() {
        let t = tempfile::tempdir().unwrap();
        let (home, root) = (t.path().join("home"), t.path().join("root"));
        let dir = home.join(".config/containers/certs.d/r.example:5000");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            dir.join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let c = RegistryClient::new(Options {
            env: Some(Env::new(&home, &root)),
            ..Options::default()
        })
        .unwrap();
        let e = c
            .client_for("r.example:5000", false, &RegistryAuth::Anonymous)
            .err()
            .expect("a broken CA file is an error");
        assert_eq!(e.kind, ErrorKind::TlsFailure, "{e:?}");
        assert!(e.message.contains("r.example:5000"), "{}", e.message);
        assert!(
            c.client_for("other.example", false, &RegistryAuth::Anonymous)
                .is_ok()
        );
    }

    fn seen(c: &[Candidate]) -> Vec<(String, String, bool, bool)> {
        c.iter()
            .map(|c| (c.name.whole(), c.reference.whole(), c.insecure, c.mirror))
            .collect()
    }

    #[test]
    fn candidates_follow_registries_conf() {
        let c = client(Some(
            r#"unqualified-search-registries = ["a.example:5000", "b.example"]
[[registry]]
location = "a.example:5000"
insecure = true
[[registry.mirror]]
location = "m.example/cache"
[[registry]]
location = "blocked.example"
blocked = true
"#,
        ));
        let got = seen(&c.candidates("app:1", TlsVerify::Default).unwrap());
        assert_eq!(
            got,
            [
                (
                    "a.example:5000/app:1".into(),
                    "m.example/cache/app:1".into(),
                    false,
                    true
                ),
                (
                    "a.example:5000/app:1".into(),
                    "a.example:5000/app:1".into(),
                    true,
                    false
                ),
                (
                    "b.example/app:1".into(),
                    "b.example/app:1".into(),
                    false,
                    false
                ),
            ]
        );
        // --tls-verify wins over the file.
        let got = seen(
            &c.candidates("a.example:5000/app:1", TlsVerify::Verify)
                .unwrap(),
        );
        assert!(got.iter().all(|g| !g.2), "{got:?}");
        let e = c
            .candidates("blocked.example/x:1", TlsVerify::Default)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");
    }

    /// A client whose stored credentials are `auth_json` (`$REGISTRY_AUTH_FILE`), and the
    /// directory holding it.
    fn client_with_auth_file(auth_json: &str) -> (tempfile::TempDir, RegistryClient) {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("auth.json");
        std::fs::write(&file, auth_json).unwrap();
        let c = RegistryClient::new(Options {
            env: Some(
                Env::new(d.path(), d.path())
                    .with_var("REGISTRY_AUTH_FILE", file.display().to_string()),
            ),
            ..Options::default()
        })
        .unwrap();
        (d, c)
    }

    #[test]
    fn stored_credentials_are_used_where_the_request_has_none() {
        let (_d, c) = client_with_auth_file(
            r#"{"auths":{"r.example":{"auth":"dXNlcjpwYXNz"},"m.example":{"auth":"bTpw"}}}"#,
        );
        let basic = |u: &str, p: &str| RegistryAuth::Basic(u.into(), p.into());
        let auth = |given: Option<&Credentials>, named: &str, host: &str| {
            let target = Target {
                host,
                insecure: false,
                repo: "app",
                access: crate::token::Access::Pull,
                mount_from: &[],
            };
            c.auth(given, named, &target, &Cancel::new()).unwrap()
        };
        // Stored ones when the request has none.
        assert_eq!(auth(None, "r.example", "r.example"), basic("user", "pass"));
        // The request's own win on the registry it named...
        let given = Credentials {
            username: "me".into(),
            password: "secret".into(),
            ..Credentials::default()
        };
        assert_eq!(
            auth(Some(&given), "r.example", "r.example"),
            basic("me", "secret")
        );
        // ...but a mirror of it gets its own stored credentials, never the request's.
        assert_eq!(
            auth(Some(&given), "r.example", "m.example"),
            basic("m", "p")
        );
        assert_eq!(
            auth(None, "x.example", "x.example"),
            RegistryAuth::Anonymous
        );
        // A registry token is sent as is.
        let given = Credentials {
            registry_token: "rt".into(),
            identity_token: "it".into(),
            ..Credentials::default()
        };
        assert_eq!(
            auth(Some(&given), "r.example", "r.example"),
            RegistryAuth::Bearer("rt".into())
        );
    }

    /// An identity token alone is chosen (from the request, or from an auth file entry
    /// with only `identitytoken`), so that the exchange gets it.
    #[test]
    fn identity_tokens_alone_are_chosen() {
        let (_d, c) =
            client_with_auth_file(r#"{"auths":{"t.example":{"identitytoken":"stored-it"}}}"#);
        let found = c
            .credentials(None, "t.example", "t.example", "app")
            .unwrap()
            .unwrap();
        assert_eq!(found.identity_token, "stored-it");
        assert!(found.username.is_empty() && found.password.is_empty());
        let given = Credentials {
            identity_token: "given-it".into(),
            ..Credentials::default()
        };
        let found = c
            .credentials(Some(&given), "t.example", "t.example", "app")
            .unwrap();
        assert_eq!(found, Some(given.clone()));
        // Without an environment too.
        let found = client(None)
            .credentials(Some(&given), "t.example", "t.example", "app")
            .unwrap();
        assert_eq!(found, Some(given));
    }

    #[test]
    fn without_registries_conf_short_names_say_why() {
        let c = client(None);
        let e = c.candidates("app:1", TlsVerify::Default).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidReference);
        assert!(
            e.message.contains("no registries.conf here"),
            "{}",
            e.message
        );
        let got = seen(&c.candidates("r.example/app:1", TlsVerify::Skip).unwrap());
        assert_eq!(
            got,
            [(
                "r.example/app:1".into(),
                "r.example/app:1".into(),
                true,
                false
            )]
        );
    }
}
