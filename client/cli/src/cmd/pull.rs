//! `imagectl pull` and `imagectl push`: the daemon transfers, imagectl shows progress.
//!
//! On a terminal, one progress bar per blob on standard error. Otherwise podman's
//! (containers/image's) plain lines on standard error: `Trying to pull REF...`,
//! `Getting image source signatures`, `Copying blob sha256:<hex>` per layer,
//! `Copying config sha256:<hex>`, `Writing manifest to image destination`,
//! `Storing signatures`. `pull` then prints the image ID (64 hex) on standard output, as
//! podman does.
//!
//! Credentials (`--creds`, or the entry of `--authfile` matching the reference's
//! registry) are sent to the daemon for the one call; the daemon's own auth files apply
//! otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use base64::Engine as _;
use imaged_client::{Client, proto};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::pull_image_response::Event as PullEv;
use proto::push_image_response::Event as PushEv;

use crate::args::{PullArgs, PullPolicyArg, PushArgs, RegistryArgs};
use crate::exit::{Failure, Report};

/// `imagectl pull`.
pub(crate) async fn pull(client: &Client, args: &PullArgs) -> Result<Report, Failure> {
    let platform = args.platform.as_deref().map(parse_platform).transpose()?;
    let credentials = credentials(&args.registry, &args.reference)?;
    let req = proto::PullImageRequest {
        reference: args.reference.clone(),
        platform,
        policy: match args.policy {
            PullPolicyArg::Always => proto::PullPolicy::Always,
            PullPolicyArg::Missing => proto::PullPolicy::Missing,
            PullPolicyArg::Newer => proto::PullPolicy::Newer,
        } as i32,
        credentials,
        tls_verify: tls_verify(args.registry.tls_verify) as i32,
    };
    let mut shown = Progress::new(args.registry.quiet);
    let result = client
        .pull_wait(req, |ev| match ev {
            PullEv::Resolved(r) => shown.started(Some(&r.reference)),
            PullEv::Blob(b) => shown.blob(b),
            PullEv::Done(_) => {}
        })
        .await;
    match result {
        Ok(done) => {
            shown.finish(Some(&done.image_id), done.up_to_date);
            let hex = done
                .image_id
                .strip_prefix("sha256:")
                .unwrap_or(&done.image_id);
            Ok(Report::ok(format!("{hex}\n")))
        }
        Err(e) => {
            shown.abandon();
            Err(Failure::from_client(client.url(), &e))
        }
    }
}

/// `imagectl push`.
pub(crate) async fn push(client: &Client, args: &PushArgs) -> Result<Report, Failure> {
    let destination = args.destination.clone().unwrap_or_default();
    let target = if destination.is_empty() {
        &args.source
    } else {
        &destination
    };
    let credentials = credentials(&args.registry, target)?;
    // The config blob's digest is the image ID: knowing it names the config line.
    let config = client
        .inspect_image(&args.source)
        .await
        .ok()
        .and_then(|i| i.image)
        .map(|i| i.id);
    let req = proto::PushImageRequest {
        source: args.source.clone(),
        destination,
        credentials,
        tls_verify: tls_verify(args.registry.tls_verify) as i32,
    };
    let mut shown = Progress::new(args.registry.quiet);
    let result = client
        .push_wait(req, |ev| match ev {
            PushEv::Resolved(_) => shown.started(None),
            PushEv::Blob(b) => shown.blob(b),
            PushEv::Done(_) => {}
        })
        .await;
    match result {
        Ok(_) => {
            shown.finish(config.as_deref(), false);
            Ok(Report::ok(String::new()))
        }
        Err(e) => {
            shown.abandon();
            Err(Failure::from_client(client.url(), &e))
        }
    }
}

fn tls_verify(v: Option<bool>) -> proto::TlsVerify {
    match v {
        None => proto::TlsVerify::Unspecified,
        Some(true) => proto::TlsVerify::Enabled,
        Some(false) => proto::TlsVerify::Disabled,
    }
}

