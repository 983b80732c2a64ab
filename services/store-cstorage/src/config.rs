//! Where the store is: `storage.conf` resolution exactly as podman 4.3 / containers/storage
//! 1.43 read it (design doc §7).
//!
//! The steps, in c/storage's order (`types/options.go`, `types/utils.go`):
//! 1. The system options (`loadDefaultStoreOptions`): `$CONTAINERS_STORAGE_CONF` (it must
//!    exist); else `$XDG_CONFIG_HOME/containers/storage.conf` if it exists (for root too),
//!    else `/etc/containers/storage.conf` if it exists, else
//!    `/usr/share/containers/storage.conf` if it exists. An empty runroot or graphroot falls
//!    back to `/run/containers/storage` and `/var/lib/containers/storage`.
//! 0. Rootless, podman sets `XDG_RUNTIME_DIR` when unset (`/run/user/<uid>` if the user
//!    owns it, else `$TMPDIR/podman-run-<uid>`, else `$HOME/rundir`; `podman_env`), which
//!    counts when no user file exists (step 2).
//! 2. Rootless (uid ≠ 0, `getRootlessStorageOpts`): runroot `$XDG_RUNTIME_DIR/containers`
//!    (or, if that cannot be resolved, `/run/user/<uid>`, `$TMPDIR/containers-user-<uid>`,
//!    `$HOME/rundir`, as c/storage falls back); graphroot the system file's `rootless_storage_path`, else
//!    `$XDG_DATA_HOME/containers/storage`, else `$HOME/.local/share/containers/storage`;
//!    driver the system one if rootless-capable, `$STORAGE_DRIVER`, else `vfs`.
//! 3. The per-user file (`DefaultConfigFile`: root uses the system file found in step 1;
//!    rootless `$XDG_CONFIG_HOME/containers/storage.conf` or
//!    `$HOME/.config/containers/storage.conf`) is read again on top when it exists, unless
//!    `$CONTAINERS_STORAGE_CONF` is set. Then a root file without `runroot`/`graphroot` is
//!    an error ("runroot must be set", as podman 4.3 answers — verified), rootless ones fall
//!    back to the values of step 2.
//! 4. `$UID` and `$VAR`/`${VAR}` are expanded in both roots and symlinks resolved.
//! 5. imaged's flags (`--root`, `--runroot`, `--storage-driver`), then what podman recorded
//!    in its database (`runtime-config`: graph root, run root, driver) for what no flag
//!    gave — libpod's own override.
//! 6. No driver yet: c/storage's choice (`drivers.New`): a prior `<root>/overlay` (or aufs,
//!    btrfs, zfs) directory, else overlay when the kernel has it, else vfs (`<root>/vfs` is
//!    never chosen from prior state).

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A graph driver imaged can manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `overlay` (also written `overlay2`).
    Overlay,
    /// `vfs`.
    Vfs,
}

impl Driver {
    /// The name c/storage uses in paths (`overlay-images`, `vfs-layers`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlay => "overlay",
            Self::Vfs => "vfs",
        }
    }

    /// Parses a driver name as c/storage accepts it (`overlay2` is `overlay`); a driver
    /// imaged cannot manage (btrfs, zfs, devicemapper, aufs, ...) is an error.
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "overlay" | "overlay2" => Ok(Self::Overlay),
            "vfs" => Ok(Self::Vfs),
            other => Err(ConfigError::UnsupportedDriver {
                name: other.to_owned(),
                from: "given".to_owned(),
            }),
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A resolved store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The graph root (`/var/lib/containers/storage`).
    pub graph_root: PathBuf,
    /// The run root (`/run/containers/storage`).
    pub run_root: PathBuf,
    /// The graph driver.
    pub driver: Driver,
    /// `additionalimagestores`: read-only stores, served with `read_only` images.
    pub additional_image_stores: Vec<PathBuf>,
    /// podman's BoltDB (`<graph_root>/libpod/bolt_state.db` by default); containers not in
    /// it are external. `None` or a missing file: every container is external.
    pub libpod_db: Option<PathBuf>,
    /// The skopeo binary LoadImages drives (`skopeo` on `PATH` by default).
    pub skopeo: PathBuf,
}

