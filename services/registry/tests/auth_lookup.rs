//! Credential lookup as podman/skopeo do it: auth file precedence, credential helpers
//! (a tiny script helper), namespaced keys, Docker Hub's legacy key, secrets kept out of
//! errors and Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use imaged_core::transfer::Credentials;
use imaged_registry::auth::{self, AuthError, AuthOptions};
use imaged_registry::conf::Env;

struct Fs {
    t: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    bin: PathBuf,
}

impl Fs {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let root = t.path().join("root");
        let bin = t.path().join("bin");
        for d in [&home, &root, &bin] {
            fs::create_dir_all(d).unwrap();
        }
        Self { t, home, root, bin }
    }
    fn env(&self) -> Env {
        Env::new(&self.home, &self.root).with_var("PATH", self.bin.to_str().unwrap())
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }
    fn write(&self, p: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
        p.to_owned()
    }
    /// A `docker-credential-<name>` that logs the host it was asked for to `<name>.log`
    /// and answers per host: `user/secret` for `known.io`, a `<token>` for `token.io`,
    /// "not found" for the rest, and a failure for `broken.io`.
    fn helper(&self, name: &str) {
        let log = self.t.path().join(format!("{name}.log"));
        let script = format!(
            r#"#!/bin/sh
[ "$1" = get ] || exit 3
read -r host
printf '%s\n' "$host" >> '{log}'
case "$host" in
  known.io|docker.io) printf '{{"ServerURL":"%s","Username":"{name}-user","Secret":"{name}-secret"}}' "$host" ;;
  token.io) printf '{{"ServerURL":"%s","Username":"<token>","Secret":"refresh-tok"}}' "$host" ;;
  broken.io) echo 'helper exploded'; exit 1 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#,
            log = log.display()
        );
        let p = self.bin.join(format!("docker-credential-{name}"));
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fn helper_log(&self, name: &str) -> String {
        fs::read_to_string(self.t.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn auths(entries: &[(&str, &str)]) -> String {
    let m: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, up)| ((*k).to_owned(), serde_json::json!({ "auth": b64(up) })))
        .collect();
    serde_json::json!({ "auths": m }).to_string()
}

fn user(c: Option<Credentials>) -> Option<(String, String)> {
    c.map(|c| (c.username, c.password))
}

fn up(u: &str, p: &str) -> Option<(String, String)> {
    Some((u.to_owned(), p.to_owned()))
}

#[test]
fn nothing_configured_is_no_credentials() {
    let f = Fs::new();
    assert_eq!(auth::lookup(&f.env(), "quay.io", "a/b").unwrap(), None);
}

#[test]
fn auth_file_precedence() {
    let f = Fs::new();
    let run = f.path("run");
    fs::create_dir_all(&run).unwrap();
    let env = f.env().with_var("XDG_RUNTIME_DIR", run.to_str().unwrap());
    let look = |env: &Env| user(auth::lookup(env, "r.io", "app").unwrap());

    f.write(
        &f.home.join(".dockercfg"),
        &serde_json::json!({"https://r.io/v1/": {"auth": b64("legacy:1")}}).to_string(),
    );
    assert_eq!(look(&env), up("legacy", "1"));
    f.write(
        &f.home.join(".docker/config.json"),
        &auths(&[("r.io", "docker:2")]),
    );
    assert_eq!(look(&env), up("docker", "2"));
    f.write(
        &f.home.join(".config/containers/auth.json"),
        &auths(&[("r.io", "xdgconfig:3")]),
    );
    assert_eq!(look(&env), up("xdgconfig", "3"));
    f.write(
        &run.join("containers/auth.json"),
        &auths(&[("r.io", "runtime:4")]),
    );
    assert_eq!(look(&env), up("runtime", "4"));

    // $REGISTRY_AUTH_FILE replaces the runtime file as the first one.
    let explicit = f.write(&f.path("explicit.json"), &auths(&[("r.io", "explicit:5")]));
    let env_explicit = env
        .clone()
        .with_var("REGISTRY_AUTH_FILE", explicit.to_str().unwrap());
    assert_eq!(look(&env_explicit), up("explicit", "5"));
    // ... and the request's --authfile replaces $REGISTRY_AUTH_FILE.
    let req = f.write(&f.path("req.json"), &auths(&[("r.io", "request:6")]));
    let opts = AuthOptions {
        authfile: Some(req),
        ..AuthOptions::default()
    };
    assert_eq!(
        user(auth::lookup_with(&env_explicit, &opts, "r.io", "app").unwrap()),
        up("request", "6")
    );
    // A file without the host falls through to the next (not to the runtime file it
    // replaced).
    let other = f.write(&f.path("other.json"), &auths(&[("else.io", "x:y")]));
    let env_other = env
        .clone()
        .with_var("REGISTRY_AUTH_FILE", other.to_str().unwrap());
    assert_eq!(look(&env_other), up("xdgconfig", "3"));
}

