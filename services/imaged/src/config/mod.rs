//! The daemon's configuration: TOML file, then `IMAGED_*` environment variables, then
//! command-line flags (later wins, key by key), validated as a whole before anything is
//! bound. [`load`] returns every problem at once; the caller exits with 64.

mod gc;
pub(crate) mod raw;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use imaged_grpc::auth::{AuthConfig, Token};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use raw::Raw;

/// Exit code for a bad configuration or command line (`EX_USAGE`).
pub(crate) const EXIT_CONFIG: i32 = 64;

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Serving: listeners are resolved and validated.
    Serve,
    /// `imaged fsck`: only the store matters.
    Fsck,
}

/// The flags that override the file and the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen URL`, repeatable.
    pub listen: Vec<String>,
    /// `--store local|memory`.
    pub store: Option<String>,
    /// `--root DIR`.
    pub root: Option<PathBuf>,
    /// `--runroot DIR` (containers-storage).
    pub runroot: Option<PathBuf>,
    /// `--storage-driver overlay|vfs` (containers-storage).
    pub storage_driver: Option<String>,
}

/// The store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// The embedded default (`imaged_store_local`).
    Local,
    /// In memory, lost at exit.
    Memory,
    /// podman's / CRI-O's containers-storage, managed in place (`imaged_store_cstorage`).
    CStorage,
}

/// A listener address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listen {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `tcp://IP:PORT`.
    Tcp(SocketAddr),
}

/// TLS material for TCP listeners.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Tls {
    /// The tonic server TLS configuration.
    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        let cfg = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        match &self.client_ca {
            Some(ca) => cfg.client_ca_root(Certificate::from_pem(ca)),
            None => cfg,
        }
    }

    /// Whether client certificates are required and verified (mTLS).
    pub(crate) fn verifies_clients(&self) -> bool {
        self.client_ca.is_some()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Listeners (empty for fsck).
    pub listen: Vec<Listen>,
    /// Store backend.
    pub store: StoreKind,
    /// The store's data directory (local store; for containers-storage the `--root` given,
    /// empty when none was).
    pub root: PathBuf,
    /// containers-storage: what the flags and the file say; the rest comes from
    /// `storage.conf` and podman's database when the store is opened.
    pub cstorage: imaged_store_cstorage::config::Overrides,
    /// Unqualified-search registries.
    pub search_registries: Vec<String>,
    /// The default platform of manifest-list lookups and pulls (`OS/ARCH[/VARIANT]`;
    /// default: the host's).
    pub platform: imaged_core::model::Platform,
    /// Pinned image patterns.
    pub pinned_images: Vec<String>,
    /// The GC policy at start-up (`[gc]`).
    pub gc: imaged_core::gc::GcPolicy,
    /// LoadImages size limit (bytes received).
    pub max_load_bytes: u64,
    /// LoadImages unpacked size limit (bytes of the decompressed tar stream).
    pub max_load_unpacked_bytes: u64,
    /// LoadImages limit on one tar entry's header (with GNU long name/link, PAX header).
    pub max_load_header_bytes: u64,
    /// LoadImages limit on one metadata entry or JSON document.
    pub max_load_metadata_bytes: u64,
    /// LoadImages limit on the metadata one load holds or parses in total.
    pub max_load_metadata_total_bytes: u64,
    /// Local store: loads are refused (`NO_SPACE`) below this much available disk space
    /// (0: never refused before the disk is really full).
    pub min_free_bytes: u64,
    /// Largest request message.
    pub max_recv_message_bytes: usize,
    /// Largest response message.
    pub max_send_message_bytes: usize,
    /// Drain time at shutdown.
    pub grace_period: Duration,
    /// Connection limits and timeouts.
    pub limits: crate::conn::Limits,
    /// A LoadImages stream that sends nothing this long is abandoned.
    pub load_idle_timeout: Duration,
    /// Authorization.
    pub auth: AuthConfig,
    /// TLS for TCP listeners.
    pub tls: Option<Tls>,
    /// Loopback HTTP address for Prometheus metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// The tracing filter.
    pub log: String,
}

