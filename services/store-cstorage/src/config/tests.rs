#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A fake machine: its `/` is a temporary directory.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Self {
        let m = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        // The kernel has overlay unless a test says otherwise.
        m.write("/proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n");
        m
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    fn write(&self, p: &str, text: &str) {
        let p = self.path(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn mkdir(&self, p: &str) {
        std::fs::create_dir_all(self.path(p)).unwrap();
    }

    fn env(&self, uid: u32, vars: &[(&str, &str)]) -> Environment {
        Environment {
            uid,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            fs_root: self.dir.path().to_path_buf(),
        }
    }

    fn resolve(&self, uid: u32, vars: &[(&str, &str)]) -> Result<Resolution, ConfigError> {
        resolve_in(&self.env(uid, vars), &Overrides::default())
    }
}

fn roots(r: &Resolution) -> (&str, &str, Driver) {
    (
        r.options.graph_root.to_str().unwrap(),
        r.options.run_root.to_str().unwrap(),
        r.options.driver,
    )
}

#[test]
fn root_defaults_without_any_file() {
    let m = Machine::new();
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(
        roots(&r),
        (
            "/var/lib/containers/storage",
            "/run/containers/storage",
            Driver::Overlay
        )
    );
    assert_eq!(r.driver_from, "kernel");
    assert!(r.files.is_empty());
    assert_eq!(
        r.options.libpod_db.as_deref(),
        Some(Path::new(
            "/var/lib/containers/storage/libpod/bolt_state.db"
        ))
    );
    assert!(r.options.additional_image_stores.is_empty());
    // No overlay in the kernel: vfs.
    m.write("/proc/filesystems", "nodev\tsysfs\n");
    assert_eq!(m.resolve(0, &[]).unwrap().options.driver, Driver::Vfs);
}

#[test]
fn etc_wins_over_usr_share() {
    let m = Machine::new();
    m.write(
        "/usr/share/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/B\"\nrunroot = \"/RB\"\n",
    );
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(roots(&r), ("/B", "/RB", Driver::Vfs));
    assert_eq!(
        r.files,
        [PathBuf::from("/usr/share/containers/storage.conf")]
    );
    assert_eq!(r.driver_from, "/usr/share/containers/storage.conf");
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay2\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(roots(&r), ("/A", "/RA", Driver::Overlay));
    assert_eq!(r.files, [PathBuf::from("/etc/containers/storage.conf")]);
}

#[test]
fn a_root_file_without_runroot_is_an_error_as_in_podman() {
    // podman 4.3 as root with such an /etc/containers/storage.conf: "runroot must be set"
    // (checked in a private mount namespace).
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/A\"\n",
    );
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(
        matches!(e, ConfigError::Unset { key: "runroot", .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("/etc/containers/storage.conf"),
        "{e}"
    );
}

#[test]
fn xdg_config_home_file_is_used_by_root_too() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    m.write(
        "/cfg/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/X\"\nrunroot = \"/RX\"\n",
    );
    let r = m.resolve(0, &[("XDG_CONFIG_HOME", "/cfg")]).unwrap();
    assert_eq!(roots(&r), ("/X", "/RX", Driver::Vfs));
    // XDG_CONFIG_HOME without the file: /etc.
    let r = m.resolve(0, &[("XDG_CONFIG_HOME", "/nowhere")]).unwrap();
    assert_eq!(roots(&r), ("/A", "/RA", Driver::Vfs));
}

#[test]
fn containers_storage_conf_wins_and_must_exist() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    // Only a graphroot: the runroot falls back to the default (no "must be set" here).
    m.write(
        "/tmp/s.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/G\"\n",
    );
    let r = m
        .resolve(0, &[("CONTAINERS_STORAGE_CONF", "/tmp/s.conf")])
        .unwrap();
    assert_eq!(roots(&r), ("/G", "/run/containers/storage", Driver::Vfs));
    assert_eq!(r.files, [PathBuf::from("/tmp/s.conf")]);
    let e = m
        .resolve(0, &[("CONTAINERS_STORAGE_CONF", "/tmp/missing.conf")])
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Read { path, .. } if path == Path::new("/tmp/missing.conf")),
        "{e}"
    );
}

