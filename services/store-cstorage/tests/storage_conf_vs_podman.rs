//! `config::resolve_in` against real podman: the store `podman info` reports for the same
//! user and environment. Rootless cases run podman as a user created for the test (and
//! deleted after it) inside a private PID and mount namespace, so podman's rootless pause
//! process and any mount end with the namespace. Needs root (to create the user) and
//! podman; fails otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use imaged_store_cstorage::config::{Environment, Overrides, resolve_in};
use imaged_testkit::podman::CONTAINERS_CONF;

/// A user that exists for one test.
struct TestUser {
    name: String,
    uid: u32,
    home: PathBuf,
}

impl TestUser {
    fn new(base: &Path) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates a user: run it as root (CI does)"
        );
        let name = format!("imgcfg{}", std::process::id());
        let home = base.join("home");
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name}");
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        let u = Self {
            name,
            uid: user.uid.as_raw(),
            home,
        };
        std::fs::create_dir_all(&u.home).unwrap();
        nix::unistd::chown(&u.home, Some(user.uid), Some(user.gid)).unwrap();
        u
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        // podman made them (its rootless XDG_RUNTIME_DIR and c/storage's run directory).
        let _ = std::fs::remove_dir_all(format!("/tmp/podman-run-{}", self.uid));
        let _ = std::fs::remove_dir_all(format!("/tmp/containers-user-{}", self.uid));
    }
}

/// `podman info`'s graph root, run root and driver, run as `uid` (0: root) with exactly
/// `vars` (and PATH, CONTAINERS_CONF) in private PID and mount namespaces.
fn podman_info(uid: u32, vars: &HashMap<String, String>, conf: &Path) -> (String, String, String) {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
    ]);
    if uid != 0 {
        cmd.arg("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups");
    }
    cmd.args(["env", "-i"])
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("CONTAINERS_CONF={}", conf.display()));
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.args([
        "podman",
        "info",
        "--format",
        "{{.Store.GraphRoot}}\t{{.Store.RunRoot}}\t{{.Store.GraphDriverName}}",
    ])
    .current_dir("/");
    let out = cmd.output().expect("podman");
    assert!(
        out.status.success(),
        "podman info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut f = text.trim().split('\t').map(str::to_owned);
    (f.next().unwrap(), f.next().unwrap(), f.next().unwrap())
}

fn ours(uid: u32, vars: &HashMap<String, String>) -> (String, String, String) {
    let env = Environment {
        uid,
        vars: vars.clone(),
        fs_root: PathBuf::from("/"),
    };
    let r = resolve_in(&env, &Overrides::default()).expect("resolve");
    (
        r.options.graph_root.display().to_string(),
        r.options.run_root.display().to_string(),
        r.options.driver.name().to_owned(),
    )
}

fn vars(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn rootless_paths_match_podman() {
    let base = tempfile::Builder::new()
        .prefix("imaged-cfg-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        base.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let conf = base.path().join("containers.conf");
    std::fs::write(&conf, CONTAINERS_CONF).unwrap();
    let user = TestUser::new(base.path());
    let home = user.home.display().to_string();
    let v = vars(&[("HOME", home.clone()), ("USER", user.name.clone())]);

    // 1. Nothing configured: ~/.local/share/containers/storage, /tmp/podman-run-<uid>.
    let expected = ours(user.uid, &v);
    assert_eq!(
        expected.0,
        format!("{home}/.local/share/containers/storage")
    );
    assert_eq!(podman_info(user.uid, &v, &conf), expected);
    // Once podman has recorded the store in its database, still the same.
    assert_eq!(ours(user.uid, &v), expected);

    // 2. XDG_DATA_HOME.
    let data = base.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    nix::unistd::chown(&data, Some(nix::unistd::Uid::from_raw(user.uid)), None).unwrap();
    let v2 = vars(&[
        ("HOME", home.clone()),
        ("USER", user.name.clone()),
        ("XDG_DATA_HOME", data.display().to_string()),
    ]);
    let expected = ours(user.uid, &v2);
    assert_eq!(expected.0, format!("{}/containers/storage", data.display()));
    assert_eq!(podman_info(user.uid, &v2, &conf), expected);

    // 3. The user's storage.conf with rootless_storage_path ($HOME, $UID, $USER expanded).
    let cfg = user.home.join(".config/containers");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("storage.conf"),
        "[storage]\ndriver = \"vfs\"\nrootless_storage_path = \"$HOME/rs/$UID/${USER}\"\n",
    )
    .unwrap();
    for d in [user.home.join(".config"), cfg.clone()] {
        nix::unistd::chown(&d, Some(nix::unistd::Uid::from_raw(user.uid)), None).unwrap();
    }
    let expected = ours(user.uid, &v);
    assert_eq!(expected.0, format!("{home}/rs/{}/{}", user.uid, user.name));
    assert_eq!(podman_info(user.uid, &v, &conf), expected);
}

#[test]
fn root_paths_match_podman() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs podman as root: run it as root (CI does)"
    );
    let base = tempfile::Builder::new()
        .prefix("imaged-cfg-")
        .tempdir()
        .unwrap();
    let conf = base.path().join("containers.conf");
    std::fs::write(&conf, CONTAINERS_CONF).unwrap();
    let b = base.path().display().to_string();

    // CONTAINERS_STORAGE_CONF without a driver: c/storage's choice (overlay here), which
    // podman then records.
    let sc = base.path().join("storage.conf");
    std::fs::write(
        &sc,
        format!("[storage]\ngraphroot = \"{b}/g1\"\nrunroot = \"{b}/r1\"\n"),
    )
    .unwrap();
    let v = vars(&[("CONTAINERS_STORAGE_CONF", sc.display().to_string())]);
    let expected = ours(0, &v);
    assert_eq!(
        (expected.0.as_str(), expected.1.as_str()),
        (&*format!("{b}/g1"), &*format!("{b}/r1"))
    );
    assert_eq!(podman_info(0, &v, &conf), expected);
    assert_eq!(ours(0, &v), expected);

    // XDG_CONFIG_HOME's file is root's storage.conf too (over /etc).
    let xdg = base.path().join("xdg");
    std::fs::create_dir_all(xdg.join("containers")).unwrap();
    std::fs::write(
        xdg.join("containers/storage.conf"),
        format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{b}/g2\"\nrunroot = \"{b}/r2\"\n"),
    )
    .unwrap();
    let v = vars(&[("XDG_CONFIG_HOME", xdg.display().to_string())]);
    let expected = ours(0, &v);
    assert_eq!(
        expected,
        (format!("{b}/g2"), format!("{b}/r2"), "vfs".to_owned())
    );
    assert_eq!(podman_info(0, &v, &conf), expected);
}
