//! The OAuth2 identity-token exchange against a real `docker-registry` behind a small
//! token-auth proxy (plain HTTP on 127.0.0.1): the proxy answers every `/v2/` request
//! without a Bearer token it issued with a Bearer challenge naming its own `/token`,
//! where a POSTed refresh token (the identity token) buys an access token. Pulls and
//! pushes with an identity token (given with the request, or stored alone in an auth
//! file) go through; a wrong one answers REGISTRY_UNAUTHORIZED without repeating it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use imaged_core::error::ErrorKind;
use imaged_core::transfer::{
    Cancel, Credentials, PullPolicy, PullRequest, PushRequest, Registry, TransferEvent,
};
use imaged_registry::conf::Env;
use imaged_registry::{Options, RegistryClient};
use imaged_testkit::archive::{SynthImage, oci_archive_with};
use imaged_testkit::registry::Registry as TestRegistry;

use support::{client, gz, header, mem_engine, pull, read_head};

/// The identity token the proxy's token service accepts.
const GOOD: &str = "idtok-good-5f1c";
/// One it refuses.
const WRONG: &str = "idtok-wrong-93ab";
/// The `service` of the proxy's challenge.
const SERVICE: &str = "imaged-test";

fn req(reference: &str, identity_token: Option<&str>) -> PullRequest {
    PullRequest {
        reference: reference.to_owned(),
        policy: PullPolicy::Always,
        credentials: identity_token.map(token_creds),
        ..PullRequest::default()
    }
}

fn token_creds(identity_token: &str) -> Credentials {
    Credentials {
        identity_token: identity_token.to_owned(),
        ..Credentials::default()
    }
}

/// A registry with `app:1` in it, and the image's manifest digest.
fn registry_with_app() -> (TestRegistry, imaged_core::Digest) {
    let reg = TestRegistry::start();
    let img = SynthImage::new("idtoken-base").child(b"app layer", "RUN app");
    let digest = reg.push_archive(&oci_archive_with(&[img], &gz()), "app:1", false);
    (reg, digest)
}

/// One POST to the token service, as the proxy decoded its form.
#[derive(Debug, Clone)]
struct TokenPost {
    fields: Vec<(String, String)>,
}

impl TokenPost {
    fn get(&self, key: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Access tokens issued so far.
    issued: Vec<String>,
    /// Every POST to `/token`, granted or not.
    posts: Vec<TokenPost>,
    /// `/v2/` requests answered 401 (no valid Bearer token).
    challenged: usize,
    /// The realm the challenge names instead of the proxy's `/token`.
    realm: Option<String>,
    /// Token POSTs (exchanges) get no answer; each is reported here when it arrives.
    stall_tokens: Option<std::sync::mpsc::Sender<()>>,
}

/// A token-auth proxy in front of a registry; stops its threads and closes its
/// connections on drop.
struct TokenProxy {
    addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl TokenProxy {
    fn start(upstream: &str) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (state, stop, sockets) = (state.clone(), stop.clone(), sockets.clone());
            let (upstream, addr) = (upstream.to_owned(), addr.clone());
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                for conn in l.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { break };
                    sockets.lock().unwrap().push(conn.try_clone().unwrap());
                    let (state, sockets) = (state.clone(), sockets.clone());
                    let (upstream, addr) = (upstream.clone(), addr.clone());
                    conns.push(std::thread::spawn(move || {
                        let _ = serve(conn, &upstream, &addr, &state, &sockets);
                    }));
                }
                conns
            })
        };
        Self {
            addr,
            state,
            stop,
            sockets,
            accept: Some(accept),
        }
    }

    fn host(&self) -> &str {
        &self.addr
    }

    fn posts(&self) -> Vec<TokenPost> {
        self.state.lock().unwrap().posts.clone()
    }

    fn challenged(&self) -> usize {
        self.state.lock().unwrap().challenged
    }

    fn set_realm(&self, realm: String) {
        self.state.lock().unwrap().realm = Some(realm);
    }

    /// From now on token POSTs get no answer: the receiver hears of each.
    fn stall_tokens(&self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.state.lock().unwrap().stall_tokens = Some(tx);
        rx
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the stop flag.
        let _ = TcpStream::connect(&self.addr);
        let conns = self.accept.take().map(|h| h.join().unwrap());
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for h in conns.into_iter().flatten() {
            let _ = h.join();
        }
    }
}

fn respond(w: &mut impl Write, status: &str, extra: &str, body: &str) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

