//! The real `imaged` binary: started on a unix socket in a temp dir with the memory
//! store; the tests wait for its ready line (never sleep), then talk gRPC to it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::image_service_client::ImageServiceClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const WAIT: Duration = Duration::from_secs(60);

/// A running daemon: its stdout and stderr lines arrive on channels.
struct Daemon {
    child: Option<Child>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen_err: Vec<String>,
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imaged"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGED_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "info");
    c
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn imaged");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Self {
            child: Some(child),
            stdout,
            stderr,
            seen_err: Vec::new(),
        }
    }

    /// The URLs of the ready line.
    fn ready(&mut self) -> Vec<String> {
        loop {
            match self.stdout.recv_timeout(WAIT) {
                Ok(line) => {
                    if let Some(urls) = line.strip_prefix("imaged ready: listening on ") {
                        return urls.split(", ").map(str::to_owned).collect();
                    }
                }
                Err(e) => panic!("no ready line ({e}); stderr:\n{}", self.drain_stderr()),
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn stderr_line(&mut self, needle: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(WAIT).expect("stderr line");
            self.seen_err.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn drain_stderr(&mut self) -> String {
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.seen_err.push(l);
        }
        self.seen_err.join("\n")
    }

    fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.child.as_ref().expect("running").id()).expect("pid");
        kill(Pid::from_raw(pid), sig).expect("kill");
    }

    /// Waits for the exit (bounded) and returns the status and all of stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx.recv_timeout(WAIT).expect("imaged exits").expect("wait");
        let err = self.drain_stderr();
        (status, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A daemon on the memory store with the config file `cfg`, listening on `listen`.
fn memory_daemon(cfg: &Path, listen: &str) -> Daemon {
    Daemon::spawn(command(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--store",
        "memory",
        "--listen",
        listen,
    ]))
}

async fn unix_channel(path: PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("connect")
}

async fn tcp_channel(url: &str) -> Channel {
    let addr = url.strip_prefix("tcp://").expect("tcp url");
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

async fn health(ch: &Channel, service: &str) -> Result<i32, tonic::Status> {
    let mut h = HealthClient::new(ch.clone());
    let r = h
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(r.into_inner().status)
}

async fn list_services_v1alpha(ch: &Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut c = ServerReflectionClient::new(ch.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut s = c
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(l)) = s
        .message()
        .await
        .expect("answer")
        .and_then(|r| r.message_response)
    else {
        panic!("list_services answer")
    };
    let mut names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

async fn list_services_v1(ch: &Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut c = ServerReflectionClient::new(ch.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut s = c
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(l)) = s
        .message()
        .await
        .expect("answer")
        .and_then(|r| r.message_response)
    else {
        panic!("list_services answer")
    };
    let mut names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_health_and_reflection_then_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("run/imaged/s.sock");
    let url = format!("unix://{}", sock.display());
    let mut d = Daemon::spawn(command(&["--store", "memory", "--listen", &url]));
    assert_eq!(d.ready(), vec![url.clone()]);

    assert_eq!(mode(&sock), 0o660, "socket mode");
    assert_eq!(
        mode(sock.parent().expect("dir")),
        0o750,
        "socket directory mode"
    );

    let ch = unix_channel(sock.clone()).await;
    for s in [
        "",
        "imaged.v1.ImageService",
        "imaged.v1.ContainerService",
        "runtime.v1.ImageService",
    ] {
        assert_eq!(
            health(&ch, s).await.expect("check"),
            ServingStatus::Serving as i32,
            "{s:?}"
        );
    }
    assert_eq!(
        health(&ch, "runtime.v1.RuntimeService")
            .await
            .map_err(|e| e.code()),
        Err(Code::NotFound)
    );

    let want = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "imaged.v1.ContainerService",
        "imaged.v1.GcService",
        "imaged.v1.ImageService",
        "runtime.v1.ImageService",
    ];
    assert_eq!(list_services_v1alpha(&ch).await, want);
    assert_eq!(list_services_v1(&ch).await, want);

    // An in-flight streaming call must not hold the shutdown up.
    let mut watch = ImageServiceClient::new(ch.clone())
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();

    d.signal(Signal::SIGTERM);
    let ended = watch.message().await;
    assert!(
        !matches!(ended, Ok(Some(_))),
        "the watch stream ends: {ended:?}"
    );
    let (status, err) = d.wait();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(!sock.exists(), "socket removed on shutdown");
    assert!(err.contains("SIGTERM: shutting down"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_socket_is_replaced_and_live_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists(), "a stale socket file is left behind");
    let url = format!("unix://{}", sock.display());

    let mut first = Daemon::spawn(command(&["--store", "memory", "--listen", &url]));
    first.ready();
    let ch = unix_channel(sock.clone()).await;
    assert_eq!(
        health(&ch, "").await.expect("check"),
        ServingStatus::Serving as i32
    );

    let second = Daemon::spawn(command(&["--store", "memory", "--listen", &url]));
    let (status, err) = second.wait();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("another imaged is listening on {url}")),
        "{err}"
    );
    assert!(sock.exists(), "the live socket is left alone");
    assert_eq!(
        health(&ch, "").await.expect("first still serves"),
        ServingStatus::Serving as i32
    );

    first.signal(Signal::SIGINT);
    let (status, err) = first.wait();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!sock.exists());
}