#[test]
fn explicit_auth_file_must_exist() {
    let f = Fs::new();
    let env = f.env().with_var(
        "REGISTRY_AUTH_FILE",
        f.path("missing.json").to_str().unwrap(),
    );
    let e = auth::lookup(&env, "r.io", "app").unwrap_err();
    assert!(matches!(e, AuthError::AuthFileMissing { .. }), "{e}");
}

#[test]
fn docker_config_replaces_the_docker_file_and_the_runtime_file() {
    let f = Fs::new();
    let run = f.path("run");
    f.write(
        &run.join("containers/auth.json"),
        &auths(&[("r.io", "runtime:1")]),
    );
    f.write(
        &f.home.join(".docker/config.json"),
        &auths(&[("r.io", "homedocker:2")]),
    );
    let dc = f.path("dockercfgdir");
    f.write(&dc.join("config.json"), &auths(&[("other.io", "dc:3")]));
    let env = f
        .env()
        .with_var("XDG_RUNTIME_DIR", run.to_str().unwrap())
        .with_var("DOCKER_CONFIG", dc.to_str().unwrap());
    // podman's default --authfile is $DOCKER_CONFIG/config.json: the runtime file and
    // ~/.docker/config.json are not read.
    assert_eq!(auth::lookup(&env, "r.io", "app").unwrap(), None);
    assert_eq!(
        user(auth::lookup(&env, "other.io", "app").unwrap()),
        up("dc", "3")
    );
    let paths = auth::auth_file_paths(&env, None).unwrap();
    assert!(paths.iter().all(|p| !p.path.starts_with(&run)));
}

#[test]
fn missing_runtime_dir_is_skipped_and_root_default_is_per_uid() {
    let f = Fs::new();
    let env = f
        .env()
        .with_var("XDG_RUNTIME_DIR", f.path("gone").to_str().unwrap());
    f.write(
        &f.home.join(".config/containers/auth.json"),
        &auths(&[("r.io", "cfg:1")]),
    );
    assert_eq!(
        user(auth::lookup(&env, "r.io", "x").unwrap()),
        up("cfg", "1")
    );
    // No XDG_RUNTIME_DIR: /run/containers/<uid>/auth.json under the root.
    f.write(
        &f.root.join("run/containers/0/auth.json"),
        &auths(&[("r.io", "uid0:2")]),
    );
    assert_eq!(
        user(auth::lookup(&f.env(), "r.io", "x").unwrap()),
        up("uid0", "2")
    );
    f.write(
        &f.root.join("run/containers/1000/auth.json"),
        &auths(&[("r.io", "uid1000:3")]),
    );
    assert_eq!(
        user(auth::lookup(&f.env().rootless_as(1000), "r.io", "x").unwrap()),
        up("uid1000", "3")
    );
    // XDG_CONFIG_HOME moves the second file.
    let xdg = f.path("xdg");
    f.write(
        &xdg.join("containers/auth.json"),
        &auths(&[("s.io", "xdg:4")]),
    );
    let env = f.env().with_var("XDG_CONFIG_HOME", xdg.to_str().unwrap());
    assert_eq!(
        user(auth::lookup(&env, "s.io", "x").unwrap()),
        up("xdg", "4")
    );
}