impl StoreOptions {
    /// A store at `graph_root` / `run_root` with `driver`, podman's database at its default
    /// place (`<graph_root>/libpod/bolt_state.db`), no additional stores and `skopeo` from
    /// `PATH`.
    pub fn new(graph_root: PathBuf, run_root: PathBuf, driver: Driver) -> Self {
        let libpod_db = Some(graph_root.join("libpod").join("bolt_state.db"));
        Self {
            graph_root,
            run_root,
            driver,
            additional_image_stores: Vec::new(),
            libpod_db,
            skopeo: PathBuf::from("skopeo"),
        }
    }
}

/// What the daemon's flags (or its config file) say; each `Some` wins over `storage.conf`
/// and over podman's database, as podman's own `--root`, `--runroot` and
/// `--storage-driver` do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--root GRAPHROOT`.
    pub root: Option<PathBuf>,
    /// `--runroot RUNROOT`.
    pub runroot: Option<PathBuf>,
    /// `--storage-driver overlay|vfs`.
    pub driver: Option<Driver>,
}

/// Why the store's location could not be resolved.
#[derive(Debug)]
pub enum ConfigError {
    /// A file could not be read (or, for `$CONTAINERS_STORAGE_CONF`, does not exist).
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `storage.conf` is not valid TOML or a key has the wrong type.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The configuration leaves a root unset (c/storage: "runroot must be set").
    Unset {
        /// `runroot` or `graphroot`.
        key: &'static str,
        /// The file that was read last.
        file: Option<PathBuf>,
    },
    /// The environment lacks what a rootless user's paths need (`HOME`).
    Environment(String),
    /// The store uses (or the configuration names) a driver imaged cannot manage.
    UnsupportedDriver {
        /// The driver's name.
        name: String,
        /// Where it came from (a file, `STORAGE_DRIVER`, podman's database, the store).
        from: String,
    },
    /// The graph root holds the data of several drivers and none is configured.
    SeveralDrivers {
        /// The graph root.
        root: PathBuf,
        /// The drivers found.
        names: Vec<String>,
    },
    /// An `additionalimagestores` entry overlay would refuse.
    ImageStore {
        /// The entry.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// podman's database could not be read.
    Database {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Parse { path, message } => write!(f, "{}: {message}", path.display()),
            Self::Unset { key, file } => match file {
                Some(p) => write!(f, "{key} must be set (in {})", p.display()),
                None => write!(f, "{key} must be set"),
            },
            Self::Environment(m) => f.write_str(m),
            Self::UnsupportedDriver { name, from } => write!(
                f,
                "storage driver {name:?} ({from}) is not supported by imaged: only overlay and \
                 vfs stores can be managed"
            ),
            Self::SeveralDrivers { root, names } => write!(
                f,
                "{} contains several valid graph drivers: {}; choose one with --storage-driver",
                root.display(),
                names.join(", ")
            ),
            Self::ImageStore { path, message } => {
                write!(f, "additional image store {}: {message}", path.display())
            }
            Self::Database { path, source } => write!(
                f,
                "cannot read podman's database {}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The environment resolution runs in: the user, the environment variables and the file
/// system root the fixed system paths (`/etc`, `/usr/share`, `/proc`, `/run/user`) and
/// every path read are taken under (`/` except in tests).
#[derive(Debug, Clone)]
pub struct Environment {
    /// The user the store is for (podman's rootless UID; 0: root).
    pub uid: u32,
    /// Environment variables.
    pub vars: HashMap<String, String>,
    /// Where `/` is (tests point it at a temporary directory).
    pub fs_root: PathBuf,
}

impl Environment {
    /// This process: effective UID (or `$_CONTAINERS_ROOTLESS_UID`, as c/storage reads it
    /// inside podman's user namespace), its environment, `HOME` from the password database
    /// when unset, and the real `/`.
    pub fn current() -> Self {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let uid = vars
            .get("_CONTAINERS_ROOTLESS_UID")
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().unwrap_or(0))
            .unwrap_or_else(|| nix::unistd::geteuid().as_raw());
        let mut env = Self {
            uid,
            vars,
            fs_root: PathBuf::from("/"),
        };
        if env.vars.get("HOME").is_none_or(String::is_empty)
            && let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        {
            env.vars
                .insert("HOME".to_owned(), user.dir.display().to_string());
        }
        env
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }

    fn nonempty(&self, k: &str) -> Option<&str> {
        self.var(k).filter(|v| !v.is_empty())
    }

    /// `path` (as the store sees it) on this machine's file system.
    fn host(&self, path: &Path) -> PathBuf {
        if self.fs_root == Path::new("/") {
            return path.to_path_buf();
        }
        let rel: PathBuf = path
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        self.fs_root.join(rel)
    }

    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        match std::fs::metadata(self.host(path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Go's `filepath.EvalSymlinks`, under `fs_root`.
    fn eval_symlinks(&self, path: &Path) -> std::io::Result<PathBuf> {
        let real = std::fs::canonicalize(self.host(path))?;
        if self.fs_root == Path::new("/") {
            return Ok(real);
        }
        let root = std::fs::canonicalize(&self.fs_root)?;
        match real.strip_prefix(&root) {
            Ok(rel) => Ok(Path::new("/").join(rel)),
            Err(_) => Ok(real),
        }
    }
}

/// Where each part of the result came from (for the daemon's start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The store.
    pub options: StoreOptions,
    /// The `storage.conf` files read, in order.
    pub files: Vec<PathBuf>,
    /// Where the driver came from: `flag`, `podman database`, a file, `STORAGE_DRIVER`,
    /// `rootless default`, `prior <root>/overlay`, `kernel` or `fallback`.
    pub driver_from: String,
}

/// Resolves the store for this process (see the module docs), as podman would with the
/// same flags.
pub fn resolve(overrides: &Overrides) -> Result<StoreOptions, ConfigError> {
    resolve_in(&Environment::current(), overrides).map(|r| r.options)
}

/// The options one `storage.conf` yields (c/storage `ReloadConfigurationFile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FileOpts {
    driver: String,
    driver_from: String,
    run_root: String,
    graph_root: String,
    rootless_storage_path: String,
    driver_options: Vec<String>,
}

const SYSTEM_FILE: &str = "/usr/share/containers/storage.conf";
const OVERRIDE_FILE: &str = "/etc/containers/storage.conf";
const DEFAULT_RUN_ROOT: &str = "/run/containers/storage";
const DEFAULT_GRAPH_ROOT: &str = "/var/lib/containers/storage";

fn table_str(t: &toml::Table, key: &str, path: &Path, prefix: &str) -> Result<String, ConfigError> {
    match t.get(key) {
        None => Ok(String::new()),
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("{prefix}{key}: expected a string, found {}", v.type_str()),
        }),
    }
}

/// Reads one `storage.conf` the way `ReloadConfigurationFile` does (a missing file yields
/// the environment-only options).
fn read_file(env: &Environment, path: &Path) -> Result<FileOpts, ConfigError> {
    let text = match std::fs::read_to_string(env.host(path)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    let empty = toml::Table::new();
    let storage = match table.get("storage") {
        None => &empty,
        Some(toml::Value::Table(t)) => t,
        Some(v) => {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("storage: expected a table, found {}", v.type_str()),
            });
        }
    };
    let options = match storage.get("options") {
        None => &empty,
        Some(toml::Value::Table(t)) => t,
        Some(v) => {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("storage.options: expected a table, found {}", v.type_str()),
            });
        }
    };
    let mut o = FileOpts::default();
    // `config.Storage.Driver` as c/storage keeps it (STORAGE_DRIVER replaces it, overlay2
    // is normalised only in the result): the prefix of the image-store options.
    let mut conf_driver = table_str(storage, "driver", path, "storage.")?;
    if !conf_driver.is_empty() {
        o.driver.clone_from(&conf_driver);
        o.driver_from = path.display().to_string();
    }
    if let Some(d) = env.nonempty("STORAGE_DRIVER") {
        conf_driver = d.to_owned();
        o.driver = d.to_owned();
        o.driver_from = "STORAGE_DRIVER".to_owned();
    }
    if o.driver == "overlay2" {
        o.driver = "overlay".to_owned();
    }
    o.run_root = table_str(storage, "runroot", path, "storage.")?;
    o.graph_root = table_str(storage, "graphroot", path, "storage.")?;
    o.rootless_storage_path = table_str(storage, "rootless_storage_path", path, "storage.")?;
    match options.get("additionalimagestores") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let toml::Value::String(s) = item else {
                    return Err(ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: format!(
                            "storage.options.additionalimagestores[{i}]: expected a string, \
                             found {}",
                            item.type_str()
                        ),
                    });
                };
                o.driver_options
                    .push(format!("{conf_driver}.imagestore={s}"));
            }
        }
        Some(v) => {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "storage.options.additionalimagestores: expected an array of strings, \
                     found {}",
                    v.type_str()
                ),
            });
        }
    }
    if let Some(opts) = env.var("STORAGE_OPTS") {
        o.driver_options = opts.split(',').map(str::to_owned).collect();
    }
    if o.driver_options.len() == 1 && o.driver_options[0].is_empty() {
        o.driver_options.clear();
    }
    Ok(o)
}