/// `OS/ARCH[/VARIANT]`.
pub(crate) fn parse_platform(s: &str) -> Result<proto::Platform, Failure> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(proto::Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()).unwrap_or_default(),
        }),
        _ => Err(Failure::new(format!(
            "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8"
        ))),
    }
}

/// The credentials to send: `--creds`, else the `--authfile` entry for `reference`'s
/// registry, else none (the daemon's auth files apply).
fn credentials(
    args: &RegistryArgs,
    reference: &str,
) -> Result<Option<proto::RegistryCredentials>, Failure> {
    if let Some(c) = &args.creds {
        return parse_creds(c).map(Some);
    }
    match &args.authfile {
        Some(path) => authfile_credentials(path, reference),
        None => Ok(None),
    }
}

/// `USERNAME:PASSWORD` (the password may contain `:`).
pub(crate) fn parse_creds(s: &str) -> Result<proto::RegistryCredentials, Failure> {
    match s.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(proto::RegistryCredentials {
            username: user.to_owned(),
            password: password.to_owned(),
            ..Default::default()
        }),
        // Never echo the value: it may be a password typed in the wrong place.
        _ => Err(Failure::new(
            "--creds: expected USERNAME:PASSWORD (the username cannot be empty)",
        )),
    }
}

fn authfile_credentials(
    path: &Path,
    reference: &str,
) -> Result<Option<proto::RegistryCredentials>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("reading {}: {e}", path.display())))?;
    lookup_auth(&text, reference).map_err(|why| Failure::new(format!("{}: {why}", path.display())))
}

/// The registry and repository of a fully-qualified reference (`None` for a short name),
/// Docker Hub spelled `docker.io`.
fn repository_of(reference: &str) -> Option<(String, String)> {
    let (first, rest) = reference.split_once('/')?;
    if !(first.contains('.') || first.contains(':') || first == "localhost") {
        return None;
    }
    let repo = rest.split('@').next().unwrap_or(rest);
    // A tag follows the last `:` of the last path component.
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    Some((normalize_host(first), repo.to_owned()))
}

fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// An auth.json key as `host[/path]`: scheme and a trailing `/v1/`-style suffix dropped.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(k),
    }
}

/// The credentials of auth.json `text` for `reference`, as podman picks them: the entry
/// of the longest matching `host/namespace/repo` prefix, else the host's.
pub(crate) fn lookup_auth(
    text: &str,
    reference: &str,
) -> Result<Option<proto::RegistryCredentials>, String> {
    let (host, repo) = repository_of(reference).ok_or_else(|| {
        format!(
            "--authfile needs a fully-qualified reference to pick an entry, not {reference:?} \
             (the daemon resolves short names with its own auth files)"
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entries: HashMap<String, &serde_json::Value> =
        auths.iter().map(|(k, v)| (normalize_key(k), v)).collect();
    let mut candidates = Vec::new();
    let mut path = format!("{host}/{repo}");
    loop {
        candidates.push(path.clone());
        match path.rfind('/') {
            Some(i) => path.truncate(i),
            None => break,
        }
    }
    let Some(entry) = candidates.iter().find_map(|k| entries.get(k)) else {
        return Ok(None);
    };
    let mut creds = proto::RegistryCredentials::default();
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str())
        && !auth.is_empty()
    {
        let bad = || format!("the entry for {host} is not base64 of USERNAME:PASSWORD");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        creds.username = u.to_owned();
        creds.password = p.to_owned();
    }
    if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()) {
        creds.identity_token = t.to_owned();
    }
    Ok((creds != proto::RegistryCredentials::default()).then_some(creds))
}

// ------------------------------------------------------------------ progress

/// How progress is shown.
enum Progress {
    /// Nothing (`-q`).
    Quiet,
    /// podman's plain lines.
    Plain(PlainLog<std::io::Stderr>),
    /// One bar per blob.
    Bars(Bars),
}

impl Progress {
    fn new(quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Bars(Bars::default())
        } else {
            Self::Plain(PlainLog::new(std::io::stderr()))
        }
    }

    fn started(&mut self, pulling: Option<&str>) {
        match self {
            Self::Quiet => {}
            Self::Plain(p) => p.started(pulling),
            Self::Bars(b) => b.started(pulling),
        }
    }

    fn blob(&mut self, blob: &proto::BlobProgress) {
        match self {
            Self::Quiet => {}
            Self::Plain(p) => p.blob(blob),
            Self::Bars(b) => b.blob(blob),
        }
    }

    fn finish(&mut self, config: Option<&str>, up_to_date: bool) {
        match self {
            Self::Quiet => {}
            Self::Plain(p) => p.finish(config, up_to_date),
            Self::Bars(b) => b.finish(config),
        }
    }

    fn abandon(&mut self) {
        match self {
            Self::Quiet => {}
            Self::Plain(p) => p.flush_blobs(None),
            Self::Bars(b) => b.abandon(),
        }
    }
}

