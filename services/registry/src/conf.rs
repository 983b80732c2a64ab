//! `registries.conf` (v2, and v1 converted) as podman 4.3 (containers/image 5.23) reads
//! it: which files, how drop-ins merge, short-name resolution (aliases, then every
//! unqualified-search registry), `[[registry]]` prefixes (longest match, `*.example.com`
//! wildcards), mirrors with `pull-from-mirror`, `insecure` and `blocked`.
//!
//! Everything reads through an [`Env`] (variables, home directory, file-system root), so
//! tests never touch the real user's files.
//!
//! Files, in podman's order:
//! - the main file: `$CONTAINERS_REGISTRIES_CONF` (else `$REGISTRIES_CONFIG_PATH`), else
//!   `$HOME/.config/containers/registries.conf` if it exists, else
//!   `/etc/containers/registries.conf` (a missing default file is an empty configuration;
//!   a missing explicit one is an error);
//! - drop-ins `*.conf`, in name order: only `$HOME/.config/containers/registries.conf.d`
//!   when the per-user main file is used, otherwise `/etc/containers/registries.conf.d`
//!   then `$HOME/.config/containers/registries.conf.d` (also with
//!   `$CONTAINERS_REGISTRIES_CONF`, as containers/image does). Drop-ins must be v2.
//!   A drop-in replaces `[[registry]]` entries with the same prefix, the search list,
//!   `short-name-mode` and `credential-helpers` when it sets them, and individual aliases;
//! - the short-name alias cache `short-name-aliases.conf` (`/var/cache/containers/` for
//!   root, `$XDG_CACHE_HOME/containers/` or `$HOME/.cache/containers/` rootless), whose
//!   aliases win over the configuration's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use imaged_core::reference::{DOCKER_DOMAIN, Reference};
use serde::Deserialize;

/// Where configuration is read from: environment variables, the home directory, the root
/// of the file system that absolute system paths (`/etc/...`, `/run/...`, `/var/...`) are
/// resolved under, and whether the process is rootless. Credential helpers are searched
/// in this `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// Environment variables.
    pub vars: HashMap<String, String>,
    /// The home directory (`$HOME`).
    pub home: PathBuf,
    /// The file-system root system paths are resolved under (`/` in production).
    pub root: PathBuf,
    /// Whether the effective user is not root.
    pub rootless: bool,
    /// The effective user ID (for `/run/containers/<uid>/auth.json`).
    pub uid: u32,
}

impl Env {
    /// The environment of this process.
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let home = vars
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let uid = effective_uid().unwrap_or(0);
        Self {
            vars,
            home,
            root: PathBuf::from("/"),
            rootless: uid != 0,
            uid,
        }
    }

    /// An environment with no variables, the given home and file-system root, as root
    /// (uid 0). For tests and embedding.
    pub fn new(home: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            vars: HashMap::new(),
            home: home.into(),
            root: root.into(),
            rootless: false,
            uid: 0,
        }
    }

    /// Sets a variable (builder style).
    #[must_use]
    pub fn with_var(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_owned(), value.into());
        self
    }

    /// Marks the environment rootless with the given uid (builder style).
    #[must_use]
    pub fn rootless_as(mut self, uid: u32) -> Self {
        self.rootless = uid != 0;
        self.uid = uid;
        self
    }

    /// A variable, `None` when unset or empty.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An absolute system path resolved under [`Env::root`].
    pub fn sys_path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// A path under the home directory.
    pub fn home_path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }
}

/// The effective uid from `/proc/self/status` (no `unsafe`, no extra dependency).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why the configuration could not be read or a reference not resolved. Messages follow
/// containers/image's where it has one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// A file could not be read.
    #[error("loading registries configuration {path:?}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A file is not valid TOML, or not a valid configuration.
    #[error("loading registries configuration {path:?}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The reference does not parse.
    #[error("parsing reference {reference:?}: {reason}")]
    Reference {
        /// The input.
        reference: String,
        /// The parser's reason.
        reason: String,
    },
    /// Short-name resolution failed (no alias and no search registries; enforcing mode
    /// with several candidates).
    #[error("{0}")]
    ShortName(String),
    /// Every registry the reference could be pulled from is blocked.
    #[error("registry {prefix} is blocked in {sources}")]
    Blocked {
        /// The `[[registry]]` prefix that blocks it.
        prefix: String,
        /// The reference.
        reference: String,
        /// The configuration files and directories read.
        sources: String,
    },
}