#[test]
fn namespaced_keys_most_specific_first() {
    let f = Fs::new();
    let file = f.write(
        &f.path("a.json"),
        &auths(&[
            ("quay.io", "host:0"),
            ("quay.io/org", "org:1"),
            ("quay.io/org/team/app", "repo:2"),
        ]),
    );
    let env = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file.to_str().unwrap());
    let l = |repo: &str| user(auth::lookup(&env, "quay.io", repo).unwrap());
    assert_eq!(l("org/team/app"), up("repo", "2"));
    assert_eq!(l("org/team/other"), up("org", "1"));
    assert_eq!(l("org/app"), up("org", "1"));
    assert_eq!(l("organisation/app"), up("host", "0"));
    assert_eq!(l("other/app"), up("host", "0"));
    assert_eq!(
        user(auth::lookup(&env, "quay.io:443", "org/app").unwrap()),
        None
    );
}

#[test]
fn docker_hub_legacy_key_and_urls() {
    let f = Fs::new();
    let file = f.write(
        &f.path("a.json"),
        &auths(&[
            ("https://index.docker.io/v1/", "hub:1"),
            ("http://insecure.local:5000/v2/", "ins:2"),
        ]),
    );
    let env = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file.to_str().unwrap());
    assert_eq!(
        user(auth::lookup(&env, "docker.io", "library/busybox").unwrap()),
        up("hub", "1")
    );
    assert_eq!(
        user(auth::lookup(&env, "registry-1.docker.io", "library/busybox").unwrap()),
        up("hub", "1")
    );
    assert_eq!(
        user(auth::lookup(&env, "insecure.local:5000", "x").unwrap()),
        up("ins", "2")
    );
    // An exact docker.io key wins over the legacy one.
    let file2 = f.write(
        &f.path("b.json"),
        &auths(&[
            ("https://index.docker.io/v1/", "hub:1"),
            ("docker.io", "new:2"),
        ]),
    );
    let env2 = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file2.to_str().unwrap());
    assert_eq!(
        user(auth::lookup(&env2, "docker.io", "library/busybox").unwrap()),
        up("new", "2")
    );
}

#[test]
fn identity_token_password_with_colons_and_nul_padding() {
    let f = Fs::new();
    let doc = serde_json::json!({"auths": {
        "a.io": {"auth": b64("u:p:with:colons\0\0"), "identitytoken": "idtok"},
        "empty.io": {},
        "bad.io": {"auth": "!!!not base64"},
        "token-only.io": {"identitytoken": "only-tok"},
    }});
    let file = f.write(&f.path("a.json"), &doc.to_string());
    let env = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file.to_str().unwrap());
    let c = auth::lookup(&env, "a.io", "x").unwrap().unwrap();
    assert_eq!(c.username, "u");
    assert_eq!(c.password, "p:with:colons");
    assert_eq!(c.identity_token, "idtok");
    // `{}` entries (Docker's helper markers) are no credentials.
    assert_eq!(auth::lookup(&env, "empty.io", "x").unwrap(), None);
    // An identity token alone is credentials (Docker reads it so).
    let t = auth::lookup(&env, "token-only.io", "x").unwrap().unwrap();
    assert_eq!(t.identity_token, "only-tok");
    assert!(t.username.is_empty() && t.password.is_empty());
    let e = auth::lookup(&env, "bad.io", "x").unwrap_err();
    assert!(!e.to_string().contains("!!!"), "{e}");
}

#[test]
fn cred_helpers_in_auth_files_get_the_host_on_stdin() {
    let f = Fs::new();
    f.helper("fake");
    let doc = serde_json::json!({
        "auths": {"known.io": {"auth": b64("file:ignored")}},
        "credHelpers": {"known.io": "fake", "token.io": "fake", "nothing.io": "fake", "broken.io": "fake"}
    });
    f.write(&f.home.join(".docker/config.json"), &doc.to_string());
    let env = f.env();
    // credHelpers beats auths in the same file.
    assert_eq!(
        user(auth::lookup(&env, "known.io", "org/app").unwrap()),
        up("fake-user", "fake-secret")
    );
    assert_eq!(f.helper_log("fake"), "known.io\n");
    let t = auth::lookup(&env, "token.io", "app").unwrap().unwrap();
    assert_eq!(t.identity_token, "refresh-tok");
    assert!(t.username.is_empty() && t.password.is_empty());
    assert_eq!(auth::lookup(&env, "nothing.io", "app").unwrap(), None);
    let e = auth::lookup(&env, "broken.io", "app").unwrap_err();
    assert!(matches!(e, AuthError::Helper { .. }), "{e}");
    assert!(e.to_string().contains("helper exploded"), "{e}");
}