#[test]
fn bad_config_exits_64_listing_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "store = \"floppy\"\ngrace_period = 0\nunknown = 1\nlisten = [\"tcp://0.0.0.0:1\"]\n",
    )
    .expect("write");
    let d = Daemon::spawn(command(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--root",
        "/nonexistent",
    ]));
    let (status, err) = d.wait();
    assert_eq!(status.code(), Some(64), "{err}");
    for needle in [
        "4 problems",
        "store: unknown store \"floppy\"",
        "grace_period",
        "`unknown`: unknown key",
        "tcp://0.0.0.0:1",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!dir.path().join("s.sock").exists());

    let d = Daemon::spawn(command(&["--no-such-flag"]));
    assert_eq!(d.wait().0.code(), Some(64), "usage errors exit 64 too");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_loopback_with_tokens_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = dir.path().join("admin.token");
    let reader = dir.path().join("reader.token");
    std::fs::write(&admin, "admin-token-0123456789\n").expect("write");
    std::fs::write(&reader, "reader-token-0123456789\n").expect("write");
    for t in [&admin, &reader] {
        // Token files open to others are refused.
        std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "insecure_tcp = true\nmetrics_listen = \"127.0.0.1:0\"\n[auth]\nadmin_token_file = {:?}\nreader_token_file = {:?}\n",
            admin.display().to_string(),
            reader.display().to_string()
        ),
    )
    .expect("write");
    let mut d = memory_daemon(&cfg, "tcp://127.0.0.1:0");
    let urls = d.ready();
    assert_eq!(urls.len(), 1);
    assert!(
        urls[0].starts_with("tcp://127.0.0.1:") && !urls[0].ends_with(":0"),
        "{urls:?}"
    );
    let ch = tcp_channel(&urls[0]).await;
    assert_eq!(
        health(&ch, "").await.expect("health needs no token"),
        ServingStatus::Serving as i32
    );

    let remove = |token: Option<&'static str>| {
        let ch = ch.clone();
        async move {
            let mut req = tonic::Request::new(pb::RemoveImageRequest {
                reference: "busybox".into(),
                ..Default::default()
            });
            if let Some(t) = token {
                req.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {t}").parse().expect("ascii"),
                );
            }
            ImageServiceClient::new(ch)
                .remove_image(req)
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }
    };
    assert_eq!(remove(None).await, Err(Code::Unauthenticated));
    assert_eq!(
        remove(Some("wrong-token-0123456789")).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        remove(Some("reader-token-0123456789")).await,
        Err(Code::PermissionDenied)
    );
    let admin_result = remove(Some("admin-token-0123456789")).await;
    assert!(
        !matches!(
            admin_result,
            Err(Code::Unauthenticated | Code::PermissionDenied)
        ),
        "admin passes authorization: {admin_result:?}"
    );

    let line = d.stderr_line("metrics on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("metrics address")
        .to_owned();
    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    })
    .await
    .expect("join");
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("grpc_method=\"RemoveImage\",grpc_code=\"PermissionDenied\"} 1"),
        "{body}"
    );
    assert!(body.contains("grpc_code=\"Unauthenticated\"} 2"), "{body}");
    assert!(body.contains("\nimaged_images 0\n"), "{body}");

    d.signal(Signal::SIGTERM);
    let (status, err) = d.wait();
    assert_eq!(status.code(), Some(0), "{err}");
}