/// Loads and validates the configuration. `get` reads environment variables; `is_root`
/// picks the system or the per-user defaults. Every problem is returned.
pub(crate) fn load(
    flags: &Flags,
    get: &dyn Fn(&str) -> Option<String>,
    is_root: bool,
    purpose: Purpose,
) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let mut raw = Raw::default();
    let file = flags
        .config
        .clone()
        .or_else(|| get("IMAGED_CONFIG").map(PathBuf::from));
    if let Some(path) = &file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let (r, e) = raw::from_toml(&text, &format!("config file {}", path.display()));
                raw = r;
                errors.extend(e);
            }
            Err(e) => errors.push(format!("config file {}: cannot read: {e}", path.display())),
        }
    }
    let (env, e) = raw::from_env(get);
    raw.overlay(env);
    errors.extend(e);
    raw.overlay(Raw {
        listen: (!flags.listen.is_empty()).then(|| flags.listen.clone()),
        store: flags.store.clone(),
        root: flags.root.as_ref().map(|p| p.display().to_string()),
        runroot: flags.runroot.as_ref().map(|p| p.display().to_string()),
        storage_driver: flags.storage_driver.clone(),
        ..Raw::default()
    });
    let settings = validate(raw, get, is_root, purpose, &mut errors);
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn validate(
    raw: Raw,
    get: &dyn Fn(&str) -> Option<String>,
    is_root: bool,
    purpose: Purpose,
    errors: &mut Vec<String>,
) -> Settings {
    let limits = limits(&raw, errors);
    let store = match raw.store.as_deref().unwrap_or("local") {
        "local" => StoreKind::Local,
        "memory" => StoreKind::Memory,
        "containers-storage" => StoreKind::CStorage,
        other => {
            errors.push(format!(
                "store: unknown store {other:?} (expected local, memory or containers-storage)"
            ));
            StoreKind::Memory
        }
    };
    let explicit_root = match raw.root.clone() {
        Some(r) if r.is_empty() => {
            errors.push("root: must not be empty".to_owned());
            None
        }
        Some(r) => Some(std::path::absolute(&r).unwrap_or_else(|_| PathBuf::from(r))),
        None => None,
    };
    let root = match explicit_root.clone() {
        Some(r) => r,
        None if store == StoreKind::CStorage => PathBuf::new(),
        None => match default_root(get, is_root) {
            Some(r) => r,
            None if store == StoreKind::Local => {
                errors.push("root: HOME is not set: pass --root DIR".to_owned());
                PathBuf::new()
            }
            None => PathBuf::new(),
        },
    };
    let cstorage = cstorage(&raw, store, explicit_root, errors);
    let tls = tls(&raw.tls, errors);
    let insecure_tcp = raw.insecure_tcp.unwrap_or(false);
    let listen = if purpose == Purpose::Serve {
        listeners(
            raw.listen,
            get,
            is_root,
            tls.is_some(),
            insecure_tcp,
            errors,
        )
    } else {
        Vec::new()
    };
    let search_registries = raw.search_registries.unwrap_or_default();
    for (i, r) in search_registries.iter().enumerate() {
        if r.is_empty() || r.contains('/') || r.contains(char::is_whitespace) {
            errors.push(format!(
                "search_registries[{i}]: {r:?} is not a registry host name"
            ));
        }
    }
    let platform = match raw.platform.as_deref() {
        None | Some("") => imaged_core::model::Platform::host(),
        Some(text) => parse_platform(text).unwrap_or_else(|| {
            errors.push(format!(
                "platform: {text:?} is not OS/ARCH or OS/ARCH/VARIANT (e.g. linux/arm64/v8)"
            ));
            imaged_core::model::Platform::host()
        }),
    };
    let pinned_images = raw.pinned_images.unwrap_or_default();
    for (i, p) in pinned_images.iter().enumerate() {
        if p.trim().is_empty() {
            errors.push(format!("pinned_images[{i}]: must not be empty"));
        }
    }
    let metrics_listen = raw
        .metrics_listen
        .and_then(|m| match m.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            Ok(a) => {
                errors.push(format!("metrics_listen: {a} is not a loopback address"));
                None
            }
            Err(_) => {
                errors.push(format!("metrics_listen: {m:?} is not an IP:PORT address"));
                None
            }
        });
    let log = get("RUST_LOG")
        .or(raw.log)
        .unwrap_or_else(|| "info".to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
        errors.push(format!("log: invalid filter {log:?}: {e}"));
    }
    let max_load_bytes = positive("max_load_bytes", raw.max_load_bytes, 16 << 30, errors);
    let gc = gc::policy(raw.gc.as_ref(), errors);
    Settings {
        gc,
        listen,
        store,
        root,
        cstorage,
        search_registries,
        platform,
        pinned_images,
        max_load_bytes,
        max_load_unpacked_bytes: positive(
            "max_load_unpacked_bytes",
            raw.max_load_unpacked_bytes,
            max_load_bytes.saturating_mul(4),
            errors,
        ),
        max_load_header_bytes: header_limit(raw.max_load_header_bytes, errors),
        max_load_metadata_bytes: positive(
            "max_load_metadata_bytes",
            raw.max_load_metadata_bytes,
            4 << 20,
            errors,
        ),
        max_load_metadata_total_bytes: positive(
            "max_load_metadata_total_bytes",
            raw.max_load_metadata_total_bytes,
            64 << 20,
            errors,
        ),
        min_free_bytes: match raw.min_free_bytes.map(u64::try_from) {
            None => imaged_store_local::Options::DEFAULT_MIN_FREE_BYTES,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                errors.push("min_free_bytes: must be a number of bytes (0 or more)".to_owned());
                imaged_store_local::Options::DEFAULT_MIN_FREE_BYTES
            }
        },
        max_recv_message_bytes: size(
            "max_recv_message_bytes",
            raw.max_recv_message_bytes,
            16 << 20,
            errors,
        ),
        max_send_message_bytes: size(
            "max_send_message_bytes",
            raw.max_send_message_bytes,
            64 << 20,
            errors,
        ),
        grace_period: grace(raw.grace_period, errors),
        load_idle_timeout: seconds(
            "load_idle_timeout",
            raw.load_idle_timeout,
            imaged_grpc::DEFAULT_LOAD_IDLE_TIMEOUT,
            errors,
        ),
        limits,
        auth: auth(&raw.auth, errors),
        tls,
        metrics_listen,
        log,
    }
}

