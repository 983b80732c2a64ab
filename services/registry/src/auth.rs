//! Registry credentials as podman 4.3 / skopeo (containers/image 5.23) look them up.
//!
//! Order:
//! 1. per-request credentials (`--creds`, CRI `AuthConfig`) — only for the registry they
//!    were given for, never for a mirror on another host ([`credentials_for`]);
//! 2. the global `credential-helpers` of `registries.conf`, in order (default: only
//!    `containers-auth.json`, i.e. the auth files below); any other name runs
//!    `docker-credential-<name> get`;
//! 3. the auth files, first with an entry wins:
//!    - the primary file: the request's `--authfile`, else `$REGISTRY_AUTH_FILE`, else
//!      `$DOCKER_CONFIG/config.json` (these must exist, as podman checks), else
//!      `$XDG_RUNTIME_DIR/containers/auth.json` (skipped when that directory does not
//!      exist), else `/run/containers/<uid>/auth.json`;
//!    - `$XDG_CONFIG_HOME/containers/auth.json` (default `$HOME/.config/...`);
//!    - `$DOCKER_CONFIG/config.json` (default `$HOME/.docker/config.json`);
//!    - `$HOME/.dockercfg` (legacy format: the `auths` map itself, keys are URLs).
//!
//! In each file: a `credHelpers` entry for the host runs that helper; else the `auths`
//! keys `host/ns/repo`, `host/ns`, `host` (most specific first); else any key that
//! normalises to the host (`https://index.docker.io/v1/` for `docker.io`,
//! `http(s)://host/...` URLs). `auth` is base64 `user:password`; `identitytoken` comes
//! along with it, or alone (no `auth`: Docker reads such an entry as an identity token;
//! containers/image skips it). An identity token is an OAuth2 refresh token the client
//! exchanges for an access token.
//!
//! Secrets never appear in errors or `Debug` output: file parse errors give only the
//! position, helper failures only the helper's message when it is not JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use imaged_core::transfer::Credentials;
use serde::Deserialize;

use crate::conf::Env;

/// The `credential-helpers` name that means "the auth files".
pub const AUTH_FILE_HELPER: &str = "containers-auth.json";

/// What a helper prints when it has nothing for the host.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Why credentials could not be looked up. Never carries a secret.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The lookup key is malformed.
    #[error("{0}")]
    Key(String),
    /// An explicitly chosen auth file (`--authfile`, `$REGISTRY_AUTH_FILE`,
    /// `$DOCKER_CONFIG`) does not exist.
    #[error("checking authfile: {path:?}: no such file or directory")]
    AuthFileMissing {
        /// The file.
        path: PathBuf,
    },
    /// An auth file could not be read or parsed.
    #[error("reading JSON file {path:?}: {message}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What failed (position only for parse errors).
        message: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper {
        /// The helper's name (without `docker-credential-`).
        helper: String,
        /// What failed.
        message: String,
    },
    /// Several helpers failed (and none had credentials).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<AuthError>),
}

/// Lookup settings beyond the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOptions {
    /// The request's `--authfile` (overrides `$REGISTRY_AUTH_FILE`).
    pub authfile: Option<PathBuf>,
    /// `credential-helpers` from `registries.conf` (see
    /// [`crate::conf::RegistriesConf::credential_helpers`]).
    pub credential_helpers: Vec<String>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            authfile: None,
            credential_helpers: vec![AUTH_FILE_HELPER.to_owned()],
        }
    }
}

/// One auth file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPath {
    /// The file.
    pub path: PathBuf,
    /// `~/.dockercfg` format.
    pub legacy: bool,
}

/// Stored credentials for `repository` (`library/busybox`) at `registry_host` (as written
/// in references: `docker.io`, `localhost:5000`), with the default options.
pub fn lookup(
    env: &Env,
    registry_host: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    lookup_with(env, &AuthOptions::default(), registry_host, repository)
}

/// The credentials for one endpoint of a pull or push: the request's own when the
/// endpoint is on the registry the user named (`logical_host`), else the stored ones
/// for the endpoint.
pub fn credentials_for(
    env: &Env,
    opts: &AuthOptions,
    request: Option<&Credentials>,
    logical_host: &str,
    endpoint_host: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    match request {
        Some(c) if logical_host == endpoint_host => Ok(Some(c.clone())),
        _ => lookup_with(env, opts, endpoint_host, repository),
    }
}