/// Serves one client connection: token requests and challenges here, authorized
/// requests relayed to the registry one per upstream connection (then this one closes).
fn serve(
    client: TcpStream,
    upstream: &str,
    addr: &str,
    state: &Mutex<State>,
    sockets: &Mutex<Vec<TcpStream>>,
) -> std::io::Result<()> {
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    loop {
        let head = read_head(&mut cr)?;
        if head.is_empty() {
            return Ok(());
        }
        let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; len];
        cr.read_exact(&mut body)?;
        let mut words = head[0].split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if path.starts_with("/token") {
            let post = TokenPost {
                fields: form_decode(&body),
            };
            let mut s = state.lock().unwrap();
            s.posts.push(post.clone());
            if let Some(tx) = s.stall_tokens.as_ref().filter(|_| method == "POST") {
                let _ = tx.send(());
                drop(s);
                // Nothing until the client gives up the connection.
                let _ = cr.read_to_end(&mut Vec::new());
                return Ok(());
            }
            let granted = method == "POST"
                && post.get("grant_type") == ["refresh_token"]
                && post.get("refresh_token") == [GOOD];
            if granted {
                let token = format!("access-{}", s.issued.len() + 1);
                s.issued.push(token.clone());
                drop(s);
                let body = format!(r#"{{"access_token":"{token}","expires_in":300}}"#);
                respond(&mut cw, "200 OK", "", &body)?;
            } else {
                drop(s);
                respond(
                    &mut cw,
                    "401 Unauthorized",
                    "",
                    r#"{"error":"invalid_grant"}"#,
                )?;
            }
            continue;
        }
        let authorized = header(&head, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| state.lock().unwrap().issued.iter().any(|i| i == t));
        if !authorized {
            let realm = {
                let mut s = state.lock().unwrap();
                s.challenged += 1;
                s.realm
                    .clone()
                    .unwrap_or_else(|| format!("http://{addr}/token"))
            };
            let challenge =
                format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"{SERVICE}\"\r\n");
            respond(
                &mut cw,
                "401 Unauthorized",
                &challenge,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )?;
            continue;
        }
        let up = TcpStream::connect(upstream)?;
        sockets.lock().unwrap().push(up.try_clone()?);
        let mut uw = up.try_clone()?;
        for l in head
            .iter()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        {
            uw.write_all(l.as_bytes())?;
        }
        uw.write_all(b"Connection: close\r\n\r\n")?;
        uw.write_all(&body)?;
        let mut ur = up;
        std::io::copy(&mut ur, &mut cw)?;
        cw.flush()?;
        return Ok(());
    }
}

/// (a) An identity token alone pulls: the client trades it at the token service for the
/// pull scope of the repository and sends the access token.
#[test]
fn identity_token_is_exchanged_for_a_pull() {
    let (reg, digest) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let c = client(&[proxy.host()]);
    let (e, _) = mem_engine();
    let name = format!("{}/app:1", proxy.host());
    let out = pull(&c, &e, &req(&name, Some(GOOD))).unwrap();
    assert_eq!(out.digest, digest);
    assert!(e.view().image_by_name(&name).is_some());
    let posts = proxy.posts();
    assert_eq!(posts.len(), 1, "one exchange: {posts:?}");
    let p = &posts[0];
    assert_eq!(p.get("grant_type"), ["refresh_token"]);
    assert_eq!(p.get("refresh_token"), [GOOD]);
    assert_eq!(p.get("service"), [SERVICE]);
    assert_eq!(p.get("scope"), ["repository:app:pull"]);
    assert_eq!(p.get("client_id").len(), 1, "{p:?}");
    assert!(!p.get("client_id")[0].is_empty());

    // A registry that asks for no Bearer token: the pull goes anonymous.
    let (e, _) = mem_engine();
    let direct = client(&[reg.host()]);
    let out = pull(
        &direct,
        &e,
        &req(&format!("{}/app:1", reg.host()), Some(GOOD)),
    )
    .unwrap();
    assert_eq!(out.digest, digest);
}

/// (b) An identity token the token service refuses: REGISTRY_UNAUTHORIZED, nothing
/// stored, and the token in neither the message nor the metadata.
#[test]
fn a_refused_identity_token_is_unauthorized_and_never_repeated() {
    let (reg, _) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let c = client(&[proxy.host()]);
    let (e, store) = mem_engine();
    let err = pull(
        &c,
        &e,
        &req(&format!("{}/app:1", proxy.host()), Some(WRONG)),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RegistryUnauthorized, "{err:?}");
    assert!(err.message.contains("refused"), "{}", err.message);
    assert!(!err.message.contains(WRONG), "{}", err.message);
    for (k, v) in &err.metadata {
        assert!(!v.contains(WRONG) && !k.contains(WRONG), "{k}={v}");
    }
    assert!(!format!("{err:?}").contains(WRONG));
    let posts = proxy.posts();
    assert!(
        posts.iter().any(|p| p.get("refresh_token") == [WRONG]),
        "the exchange was tried: {posts:?}"
    );
    assert_eq!(e.view().len(), 0);
    assert_eq!(store.blob_count(), 0, "nothing stored");
}