/// `runroot` and `storage_driver`: containers-storage only.
fn cstorage(
    raw: &Raw,
    store: StoreKind,
    root: Option<PathBuf>,
    errors: &mut Vec<String>,
) -> imaged_store_cstorage::config::Overrides {
    use imaged_store_cstorage::config::{Driver, Overrides};
    if store != StoreKind::CStorage {
        for (key, given) in [
            ("runroot", raw.runroot.is_some()),
            ("storage_driver", raw.storage_driver.is_some()),
        ] {
            if given {
                errors.push(format!("{key}: only for store containers-storage"));
            }
        }
        return Overrides::default();
    }
    let runroot = match raw.runroot.as_deref() {
        Some("") => {
            errors.push("runroot: must not be empty".to_owned());
            None
        }
        Some(r) => Some(std::path::absolute(r).unwrap_or_else(|_| PathBuf::from(r))),
        None => None,
    };
    let driver = match raw.storage_driver.as_deref().map(Driver::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            errors.push(format!(
                "storage_driver: {:?} is not supported (expected overlay or vfs)",
                raw.storage_driver.as_deref().unwrap_or_default()
            ));
            None
        }
    };
    Overrides {
        root,
        runroot,
        driver,
    }
}

fn positive(key: &str, v: Option<i64>, default: u64, errors: &mut Vec<String>) -> u64 {
    match v.map(u64::try_from) {
        None => default,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            errors.push(format!("{key}: must be a positive number of bytes"));
            default
        }
    }
}

/// `max_load_header_bytes`: at least two tar blocks (a header and its padding).
fn header_limit(v: Option<i64>, errors: &mut Vec<String>) -> u64 {
    let n = positive("max_load_header_bytes", v, 1 << 20, errors);
    if n < 1024 {
        errors.push("max_load_header_bytes: must be at least 1024".to_owned());
        return 1 << 20;
    }
    n
}

fn size(key: &str, v: Option<i64>, default: usize, errors: &mut Vec<String>) -> usize {
    let n = positive(key, v, default as u64, errors);
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn grace(v: Option<f64>, errors: &mut Vec<String>) -> Duration {
    match v {
        None => Duration::from_secs(10),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
        Some(s) => {
            errors.push(format!(
                "grace_period: {s} is not a number of seconds in (0, 3600]"
            ));
            Duration::from_secs(10)
        }
    }
}

fn count(key: &str, v: Option<i64>, default: usize, errors: &mut Vec<String>) -> usize {
    match v.map(usize::try_from) {
        None => default,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            errors.push(format!("{key}: must be a positive number of connections"));
            default
        }
    }
}