/// Stored credentials, as containers/image's `GetCredentialsForRef`.
pub fn lookup_with(
    env: &Env,
    opts: &AuthOptions,
    registry_host: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    let key = if repository.is_empty() {
        registry_host.to_owned()
    } else {
        format!("{registry_host}/{repository}")
    };
    validate_key(&key)?;
    let registry = key.split('/').next().unwrap_or(&key);
    let paths = auth_file_paths(env, opts.authfile.as_deref())?;

    let mut errors = Vec::new();
    for helper in &opts.credential_helpers {
        let found = if helper == AUTH_FILE_HELPER {
            from_auth_files(env, &paths, &key, registry)
        } else {
            from_helper(env, helper, registry)
        };
        match found {
            Ok(Some(c)) => return Ok(Some(c)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(None),
        1 => Err(errors.remove(0)),
        _ => Err(AuthError::Multiple(errors)),
    }
}

fn validate_key(key: &str) -> Result<(), AuthError> {
    if key.starts_with("http://") || key.starts_with("https://") {
        return Err(AuthError::Key(format!(
            "key {key} contains http[s]:// prefix"
        )));
    }
    if key.contains('@') {
        return Err(AuthError::Key(format!(
            "key {key} contains a '@' character"
        )));
    }
    if let Some((_, rest)) = key.split_once('/')
        && rest.contains(':')
    {
        return Err(AuthError::Key(format!(
            "key {key} contains a ':' character after host[:port]"
        )));
    }
    Ok(())
}

/// The auth files podman reads, in order. Fails when an explicitly chosen file is
/// missing.
pub fn auth_file_paths(env: &Env, authfile: Option<&Path>) -> Result<Vec<AuthPath>, AuthError> {
    let docker_config = env.var("DOCKER_CONFIG");
    let explicit = authfile.map(Path::to_path_buf).or_else(|| {
        env.var("REGISTRY_AUTH_FILE")
            .map(PathBuf::from)
            .or_else(|| docker_config.map(|d| Path::new(d).join("config.json")))
    });
    let mut paths = Vec::with_capacity(4);
    if let Some(p) = explicit {
        if !p.exists() {
            return Err(AuthError::AuthFileMissing { path: p });
        }
        paths.push(p);
    } else if let Some(rt) = env.var("XDG_RUNTIME_DIR") {
        // A runtime directory that does not exist only loses this file (podman warns).
        if Path::new(rt).exists() {
            paths.push(Path::new(rt).join("containers/auth.json"));
        }
    } else {
        paths.push(env.sys_path(&format!("/run/containers/{}/auth.json", env.uid)));
    }
    let mut out: Vec<AuthPath> = paths
        .into_iter()
        .map(|path| AuthPath {
            path,
            legacy: false,
        })
        .collect();
    let xdg_config = env
        .var("XDG_CONFIG_HOME")
        .map_or_else(|| env.home_path(".config"), PathBuf::from);
    out.push(AuthPath {
        path: xdg_config.join("containers/auth.json"),
        legacy: false,
    });
    out.push(AuthPath {
        path: docker_config.map_or_else(
            || env.home_path(".docker/config.json"),
            |d| Path::new(d).join("config.json"),
        ),
        legacy: false,
    });
    out.push(AuthPath {
        path: env.home_path(".dockercfg"),
        legacy: true,
    });
    Ok(out)
}

#[derive(Debug, Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
}

#[derive(Debug, Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

fn read_auth_file(p: &AuthPath) -> Result<AuthFile, AuthError> {
    let bytes = match std::fs::read(&p.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuthFile::default()),
        Err(e) => {
            return Err(AuthError::AuthFile {
                path: p.path.clone(),
                message: e.to_string(),
            });
        }
    };
    // serde_json's messages can quote the offending value (a secret): keep the position.
    let parse_err = |e: serde_json::Error| AuthError::AuthFile {
        path: p.path.clone(),
        message: format!(
            "unmarshaling JSON: invalid {} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "syntax",
                _ => "content",
            },
            e.line(),
            e.column()
        ),
    };
    if p.legacy {
        let auths = serde_json::from_slice(&bytes).map_err(parse_err)?;
        Ok(AuthFile {
            auths,
            ..AuthFile::default()
        })
    } else {
        serde_json::from_slice(&bytes).map_err(parse_err)
    }
}