/// `short-name-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNameMode {
    /// Use every unqualified-search registry, never prompt.
    Disabled,
    /// Prompt on a terminal, else use every search registry (the default). imaged has no
    /// terminal: it behaves as podman without one.
    #[default]
    Permissive,
    /// Prompt, and fail without a terminal when there are several candidates.
    Enforcing,
}

/// `pull-from-mirror` of a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullFromMirror {
    /// Tag and digest pulls (the default).
    #[default]
    All,
    /// Only pulls by digest.
    DigestOnly,
    /// Only pulls by tag.
    TagOnly,
}

/// One `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port][/namespace]`.
    pub location: String,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// Which pulls use it.
    pub pull_from_mirror: PullFromMirror,
}

/// One `[[registry]]`, after post-processing (prefix defaults to location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// What it matches: `host[:port][/namespace...]` or `*.example.com`.
    pub prefix: String,
    /// Where images under the prefix are (empty only for wildcard prefixes).
    pub location: String,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// Pulls from it are refused.
    pub blocked: bool,
    /// Mirrors only for pulls by digest.
    pub mirror_by_digest_only: bool,
    /// Mirrors, tried in order before the location.
    pub mirrors: Vec<Mirror>,
}

/// A place to try: the reference rewritten for one mirror or the primary location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The fully-qualified reference at this endpoint (`host/path:tag` or `@digest`).
    pub reference: String,
    /// Registry `host[:port]` as written in references (`docker.io`, not its API host).
    pub host: String,
    /// Repository path at this endpoint (`library/busybox`).
    pub repository: String,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// A mirror (not the primary location).
    pub mirror: bool,
}

impl Endpoint {
    /// The host to send API requests to: Docker Hub's `docker.io` is served by
    /// `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_DOMAIN {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }
}

/// One name a pull may give the image, with the endpoints to try for it in order
/// (mirrors, then the primary location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The fully-qualified, normalised reference that names the pulled image
    /// (`docker.io/library/busybox:latest`, or `repo@sha256:...`).
    pub reference: String,
    /// Where to fetch it, in order. Never empty.
    pub endpoints: Vec<Endpoint>,
}

/// How the candidates were chosen (for podman-like messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rationale {
    /// The input was fully qualified.
    Qualified,
    /// A short-name alias, from this file.
    Alias(PathBuf),
    /// The unqualified-search registries, from this file.
    SearchRegistries(PathBuf),
}

/// The result of [`RegistriesConf::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Candidates in order; blocked ones are left out.
    pub candidates: Vec<Candidate>,
    /// Why these.
    pub rationale: Rationale,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alias {
    /// Normalised repository (`docker.io/library/fedora`); `None` resets an alias.
    value: Option<String>,
    origin: PathBuf,
}

/// The merged configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistriesConf {
    registries: Vec<Registry>,
    search: Vec<String>,
    search_origin: Option<PathBuf>,
    mode: ShortNameMode,
    credential_helpers: Vec<String>,
    aliases: BTreeMap<String, Alias>,
    cache_aliases: BTreeMap<String, Alias>,
    sources: String,
}

// ---- file format ----

#[derive(Debug, Deserialize, Default)]
struct RawFile {
    registry: Option<Vec<RawRegistry>>,
    #[serde(rename = "unqualified-search-registries")]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(rename = "credential-helpers")]
    credential_helpers: Option<Vec<String>>,
    #[serde(rename = "short-name-mode")]
    short_name_mode: Option<String>,
    aliases: Option<BTreeMap<String, String>>,
    registries: Option<RawV1>,
}

#[derive(Debug, Deserialize, Default)]
struct RawRegistry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default, rename = "mirror-by-digest-only")]
    mirror_by_digest_only: bool,
    #[serde(default, rename = "pull-from-mirror")]
    pull_from_mirror: String,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Debug, Deserialize, Default)]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default, rename = "pull-from-mirror")]
    pull_from_mirror: String,
}

