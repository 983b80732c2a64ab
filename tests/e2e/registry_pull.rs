//! `imagectl pull` / `imagectl push` through the daemon against a real registry
//! (Debian's docker-registry on 127.0.0.1, plain HTTP, so `--tls-verify=false`): podman's
//! plain output, the image ID on stdout, the listing, pull policy `missing`, and a push
//! to another repository that pulls back as the same image.

use imaged_testkit::registry::Registry;
use imaged_tests::daemon::Custom;

use crate::both_stores;
use crate::support::*;

both_stores!(pull_then_push_round_trip, |d: Daemon| {
    let reg = Registry::start();
    let img = ImageSpec::new("registry-e2e").child("top");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&img)),
        "e2e/app:1",
        false,
    );
    let reference = format!("{}/e2e/app:1", reg.host());

    let run = d.imagectl(&["pull", "--tls-verify=false", &reference]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "the ID on stdout:\n{run}");
    let err: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(err[0], format!("Trying to pull {reference}..."), "{run}");
    assert_eq!(err[1], "Getting image source signatures", "{run}");
    let blobs = err
        .iter()
        .filter(|l| l.starts_with("Copying blob sha256:"))
        .count();
    assert_eq!(blobs, 2, "one line per layer:\n{run}");
    assert!(
        err.contains(&format!("Copying config {}", img.id()).as_str()),
        "{run}"
    );
    assert_eq!(
        err[err.len() - 2..],
        [
            "Writing manifest to image destination",
            "Storing signatures"
        ],
        "{run}"
    );
    let snap = snapshot(&d, &[]);
    let listed = snap.by_id(&img.id()).expect("pulled image listed");
    assert_eq!(listed.names(), [reference.as_str()], "{}", snap.raw);

    // Policy missing: the local image answers.
    let run = d.imagectl(&[
        "pull",
        "--policy",
        "missing",
        "--tls-verify=false",
        &reference,
    ]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");

    // Push to another repository; it pulls back as the same image.
    let copy = format!("{}/e2e/copy:2", reg.host());
    let run = d.imagectl(&["push", "--tls-verify=false", &reference, &copy]);
    run.ok();
    assert!(
        run.stdout.is_empty(),
        "push prints nothing on stdout: {run}"
    );
    assert!(
        run.stderr.contains("Writing manifest to image destination"),
        "{run}"
    );
    assert_eq!(
        reg.skopeo_raw("e2e/copy:2"),
        reg.skopeo_raw("e2e/app:1"),
        "same manifest bytes in both repositories"
    );
    let run = d.imagectl(&["pull", "--tls-verify=false", &copy]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");

    // Unknown repository: a failure, nothing new stored.
    let run = d.imagectl(&[
        "pull",
        "--tls-verify=false",
        &format!("{}/e2e/absent:1", reg.host()),
    ]);
    assert_ne!(run.code(), 0, "{run}");
    assert_eq!(snapshot(&d, &[]).images.len(), 1);
});

/// A daemon on the memory store with one more environment variable.
fn memory_daemon_with(key: &str, value: &std::ffi::OsStr) -> Daemon {
    memory_daemon_env(&[(key, value)])
}

/// A daemon on the memory store with more environment variables.
fn memory_daemon_env(vars: &[(&str, &std::ffi::OsStr)]) -> Daemon {
    Daemon::start_custom(
        "memory",
        Custom {
            args: Vec::new(),
            env: vars
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).to_owned()))
                .collect(),
        },
    )
}

/// A home directory whose `~/.config/containers/certs.d/<host:port>/` trusts `reg`'s CA.
fn home_trusting(reg: &Registry) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let certs = home
        .path()
        .join(".config/containers/certs.d")
        .join(reg.host());
    std::fs::create_dir_all(&certs).expect("certs.d");
    std::fs::copy(reg.ca_file(), certs.join("ca.crt")).expect("copy the CA");
    home
}

/// registries.conf as podman reads it (`$CONTAINERS_REGISTRIES_CONF`): a short name goes
/// through the unqualified-search registries (the insecure local registry, no
/// `--tls-verify` needed), and a registry's mirror serves a pull named after the registry
/// it mirrors (the registry itself is unreachable).
#[test]
fn short_names_and_mirrors_from_registries_conf() {
    let reg = Registry::start();
    let img = ImageSpec::new("registry-conf-e2e");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&img)),
        "conf/app:1",
        false,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"unqualified-search-registries = ["{host}"]

[[registry]]
location = "{host}"
insecure = true

[[registry]]
location = "mirrored.invalid:5000"

