use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    // Token files must not be open to others; no test file needs to be.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn root_defaults() {
    let s = load(&Flags::default(), &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(s.listen, [Listen::Unix("/run/imaged/imaged.sock".into())]);
    assert_eq!(s.store, StoreKind::Local);
    assert_eq!(s.root, PathBuf::from("/var/lib/imaged"));
    assert_eq!(s.grace_period, Duration::from_secs(10));
    assert_eq!(s.max_load_bytes, 16 << 30);
    assert_eq!(s.min_free_bytes, 64 << 20);
    assert_eq!(
        s.limits,
        crate::conn::Limits {
            max_connections: 512,
            max_connections_per_peer: 128,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    );
    assert_eq!(s.log, "info");
}

#[test]
fn platform_from_file_and_env() {
    let s = load(&Flags::default(), &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(s.platform, imaged_core::model::Platform::host());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "p.toml", "platform = \"linux/arm64/v8\"\n");
    let flags = Flags {
        config: Some(file),
        ..Flags::default()
    };
    let s = load(&flags, &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(
        (
            s.platform.os.as_str(),
            s.platform.architecture.as_str(),
            s.platform.variant.as_str()
        ),
        ("linux", "arm64", "v8")
    );
    let s = load(
        &flags,
        &env(&[("IMAGED_PLATFORM", "linux/s390x")]),
        true,
        Purpose::Serve,
    )
    .expect("valid");
    assert_eq!(s.platform.architecture, "s390x");
    assert!(s.platform.variant.is_empty());
}

#[test]
fn user_defaults() {
    let e = env(&[("XDG_RUNTIME_DIR", "/run/user/1000"), ("HOME", "/home/u")]);
    let s = load(&Flags::default(), &e, false, Purpose::Serve).expect("valid");
    assert_eq!(
        s.listen,
        [Listen::Unix("/run/user/1000/imaged/imaged.sock".into())]
    );
    assert_eq!(s.root, PathBuf::from("/home/u/.local/share/imaged"));
    let e = env(&[
        ("XDG_RUNTIME_DIR", "/r"),
        ("XDG_DATA_HOME", "/data"),
        ("HOME", "/home/u"),
    ]);
    let s = load(&Flags::default(), &e, false, Purpose::Serve).expect("valid");
    assert_eq!(s.root, PathBuf::from("/data/imaged"));
}

#[test]
fn user_without_runtime_dir_must_pass_listen() {
    let errs = load(
        &Flags::default(),
        &env(&[("HOME", "/h")]),
        false,
        Purpose::Serve,
    )
    .expect_err("no XDG_RUNTIME_DIR");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("--listen"), "{errs:?}");
    // fsck does not need a listener.
    assert!(
        load(
            &Flags::default(),
            &env(&[("HOME", "/h")]),
            false,
            Purpose::Fsck
        )
        .is_ok()
    );
}

#[test]
fn flags_win_over_env_over_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.toml",
        "store = \"local\"\nroot = \"/from/file\"\nlisten = [\"unix:///file.sock\"]\nlog = \"warn\"\n",
    );
    let flags = Flags {
        config: Some(file.clone()),
        listen: vec!["unix:///flag.sock".into()],
        ..Flags::default()
    };
    let e = env(&[
        ("IMAGED_STORE", "memory"),
        ("IMAGED_ROOT", "/from/env"),
        ("IMAGED_LISTEN", "unix:///env.sock"),
    ]);
    let s = load(&flags, &e, true, Purpose::Serve).expect("valid");
    assert_eq!(s.store, StoreKind::Memory, "env over file");
    assert_eq!(s.root, PathBuf::from("/from/env"), "env over file");
    assert_eq!(
        s.listen,
        [Listen::Unix("/flag.sock".into())],
        "flag over env"
    );
    assert_eq!(s.log, "warn", "file value kept");
    let flags = Flags {
        root: Some("/from/flag".into()),
        ..flags
    };
    assert_eq!(
        load(&flags, &e, true, Purpose::Serve).expect("valid").root,
        PathBuf::from("/from/flag")
    );
    // IMAGED_CONFIG names the file when --config is absent.
    let e = env(&[("IMAGED_CONFIG", file.to_str().expect("utf8"))]);
    assert_eq!(
        load(&Flags::default(), &e, true, Purpose::Serve)
            .expect("valid")
            .log,
        "warn"
    );
}