#[derive(Debug, Deserialize, Default)]
struct RawV1 {
    search: Option<RawV1List>,
    insecure: Option<RawV1List>,
    block: Option<RawV1List>,
}

#[derive(Debug, Deserialize, Default)]
struct RawV1List {
    registries: Option<Vec<String>>,
}

/// One parsed file (`None` fields were not set).
#[derive(Debug, Default)]
struct Partial {
    registries: Vec<Registry>,
    search: Option<Vec<String>>,
    credential_helpers: Option<Vec<String>>,
    mode: Option<ShortNameMode>,
    aliases: BTreeMap<String, Alias>,
}

fn invalid(path: &Path, message: impl Into<String>) -> ConfError {
    ConfError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Trims trailing `/`, refuses URI schemes.
fn parse_location(path: &Path, input: &str) -> Result<String, ConfError> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(invalid(
            path,
            format!("invalid location '{input}': URI schemes are not supported"),
        ));
    }
    Ok(trimmed.to_owned())
}

fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|x| !x.is_empty())
}

fn read_file(path: &Path, force_v2: bool) -> Result<Partial, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    parse_file(path, &text, force_v2)
}

fn parse_file(path: &Path, text: &str, force_v2: bool) -> Result<Partial, ConfError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| invalid(path, e.message()))?;
    let v1 = raw.registries.as_ref();
    let v1_nonempty = v1.is_some_and(|v| {
        [&v.search, &v.insecure, &v.block]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| non_empty(&l.registries)))
    });
    let v2_nonempty = non_empty(&raw.registry)
        || non_empty(&raw.unqualified_search_registries)
        || non_empty(&raw.credential_helpers)
        || raw.short_name_mode.is_some()
        || raw.aliases.as_ref().is_some_and(|a| !a.is_empty());
    let mut raw = raw;
    if v1_nonempty {
        if force_v2 {
            return Err(invalid(path, "registry must be in v2 format but is in v1"));
        }
        if v2_nonempty {
            return Err(invalid(path, "mixing sysregistry v1/v2 is not supported"));
        }
        raw = convert_v1(path, raw.registries.unwrap_or_default())?;
    }

    let mut out = Partial {
        search: raw.unqualified_search_registries.clone(),
        credential_helpers: raw.credential_helpers.clone(),
        ..Partial::default()
    };
    if let Some(m) = raw.short_name_mode.as_deref().filter(|m| !m.is_empty()) {
        out.mode = Some(match m {
            "disabled" => ShortNameMode::Disabled,
            "permissive" => ShortNameMode::Permissive,
            "enforcing" => ShortNameMode::Enforcing,
            other => return Err(invalid(path, format!("invalid short-name mode: {other:?}"))),
        });
    }
    out.registries = post_process(path, raw.registry.unwrap_or_default())?;
    if let Some(search) = &mut out.search {
        for reg in search.iter_mut() {
            let r = parse_location(path, reg)?;
            let valid =
                !r.contains('/') && !r.is_empty() && Reference::parse(&format!("{r}/x")).is_ok();
            if !valid {
                return Err(invalid(
                    path,
                    format!("Invalid unqualified-search-registries entry {r:?}"),
                ));
            }
            *reg = r;
        }
    }
    out.aliases = parse_aliases(path, raw.aliases.unwrap_or_default())?;
    Ok(out)
}