#[test]
fn a_broken_system_file_is_an_error() {
    let m = Machine::new();
    m.write("/etc/containers/storage.conf", "[storage\n");
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    m.write("/etc/containers/storage.conf", "[storage]\ngraphroot = 3\n");
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(e.to_string().contains("storage.graphroot"), "{e}");
}

#[test]
fn rootless_defaults() {
    let m = Machine::new();
    m.mkdir("/home/u");
    m.mkdir("/run/user/1000");
    let r = m
        .resolve(
            1000,
            &[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")],
        )
        .unwrap();
    assert_eq!(
        roots(&r),
        (
            "/home/u/.local/share/containers/storage",
            "/run/user/1000/containers",
            Driver::Vfs
        )
    );
    assert_eq!(r.driver_from, "rootless default");
    // XDG_DATA_HOME wins over HOME.
    let r = m
        .resolve(
            1000,
            &[
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("XDG_DATA_HOME", "/data"),
            ],
        )
        .unwrap();
    assert_eq!(r.options.graph_root, Path::new("/data/containers/storage"));
    // The system file's driver is used when rootless-capable; its roots are not.
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n\
         [storage.options]\nadditionalimagestores = [\"/ro\"]\n",
    );
    m.mkdir("/ro");
    let r = m
        .resolve(
            1000,
            &[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")],
        )
        .unwrap();
    assert_eq!(
        roots(&r),
        (
            "/home/u/.local/share/containers/storage",
            "/run/user/1000/containers",
            Driver::Overlay
        )
    );
    // ... nor its options (c/storage copies them only with CONTAINERS_STORAGE_CONF).
    assert!(r.options.additional_image_stores.is_empty());
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"zfs\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let r = m
        .resolve(
            1000,
            &[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")],
        )
        .unwrap();
    assert_eq!(
        r.options.driver,
        Driver::Vfs,
        "zfs is not a rootless driver"
    );
    // Without HOME (and no XDG dirs) nothing can be chosen.
    let e = m.resolve(1000, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Environment(_)), "{e}");
}

#[test]
fn rootless_run_dir_fallbacks() {
    use std::os::unix::fs::PermissionsExt as _;
    let m = Machine::new();
    m.mkdir("/home/u");
    let home = [("HOME", "/home/u")];
    let own = |p: &str, uid: u32| {
        let p = m.path(p);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    };
    // No XDG_RUNTIME_DIR: podman picks /run/user/<uid> when the user owns it ...
    m.mkdir("/run/user/1000");
    own("/run/user/1000", 1000);
    let r = m.resolve(1000, &home).unwrap();
    assert_eq!(r.options.run_root, Path::new("/run/user/1000/containers"));
    // ... else $TMPDIR/podman-run-<uid> (podman creates it) ...
    own("/run/user/1000", 0);
    let r = m.resolve(1000, &home).unwrap();
    assert_eq!(
        r.options.run_root,
        Path::new("/tmp/podman-run-1000/containers")
    );
    let r = m
        .resolve(1000, &[("HOME", "/home/u"), ("TMPDIR", "/var/tmp")])
        .unwrap();
    assert_eq!(
        r.options.run_root,
        Path::new("/var/tmp/podman-run-1000/containers")
    );
    // ... else $HOME/rundir.
    m.mkdir("/tmp/podman-run-1000");
    own("/tmp/podman-run-1000", 0);
    let r = m.resolve(1000, &home).unwrap();
    assert_eq!(r.options.run_root, Path::new("/home/u/rundir/containers"));

    // An XDG_RUNTIME_DIR that does not resolve: c/storage's own fallbacks. /proc/1/comm
    // unreadable: /run/user/<uid> if owned with mode 0700 ...
    let gone = [("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/gone")];
    own("/run/user/1000", 1000);
    let r = m.resolve(1000, &gone).unwrap();
    assert_eq!(r.options.run_root, Path::new("/run/user/1000/containers"));
    // ... c/storage compares /proc/1/comm ("systemd\n") with "systemd": never equal, so
    // with a readable comm the per-user temporary directory is next (c/storage creates it)
    m.write("/proc/1/comm", "systemd\n");
    let r = m.resolve(1000, &gone).unwrap();
    assert_eq!(
        r.options.run_root,
        Path::new("/tmp/containers-user-1000/containers")
    );
    // ... and when it belongs to someone else, $HOME/rundir.
    m.mkdir("/tmp/containers-user-1000");
    let r = m.resolve(1000, &gone).unwrap();
    assert_eq!(r.options.run_root, Path::new("/home/u/rundir/containers"));
}

#[test]
fn with_a_user_file_the_run_root_is_c_storage_s_own() {
    // podman's first resolution, before it sets XDG_RUNTIME_DIR, sticks when a user file
    // exists (verified with rootless podman 4.3): /proc/1/comm is not "systemd" here, so
    // $TMPDIR/containers-user-<uid>.
    let m = Machine::new();
    m.mkdir("/home/u");
    m.write("/proc/1/comm", "init\n");
    let vars = [("HOME", "/home/u")];
    assert_eq!(
        m.resolve(1000, &vars).unwrap().options.run_root,
        Path::new("/tmp/podman-run-1000/containers")
    );
    m.write(
        "/home/u/.config/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\n",
    );
    assert_eq!(
        m.resolve(1000, &vars).unwrap().options.run_root,
        Path::new("/tmp/containers-user-1000/containers")
    );
}

#[test]
fn rootless_storage_path_is_expanded() {
    let m = Machine::new();
    m.mkdir("/home/u");
    m.mkdir("/run/user/1000");
    m.write(
        "/usr/share/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n\
         rootless_storage_path = \"$HOME/rs/$UID/${USER}/$NOPE/x\"\n",
    );
    let r = m
        .resolve(
            1000,
            &[
                ("HOME", "/home/u"),
                ("USER", "u"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ],
        )
        .unwrap();
    assert_eq!(r.options.graph_root, Path::new("/home/u/rs/1000/u/x"));
    assert_eq!(r.options.driver, Driver::Overlay);
}

#[test]
fn the_user_file_is_read_on_top() {
    let m = Machine::new();
    m.mkdir("/home/u");
    m.mkdir("/run/user/1000");
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let vars = [("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")];
    // Only a graphroot: the runroot stays the rootless one; the driver is the user file's
    // (none: c/storage's choice, here prior overlay state).
    m.write(
        "/home/u/.config/containers/storage.conf",
        "[storage]\ngraphroot = \"/home/u/g\"\n",
    );
    m.mkdir("/home/u/g/overlay");
    let r = m.resolve(1000, &vars).unwrap();
    assert_eq!(
        roots(&r),
        ("/home/u/g", "/run/user/1000/containers", Driver::Overlay)
    );
    assert_eq!(r.driver_from, "prior /home/u/g/overlay");
    assert_eq!(
        r.files,
        [
            PathBuf::from("/etc/containers/storage.conf"),
            PathBuf::from("/home/u/.config/containers/storage.conf")
        ]
    );
    // rootless_storage_path of the user file when it has no graphroot.
    m.write(
        "/home/u/.config/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\nrootless_storage_path = \"/rs/$UID\"\n",
    );
    let r = m.resolve(1000, &vars).unwrap();
    assert_eq!(
        roots(&r),
        ("/rs/1000", "/run/user/1000/containers", Driver::Vfs)
    );
    // XDG_CONFIG_HOME moves the user file (and, existing, is the system file too).
    m.write(
        "/cfg/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/cg\"\nrunroot = \"/cr\"\n",
    );
    let r = m
        .resolve(
            1000,
            &[
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("XDG_CONFIG_HOME", "/cfg"),
            ],
        )
        .unwrap();
    assert_eq!(roots(&r), ("/cg", "/cr", Driver::Vfs));
    // A user file that does not parse is ignored, as c/storage does.
    m.write("/home/u/.config/containers/storage.conf", "[storage\n");
    let r = m.resolve(1000, &vars).unwrap();
    assert_eq!(
        r.options.graph_root,
        Path::new("/home/u/.local/share/containers/storage")
    );
}

#[test]
fn rootless_with_containers_storage_conf_keeps_rootless_roots() {
    // CONTAINERS_STORAGE_CONF skips the user file and, rootless, c/storage keeps the
    // rootless roots (the file's graphroot applies to root only) but copies its options.
    let m = Machine::new();
    m.mkdir("/home/u");
    m.mkdir("/run/user/1000");
    m.mkdir("/ro");
    m.write(
        "/s.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/G\"\n[storage.options]\n\
         additionalimagestores = [\"/ro\"]\n",
    );
    let r = m
        .resolve(
            1000,
            &[
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("CONTAINERS_STORAGE_CONF", "/s.conf"),
            ],
        )
        .unwrap();
    assert_eq!(
        roots(&r),
        (
            "/home/u/.local/share/containers/storage",
            "/run/user/1000/containers",
            Driver::Overlay
        )
    );
    assert_eq!(r.options.additional_image_stores, [PathBuf::from("/ro")]);
}

#[test]
fn additional_image_stores() {
    let m = Machine::new();
    m.mkdir("/ro1");
    m.mkdir("/ro2");
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n\
         [storage.options]\nadditionalimagestores = [\"/ro1\", \"/ro2/\"]\n",
    );
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(
        r.options.additional_image_stores,
        [PathBuf::from("/ro1"), PathBuf::from("/ro2")]
    );
    // overlay refuses a store that is not a directory.
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n\
         [storage.options]\nadditionalimagestores = [\"/missing\"]\n",
    );
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::ImageStore { .. }), "{e}");
    // vfs takes them as they are; an empty list is none.
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n\
         [storage.options]\nadditionalimagestores = [\"/v1\"]\n",
    );
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(r.options.additional_image_stores, [PathBuf::from("/v1")]);
    // STORAGE_OPTS replaces the option list.
    let r = m
        .resolve(0, &[("STORAGE_OPTS", "vfs.imagestore=/s1,.imagestore=/s2")])
        .unwrap();
    assert_eq!(
        r.options.additional_image_stores,
        [PathBuf::from("/s1"), PathBuf::from("/s2")]
    );
    let r = m.resolve(0, &[("STORAGE_OPTS", "")]).unwrap();
    assert!(r.options.additional_image_stores.is_empty());
    // Not key=value: refused, as the driver would.
    let e = m
        .resolve(0, &[("STORAGE_OPTS", "vfs.imagestore=/s1,/s2")])
        .unwrap_err();
    assert!(e.to_string().contains("not key=value"), "{e}");
}

#[test]
fn storage_driver_env() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let r = m.resolve(0, &[("STORAGE_DRIVER", "vfs")]).unwrap();
    assert_eq!(r.options.driver, Driver::Vfs);
    assert_eq!(r.driver_from, "STORAGE_DRIVER");
    let r = m.resolve(0, &[("STORAGE_DRIVER", "overlay2")]).unwrap();
    assert_eq!(r.options.driver, Driver::Overlay);
    let e = m.resolve(0, &[("STORAGE_DRIVER", "btrfs")]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::UnsupportedDriver { name, from } if name == "btrfs" && from == "STORAGE_DRIVER"),
        "{e}"
    );
    assert!(e.to_string().contains("only overlay and vfs"), "{e}");
    // Rootless too.
    m.mkdir("/home/u");
    let r = m
        .resolve(1000, &[("HOME", "/home/u"), ("STORAGE_DRIVER", "overlay")])
        .unwrap();
    assert_eq!(r.options.driver, Driver::Overlay);
}