/// c/storage's rootless `isRootlessDriver`.
fn is_rootless_driver(d: &str) -> bool {
    matches!(d, "btrfs" | "overlay" | "overlay2" | "vfs")
}

/// Go's `os.Expand` with `lookup`, after `$UID` is replaced (c/storage `expandEnvPath`).
fn expand_env(s: &str, lookup: &dyn Fn(&str) -> String) -> String {
    fn special(c: u8) -> bool {
        matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
    }
    fn alnum(c: u8) -> bool {
        c == b'_' || c.is_ascii_alphanumeric()
    }
    /// `getShellName`: the name after `$` and how many bytes it took.
    fn shell_name(s: &[u8]) -> (&[u8], usize) {
        if s[0] == b'{' {
            if s.len() > 2 && special(s[1]) && s[2] == b'}' {
                return (&s[1..2], 3);
            }
            for i in 1..s.len() {
                if s[i] == b'}' {
                    if i == 1 {
                        return (&[], 2);
                    }
                    return (&s[1..i], i + 1);
                }
            }
            return (&[], 1);
        }
        if special(s[0]) {
            return (&s[0..1], 1);
        }
        let n = s.iter().take_while(|c| alnum(**c)).count();
        (&s[..n], n)
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.extend_from_slice(&b[i..j]);
            let (name, w) = shell_name(&b[j + 1..]);
            if name.is_empty() && w > 0 {
                // Bad syntax: eaten.
            } else if name.is_empty() {
                out.push(b'$');
            } else {
                out.extend_from_slice(lookup(&String::from_utf8_lossy(name)).as_bytes());
            }
            j += w;
            i = j + 1;
        }
        j += 1;
    }
    out.extend_from_slice(&b[i.min(b.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `filepath.Clean` (lexical).
fn clean(p: &str) -> PathBuf {
    if p.is_empty() {
        return PathBuf::from(".");
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => PathBuf::from(format!("/{joined}")),
        (false, true) => PathBuf::from("."),
        (false, false) => PathBuf::from(joined),
    }
}

/// c/storage `expandEnvPath`.
fn expand_path(env: &Environment, p: &str) -> PathBuf {
    let p = p.replace("$UID", &env.uid.to_string());
    let p = expand_env(&p, &|k| env.var(k).unwrap_or("").to_owned());
    env.eval_symlinks(Path::new(&p))
        .unwrap_or_else(|_| clean(&p))
}

/// The rootless run directory (`getRootlessRuntimeDir`), without `containers`. Unlike
/// c/storage nothing is created: a missing `$TMPDIR/containers-user-<uid>` is the answer
/// c/storage would create and use.
fn rootless_runtime_dir(env: &Environment) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::MetadataExt as _;
    if let Some(d) = env.nonempty("XDG_RUNTIME_DIR") {
        match env.eval_symlinks(Path::new(d)) {
            Ok(p) => return Ok(p),
            // podman would have created it.
            Err(_) if env.var(PODMAN_MADE_RUNTIME_DIR) == Some(d) => return Ok(PathBuf::from(d)),
            Err(_) => {}
        }
    }
    let owned = |p: &Path| {
        std::fs::symlink_metadata(env.host(p))
            .is_ok_and(|m| m.uid() == env.uid && m.mode() & 0o700 == 0o700 && m.mode() & 0o066 == 0)
    };
    // c/storage compares /proc/1/comm with "systemd" without its newline: the run/user
    // directory is only tried when the file cannot be read (or holds exactly that).
    let comm = std::fs::read(env.host(Path::new("/proc/1/comm")));
    if comm.as_ref().map_or(true, |c| c == b"systemd") {
        let run_user = PathBuf::from(format!("/run/user/{}", env.uid));
        if owned(&run_user) {
            return Ok(run_user);
        }
    }
    let tmp = env.nonempty("TMPDIR").unwrap_or("/tmp");
    let per_user = Path::new(tmp).join(format!("containers-user-{}", env.uid));
    match std::fs::symlink_metadata(env.host(&per_user)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(per_user),
        _ if owned(&per_user) => return Ok(per_user),
        _ => {}
    }
    let home = env.nonempty("HOME").ok_or_else(|| {
        ConfigError::Environment(
            "neither XDG_RUNTIME_DIR nor temp dir nor HOME was set non-empty".to_owned(),
        )
    })?;
    let home = env
        .eval_symlinks(Path::new(home))
        .map_err(|source| ConfigError::Read {
            path: PathBuf::from(home),
            source,
        })?;
    Ok(home.join("rundir"))
}

/// The rootless data directory (`getRootlessDirInfo`): `$XDG_DATA_HOME` or
/// `$HOME/.local/share` (symlinks resolved).
fn rootless_data_dir(env: &Environment) -> Result<PathBuf, ConfigError> {
    if let Some(d) = env.nonempty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d));
    }
    let home = env.nonempty("HOME").ok_or_else(|| {
        ConfigError::Environment("neither XDG_DATA_HOME nor HOME was set non-empty".to_owned())
    })?;
    let home = env
        .eval_symlinks(Path::new(home))
        .map_err(|source| ConfigError::Read {
            path: PathBuf::from(home),
            source,
        })?;
    Ok(home.join(".local").join("share"))
}