fn convert_v1(path: &Path, v1: RawV1) -> Result<RawFile, ConfError> {
    let mut order: Vec<String> = Vec::new();
    let mut regs: HashMap<String, RawRegistry> = HashMap::new();
    let lists = |l: Option<RawV1List>| l.and_then(|l| l.registries).unwrap_or_default();
    let mut entry = |loc: &str| -> Result<String, ConfError> {
        let loc = parse_location(path, loc)?;
        if !regs.contains_key(&loc) {
            order.push(loc.clone());
            regs.insert(
                loc.clone(),
                RawRegistry {
                    prefix: loc.clone(),
                    location: loc.clone(),
                    ..RawRegistry::default()
                },
            );
        }
        Ok(loc)
    };
    let mut blocked = Vec::new();
    for b in lists(v1.block) {
        blocked.push(entry(&b)?);
    }
    let mut insecure = Vec::new();
    for i in lists(v1.insecure) {
        insecure.push(entry(&i)?);
    }
    for b in blocked {
        if let Some(r) = regs.get_mut(&b) {
            r.blocked = true;
        }
    }
    for i in insecure {
        if let Some(r) = regs.get_mut(&i) {
            r.insecure = true;
        }
    }
    let registry = order.iter().filter_map(|l| regs.remove(l)).collect();
    Ok(RawFile {
        registry: Some(registry),
        unqualified_search_registries: v1.search.and_then(|s| s.registries),
        ..RawFile::default()
    })
}

fn pull_from_mirror(path: &Path, loc: &str, v: &str) -> Result<PullFromMirror, ConfError> {
    match v {
        "" | "all" => Ok(PullFromMirror::All),
        "digest-only" => Ok(PullFromMirror::DigestOnly),
        "tag-only" => Ok(PullFromMirror::TagOnly),
        other => Err(invalid(
            path,
            format!("unsupported pull-from-mirror value {other:?} for mirror {loc:?}"),
        )),
    }
}

/// containers/image's `postProcessRegistries` plus the wildcard check: defaults, sanity
/// checks, conflicting settings, first-wins de-duplication by prefix, sorted by prefix.
fn post_process(path: &Path, raw: Vec<RawRegistry>) -> Result<Vec<Registry>, ConfError> {
    let mut regs = Vec::with_capacity(raw.len());
    for r in raw {
        let location = parse_location(path, &r.location)?;
        let prefix = if r.prefix.is_empty() {
            if location.is_empty() {
                return Err(invalid(
                    path,
                    "invalid condition: both location and prefix are unset",
                ));
            }
            location.clone()
        } else {
            let p = parse_location(path, &r.prefix)?;
            if !p.starts_with("*.") && location.is_empty() {
                return Err(invalid(
                    path,
                    "invalid condition: location is unset and prefix is not in the format: *.example.com",
                ));
            }
            p
        };
        if !r.pull_from_mirror.is_empty() {
            return Err(invalid(
                path,
                format!("pull-from-mirror must not be set for a non-mirror registry {prefix:?}"),
            ));
        }
        let mut mirrors = Vec::with_capacity(r.mirror.len());
        for m in r.mirror {
            let loc = parse_location(path, &m.location)?;
            if loc.is_empty() {
                return Err(invalid(path, "invalid condition: mirror location is unset"));
            }
            if r.mirror_by_digest_only && !m.pull_from_mirror.is_empty() {
                return Err(invalid(
                    path,
                    format!(
                        "cannot set mirror usage mirror-by-digest-only for the registry ({prefix:?}) and pull-from-mirror for per-mirror ({loc:?}) at the same time"
                    ),
                ));
            }
            let pfm = pull_from_mirror(path, &loc, &m.pull_from_mirror)?;
            mirrors.push(Mirror {
                location: loc,
                insecure: m.insecure,
                pull_from_mirror: pfm,
            });
        }
        if prefix.starts_with("*.") && prefix.contains(['/', '@', ':']) {
            return Err(invalid(
                path,
                format!(
                    "Wildcarded prefix should be in the format: *.example.com. Current prefix {prefix:?} is incorrectly formatted"
                ),
            ));
        }
        regs.push(Registry {
            prefix,
            location,
            insecure: r.insecure,
            blocked: r.blocked,
            mirror_by_digest_only: r.mirror_by_digest_only,
            mirrors,
        });
    }
    // The same location (or wildcard prefix) may appear several times, but not with
    // different insecure/blocked settings.
    let key = |r: &Registry| {
        if r.location.is_empty() {
            r.prefix.clone()
        } else {
            r.location.clone()
        }
    };
    for (i, a) in regs.iter().enumerate() {
        for b in regs.iter().skip(i + 1).filter(|b| key(b) == key(a)) {
            if a.insecure != b.insecure {
                return Err(invalid(
                    path,
                    format!(
                        "registry '{}' is defined multiple times with conflicting 'insecure' setting",
                        a.location
                    ),
                ));
            }
            if a.blocked != b.blocked {
                return Err(invalid(
                    path,
                    format!(
                        "registry '{}' is defined multiple times with conflicting 'blocked' setting",
                        a.location
                    ),
                ));
            }
        }
    }
    let mut unique: BTreeMap<String, Registry> = BTreeMap::new();
    for r in regs {
        unique.entry(r.prefix.clone()).or_insert(r);
    }
    Ok(unique.into_values().collect())
}