#[test]
fn unsupported_drivers_are_refused() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"zfs\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::UnsupportedDriver { name, .. } if name == "zfs"),
        "{e}"
    );
    assert!(matches!(
        Driver::parse("devicemapper"),
        Err(ConfigError::UnsupportedDriver { .. })
    ));
    assert_eq!(Driver::parse("overlay2").unwrap(), Driver::Overlay);
}

#[test]
fn driver_from_prior_state() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    // A vfs store alone is not prior state for c/storage: overlay (the kernel has it) ...
    m.mkdir("/A/vfs");
    assert_eq!(m.resolve(0, &[]).unwrap().options.driver, Driver::Overlay);
    // ... and vfs when the kernel lacks overlay.
    m.write("/proc/filesystems", "nodev\tsysfs\n");
    assert_eq!(m.resolve(0, &[]).unwrap().options.driver, Driver::Vfs);
    // A prior overlay directory wins even then.
    m.mkdir("/A/overlay");
    let r = m.resolve(0, &[]).unwrap();
    assert_eq!(r.options.driver, Driver::Overlay);
    assert_eq!(r.driver_from, "prior /A/overlay");
    // Two drivers' state: the user must choose.
    m.mkdir("/A/btrfs");
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::SeveralDrivers { .. }), "{e}");
    // Unless a flag does.
    let r = resolve_in(
        &m.env(0, &[]),
        &Overrides {
            driver: Some(Driver::Vfs),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        (r.options.driver, r.driver_from.as_str()),
        (Driver::Vfs, "flag")
    );
    // Only a btrfs directory: unsupported.
    std::fs::remove_dir(m.path("/A/overlay")).unwrap();
    let e = m.resolve(0, &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::UnsupportedDriver { name, .. } if name == "btrfs"),
        "{e}"
    );
}

