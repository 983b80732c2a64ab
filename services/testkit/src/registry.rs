//! A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on
//! 127.0.0.1 with a free port, storage in a tempdir, stopped on drop; plain HTTP
//! ([`Registry::start`]), HTTPS with a CA made for it ([`Registry::start_tls`]), or HTTPS
//! with htpasswd basic auth ([`Registry::start_auth`]). Images
//! go in with `skopeo copy` from archives [`crate::archive`] generates; the registry's
//! access log tells which blobs were fetched how often.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imaged_core::Digest;

/// A running `docker-registry`.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    /// `user:password` of a [`Registry::start_auth`] registry.
    creds: Option<String>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Registry {
    /// Starts a registry (fails the test when `docker-registry` is missing: install the
    /// `docker-registry` package, as `scripts/setup` does).
    pub fn start() -> Self {
        Self::start_with(false, None)
    }

    /// Starts a registry serving HTTPS with a certificate for `127.0.0.1` signed by a CA
    /// made for it ([`Registry::ca_file`]), which nothing on the machine trusts.
    pub fn start_tls() -> Self {
        Self::start_with(true, None)
    }

    /// Starts a [`Registry::start_tls`] registry that answers only `user` with `password`
    /// (htpasswd, bcrypt, as distribution requires); [`Registry::push_archive`] and the
    /// other helpers log in.
    pub fn start_auth(user: &str, password: &str) -> Self {
        Self::start_with(true, Some((user, password)))
    }

    /// The CA certificate (PEM) of a [`Registry::start_tls`] registry.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool, login: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_conf = if tls {
            make_certs(dir.path());
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            )
        } else {
            String::new()
        };
        let auth_conf = match login {
            Some((user, password)) => {
                // The lowest cost bcrypt allows: the registry checks it on every request.
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: imaged-test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let creds = login.map(|(u, p)| format!("{u}:{p}"));
        // A port just released by the kernel; on the rare clash, try again.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = dir.path().join("config.yml");
            let storage = dir.path().join("storage");
            std::fs::create_dir_all(&storage).expect("storage dir");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n{tls_conf}{auth_conf}",
                    storage.display()
                ),
            )
            .expect("write registry config");
            let out = std::fs::File::create(dir.path().join("access.log")).expect("log");
            let err = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting docker-registry (apt-get install docker-registry): {e}")
                });
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    // Exited: most likely the port was taken meanwhile.
                    let log = std::fs::read_to_string(dir.path().join("registry.log"))
                        .unwrap_or_default();
                    eprintln!("docker-registry exited ({status}): {log}");
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return Self {
                        child,
                        dir,
                        addr,
                        creds,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("docker-registry did not listen on {addr} within 20s");
                }
                // Polling for the listening socket: there is no readiness signal.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start docker-registry");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.addr
    }

    /// The registry's directory (config, storage, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the image of an `oci-archive` into `repo_tag` (`repo:tag`, without host)
    /// with skopeo; `all`: every instance of a manifest list. Gives the manifest digest
    /// in the registry.
    pub fn push_archive(&self, archive: &[u8], repo_tag: &str, all: bool) -> Digest {
        self.push_from("oci-archive", archive, repo_tag, all)
    }

    /// Like [`Registry::push_archive`], from a `docker-archive` (`docker save` format).
    pub fn push_docker_archive(&self, archive: &[u8], repo_tag: &str) -> Digest {
        self.push_from("docker-archive", archive, repo_tag, false)
    }

    fn push_from(&self, transport: &str, archive: &[u8], repo_tag: &str, all: bool) -> Digest {
        // A file of its own: two pushes of one archive may run at the same time.
        let mut file = tempfile::Builder::new()
            .prefix("push-")
            .suffix(".tar")
            .tempfile_in(self.dir.path())
            .expect("archive file");
        file.write_all(archive).expect("write archive");
        let path: PathBuf = file.path().to_owned();
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(c) = &self.creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        if all {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(format!("{transport}:{}", path.display()))
            .arg(&dest)
            .output()
            .expect("skopeo (apt-get install skopeo)");
        drop(file);
        assert!(
            out.status.success(),
            "skopeo copy to {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.digest_of(repo_tag)
    }

    /// The manifest digest of `repo_tag` in the registry (`skopeo inspect`).
    pub fn digest_of(&self, repo_tag: &str) -> Digest {
        let raw = self.skopeo_raw(repo_tag);
        Digest::of(&raw)
    }

    /// The raw manifest of `repo_tag` (`skopeo inspect --raw`).
    pub fn skopeo_raw(&self, repo_tag: &str) -> Vec<u8> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(c) = &self.creds {
            cmd.arg(format!("--creds={c}"));
        }
        let out = cmd
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {repo_tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        let a = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let b = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        a + &b
    }

    /// How many `GET`s of blob `digest` the registry served so far (any repository).
    pub fn blob_gets(&self, digest: &Digest) -> usize {
        let needle = format!("/blobs/{digest} ");
        self.access_log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 signed by it (`server.crt`,
/// `server.key`) in `dir`, made with the `openssl` command.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("running openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=imaged test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write san.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}