fn from_auth_files(
    env: &Env,
    paths: &[AuthPath],
    key: &str,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    for p in paths {
        if let Some(c) = find_in_file(env, p, key, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn find_in_file(
    env: &Env,
    p: &AuthPath,
    key: &str,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    let file = read_auth_file(p)?;
    if let Some(helper) = file.cred_helpers.get(registry) {
        return from_helper(env, helper, registry);
    }
    let keys: Vec<&str> = if p.legacy {
        vec![registry]
    } else {
        key_and_parents(key)
    };
    for k in keys {
        if let Some(entry) = file.auths.get(k) {
            return decode(p, k, entry);
        }
    }
    let want = normalize_registry(registry);
    for (k, entry) in &file.auths {
        if normalize_auth_key(k, p.legacy) == want {
            return decode(p, k, entry);
        }
    }
    Ok(None)
}

/// `a/b/c`, `a/b`, `a`.
fn key_and_parents(key: &str) -> Vec<&str> {
    let mut out = vec![key];
    let mut k = key;
    while let Some(i) = k.rfind('/') {
        k = &k[..i];
        out.push(k);
    }
    out
}

fn normalize_registry(r: &str) -> &str {
    match r {
        "registry-1.docker.io" | "docker.io" => "index.docker.io",
        other => other,
    }
}

fn normalize_auth_key(key: &str, legacy: bool) -> &str {
    let stripped = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"));
    let host = match stripped {
        Some(s) => s.split('/').next().unwrap_or(s),
        None if legacy => key.split('/').next().unwrap_or(key),
        None => key,
    };
    normalize_registry(host)
}

fn decode(p: &AuthPath, key: &str, entry: &AuthEntry) -> Result<Option<Credentials>, AuthError> {
    if entry.auth.is_empty() {
        // An identity token alone (an OAuth login), or nothing (`{}`, a helper's marker).
        return Ok(non_empty(Credentials {
            identity_token: entry.identity_token.clone(),
            ..Credentials::default()
        }));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_bytes())
        .map_err(|_| AuthError::AuthFile {
            path: p.path.clone(),
            message: format!("the \"auth\" field of entry {key:?} is not valid base64"),
        })?;
    let text = String::from_utf8_lossy(&decoded);
    let Some((user, password)) = text.split_once(':') else {
        // Docker writes `"host": {}` next to a credential helper; a malformed entry
        // counts as none (containers/image warns and moves on).
        if !decoded.is_empty() {
            tracing::warn!(
                path = %p.path.display(),
                key,
                "the \"auth\" field of a credential entry has no ':'"
            );
        }
        return Ok(None);
    };
    Ok(non_empty(Credentials {
        username: user.to_owned(),
        password: password.trim_matches('\0').to_owned(),
        identity_token: entry.identity_token.clone(),
        registry_token: String::new(),
    }))
}

fn non_empty(c: Credentials) -> Option<Credentials> {
    (c != Credentials::default()).then_some(c)
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Finds `docker-credential-<name>` in the environment's `PATH`.
fn helper_program(env: &Env, helper: &str) -> Option<PathBuf> {
    let name = format!("docker-credential-{helper}");
    if helper.contains('/') {
        return None;
    }
    let path = env.var("PATH")?;
    std::env::split_paths(path)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

/// Runs `docker-credential-<helper> get` with the host on stdin (the docker
/// credential-helper protocol). "Not found" is `Ok(None)`; a `<token>` user means the
/// secret is an identity token.
fn from_helper(env: &Env, helper: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let err = |message: String| AuthError::Helper {
        helper: helper.to_owned(),
        message,
    };
    let program = helper_program(env, helper)
        .ok_or_else(|| err("executable file not found in $PATH".to_owned()))?;
    let mut child = Command::new(&program)
        .arg("get")
        .env_clear()
        .envs(&env.vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(format!("starting: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        // A helper that exits without reading its input is judged by its output.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let trimmed = text.trim();
    if !out.status.success() {
        if trimmed == HELPER_NOT_FOUND {
            return Ok(None);
        }
        // Only a plain-text message is repeated (never something that looks like a
        // credential document).
        let shown = if trimmed.starts_with('{') || trimmed.is_empty() {
            String::new()
        } else {
            format!(": {}", trimmed.chars().take(200).collect::<String>())
        };
        return Err(err(format!("get failed ({}){shown}", out.status)));
    }
    let parsed: HelperOutput = serde_json::from_str(trimmed)
        .map_err(|_| err("get printed something that is not credentials JSON".to_owned()))?;
    Ok(non_empty(if parsed.username == "<token>" {
        Credentials {
            identity_token: parsed.secret,
            ..Credentials::default()
        }
    } else {
        Credentials {
            username: parsed.username,
            password: parsed.secret,
            ..Credentials::default()
        }
    }))
}