/// `getRootlessStorageOpts`.
fn rootless_opts(
    env: &Environment,
    system: &FileOpts,
    conf_env_set: bool,
) -> Result<FileOpts, ConfigError> {
    let runtime = rootless_runtime_dir(env)?.join("containers");
    let data = rootless_data_dir(env)?;
    let mut o = FileOpts {
        run_root: runtime.display().to_string(),
        ..FileOpts::default()
    };
    o.graph_root = if system.rootless_storage_path.is_empty() {
        data.join("containers")
            .join("storage")
            .display()
            .to_string()
    } else {
        expand_path(env, &system.rootless_storage_path)
            .display()
            .to_string()
    };
    if is_rootless_driver(&system.driver) {
        o.driver.clone_from(&system.driver);
        o.driver_from.clone_from(&system.driver_from);
    }
    if let Some(d) = env.nonempty("STORAGE_DRIVER") {
        o.driver = d.to_owned();
        o.driver_from = "STORAGE_DRIVER".to_owned();
    }
    if o.driver == "overlay2" {
        o.driver = "overlay".to_owned();
    }
    if conf_env_set {
        o.driver_options.clone_from(&system.driver_options);
    }
    if o.driver.is_empty() {
        o.driver = "vfs".to_owned();
        o.driver_from = "rootless default".to_owned();
    }
    if let Some(opts) = env.nonempty("STORAGE_OPTS") {
        o.driver_options.extend(opts.split(',').map(str::to_owned));
    }
    Ok(o)
}