fn seconds(key: &str, v: Option<f64>, default: Duration, errors: &mut Vec<String>) -> Duration {
    match v {
        None => default,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => Duration::from_secs_f64(s),
        Some(s) => {
            errors.push(format!(
                "{key}: {s} is not a number of seconds in (0, 86400]"
            ));
            default
        }
    }
}

fn limits(raw: &Raw, errors: &mut Vec<String>) -> crate::conn::Limits {
    let d = crate::conn::Limits::default();
    let l = crate::conn::Limits {
        max_connections: count(
            "max_connections",
            raw.max_connections,
            d.max_connections,
            errors,
        ),
        max_connections_per_peer: count(
            "max_connections_per_peer",
            raw.max_connections_per_peer,
            d.max_connections_per_peer,
            errors,
        ),
        handshake_timeout: seconds(
            "handshake_timeout",
            raw.handshake_timeout,
            d.handshake_timeout,
            errors,
        ),
        idle_timeout: seconds("idle_timeout", raw.idle_timeout, d.idle_timeout, errors),
    };
    if l.max_connections_per_peer > l.max_connections {
        errors.push(format!(
            "max_connections_per_peer: {} is more than max_connections ({})",
            l.max_connections_per_peer, l.max_connections
        ));
    }
    l
}

/// The default store directory: `/var/lib/imaged` for root, else
/// `$XDG_DATA_HOME/imaged` or `~/.local/share/imaged`.
pub(crate) fn default_root(get: &dyn Fn(&str) -> Option<String>, is_root: bool) -> Option<PathBuf> {
    if is_root {
        return Some(PathBuf::from("/var/lib/imaged"));
    }
    if let Some(d) = get("XDG_DATA_HOME").filter(|d| d.starts_with('/')) {
        return Some(Path::new(&d).join("imaged"));
    }
    get("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".local/share/imaged"))
}

fn listeners(
    given: Option<Vec<String>>,
    get: &dyn Fn(&str) -> Option<String>,
    is_root: bool,
    tls: bool,
    insecure_tcp: bool,
    errors: &mut Vec<String>,
) -> Vec<Listen> {
    let urls = match given.filter(|l| !l.is_empty()) {
        Some(l) => l,
        None if is_root => vec!["unix:///run/imaged/imaged.sock".to_owned()],
        None => match get("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
            Some(d) => vec![format!("unix://{d}/imaged/imaged.sock")],
            None => {
                errors.push(
                    "listen: XDG_RUNTIME_DIR is not set: pass --listen unix:///path/imaged.sock"
                        .to_owned(),
                );
                return Vec::new();
            }
        },
    };
    let mut out = Vec::new();
    for url in urls {
        match parse_listen(&url) {
            Ok(Listen::Tcp(a)) if !(tls || insecure_tcp && a.ip().is_loopback()) => {
                errors.push(format!(
                    "listen: {url}: TCP needs [tls] (cert, key), or insecure_tcp = true on a \
                     loopback address"
                ))
            }
            Ok(l) if out.contains(&l) => errors.push(format!("listen: {url} is given twice")),
            Ok(l) => out.push(l),
            Err(e) => errors.push(format!("listen: {url}: {e}")),
        }
    }
    out
}

/// Parses `unix:///abs/path` or `tcp://IP:PORT` (`localhost` means 127.0.0.1).
pub(crate) fn parse_listen(url: &str) -> Result<Listen, String> {
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
            return Err("expected unix:///absolute/path/to/socket".to_owned());
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = url.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        if let Ok(a) = addr.parse::<SocketAddr>() {
            return Ok(Listen::Tcp(a));
        }
        if let Some(port) = addr.strip_prefix("localhost:").and_then(|p| p.parse().ok()) {
            return Ok(Listen::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        return Err("expected tcp://IP:PORT".to_owned());
    }
    Err("expected unix:///path or tcp://IP:PORT".to_owned())
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

fn read_file(what: &str, path: &str, errors: &mut Vec<String>) -> Option<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| errors.push(format!("{what}: cannot read {path}: {e}")))
        .ok()
}

/// Reads a secret: refused (as ssh refuses such a private key) when others may read or
/// write it; owner and group access are the operator's choice.
fn read_private_file(what: &str, path: &str, errors: &mut Vec<String>) -> Option<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = std::fs::File::open(path)
        .map_err(|e| errors.push(format!("{what}: cannot read {path}: {e}")))
        .ok()?;
    // The mode of the file opened, not of whatever the path names a moment later.
    let mode = file
        .metadata()
        .map_err(|e| errors.push(format!("{what}: cannot stat {path}: {e}")))
        .ok()?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        errors.push(format!(
            "{what}: {path} is open to other users (mode {:04o}): it holds secrets; \
             `chmod o-rwx {path}` (owner and group access are fine)",
            mode & 0o7777
        ));
        return None;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| errors.push(format!("{what}: cannot read {path}: {e}")))
        .ok()?;
    Some(bytes)
}