#[test]
fn every_error_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "bad.toml",
        r#"
        store = "nope"
        listen = ["http://x", "tcp://0.0.0.0:5000", "unix://relative"]
        grace_period = -1
        metrics_listen = "0.0.0.0:9000"
        max_load_bytes = 0
        min_free_bytes = -1
        log = "a=b=c"
        unknown_key = 1
        search_registries = ["quay.io/x"]
        platform = "linux"
        [auth]
        admin_uids = [-5]
        admin_token_file = "/nonexistent/token"
        [tls]
        key = "k.pem"
        "#,
    );
    let flags = Flags {
        config: Some(file),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("invalid");
    let all = errs.join("\n");
    for needle in [
        "store: unknown store \"nope\"",
        "listen: http://x",
        "listen: tcp://0.0.0.0:5000: TCP needs [tls]",
        "listen: unix://relative",
        "grace_period",
        "metrics_listen: 0.0.0.0:9000 is not a loopback address",
        "max_load_bytes",
        "min_free_bytes: must be a number of bytes",
        "log: invalid filter",
        "unknown_key`: unknown key",
        "search_registries[0]",
        "platform: \"linux\" is not OS/ARCH",
        "auth.admin_uids[0]",
        "auth.admin_token_file: cannot read /nonexistent/token",
        "tls: cert and key must be given together",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(errs.len(), 15, "{all}");
}

#[test]
fn plain_tcp_only_on_loopback_with_insecure_tcp() {
    let flags = Flags {
        listen: vec!["tcp://127.0.0.1:0".into()],
        ..Flags::default()
    };
    assert!(
        load(&flags, &env(&[]), true, Purpose::Serve).is_err(),
        "needs insecure_tcp"
    );
    let e = env(&[("IMAGED_INSECURE_TCP", "true")]);
    let s = load(&flags, &e, true, Purpose::Serve).expect("valid");
    assert_eq!(
        s.listen,
        [Listen::Tcp("127.0.0.1:0".parse().expect("addr"))]
    );
    let flags = Flags {
        listen: vec!["tcp://192.0.2.1:80".into()],
        ..Flags::default()
    };
    assert!(
        load(&flags, &e, true, Purpose::Serve).is_err(),
        "never on a non-loopback address"
    );
    let flags = Flags {
        listen: vec!["tcp://localhost:7".into(), "tcp://127.0.0.1:7".into()],
        ..Flags::default()
    };
    let errs = load(&flags, &e, true, Purpose::Serve).expect_err("duplicate");
    assert!(errs[0].contains("given twice"), "{errs:?}");
}

#[test]
fn token_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = write(
        dir.path(),
        "admin.token",
        "# admins\n\n0123456789abcdef0123\n",
    );
    let short = write(dir.path(), "short.token", "abc\n");
    let text = format!(
        "[auth]\nadmin_token_file = {:?}\nreader_token_file = {:?}\n",
        admin.display().to_string(),
        short.display().to_string()
    );
    let file = write(dir.path(), "c.toml", &text);
    let flags = Flags {
        config: Some(file.clone()),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("short token");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("short.token line 1"), "{errs:?}");

    std::fs::write(&short, "fedcba9876543210fedc\n").expect("write");
    let s = load(&flags, &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(
        s.auth.admin_tokens,
        [Token::new("admin.token:3", "0123456789abcdef0123")]
    );
    assert_eq!(s.auth.reader_tokens.len(), 1);
}

/// Issue 11: a token file others may read (or write) is refused, as ssh refuses such a
/// private key; owner and group access are fine.
#[test]
fn token_files_open_to_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = write(dir.path(), "admin.token", "0123456789abcdef0123\n");
    let text = format!(
        "[auth]\nadmin_token_file = {:?}\n",
        token.display().to_string()
    );
    let flags = Flags {
        config: Some(write(dir.path(), "c.toml", &text)),
        ..Flags::default()
    };
    for mode in [0o644, 0o604, 0o602, 0o666] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("open to others");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("auth.admin_token_file: ")
                && errs[0].contains(&format!("mode {mode:04o}"))
                && errs[0].contains("chmod o-rwx"),
            "{errs:?}"
        );
    }
    for mode in [0o600, 0o640, 0o400] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let s = load(&flags, &env(&[]), true, Purpose::Serve).expect("owner/group only");
        assert_eq!(s.auth.admin_tokens.len(), 1);
    }
}