/// The `storage.conf` options before imaged's flags and podman's database: step 1–4 of
/// the module docs. Returns the options and the files read.
fn storage_conf(
    env: &Environment,
    penv: &Environment,
) -> Result<(FileOpts, Vec<PathBuf>), ConfigError> {
    let rootless = env.uid != 0;
    let mut files = Vec::new();
    let conf_env = env.var("CONTAINERS_STORAGE_CONF").map(PathBuf::from);
    // Step 1: the system options.
    let mut system_file = None;
    let mut system = match &conf_env {
        Some(p) => {
            if !env.exists(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })? {
                return Err(ConfigError::Read {
                    path: p.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            files.push(p.clone());
            read_file(env, p)?
        }
        None => {
            let mut over = PathBuf::from(OVERRIDE_FILE);
            if let Some(x) = env.var("XDG_CONFIG_HOME") {
                let home_file = Path::new(x).join("containers").join("storage.conf");
                if env.exists(&home_file).map_err(|source| ConfigError::Read {
                    path: home_file.clone(),
                    source,
                })? {
                    over = home_file;
                }
            }
            let over_exists = env.exists(&over).map_err(|source| ConfigError::Read {
                path: over.clone(),
                source,
            })?;
            let file = if over_exists {
                over
            } else {
                PathBuf::from(SYSTEM_FILE)
            };
            if env.exists(&file).unwrap_or(false) {
                files.push(file.clone());
                let o = read_file(env, &file)?;
                system_file = Some(file);
                o
            } else {
                FileOpts::default()
            }
        }
    };
    if system.run_root.is_empty() {
        system.run_root = DEFAULT_RUN_ROOT.to_owned();
    }
    if system.graph_root.is_empty() {
        system.graph_root = DEFAULT_GRAPH_ROOT.to_owned();
    }
    // Step 3's file (c/storage `DefaultConfigFile`, computed first).
    let user_file = if conf_env.is_some() {
        None
    } else if !rootless {
        system_file
    } else if let Some(x) = env.nonempty("XDG_CONFIG_HOME") {
        Some(Path::new(x).join("containers/storage.conf"))
    } else {
        let home = env.nonempty("HOME").ok_or_else(|| {
            ConfigError::Environment("cannot determine user's homedir".to_owned())
        })?;
        Some(Path::new(home).join(".config/containers/storage.conf"))
    };
    let user_file = match user_file {
        Some(f)
            if env.exists(&f).map_err(|source| ConfigError::Read {
                path: f.clone(),
                source,
            })? =>
        {
            Some(f)
        }
        _ => None,
    };
    // Step 2. podman resolves the store more than once: first before it sets
    // XDG_RUNTIME_DIR, then after. c/storage caches what it read from the user file together
    // with the fallbacks it filled in on the first call, so with a user file the first
    // call's rootless roots stay; without one the last call's (podman's XDG_RUNTIME_DIR)
    // are used. Verified against podman 4.3 as a rootless user.
    let mut opts = if rootless {
        let first = if user_file.is_some() { env } else { penv };
        rootless_opts(first, &system, conf_env.is_some())?
    } else {
        system.clone()
    };
    // Step 3: the per-user file.
    let mut last_file = files.last().cloned();
    if let Some(f) = user_file {
        let defaults = (opts.run_root.clone(), opts.graph_root.clone());
        // c/storage ignores a user file it cannot parse (it prints the error and goes on
        // with nothing from it).
        opts = match read_file(env, &f) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "storage.conf ignored");
                FileOpts::default()
            }
        };
        if files.last() != Some(&f) {
            files.push(f.clone());
        }
        last_file = Some(f);
        if rootless {
            if opts.run_root.is_empty() {
                opts.run_root = defaults.0;
            }
            if opts.graph_root.is_empty() {
                opts.graph_root = if opts.rootless_storage_path.is_empty() {
                    defaults.1
                } else {
                    opts.rootless_storage_path.clone()
                };
            }
        }
    }
    // Step 4.
    if opts.run_root.is_empty() {
        return Err(ConfigError::Unset {
            key: "runroot",
            file: last_file,
        });
    }
    opts.run_root = expand_path(env, &opts.run_root).display().to_string();
    if opts.graph_root.is_empty() {
        return Err(ConfigError::Unset {
            key: "graphroot",
            file: last_file,
        });
    }
    opts.graph_root = expand_path(env, &opts.graph_root).display().to_string();
    Ok((opts, files))
}