fn tls(raw: &raw::RawTls, errors: &mut Vec<String>) -> Option<Tls> {
    let (cert, key) = match (&raw.cert, &raw.key) {
        (None, None) => {
            if raw.client_ca.is_some() {
                errors.push("tls.client_ca: needs tls.cert and tls.key".to_owned());
            }
            return None;
        }
        (Some(c), Some(k)) => (
            read_file("tls.cert", c, errors),
            read_file("tls.key", k, errors),
        ),
        _ => {
            errors.push("tls: cert and key must be given together".to_owned());
            return None;
        }
    };
    let client_ca = match &raw.client_ca {
        Some(p) => Some(read_file("tls.client_ca", p, errors)?),
        None => None,
    };
    let tls = Tls {
        cert: cert?,
        key: key?,
        client_ca,
    };
    if let Err(e) = tonic::transport::Server::builder().tls_config(tls.server_config()) {
        errors.push(format!("tls: {e}: {}", source_chain(&e)));
        return None;
    }
    Some(tls)
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

fn ids(key: &str, v: &Option<Vec<i64>>, errors: &mut Vec<String>) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, n) in v.iter().flatten().enumerate() {
        match u32::try_from(*n) {
            Ok(id) => out.push(id),
            Err(_) => errors.push(format!("auth.{key}[{i}]: {n} is not a uid/gid")),
        }
    }
    out
}

/// Reads a token file: one token per line (at least 16 characters, no spaces); blank
/// lines and `#` comments are skipped. Each token is named `<file name>:<line>` in logs.
fn tokens(key: &str, path: &Option<String>, errors: &mut Vec<String>) -> Vec<Token> {
    let Some(path) = path else { return Vec::new() };
    let Some(bytes) = read_private_file(&format!("auth.{key}"), path, errors) else {
        return Vec::new();
    };
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for (i, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.len() < 16 || t.contains(char::is_whitespace) {
            errors.push(format!(
                "auth.{key}: {path} line {}: a token is at least 16 characters without spaces",
                i + 1
            ));
            continue;
        }
        out.push(Token::new(format!("{name}:{}", i + 1), t));
    }
    if out.is_empty() && !errors.iter().any(|e| e.contains(path.as_str())) {
        errors.push(format!("auth.{key}: {path} holds no token"));
    }
    out
}

fn auth(raw: &raw::RawAuth, errors: &mut Vec<String>) -> AuthConfig {
    AuthConfig {
        admin_uids: ids("admin_uids", &raw.admin_uids, errors),
        admin_gids: ids("admin_gids", &raw.admin_gids, errors),
        reader_uids: ids("reader_uids", &raw.reader_uids, errors),
        reader_gids: ids("reader_gids", &raw.reader_gids, errors),
        admin_tokens: tokens("admin_token_file", &raw.admin_token_file, errors),
        reader_tokens: tokens("reader_token_file", &raw.reader_token_file, errors),
    }
}

#[cfg(test)]
mod tests;

/// `OS/ARCH[/VARIANT]`, each part non-empty lowercase letters, digits, `_` or `-`.
fn parse_platform(text: &str) -> Option<imaged_core::model::Platform> {
    let parts: Vec<&str> = text.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
        return None;
    }
    Some(imaged_core::model::Platform {
        os: parts[0].to_owned(),
        architecture: parts[1].to_owned(),
        variant: parts.get(2).map_or_else(String::new, |v| (*v).to_owned()),
    })
}