#[test]
fn tls_files_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = write(dir.path(), "c.pem", "not a certificate");
    let key = write(dir.path(), "k.pem", "not a key");
    let text = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let flags = Flags {
        config: Some(write(dir.path(), "c.toml", &text)),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("bad PEM");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("tls: "), "{errs:?}");

    let text = "[tls]\nclient_ca = \"/ca.pem\"\n";
    let flags = Flags {
        config: Some(write(dir.path(), "d.toml", text)),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("ca without cert");
    assert!(
        errs[0].contains("tls.client_ca: needs tls.cert"),
        "{errs:?}"
    );
}

#[test]
fn listen_urls() {
    assert_eq!(
        parse_listen("unix:///a/b.sock"),
        Ok(Listen::Unix("/a/b.sock".into()))
    );
    assert_eq!(
        parse_listen("tcp://[::1]:0"),
        Ok(Listen::Tcp("[::1]:0".parse().expect("addr")))
    );
    assert_eq!(
        parse_listen("tcp://localhost:80"),
        Ok(Listen::Tcp("127.0.0.1:80".parse().expect("addr")))
    );
    assert!(parse_listen("unix://").is_err());
    assert!(parse_listen("unix:///dir/").is_err());
    assert!(parse_listen("tcp://example.com:80").is_err());
    assert!(parse_listen("/a.sock").is_err());
    assert_eq!(
        Listen::Tcp("127.0.0.1:5".parse().expect("addr")).to_string(),
        "tcp://127.0.0.1:5"
    );
}