/// Validates `[aliases]`: left sides are short names without tag/digest, right sides are
/// fully-qualified repositories (normalised; `""` resets an alias).
fn parse_aliases(
    path: &Path,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, Alias>, ConfError> {
    let mut out = BTreeMap::new();
    let mut errs = Vec::new();
    for (name, value) in raw {
        if let Err(e) = validate_short_name(&name) {
            errs.push(e);
        }
        if value.is_empty() {
            out.insert(
                name,
                Alias {
                    value: None,
                    origin: path.to_owned(),
                },
            );
            continue;
        }
        match parse_alias_value(&value) {
            Ok(v) => {
                out.insert(
                    name,
                    Alias {
                        value: Some(v),
                        origin: path.to_owned(),
                    },
                );
            }
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(invalid(
            path,
            format!("validating short-name aliases: {}", errs.join("; ")),
        ))
    }
}

fn validate_short_name(name: &str) -> Result<(), String> {
    let r =
        Reference::parse(name).map_err(|e| format!("cannot parse short name: {name:?}: {e}"))?;
    if r.digest.is_some() {
        return Err(format!(
            "invalid short name {name:?}: must not contain digest"
        ));
    }
    if r.tag.is_some() {
        return Err(format!("invalid short name {name:?}: must not contain tag"));
    }
    if r.is_qualified() {
        return Err(format!(
            "invalid short name {name:?}: must not contain registry"
        ));
    }
    Ok(())
}

fn parse_alias_value(alias: &str) -> Result<String, String> {
    let r = Reference::parse(alias).map_err(|e| format!("parsing alias {alias:?}: {e}"))?;
    if r.digest.is_some() {
        return Err(format!("invalid alias {alias:?}: must not contain digest"));
    }
    if r.tag.is_some() {
        return Err(format!("invalid alias {alias:?}: must not contain tag"));
    }
    if !r.is_qualified() {
        return Err(format!(
            "invalid alias {alias:?}: must contain registry and repository"
        ));
    }
    Ok(r.docker_normalized().repository())
}

/// Lists `*.conf` files (not directories) of `dir` in name order; a missing directory is
/// empty.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfError::Io {
                path: dir.to_owned(),
                message: format!("reading registries.conf.d: {e}"),
            });
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| ConfError::Io {
            path: dir.to_owned(),
            message: format!("reading registries.conf.d: {e}"),
        })?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name();
        if !is_dir && name.to_string_lossy().ends_with(".conf") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The files podman would read: `(main file, explicit?, drop-in directories)`.
fn config_paths(env: &Env) -> (PathBuf, bool, Vec<PathBuf>) {
    let user_file = env.home_path(".config/containers/registries.conf");
    let user_dir = env.home_path(".config/containers/registries.conf.d");
    let sys_dir = env.sys_path("/etc/containers/registries.conf.d");
    if let Some(p) = env
        .var("CONTAINERS_REGISTRIES_CONF")
        .or_else(|| env.var("REGISTRIES_CONFIG_PATH"))
    {
        return (PathBuf::from(p), true, vec![sys_dir, user_dir]);
    }
    if user_file.exists() {
        return (user_file, false, vec![user_dir]);
    }
    (
        env.sys_path("/etc/containers/registries.conf"),
        false,
        vec![sys_dir, user_dir],
    )
}

fn alias_cache_path(env: &Env) -> PathBuf {
    if env.rootless {
        let cache = env
            .var("XDG_CACHE_HOME")
            .map_or_else(|| env.home_path(".cache"), PathBuf::from);
        cache.join("containers/short-name-aliases.conf")
    } else {
        env.sys_path("/var/cache/containers/short-name-aliases.conf")
    }
}