#[test]
fn global_credential_helpers_in_order() {
    let f = Fs::new();
    f.helper("first");
    f.helper("second");
    f.write(
        &f.home.join(".docker/config.json"),
        &auths(&[("file.io", "file:1"), ("known.io", "file:2")]),
    );
    let opts = AuthOptions {
        authfile: None,
        credential_helpers: vec![
            "first".into(),
            "containers-auth.json".into(),
            "second".into(),
        ],
    };
    let env = f.env();
    assert_eq!(
        user(auth::lookup_with(&env, &opts, "known.io", "a").unwrap()),
        up("first-user", "first-secret")
    );
    assert_eq!(
        user(auth::lookup_with(&env, &opts, "file.io", "a").unwrap()),
        up("file", "1")
    );
    // Helpers get the host only (not the namespace).
    assert!(
        f.helper_log("first")
            .lines()
            .all(|l| l == "known.io" || l == "file.io")
    );
    // One helper failing does not hide another's credentials; all failing is an error.
    let opts2 = AuthOptions {
        authfile: None,
        credential_helpers: vec!["missing".into(), "second".into()],
    };
    assert_eq!(
        user(auth::lookup_with(&env, &opts2, "known.io", "a").unwrap()),
        up("second-user", "second-secret")
    );
    let opts3 = AuthOptions {
        authfile: None,
        credential_helpers: vec!["missing".into(), "first".into()],
    };
    let e = auth::lookup_with(&env, &opts3, "broken.io", "a").unwrap_err();
    assert!(
        matches!(e, AuthError::Multiple(ref v) if v.len() == 2),
        "{e}"
    );
}

#[test]
fn request_credentials_only_for_their_registry() {
    let f = Fs::new();
    f.write(
        &f.home.join(".docker/config.json"),
        &auths(&[("mirror.local", "mirroruser:m")]),
    );
    let req = Credentials {
        username: "requser".into(),
        password: "reqpass".into(),
        ..Credentials::default()
    };
    let o = AuthOptions::default();
    let env = f.env();
    assert_eq!(
        user(
            auth::credentials_for(&env, &o, Some(&req), "docker.io", "docker.io", "library/x")
                .unwrap()
        ),
        up("requser", "reqpass")
    );
    assert_eq!(
        user(
            auth::credentials_for(
                &env,
                &o,
                Some(&req),
                "docker.io",
                "mirror.local",
                "library/x"
            )
            .unwrap()
        ),
        up("mirroruser", "m")
    );
    assert_eq!(
        auth::credentials_for(&env, &o, None, "a.io", "a.io", "x").unwrap(),
        None
    );
}

#[test]
fn secrets_stay_out_of_errors_and_debug() {
    let f = Fs::new();
    // A malformed file whose parse error would quote the secret.
    let file = f.write(&f.path("a.json"), r#"{"auths": {"a.io": "TOPSECRET"}}"#);
    let env = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file.to_str().unwrap());
    let e = auth::lookup(&env, "a.io", "x").unwrap_err();
    assert!(!e.to_string().contains("TOPSECRET"), "{e}");
    assert!(!format!("{e:?}").contains("TOPSECRET"), "{e:?}");
    let file = f.write(&f.path("b.json"), &auths(&[("a.io", "u:TOPSECRET")]));
    let env = f
        .env()
        .with_var("REGISTRY_AUTH_FILE", file.to_str().unwrap());
    let c = auth::lookup(&env, "a.io", "x").unwrap().unwrap();
    assert_eq!(c.password, "TOPSECRET");
    assert!(!format!("{c:?}").contains("TOPSECRET"));
    // Malformed keys are refused.
    assert!(matches!(
        auth::lookup(&env, "a.io", "x@sha256"),
        Err(AuthError::Key(_))
    ));
}