/// (c) A push with an identity token asks for pull and push on the destination (and
/// pull on the repository its blobs can be mounted from) and lands.
#[test]
fn identity_token_is_exchanged_for_a_push() {
    let (reg, digest) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let c = client(&[proxy.host()]);
    let (e, _) = mem_engine();
    let src = format!("{}/app:1", proxy.host());
    pull(&c, &e, &req(&src, Some(GOOD))).unwrap();
    let before = proxy.posts().len();
    let mut mounted = 0;
    let out = c
        .push(
            &e,
            &PushRequest {
                source: src,
                destination: format!("{}/pushed/app:2", proxy.host()),
                credentials: Some(token_creds(GOOD)),
                ..PushRequest::default()
            },
            &mut |ev| {
                if matches!(ev, TransferEvent::Blob { skipped: true, .. }) {
                    mounted += 1;
                }
            },
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!(out.digest, digest);
    assert_eq!(reg.digest_of("pushed/app:2"), digest);
    let posts = proxy.posts();
    assert_eq!(
        posts.len(),
        before + 1,
        "one exchange for the push: {posts:?}"
    );
    let p = &posts[before];
    assert_eq!(p.get("refresh_token"), [GOOD]);
    assert_eq!(
        p.get("scope"),
        ["repository:pushed/app:pull,push", "repository:app:pull"]
    );
    assert_eq!(mounted, 3, "config and both layers mounted from app");
}

/// An auth file entry with only an `identitytoken` (no `auth`) is used, through the
/// exchange, for a pull that brings no credentials.
#[test]
fn a_stored_identity_token_alone_is_exchanged() {
    let (reg, digest) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("auth.json");
    let doc = serde_json::json!({"auths": {proxy.host(): {"identitytoken": GOOD}}});
    std::fs::write(&file, doc.to_string()).unwrap();
    let c = RegistryClient::new(Options {
        insecure_registries: vec![proxy.host().to_owned()],
        env: Some(
            Env::new(d.path(), d.path()).with_var("REGISTRY_AUTH_FILE", file.display().to_string()),
        ),
        ..Options::default()
    })
    .unwrap();
    let (e, _) = mem_engine();
    let out = pull(&c, &e, &req(&format!("{}/app:1", proxy.host()), None)).unwrap();
    assert_eq!(out.digest, digest);
    let posts = proxy.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].get("refresh_token"), [GOOD]);
    assert_eq!(posts[0].get("scope"), ["repository:app:pull"]);
    assert!(proxy.challenged() >= 1, "the client asked /v2/ first");
}

/// A token service that cannot be reached: REGISTRY_UNREACHABLE, without the token.
#[test]
fn an_unreachable_token_service_is_unreachable() {
    let (reg, _) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    proxy.set_realm(format!("http://127.0.0.1:{port}/token"));
    let c = client(&[proxy.host()]);
    let (e, store) = mem_engine();
    let err = pull(&c, &e, &req(&format!("{}/app:1", proxy.host()), Some(GOOD))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RegistryUnreachable, "{err:?}");
    assert!(!format!("{err:?}").contains(GOOD), "{err:?}");
    assert_eq!(store.blob_count(), 0);
}

/// A pull cancelled while the token service has not answered stops at once: CANCELLED,
/// nothing stored.
#[test]
fn a_pull_cancelled_during_the_exchange_stops() {
    let (reg, _) = registry_with_app();
    let proxy = TokenProxy::start(reg.host());
    let asked = proxy.stall_tokens();
    let c = client(&[proxy.host()]);
    let (e, store) = mem_engine();
    let cancel = Cancel::new();
    let err = std::thread::scope(|scope| {
        let pulling = scope.spawn(|| {
            c.pull(
                &e,
                &req(&format!("{}/app:1", proxy.host()), Some(GOOD)),
                &mut |_| {},
                &cancel,
            )
        });
        asked
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the exchange reaches the token service");
        cancel.cancel();
        pulling.join().unwrap().unwrap_err()
    });
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert_eq!(e.view().len(), 0);
    assert_eq!(store.blob_count(), 0);
}