impl RegistriesConf {
    /// Reads the configuration podman would read in `env`.
    pub fn load(env: &Env) -> Result<Self, ConfError> {
        let (main, explicit, dirs) = config_paths(env);
        let mut sources = vec![main.display().to_string()];
        sources.extend(dirs.iter().map(|d| d.display().to_string()));

        let mut conf = match read_file(&main, false) {
            Ok(p) => Self::from_partial(&main, p),
            Err(ConfError::Io { .. }) if !explicit && !main.exists() => Self::default(),
            Err(e) => return Err(e),
        };
        for dir in &dirs {
            for file in drop_ins(dir)? {
                let p = read_file(&file, true)?;
                conf.merge(&file, p);
            }
        }
        if conf.credential_helpers.is_empty() {
            conf.credential_helpers = vec![crate::auth::AUTH_FILE_HELPER.to_owned()];
        }
        conf.sources = sources.join(", ");

        let cache = alias_cache_path(env);
        match std::fs::read_to_string(&cache) {
            Ok(text) => {
                let raw: RawFile =
                    toml::from_str(&text).map_err(|e| invalid(&cache, e.message()))?;
                conf.cache_aliases = parse_aliases(&cache, raw.aliases.unwrap_or_default())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfError::Io {
                    path: cache,
                    message: e.to_string(),
                });
            }
        }
        Ok(conf)
    }

    /// Parses one configuration text as if it were the only file (no drop-ins, no alias
    /// cache). For tests and tools.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfError> {
        let p = parse_file(path, text, false)?;
        let mut conf = Self::from_partial(path, p);
        if conf.credential_helpers.is_empty() {
            conf.credential_helpers = vec![crate::auth::AUTH_FILE_HELPER.to_owned()];
        }
        conf.sources = path.display().to_string();
        Ok(conf)
    }

    fn from_partial(path: &Path, p: Partial) -> Self {
        let mut c = Self::default();
        c.merge(path, p);
        c
    }

    fn merge(&mut self, path: &Path, p: Partial) {
        if !p.registries.is_empty() {
            let mut by_prefix: BTreeMap<String, Registry> = self
                .registries
                .drain(..)
                .map(|r| (r.prefix.clone(), r))
                .collect();
            for r in p.registries {
                by_prefix.insert(r.prefix.clone(), r);
            }
            self.registries = by_prefix.into_values().collect();
        }
        if let Some(s) = p.search {
            self.search = s;
            self.search_origin = Some(path.to_owned());
        }
        if let Some(h) = p.credential_helpers {
            self.credential_helpers = h;
        }
        if let Some(m) = p.mode {
            self.mode = m;
        }
        self.aliases.extend(p.aliases);
    }

    /// `[[registry]]` entries, sorted by prefix.
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    /// `unqualified-search-registries`, in order.
    pub fn unqualified_search_registries(&self) -> &[String] {
        &self.search
    }

    /// `short-name-mode` (default permissive).
    pub fn short_name_mode(&self) -> ShortNameMode {
        self.mode
    }

    /// `credential-helpers` (default `["containers-auth.json"]`).
    pub fn credential_helpers(&self) -> &[String] {
        &self.credential_helpers
    }

    /// The files and directories read, for messages (`a, b, c`).
    pub fn sources(&self) -> &str {
        &self.sources
    }

    /// The alias of a short name (`busybox`, `foo/bar`): the cache's first, then the
    /// configuration's; an alias reset with `""` counts as none.
    pub fn alias(&self, short_name: &str) -> Option<(&str, &Path)> {
        let a = self
            .cache_aliases
            .get(short_name)
            .or_else(|| self.aliases.get(short_name))?;
        a.value.as_deref().map(|v| (v, a.origin.as_path()))
    }

    /// The `[[registry]]` whose prefix is the longest match for `name` (a fully-qualified
    /// repository or reference).
    pub fn find_registry(&self, name: &str) -> Option<&Registry> {
        let mut best: Option<&Registry> = None;
        for r in &self.registries {
            if matching_prefix_len(name, &r.prefix).is_some()
                && best.is_none_or(|b| r.prefix.len() > b.prefix.len())
            {
                best = Some(r);
            }
        }
        best
    }

    /// The names a pull of `reference` may give the image and where to fetch each,
    /// in podman's order. See [`RegistriesConf::resolve`].
    pub fn pull_candidates(&self, reference: &str) -> Result<Vec<Candidate>, ConfError> {
        self.resolve(reference).map(|r| r.candidates)
    }

    /// Resolves `reference` as `podman pull` does: a tag together with a digest is
    /// dropped; a fully-qualified reference is normalised (`docker.io/library/...`); a
    /// short name goes through its alias, else each unqualified-search registry in order
    /// (`short-name-mode = "enforcing"` with several candidates fails, as podman does
    /// without a terminal). Each candidate gets its mirrors (filtered by
    /// `mirror-by-digest-only` / `pull-from-mirror`) and then its location; endpoints of
    /// blocked registries are left out, candidates left with none are dropped, and when
    /// nothing is left the error names the blocking prefix.
    pub fn resolve(&self, reference: &str) -> Result<Resolution, ConfError> {
        let bad = |reason: String| ConfError::Reference {
            reference: reference.to_owned(),
            reason,
        };
        let mut r = Reference::parse(reference).map_err(|e| bad(e.to_string()))?;
        if r.digest.is_some() {
            r.tag = None;
        }
        let (names, rationale) = if r.is_qualified() {
            (vec![r.docker_normalized()], Rationale::Qualified)
        } else if let Some((alias, origin)) = self.alias(&r.path) {
            let mut a = Reference::parse(alias).map_err(|e| bad(e.to_string()))?;
            a.tag.clone_from(&r.tag);
            a.digest = r.digest;
            (vec![a], Rationale::Alias(origin.to_owned()))
        } else {
            let origin = self.search_origin.clone().unwrap_or_default();
            if self.search.is_empty() {
                return Err(ConfError::ShortName(match &self.search_origin {
                    Some(o) => format!(
                        "short-name {reference:?} did not resolve to an alias and no unqualified-search registries are defined in {:?}",
                        o.display().to_string()
                    ),
                    None => format!(
                        "short-name {reference:?} did not resolve to an alias and no containers-registries.conf(5) was found"
                    ),
                }));
            }
            let mut out = Vec::with_capacity(self.search.len());
            for reg in &self.search {
                let q = Reference::parse(&format!("{reg}/{}", r.path)).map_err(|e| {
                    bad(format!(
                        "creating reference with unqualified-search registry {reg:?}: {e}"
                    ))
                })?;
                let mut q = q.docker_normalized();
                q.tag.clone_from(&r.tag);
                q.digest = r.digest;
                out.push(q);
            }
            if self.mode == ShortNameMode::Enforcing && out.len() > 1 {
                return Err(ConfError::ShortName(
                    "short-name resolution enforced but cannot prompt without a TTY".to_owned(),
                ));
            }
            (out, Rationale::SearchRegistries(origin))
        };

        let mut candidates = Vec::with_capacity(names.len());
        let mut blocked: Option<String> = None;
        for name in names {
            let name = name.with_default_tag();
            let (endpoints, blocked_by) = self.endpoints(&name)?;
            if endpoints.is_empty() {
                blocked = blocked.or(blocked_by);
            } else {
                candidates.push(Candidate {
                    reference: name.to_string(),
                    endpoints,
                });
            }
        }
        match (candidates.is_empty(), blocked) {
            (true, Some(prefix)) => Err(ConfError::Blocked {
                prefix,
                reference: reference.to_owned(),
                sources: self.sources.clone(),
            }),
            _ => Ok(Resolution {
                candidates,
                rationale,
            }),
        }
    }

    /// Pull sources of one fully-qualified reference, without blocked ones (and the prefix
    /// of the first blocking registry).
    fn endpoints(&self, name: &Reference) -> Result<(Vec<Endpoint>, Option<String>), ConfError> {
        let full = name.to_string();
        let digested = name.digest.is_some();
        let mut sources: Vec<(&str, bool, bool)> = Vec::new(); // (location, insecure, mirror)
        let prefix = match self.find_registry(&name.repository()) {
            None => {
                sources.push(("", false, false));
                None
            }
            Some(reg) => {
                for m in &reg.mirrors {
                    let use_it = if reg.mirror_by_digest_only {
                        digested
                    } else {
                        match m.pull_from_mirror {
                            PullFromMirror::All => true,
                            PullFromMirror::DigestOnly => digested,
                            PullFromMirror::TagOnly => !digested,
                        }
                    };
                    if use_it {
                        sources.push((&m.location, m.insecure, true));
                    }
                }
                sources.push((&reg.location, reg.insecure, false));
                Some(reg.prefix.as_str())
            }
        };
        let mut out = Vec::with_capacity(sources.len());
        let mut blocked_by = None;
        for (location, insecure, mirror) in sources {
            let physical = match prefix {
                Some(p) if !location.is_empty() => rewrite(&full, p, location)?,
                _ => name.clone(),
            };
            if let Some(reg) = self.find_registry(&physical.repository())
                && reg.blocked
            {
                blocked_by.get_or_insert_with(|| reg.prefix.clone());
                continue;
            }
            out.push(Endpoint {
                reference: physical.to_string(),
                host: physical.domain.clone().unwrap_or_default(),
                repository: physical.path.clone(),
                insecure,
                mirror,
            });
        }
        Ok((out, blocked_by))
    }

    /// Where `podman push` sends `reference`: its own registry (no mirrors, no prefix
    /// rewriting), normalised as the docker transport does (`foo` is
    /// `docker.io/library/foo:latest`); refused when the registry is blocked.
    pub fn push_endpoint(&self, reference: &str) -> Result<Endpoint, ConfError> {
        let r = Reference::parse(reference).map_err(|e| ConfError::Reference {
            reference: reference.to_owned(),
            reason: e.to_string(),
        })?;
        let r = r.docker_normalized().with_default_tag();
        let reg = self.find_registry(&r.repository());
        if let Some(reg) = reg
            && reg.blocked
        {
            return Err(ConfError::Blocked {
                prefix: reg.prefix.clone(),
                reference: reference.to_owned(),
                sources: self.sources.clone(),
            });
        }
        Ok(Endpoint {
            reference: r.to_string(),
            host: r.domain.clone().unwrap_or_default(),
            repository: r.path.clone(),
            insecure: reg.is_some_and(|g| g.insecure),
            mirror: false,
        })
    }
}