/// Environment of [`peer_groups_helper`]: the socket, the groups to connect with and the
/// groups to call with (comma-separated gids; empty: none).
const HELPER_SOCK: &str = "PEER_GROUPS_HELPER_SOCK";
const HELPER_CONNECT_GROUPS: &str = "PEER_GROUPS_HELPER_CONNECT";
const HELPER_CALL_GROUPS: &str = "PEER_GROUPS_HELPER_CALL";

fn gids(s: &str) -> Vec<nix::unistd::Gid> {
    s.split(',')
        .filter(|g| !g.is_empty())
        .map(|g| nix::unistd::Gid::from_raw(g.parse().expect("gid")))
        .collect()
}

/// Not a test: the process [`groups_are_fixed_when_the_peer_connects`] starts (this test
/// binary again, so the group changes stay out of the test process). It sets its groups,
/// connects, changes its groups, then calls RemoveImage on that same connection and
/// prints the gRPC code.
#[test]
#[ignore = "helper process of groups_are_fixed_when_the_peer_connects, started by it"]
fn peer_groups_helper() {
    let sock = PathBuf::from(std::env::var(HELPER_SOCK).expect("run by the test"));
    let connect = gids(&std::env::var(HELPER_CONNECT_GROUPS).expect("groups"));
    let call = gids(&std::env::var(HELPER_CALL_GROUPS).expect("groups"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    nix::unistd::setgroups(&connect).expect("setgroups (needs root)");
    let code = rt.block_on(async move {
        let ch = unix_channel(sock).await; // connected now, with `connect` groups
        nix::unistd::setgroups(&call).expect("setgroups");
        ImageServiceClient::new(ch)
            .remove_image(pb::RemoveImageRequest {
                reference: "never-loaded:1".into(),
                ..Default::default()
            })
            .await
            .map_or_else(|e| e.code(), |_| Code::Ok)
    });
    println!("HELPER CODE={code:?}");
}

/// Issue 11: the groups that decide a unix-socket caller's role are the ones it had when
/// it connected, never looked up again (a PID reused by a process in the admin group
/// must not lend its groups to the connection).
#[test]
fn groups_are_fixed_when_the_peer_connects() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test changes a child's groups: run it as root (CI containers do)"
    );
    const ADMIN_GID: &str = "4242";
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("s.sock");
    let cfg = dir.path().join("c.toml");
    // uid 0 is not listed: only the admin group makes the helper an admin.
    std::fs::write(&cfg, format!("[auth]\nadmin_gids = [{ADMIN_GID}]\n")).expect("write");
    let url = format!("unix://{}", sock.display());
    let mut d = memory_daemon(&cfg, &url);
    d.ready();
    let run = |connect: &str, call: &str| {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "peer_groups_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_SOCK, &sock)
            .env(HELPER_CONNECT_GROUPS, connect)
            .env(HELPER_CALL_GROUPS, call)
            .stdin(Stdio::null())
            .output()
            .expect("run the helper");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "helper failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.split_once("HELPER CODE="))
            .map(|(_, code)| code.trim().to_owned())
            .unwrap_or_else(|| panic!("no code in: {stdout}"))
    };
    // In the admin group when connecting, out of it when calling: still an admin (the
    // call passes authorization and finds no such image).
    assert_eq!(run(ADMIN_GID, ""), "NotFound");
    // Out of the admin group when connecting, in it when calling: not an admin.
    assert_eq!(run("", ADMIN_GID), "PermissionDenied");
    d.signal(Signal::SIGTERM);
    let (status, err) = d.wait();
    assert_eq!(status.code(), Some(0), "{err}");
}