[[registry.mirror]]
location = "{host}"
insecure = true
"#,
            host = reg.host()
        ),
    )
    .expect("write registries.conf");
    let d = memory_daemon_with("CONTAINERS_REGISTRIES_CONF", conf.as_os_str());

    let run = d.imagectl(&["pull", "conf/app:1"]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
    let snap = snapshot(&d, &[]);
    let listed = snap.by_id(&img.id()).expect("pulled image listed");
    let qualified = format!("{}/conf/app:1", reg.host());
    assert_eq!(listed.names(), [qualified.as_str()], "{}", snap.raw);

    let run = d.imagectl(&["pull", "mirrored.invalid:5000/conf/app:1"]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
    let snap = snapshot(&d, &[]);
    let listed = snap.by_id(&img.id()).expect("pulled image listed");
    let mut names = listed.names();
    names.sort();
    assert_eq!(
        names,
        [qualified.as_str(), "mirrored.invalid:5000/conf/app:1"],
        "{}",
        snap.raw
    );

    // A short name that is in no search registry: not found, every candidate tried.
    let run = d.imagectl(&["pull", "conf/absent:1"]);
    assert_ne!(run.code(), 0, "{run}");
    assert!(
        run.stderr
            .contains(&format!("{}/conf/absent:1", reg.host())),
        "{run}"
    );
}

/// A registry serving HTTPS with a certificate from a CA only
/// `~/.config/containers/certs.d/<host:port>/` holds: trusted there (TLS verified, no
/// `--tls-verify=false`), refused with TLS_FAILURE by a daemon without it.
#[test]
fn certs_d_ca_files_are_trusted() {
    let reg = Registry::start_tls();
    let img = ImageSpec::new("registry-tls-e2e");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&img)),
        "tls/app:1",
        false,
    );
    let reference = format!("{}/tls/app:1", reg.host());

    // Without the CA: the certificate is not trusted.
    let bare = tempfile::tempdir().expect("tempdir");
    let d = memory_daemon_with("HOME", bare.path().as_os_str());
    let run = d.imagectl(&["pull", &reference]);
    assert_ne!(run.code(), 0, "{run}");
    assert!(
        run.stderr.contains("TLS_FAILURE") || run.stderr.to_lowercase().contains("certificate"),
        "{run}"
    );
    drop(d);

    // With it in certs.d.
    let home = home_trusting(&reg);
    let d = memory_daemon_with("HOME", home.path().as_os_str());
    let run = d.imagectl(&["pull", &reference]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
}

/// A registry behind TLS and htpasswd basic auth (bcrypt): no credentials and a wrong
/// password are REGISTRY_UNAUTHORIZED with nothing stored; `--creds`, `--authfile` and
/// the daemon's own `$REGISTRY_AUTH_FILE` pull; a push with `--creds` lands; the password
/// appears nowhere in replies or the daemon's log.
#[test]
fn a_password_registry_takes_the_right_credentials_only() {
    const PASSWORD: &str = "pa55-E2E-secret";
    let reg = Registry::start_auth("alice", PASSWORD);
    let img = ImageSpec::new("registry-auth-e2e").child("top");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&img)),
        "auth/app:1",
        false,
    );
    let reference = format!("{}/auth/app:1", reg.host());
    let home = home_trusting(&reg);
    let d = memory_daemon_with("HOME", home.path().as_os_str());

    for creds in [None, Some("alice:wrong-password"), Some("mallory:x")] {
        let mut args = vec!["pull"];
        let flag;
        if let Some(c) = creds {
            flag = format!("--creds={c}");
            args.push(&flag);
        }
        args.push(&reference);
        let run = d.imagectl(&args);
        assert_ne!(run.code(), 0, "{creds:?}: {run}");
        assert!(
            run.stderr
                .contains("refused the credentials (unauthorized)"),
            "{creds:?}: {run}"
        );
        assert!(!run.stderr.contains("wrong-password"), "{run}");
    }
    assert!(snapshot(&d, &[]).images.is_empty());
    assert_eq!(
        d.log().matches("reason=\"REGISTRY_UNAUTHORIZED\"").count(),
        3,
        "{}",
        d.log()
    );

    let good = format!("--creds=alice:{PASSWORD}");
    let run = d.imagectl(&["pull", &good, &reference]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
    // Credentials stay with the request that gave them: the next one without is refused.
    let run = d.imagectl(&["pull", &reference]);
    assert!(run.stderr.contains("(unauthorized)"), "{run}");

    let copy = format!("{}/auth/copy:2", reg.host());
    d.imagectl(&["push", &good, &reference, &copy]).ok();
    assert_eq!(reg.skopeo_raw("auth/copy:2"), reg.skopeo_raw("auth/app:1"));
    let run = d.imagectl(&["push", "--creds=alice:wrong-password", &reference, &copy]);
    assert!(run.stderr.contains("(unauthorized)"), "{run}");

    // An auth file given to imagectl, and one the daemon reads itself.
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("alice:{PASSWORD}"),
    );
    let authfile = home.path().join("auth.json");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#, reg.host()),
    )
    .expect("write auth.json");
    let run = d.imagectl(&["rm", &reference]);
    run.ok();
    let run = d.imagectl(&[
        "pull",
        "--authfile",
        &authfile.to_string_lossy(),
        &reference,
    ]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
    let log = d.log();
    assert!(!log.contains(PASSWORD) && !log.contains(&encoded), "{log}");
    drop(d);

    let d = memory_daemon_env(&[
        ("HOME", home.path().as_os_str()),
        ("REGISTRY_AUTH_FILE", authfile.as_os_str()),
    ]);
    let run = d.imagectl(&["pull", &reference]);
    run.ok();
    assert_eq!(run.lines(), [img.hex_id()], "{run}");
    let log = d.log();
    assert!(!log.contains(PASSWORD) && !log.contains(&encoded), "{log}");
}
