//! certs.d discovery: one directory per host[:port], first of home / containers / docker;
//! `*.crt` CAs, `*.cert`/`*.key` client pairs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use imaged_registry::certs::{self, CertError};
use imaged_registry::conf::Env;

fn setup() -> (tempfile::TempDir, Env, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let root = t.path().join("root");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&root).unwrap();
    let env = Env::new(&home, &root);
    (t, env, home, root)
}

fn put(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn names(v: &[PathBuf]) -> Vec<String> {
    v.iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn no_directory_means_system_roots_only() {
    let (_t, env, _, _) = setup();
    assert_eq!(certs::cert_dir(&env, "r.io:5000"), None);
    assert!(certs::ca_files(&env, "r.io:5000").unwrap().is_empty());
    assert!(certs::client_identity(&env, "r.io:5000").unwrap().is_none());
}

#[test]
fn first_existing_directory_wins_and_only_it_is_read() {
    let (_t, env, home, root) = setup();
    put(&root.join("etc/docker/certs.d/r.io:5000/docker.crt"), "D");
    assert_eq!(
        names(&certs::ca_files(&env, "r.io:5000").unwrap()),
        ["docker.crt"]
    );
    put(&root.join("etc/containers/certs.d/r.io:5000/b.crt"), "B");
    put(&root.join("etc/containers/certs.d/r.io:5000/a.crt"), "A");
    put(
        &root.join("etc/containers/certs.d/r.io:5000/notes.txt"),
        "x",
    );
    let files = certs::tls_files(&env, "r.io:5000").unwrap();
    assert_eq!(names(&files.ca_files), ["a.crt", "b.crt"]);
    assert_eq!(files.ca_pems().unwrap(), [b"A".to_vec(), b"B".to_vec()]);
    // The per-user directory comes first, even when empty.
    fs::create_dir_all(home.join(".config/containers/certs.d/r.io:5000")).unwrap();
    assert!(certs::ca_files(&env, "r.io:5000").unwrap().is_empty());
    // The port is part of the directory name.
    assert!(certs::ca_files(&env, "r.io").unwrap().is_empty());
    // Path tricks are no host.
    assert_eq!(certs::cert_dir(&env, "../r.io:5000"), None);
}

#[test]
fn client_pairs_and_unpaired_files() {
    let (_t, env, _, root) = setup();
    let dir = root.join("etc/containers/certs.d/r.io");
    put(&dir.join("client.cert"), "CERT");
    put(&dir.join("client.key"), "KEY");
    put(&dir.join("ca.crt"), "CA");
    let id = certs::client_identity(&env, "r.io").unwrap().unwrap();
    assert_eq!(id.cert_pem, b"CERT");
    assert_eq!(id.key_pem, b"KEY");
    assert!(!format!("{id:?}").contains("KEY\""), "{id:?}");
    assert_eq!(names(&certs::ca_files(&env, "r.io").unwrap()), ["ca.crt"]);

    put(&dir.join("lonely.cert"), "C");
    let e = certs::tls_files(&env, "r.io").unwrap_err();
    assert!(matches!(e, CertError::Unpaired(_)));
    assert!(e.to_string().contains("missing key lonely.key"), "{e}");
    fs::remove_file(dir.join("lonely.cert")).unwrap();
    put(&dir.join("orphan.key"), "K");
    let e = certs::tls_files(&env, "r.io").unwrap_err();
    assert!(
        e.to_string()
            .contains("missing client certificate orphan.cert"),
        "{e}"
    );
}