#[test]
fn load_limits_from_file_and_env() {
    let s = load(&Flags::default(), &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(s.max_load_unpacked_bytes, 64 << 30, "4 × max_load_bytes");
    assert_eq!(s.max_load_header_bytes, 1 << 20);
    assert_eq!(s.max_load_metadata_bytes, 4 << 20);
    assert_eq!(s.max_load_metadata_total_bytes, 64 << 20);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "limits.toml",
        "max_load_bytes = 5000000\nmax_load_header_bytes = 4096\nmax_load_metadata_bytes = 65536\n",
    );
    let flags = Flags {
        config: Some(file),
        ..Flags::default()
    };
    let e = env(&[("IMAGED_MAX_LOAD_METADATA_TOTAL_BYTES", "1048576")]);
    let s = load(&flags, &e, true, Purpose::Serve).expect("valid");
    assert_eq!(
        s.max_load_unpacked_bytes, 20_000_000,
        "unset: 4 × max_load_bytes"
    );
    assert_eq!(s.max_load_header_bytes, 4096);
    assert_eq!(s.max_load_metadata_bytes, 65536);
    assert_eq!(s.max_load_metadata_total_bytes, 1 << 20);

    let e = env(&[
        ("IMAGED_MAX_LOAD_UNPACKED_BYTES", "0"),
        ("IMAGED_MAX_LOAD_HEADER_BYTES", "512"),
        ("IMAGED_MAX_LOAD_METADATA_BYTES", "lots"),
    ]);
    let errs = load(&Flags::default(), &e, true, Purpose::Serve).expect_err("invalid");
    let all = errs.join("\n");
    for needle in [
        "max_load_unpacked_bytes: must be a positive number of bytes",
        "max_load_header_bytes: must be at least 1024",
        "IMAGED_MAX_LOAD_METADATA_BYTES: expected an integer",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn connection_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = |text: &str| Flags {
        config: Some(write(dir.path(), "c.toml", text)),
        ..Flags::default()
    };
    let s = load(
        &cfg("max_connections = 8\nmax_connections_per_peer = 2\nhandshake_timeout = 0.5\nidle_timeout = 20\n"),
        &env(&[]),
        true,
        Purpose::Serve,
    )
    .expect("valid");
    assert_eq!(s.limits.max_connections, 8);
    assert_eq!(s.limits.max_connections_per_peer, 2);
    assert_eq!(s.limits.handshake_timeout, Duration::from_millis(500));
    assert_eq!(s.limits.idle_timeout, Duration::from_secs(20));
    assert_eq!(s.load_idle_timeout, Duration::from_secs(60), "the default");
    let s = load(
        &cfg("load_idle_timeout = 2.5\n"),
        &env(&[]),
        true,
        Purpose::Serve,
    )
    .expect("valid");
    assert_eq!(s.load_idle_timeout, Duration::from_millis(2500));
    let errs = load(
        &cfg("max_connections = 0\nmax_connections_per_peer = -1\nhandshake_timeout = 0\nidle_timeout = \"x\"\n"),
        &env(&[]),
        true,
        Purpose::Serve,
    )
    .expect_err("invalid");
    let joined = errs.join("\n");
    for needle in [
        "max_connections: must be a positive number",
        "max_connections_per_peer: must be a positive number",
        "handshake_timeout: 0 is not a number of seconds",
        "`idle_timeout`: expected a number of seconds",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
    let errs = load(
        &cfg("max_connections = 4\nmax_connections_per_peer = 5\n"),
        &env(&[]),
        true,
        Purpose::Serve,
    )
    .expect_err("per peer over total");
    assert!(
        errs[0].contains("more than max_connections (4)"),
        "{errs:?}"
    );
}

#[test]
fn containers_storage_store() {
    use imaged_store_cstorage::config::{Driver, Overrides};
    // No flags: nothing overridden (storage.conf and podman's database decide at open),
    // and no imaged default root is invented.
    let flags = Flags {
        store: Some("containers-storage".into()),
        ..Flags::default()
    };
    let s = load(&flags, &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(s.store, StoreKind::CStorage);
    assert_eq!(s.cstorage, Overrides::default());
    assert_eq!(s.root, PathBuf::new());
    // A non-root user without HOME is fine too (podman's rules apply at open).
    let s = load(&flags, &env(&[]), false, Purpose::Fsck).expect("valid");
    assert_eq!(s.cstorage, Overrides::default());

    // Flags.
    let flags = Flags {
        store: Some("containers-storage".into()),
        root: Some("/g".into()),
        runroot: Some("/r".into()),
        storage_driver: Some("overlay2".into()),
        ..Flags::default()
    };
    let s = load(&flags, &env(&[]), true, Purpose::Serve).expect("valid");
    assert_eq!(
        s.cstorage,
        Overrides {
            root: Some("/g".into()),
            runroot: Some("/r".into()),
            driver: Some(Driver::Overlay),
        }
    );

    // File, then environment, then flags, key by key.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.toml",
        "store = \"containers-storage\"\nroot = \"/fg\"\nrunroot = \"/fr\"\nstorage_driver = \"vfs\"\n",
    );
    let flags = Flags {
        config: Some(file),
        storage_driver: Some("overlay".into()),
        ..Flags::default()
    };
    let s = load(
        &flags,
        &env(&[("IMAGED_RUNROOT", "/er")]),
        true,
        Purpose::Fsck,
    )
    .expect("valid");
    assert_eq!(
        s.cstorage,
        Overrides {
            root: Some("/fg".into()),
            runroot: Some("/er".into()),
            driver: Some(Driver::Overlay),
        }
    );
    let s = load(
        &Flags {
            store: Some("containers-storage".into()),
            ..Flags::default()
        },
        &env(&[("IMAGED_STORAGE_DRIVER", "vfs")]),
        true,
        Purpose::Fsck,
    )
    .expect("valid");
    assert_eq!(s.cstorage.driver, Some(Driver::Vfs));
}

#[test]
fn containers_storage_errors() {
    // An unsupported driver, an empty runroot: both reported.
    let flags = Flags {
        store: Some("containers-storage".into()),
        runroot: Some("".into()),
        storage_driver: Some("btrfs".into()),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("invalid");
    let joined = errs.join("\n");
    assert!(
        joined.contains("storage_driver: \"btrfs\" is not supported (expected overlay or vfs)"),
        "{joined}"
    );
    assert!(joined.contains("runroot: must not be empty"), "{joined}");
    assert_eq!(errs.len(), 2, "{joined}");
    // runroot / storage_driver with another store: refused, not ignored.
    let flags = Flags {
        runroot: Some("/r".into()),
        storage_driver: Some("vfs".into()),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("invalid");
    assert_eq!(
        errs,
        [
            "runroot: only for store containers-storage",
            "storage_driver: only for store containers-storage"
        ]
    );
    // An unknown store names the three.
    let flags = Flags {
        store: Some("podman".into()),
        ..Flags::default()
    };
    let errs = load(&flags, &env(&[]), true, Purpose::Serve).expect_err("invalid");
    assert!(
        errs[0].contains("expected local, memory or containers-storage"),
        "{errs:?}"
    );
    // Wrong types in the file.
    let (_, errors) = raw::from_toml("runroot = 1\nstorage_driver = []\n", "f.toml");
    assert_eq!(errors.len(), 2, "{errors:?}");
}