/// `GET /metrics` on `addr`: the body.
async fn metrics(addr: &str) -> String {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    })
    .await
    .expect("join")
}

/// The value of an unlabelled metric.
async fn metric(addr: &str, name: &str) -> u64 {
    let body = metrics(addr).await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

/// Waits (bounded) until the daemon counts `want` open connections: it notices a closed
/// connection when it next reads from it.
async fn wait_open(addr: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = metric(addr, "imaged_connections_open").await;
        if open == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} connections open, want {want}"
        );
        tokio::task::yield_now().await;
    }
}

/// Whether the daemon closed `s` (end of stream or reset) before [`WAIT`].
async fn closed_by_daemon(s: &mut tokio::net::UnixStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // Bytes the server sent before closing (e.g. its SETTINGS): keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

async fn list(ch: &Channel) -> Result<usize, Code> {
    ImageServiceClient::new(ch.clone())
        .list_images(pb::ListImagesRequest::default())
        .await
        .map(|r| r.into_inner().images.len())
        .map_err(|e| e.code())
}

/// Issue 11: idle connections cannot take the daemon to its descriptor limit. Over
/// `max_connections` a new connection is accepted and closed at once (no spinning: one
/// accept per connection); existing connections keep working; once one is closed a new
/// one is served; a connection that never speaks HTTP/2 is closed after
/// `handshake_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn connection_limits_refuse_cleanly_and_keep_serving() {
    use tokio::io::AsyncWriteExt;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("s.sock");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "metrics_listen = \"127.0.0.1:0\"\nmax_connections = 3\nmax_connections_per_peer = 3\n\
         handshake_timeout = 1\nidle_timeout = 3600\n",
    )
    .expect("write");
    let url = format!("unix://{}", sock.display());
    let mut d = memory_daemon(&cfg, &url);
    d.ready();
    let line = d.stderr_line("metrics on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("metrics address")
        .to_owned();

    let ch = unix_channel(sock.clone()).await;
    assert_eq!(list(&ch).await, Ok(0));
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        s.write_all(PREFACE).await.expect("preface");
        idle.push(s);
    }
    wait_open(&addr, 3).await;

    for i in 0..10 {
        let mut s = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        assert!(
            closed_by_daemon(&mut s).await,
            "connection {i} over the limit"
        );
    }
    assert_eq!(list(&ch).await, Ok(0), "an existing connection still works");

    drop(idle.pop());
    wait_open(&addr, 2).await;
    let ch2 = unix_channel(sock.clone()).await;
    assert_eq!(
        list(&ch2).await,
        Ok(0),
        "a new connection after one was closed"
    );
    drop(ch2);
    drop(idle.pop());
    wait_open(&addr, 1).await;

    let mut silent = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    assert!(
        closed_by_daemon(&mut silent).await,
        "no HTTP/2 preface: closed after handshake_timeout"
    );

    let refused = metric(&addr, "imaged_connections_refused_total").await;
    let accepted = metric(&addr, "imaged_connections_accepted_total").await;
    let calls = metric(&addr, "imaged_accept_calls_total").await;
    assert_eq!(refused, 10);
    assert_eq!(accepted, 5, "ch, 2 idle, ch2, silent");
    assert_eq!(metric(&addr, "imaged_accept_errors_total").await, 0);
    assert!(
        metric(&addr, "imaged_connections_timed_out_total").await >= 1,
        "the silent connection timed out"
    );
    // One accept per connection, plus the one waiting now: the loop never spins.
    assert_eq!(calls, refused + accepted + 1);

    drop(ch);
    d.signal(Signal::SIGTERM);
    let (status, err) = d.wait();
    assert_eq!(status.code(), Some(0), "{err}");
}