#[test]
fn flags_override_the_files() {
    let m = Machine::new();
    m.write(
        "/etc/containers/storage.conf",
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/A\"\nrunroot = \"/RA\"\n",
    );
    let r = resolve_in(
        &m.env(0, &[]),
        &Overrides {
            root: Some(PathBuf::from("/G")),
            runroot: Some(PathBuf::from("/R")),
            driver: Some(Driver::Vfs),
        },
    )
    .unwrap();
    assert_eq!(roots(&r), ("/G", "/R", Driver::Vfs));
    assert_eq!(
        r.options.libpod_db.as_deref(),
        Some(Path::new("/G/libpod/bolt_state.db"))
    );
}

#[test]
fn podman_database_overrides_storage_conf_but_not_flags() {
    // A store podman made with vfs; a storage.conf that says overlay (and another run
    // root): podman keeps what its database recorded, and so does imaged.
    let s = imaged_testkit::podman::PodmanStore::new("vfs").expect("podman store");
    let conf = s.dir().join("other.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}/elsewhere\"\n",
            s.root.display(),
            s.dir().display()
        ),
    )
    .unwrap();
    let env = Environment {
        uid: 0,
        vars: HashMap::from([(
            "CONTAINERS_STORAGE_CONF".to_owned(),
            conf.display().to_string(),
        )]),
        fs_root: PathBuf::from("/"),
    };
    let r = resolve_in(&env, &Overrides::default()).unwrap();
    assert_eq!(r.options.driver, Driver::Vfs);
    assert_eq!(r.driver_from, "podman database");
    assert_eq!(r.options.run_root, s.run);
    assert_eq!(r.options.graph_root, s.root);
    // podman agrees (same environment, no flags).
    let out = std::process::Command::new("podman")
        .args([
            "info",
            "--format",
            "{{.Store.GraphRoot}} {{.Store.RunRoot}} {{.Store.GraphDriverName}}",
        ])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("CONTAINERS_CONF", s.dir().join("containers.conf"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .output()
        .expect("podman");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} {} vfs", s.root.display(), s.run.display())
    );
    // A flag wins over the database.
    let r = resolve_in(
        &env,
        &Overrides {
            driver: Some(Driver::Overlay),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(r.options.driver, Driver::Overlay);
}

#[test]
fn go_expand_env() {
    let look = |k: &str| match k {
        "A" => "x".to_owned(),
        "HOME" => "/h".to_owned(),
        "1" => "one".to_owned(),
        _ => String::new(),
    };
    assert_eq!(expand_env("$A/${A}b/$Ab", &look), "x/xb/");
    assert_eq!(expand_env("$HOME/.local", &look), "/h/.local");
    assert_eq!(expand_env("cost$", &look), "cost$");
    assert_eq!(expand_env("a$/b", &look), "a$/b");
    assert_eq!(expand_env("a${}b", &look), "ab");
    assert_eq!(expand_env("a${Ab", &look), "aAb");
    assert_eq!(expand_env("$1x", &look), "onex");
    assert_eq!(expand_env("plain", &look), "plain");
}

#[test]
fn go_clean() {
    assert_eq!(clean("/a//b/./c/../d/"), PathBuf::from("/a/b/d"));
    assert_eq!(clean("/../a"), PathBuf::from("/a"));
    assert_eq!(clean("a/../../b"), PathBuf::from("../b"));
    assert_eq!(clean(""), PathBuf::from("."));
}