/// The additional image stores the driver would use, from its option list.
fn image_stores(
    env: &Environment,
    driver: Driver,
    options: &[String],
) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for o in options {
        // Every driver refuses an option that is not key=value (`ParseKeyValueOpt`).
        let Some((key, val)) = o.split_once('=') else {
            return Err(ConfigError::Parse {
                path: PathBuf::from("storage options"),
                message: format!("driver option {o:?} is not key=value"),
            });
        };
        let key = key.trim().to_ascii_lowercase();
        let val = val.trim();
        match driver {
            Driver::Overlay => {
                let k = key.strip_prefix("overlay.").unwrap_or(&key);
                let k = k.strip_prefix("overlay2.").unwrap_or(k);
                let k = k.strip_prefix('.').unwrap_or(k);
                if !matches!(k, "imagestore" | "additionalimagestore") || val.is_empty() {
                    continue;
                }
                for s in val.split(',') {
                    let p = clean(s);
                    if !p.is_absolute() {
                        return Err(ConfigError::ImageStore {
                            path: p,
                            message: "not an absolute path".to_owned(),
                        });
                    }
                    match std::fs::metadata(env.host(&p)) {
                        Ok(m) if m.is_dir() => out.push(p),
                        Ok(_) => {
                            return Err(ConfigError::ImageStore {
                                path: p,
                                message: "not a directory".to_owned(),
                            });
                        }
                        Err(e) => {
                            return Err(ConfigError::ImageStore {
                                path: p,
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
            Driver::Vfs => {
                if matches!(key.as_str(), "vfs.imagestore" | ".imagestore") {
                    out.extend(val.split(',').map(PathBuf::from));
                }
            }
        }
    }
    Ok(out)
}

/// `statfs` magic numbers (linux/magic.h).
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
const BTRFS_MAGIC: i64 = 0x9123_683e;
const ZFS_MAGIC: i64 = 0x2fc1_2fc1;

/// The file system type of `path`'s nearest existing ancestor.
fn backing_fs(env: &Environment, path: &Path) -> Option<i64> {
    let mut p = env.host(path);
    loop {
        if let Ok(s) = nix::sys::statfs::statfs(&p) {
            #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
            return Some(s.filesystem_type().0 as i64);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// c/storage's choice when no driver is configured (`drivers.New("")`).
fn auto_driver(env: &Environment, graph_root: &Path) -> Result<(Driver, String), ConfigError> {
    // Prior state: a driver's directory in the graph root (vfs never counts).
    let prior: Vec<&str> = ["overlay", "aufs", "btrfs", "zfs"]
        .into_iter()
        .filter(|d| env.exists(&graph_root.join(d)).unwrap_or(false))
        .collect();
    if let Some(first) = prior.first() {
        if prior.len() > 1 {
            return Err(ConfigError::SeveralDrivers {
                root: graph_root.to_path_buf(),
                names: prior.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
        if *first != "overlay" {
            return Err(ConfigError::UnsupportedDriver {
                name: (*first).to_owned(),
                from: format!("prior state in {}", graph_root.display()),
            });
        }
        return Ok((
            Driver::Overlay,
            format!("prior {}/overlay", graph_root.display()),
        ));
    }
    let kernel = std::fs::read_to_string(env.host(Path::new("/proc/filesystems")))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    let fs = backing_fs(env, graph_root);
    if kernel && fs != Some(OVERLAYFS_MAGIC) {
        return Ok((Driver::Overlay, "kernel".to_owned()));
    }
    // c/storage would try aufs, btrfs and zfs before vfs: they work where the backing file
    // system is theirs.
    match fs {
        Some(BTRFS_MAGIC) => Err(ConfigError::UnsupportedDriver {
            name: "btrfs".to_owned(),
            from: format!("the file system of {}", graph_root.display()),
        }),
        Some(ZFS_MAGIC) => Err(ConfigError::UnsupportedDriver {
            name: "zfs".to_owned(),
            from: format!("the file system of {}", graph_root.display()),
        }),
        _ => Ok((Driver::Vfs, "fallback".to_owned())),
    }
}

/// Marks the `XDG_RUNTIME_DIR` `podman_env` chose (not a possible variable name: it
/// holds `=`), which podman creates before c/storage resolves it.
const PODMAN_MADE_RUNTIME_DIR: &str = "=podman-runtime-dir";

/// What podman itself sets before c/storage reads anything (podman `pkg/util`
/// `SetXdgDirs`, rootless only): `XDG_RUNTIME_DIR`, when unset, becomes `/run/user/<uid>`
/// if the user owns it (mode 07xx), else `$TMPDIR/podman-run-<uid>` (podman creates it; a
/// missing one is the answer), else `$HOME/rundir`. (podman also sets `XDG_CONFIG_HOME`,
/// but after c/storage has read its system file once and for all.)
fn podman_env(env: &Environment) -> Result<Environment, ConfigError> {
    use std::os::unix::fs::MetadataExt as _;
    let mut env = env.clone();
    if env.uid == 0 {
        return Ok(env);
    }
    if env.var("XDG_RUNTIME_DIR").is_none() {
        let owned = |p: &Path| match std::fs::metadata(env.host(p)) {
            Ok(m) => Some(m.uid() == env.uid && m.mode() & 0o700 == 0o700),
            Err(_) => None,
        };
        let run_user = PathBuf::from(format!("/run/user/{}", env.uid));
        let tmp = Path::new(env.nonempty("TMPDIR").unwrap_or("/tmp"))
            .join(format!("podman-run-{}", env.uid));
        let dir = if owned(&run_user) == Some(true) {
            run_user
        } else if owned(&tmp) != Some(false) {
            tmp
        } else {
            let home = env.nonempty("HOME").ok_or_else(|| {
                ConfigError::Environment(
                    "neither XDG_RUNTIME_DIR nor HOME was set non-empty".to_owned(),
                )
            })?;
            env.eval_symlinks(Path::new(home))
                .map_err(|source| ConfigError::Read {
                    path: PathBuf::from(home),
                    source,
                })?
                .join("rundir")
        };
        env.vars
            .insert("XDG_RUNTIME_DIR".to_owned(), dir.display().to_string());
        env.vars.insert(
            PODMAN_MADE_RUNTIME_DIR.to_owned(),
            dir.display().to_string(),
        );
    }
    Ok(env)
}

/// Resolves the store in `env` (see the module docs); also says which files were read and
/// where the driver came from.
pub fn resolve_in(env: &Environment, overrides: &Overrides) -> Result<Resolution, ConfigError> {
    let (conf, files) = storage_conf(env, &podman_env(env)?)?;
    let mut graph_root = match &overrides.root {
        Some(r) => std::path::absolute(r).unwrap_or_else(|_| r.clone()),
        None => PathBuf::from(&conf.graph_root),
    };
    let libpod_db = graph_root.join("libpod").join("bolt_state.db");
    let db = crate::bolt::read(&env.host(&libpod_db)).map_err(|source| ConfigError::Database {
        path: libpod_db.clone(),
        source,
    })?;
    if overrides.root.is_none()
        && let Some(g) = db.graph_root.as_deref().filter(|g| !g.is_empty())
    {
        graph_root = PathBuf::from(g);
    }
    let run_root = match (&overrides.runroot, db.run_root.as_deref()) {
        (Some(r), _) => std::path::absolute(r).unwrap_or_else(|_| r.clone()),
        (None, Some(r)) if !r.is_empty() => PathBuf::from(r),
        (None, _) => PathBuf::from(&conf.run_root),
    };
    let (driver, driver_from) = match (overrides.driver, db.graph_driver.as_deref()) {
        (Some(d), _) => (d, "flag".to_owned()),
        (None, Some(name)) if !name.is_empty() => (
            Driver::parse(name).map_err(|_| ConfigError::UnsupportedDriver {
                name: name.to_owned(),
                from: format!("podman's database {}", libpod_db.display()),
            })?,
            "podman database".to_owned(),
        ),
        (None, _) if !conf.driver.is_empty() => (
            Driver::parse(&conf.driver).map_err(|_| ConfigError::UnsupportedDriver {
                name: conf.driver.clone(),
                from: conf.driver_from.clone(),
            })?,
            conf.driver_from.clone(),
        ),
        (None, _) => auto_driver(env, &graph_root)?,
    };
    let additional_image_stores = image_stores(env, driver, &conf.driver_options)?;
    let mut options = StoreOptions::new(graph_root, run_root, driver);
    options.libpod_db = Some(libpod_db);
    options.additional_image_stores = additional_image_stores;
    Ok(Resolution {
        options,
        files,
        driver_from,
    })
}

#[cfg(test)]
mod tests;