/// containers/image's lines when its output is not a terminal. Blob lines are held until
/// the end: the config (whose digest is the image ID, known at the end) comes after
/// the layers, as containers/image copies it last.
pub(crate) struct PlainLog<W: Write> {
    out: W,
    blobs: Vec<String>,
}

impl<W: Write> PlainLog<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            out,
            blobs: Vec::new(),
        }
    }

    // Writes to standard error fail only when it is closed: nothing to tell then.
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    pub(crate) fn started(&mut self, pulling: Option<&str>) {
        if let Some(r) = pulling {
            self.line(&format!("Trying to pull {r}..."));
        }
        self.line("Getting image source signatures");
    }

    pub(crate) fn blob(&mut self, b: &proto::BlobProgress) {
        if !self.blobs.contains(&b.digest) {
            self.blobs.push(b.digest.clone());
        }
    }

    fn flush_blobs(&mut self, config: Option<&str>) {
        let blobs = std::mem::take(&mut self.blobs);
        for d in blobs.iter().filter(|d| Some(d.as_str()) != config) {
            self.line(&format!("Copying blob {d}"));
        }
        if let Some(c) = config.filter(|c| blobs.iter().any(|d| d == c)) {
            self.line(&format!("Copying config {c}"));
        }
    }

    pub(crate) fn finish(&mut self, config: Option<&str>, up_to_date: bool) {
        let nothing_moved = self.blobs.is_empty();
        self.flush_blobs(config);
        if !(up_to_date && nothing_moved) {
            self.line("Writing manifest to image destination");
            self.line("Storing signatures");
        }
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

/// `Copying blob <12 hex>` (or `Copying config <10 hex>`): containers/image's prefix,
/// cut to one column width.
fn prefix(kind: &str, digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    let mut p = format!("Copying {kind} {hex}");
    p.truncate("Copying blob ".len() + 12);
    p
}

/// One progress bar per blob on standard error.
#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn multi(&mut self) -> &MultiProgress {
        self.multi
            .get_or_insert_with(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    }

    fn started(&mut self, pulling: Option<&str>) {
        let m = self.multi().clone();
        if let Some(r) = pulling {
            let _ = m.println(format!("Trying to pull {r}..."));
        }
        let _ = m.println("Getting image source signatures");
    }

    fn blob(&mut self, b: &proto::BlobProgress) {
        if !self.bars.contains_key(&b.digest) {
            let bar = self.multi().add(ProgressBar::new(b.size));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {bar:30} {binary_bytes} / {binary_total_bytes} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(prefix("blob", &b.digest));
            self.bars.insert(b.digest.clone(), bar);
        }
        let Some(bar) = self.bars.get(&b.digest) else {
            return;
        };
        bar.set_position(b.bytes_done);
        if b.skipped || b.bytes_done >= b.size {
            if let Ok(style) = ProgressStyle::with_template("{prefix} {msg}") {
                bar.set_style(style);
            }
            bar.finish_with_message(if b.skipped {
                "skipped: already exists"
            } else {
                "done"
            });
        }
    }

    fn finish(&mut self, config: Option<&str>) {
        if let Some(bar) = config.and_then(|c| self.bars.get(c)) {
            bar.set_prefix(prefix("config", config.unwrap_or_default()));
        }
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish_with_message("done");
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.println("Writing manifest to image destination");
            let _ = m.println("Storing signatures");
        }
    }

    fn abandon(&mut self) {
        for bar in self.bars.values() {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(d: &str, done: u64, size: u64, skipped: bool) -> proto::BlobProgress {
        proto::BlobProgress {
            digest: d.into(),
            bytes_done: done,
            size,
            skipped,
        }
    }

    #[test]
    fn plain_lines_are_podmans() {
        let mut p = PlainLog::new(Vec::new());
        p.started(Some("localhost:5000/app:1"));
        p.blob(&blob("sha256:cfg", 0, 10, false));
        p.blob(&blob("sha256:l1", 5, 10, false));
        p.blob(&blob("sha256:l1", 10, 10, false));
        p.blob(&blob("sha256:l2", 7, 7, true));
        p.blob(&blob("sha256:cfg", 10, 10, false));
        p.finish(Some("sha256:cfg"), false);
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "Trying to pull localhost:5000/app:1...\n\
             Getting image source signatures\n\
             Copying blob sha256:l1\n\
             Copying blob sha256:l2\n\
             Copying config sha256:cfg\n\
             Writing manifest to image destination\n\
             Storing signatures\n"
        );
        // Up to date without any blob: only the resolution lines.
        let mut p = PlainLog::new(Vec::new());
        p.started(None);
        p.finish(Some("sha256:cfg"), true);
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "Getting image source signatures\n"
        );
    }

    #[test]
    fn prefixes_align_like_containers_image() {
        let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
        assert_eq!(prefix("blob", &d), "Copying blob 0123456789ab");
        assert_eq!(prefix("config", &d), "Copying config 0123456789");
    }

    #[test]
    fn platforms_and_creds_parse() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            ("linux", "arm64", "v8")
        );
        assert_eq!(parse_platform("linux/amd64").unwrap().variant, "");
        for bad in ["linux", "/amd64", "linux/", "a/b/c/d"] {
            assert!(parse_platform(bad).is_err(), "{bad}");
        }
        let c = parse_creds("bob:pa:ss").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "pa:ss"));
        let e = parse_creds("s3cret-no-colon").map(|_| ()).unwrap_err();
        assert!(!format!("{e:?}").contains("s3cret"), "never echoed");
        assert!(parse_creds(":pw").is_err());
    }

    #[test]
    fn authfile_entries_are_picked_like_podman() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = serde_json::json!({
            "auths": {
                "localhost:5000": {"auth": b64("host:pw1")},
                "localhost:5000/team/app": {"auth": b64("repo:pw2")},
                "https://index.docker.io/v1/": {"auth": b64("hub:pw3")},
                "quay.io": {"identitytoken": "idt"},
            }
        })
        .to_string();
        let user = |r: &str| {
            lookup_auth(&text, r)
                .unwrap()
                .map(|c| (c.username, c.password, c.identity_token))
        };
        assert_eq!(
            user("localhost:5000/team/app:1"),
            Some(("repo".into(), "pw2".into(), String::new()))
        );
        assert_eq!(
            user("localhost:5000/other@sha256:abcd"),
            Some(("host".into(), "pw1".into(), String::new()))
        );
        assert_eq!(
            user("docker.io/library/alpine"),
            Some(("hub".into(), "pw3".into(), String::new()))
        );
        assert_eq!(
            user("quay.io/x/y:2"),
            Some((String::new(), String::new(), "idt".into()))
        );
        assert_eq!(user("ghcr.io/x/y:2"), None);
        assert!(lookup_auth(&text, "alpine").is_err(), "short names");
        assert!(lookup_auth("{", "quay.io/x").is_err());
    }
}