/// Replaces the matched `prefix` of `full` with `location`; the result must be a
/// canonical fully-qualified reference.
fn rewrite(full: &str, prefix: &str, location: &str) -> Result<Reference, ConfError> {
    let bad = |reason: String| ConfError::Reference {
        reference: full.to_owned(),
        reason,
    };
    let n = matching_prefix_len(full, prefix)
        .ok_or_else(|| bad(format!("invalid prefix '{prefix}' for reference '{full}'")))?;
    let s = format!("{location}{}", &full[n..]);
    let r = Reference::parse(&s).map_err(|e| bad(format!("rewriting reference: {e}")))?;
    if !r.is_qualified() || r.docker_normalized() != r {
        return Err(bad(format!(
            "rewriting reference: {s:?} is not a fully-qualified, normalized reference"
        )));
    }
    Ok(r)
}

/// The length of `prefix`'s match in `name` (a registry, namespace, repository or
/// reference starting with a host), or `None`. A prefix matches whole components: the
/// next character is `/`, `:` or `@` (so `example.com` also matches `example.com:5000`,
/// as containers/image does). `*.example.com` matches any subdomain host.
pub fn matching_prefix_len(name: &str, prefix: &str) -> Option<usize> {
    if let Some(suffix) = prefix.strip_prefix('*').filter(|s| s.starts_with('.')) {
        let i = name.find(suffix)?;
        if name[..i].contains('/') {
            return None;
        }
        let end = i + suffix.len();
        return match name.as_bytes().get(end) {
            None | Some(b':' | b'/' | b'@') => Some(end),
            Some(_) => None,
        };
    }
    if !name.starts_with(prefix) {
        return None;
    }
    match name.as_bytes().get(prefix.len()) {
        None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
        Some(_) => None,
    }
}
