//! Pull: resolve, fetch the manifest (choosing the platform's instance of a manifest
//! list), stream config and layers into the engine's staging with their digests verified
//! on the way (blobs the store has are held, not fetched; a blob another pull is fetching
//! is waited for), then commit through LoadImages' path. Any failure drops the staging:
//! nothing is left behind.

use std::io::{self, Read};

use bytes::Bytes;
use futures_util::StreamExt;
use imaged_core::digest::Digest;
use imaged_core::engine::Engine;
use imaged_core::engine::staged::{PullStaging, PulledManifest};
use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::model::Platform;
use imaged_core::transfer::{Cancel, PullOutcome, PullPolicy, PullRequest, TransferEvent};
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;

use crate::client::{Candidate, Claim, RegistryClient, digest_of, io_error, map_err};
use crate::token::{Access, Target};

/// Manifest media types a pull accepts.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Largest manifest accepted.
const MAX_MANIFEST: usize = 4 << 20;

pub(crate) fn pull(
    client: &RegistryClient,
    engine: &Engine,
    req: &PullRequest,
    progress: &mut dyn FnMut(TransferEvent),
    cancel: &Cancel,
) -> Result<PullOutcome> {
    let candidates = client.candidates(&req.reference, req.tls_verify)?;
    if req.policy == PullPolicy::Missing
        && let Some(out) = local(engine, &candidates)
    {
        return Ok(out);
    }
    let result = pull_any(client, engine, req, &candidates, progress, cancel);
    // `newer` (podman's `--pull newer`): the registry decides whether the local image is
    // current, but when it cannot be asked the local image answers.
    match result {
        Err(e) if req.policy == PullPolicy::Newer && e.kind != ErrorKind::Cancelled => {
            match local(engine, &candidates) {
                Some(out) => {
                    tracing::warn!(reference = %req.reference, reason = e.kind.reason(),
                        "pull --policy newer: the registry failed, the local image answers: {e}");
                    Ok(out)
                }
                None => Err(e),
            }
        }
        r => r,
    }
}

/// Pulls from the first candidate that has the image.
fn pull_any(
    client: &RegistryClient,
    engine: &Engine,
    req: &PullRequest,
    candidates: &[Candidate],
    progress: &mut dyn FnMut(TransferEvent),
    cancel: &Cancel,
) -> Result<PullOutcome> {
    let mut tried = Vec::new();
    for c in candidates {
        match pull_from(client, engine, req, c, progress, cancel) {
            Ok(out) => return Ok(out),
            // A mirror that fails for any reason is skipped, as containers/image does.
            Err(e) if e.kind == ErrorKind::NotFoundInRegistries || c.mirror => {
                tried.push(format!("{}: {}", c.reference.whole(), e.message));
            }
            Err(e) => return Err(e.with_meta("reference", c.reference.whole())),
        }
    }
    Err(Error::new(
        ErrorKind::NotFoundInRegistries,
        format!(
            "{}: image not found in any registry; tried: {}",
            req.reference,
            tried.join("; ")
        ),
    )
    .with_meta("reference", req.reference.clone())
    .with_meta(
        "candidates",
        candidates
            .iter()
            .map(|c| c.reference.whole())
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// The name a pulled image gets: `registry/repo:tag`, or `registry/repo@digest` for a
/// pull by digest (podman stores that form as a name too; a tag given with a digest is
/// dropped, the digest being authoritative).
fn name_of(r: &Reference) -> String {
    match r.digest() {
        Some(d) => format!("{}/{}@{d}", r.registry(), r.repository()),
        None => format!(
            "{}/{}:{}",
            r.registry(),
            r.repository(),
            r.tag().unwrap_or("latest")
        ),
    }
}

/// `PullPolicy::Missing`: the local image a candidate names, if any.
fn local(engine: &Engine, candidates: &[Candidate]) -> Option<PullOutcome> {
    let view = engine.view();
    for c in candidates {
        let by_digest = || {
            let d = Digest::parse(c.name.digest()?).ok()?;
            view.images().find(|i| i.digests.contains(&d)).cloned()
        };
        let image = view
            .image_by_name(&name_of(&c.name))
            .cloned()
            .or_else(by_digest);
        if let Some(i) = image {
            return Some(PullOutcome {
                image_id: i.id,
                reference: c.name.whole(),
                digest: i.manifest.digest,
                up_to_date: true,
            });
        }
    }
    None
}

/// A manifest as fetched: bytes, digest (verified), media type.
struct Fetched {
    bytes: Bytes,
    digest: Digest,
    media_type: String,
    json: Value,
}

fn fetch_manifest(
    client: &RegistryClient,
    oci: &oci_client::Client,
    r: &Reference,
    auth: &RegistryAuth,
    want: Option<&Digest>,
    cancel: &Cancel,
) -> Result<Fetched> {
    let what = format!("manifest {}", r.whole());
    let (bytes, _) = client
        .run(cancel, &what, oci.pull_manifest_raw(r, auth, ACCEPT))?
        .map_err(|e| map_err(e, &what))?;
    if bytes.len() > MAX_MANIFEST {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "{what}: {} bytes, over the limit of {MAX_MANIFEST}",
                bytes.len()
            ),
        ));
    }
    let digest = Digest::of(&bytes);
    if let Some(w) = want
        && *w != digest
    {
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            format!("{what}: expected {w}, the content received is {digest}"),
        )
        .with_meta("digest", w.to_string())
        .with_meta("actual", digest.to_string()));
    }
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidArchive, format!("{what}: {e}")))?;
    let media_type = json
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if json.get("manifests").is_some() {
                ACCEPT[0].to_owned()
            } else {
                ACCEPT[1].to_owned()
            }
        });
    Ok(Fetched {
        bytes,
        digest,
        media_type,
        json,
    })
}

fn is_list(f: &Fetched) -> bool {
    f.json.get("manifests").is_some()
}

/// The instance of `list` for `want` (os/arch exact; variant when asked for).
fn choose(list: &Value, want: &Platform) -> Option<Digest> {
    let entries = list.get("manifests")?.as_array()?;
    entries.iter().find_map(|e| {
        let p = e.get("platform")?;
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let ok = s("os") == want.os
            && s("architecture") == want.architecture
            && (want.variant.is_empty() || s("variant") == want.variant);
        if ok {
            Digest::parse(e.get("digest")?.as_str()?).ok()
        } else {
            None
        }
    })
}

fn pull_from(
    client: &RegistryClient,
    engine: &Engine,
    req: &PullRequest,
    c: &Candidate,
    progress: &mut dyn FnMut(TransferEvent),
    cancel: &Cancel,
) -> Result<PullOutcome> {
    let r = &c.reference;
    let name = name_of(&c.name);
    let host = r.resolve_registry().to_owned();
    let target = Target {
        host: &host,
        insecure: c.insecure,
        repo: r.repository(),
        access: Access::Pull,
        mount_from: &[],
    };
    let auth = client.auth(
        req.credentials.as_ref(),
        c.name.resolve_registry(),
        &target,
        cancel,
    )?;
    let oci = client.client_for(&host, c.insecure, &auth)?;
    let want = r.digest().map(digest_of).transpose()?;
    let top = fetch_manifest(client, &oci, r, &auth, want.as_ref(), cancel)?;
    progress(TransferEvent::Resolved {
        reference: r.whole(),
    });
    let (manifest, list_digest) = if is_list(&top) {
        let platform = req
            .platform
            .clone()
            .unwrap_or_else(|| client.default_platform());
        let Some(d) = choose(&top.json, &platform) else {
            return Err(Error::new(
                ErrorKind::NoMatchingPlatform,
                format!(
                    "{}: no image in the manifest list for {}/{}{}",
                    r.whole(),
                    platform.os,
                    platform.architecture,
                    if platform.variant.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", platform.variant)
                    }
                ),
            )
            .with_meta(
                "platform",
                format!("{}/{}", platform.os, platform.architecture),
            ));
        };
        let ir = r.clone_with_digest(d.to_string());
        (
            fetch_manifest(client, &oci, &ir, &auth, Some(&d), cancel)?,
            Some(top.digest),
        )
    } else {
        (top, None)
    };
    if is_list(&manifest) {
        return Err(Error::new(
            ErrorKind::InvalidArchive,
            format!("{}: nested manifest lists are not supported", r.whole()),
        ));
    }
    let registry_digest = list_digest.unwrap_or(manifest.digest);
    // Already here (PullPolicy::Newer/Always): nothing to fetch.
    if let Some(i) = engine.view().image_by_name(&name)
        && i.digests.contains(&registry_digest)
    {
        return Ok(PullOutcome {
            image_id: i.id,
            reference: c.name.whole(),
            digest: registry_digest,
            up_to_date: true,
        });
    }

    let mut staging = engine.begin_pull()?;
    let mut reader: &[u8] = &manifest.bytes;
    staging.put_blob(&mut reader, &manifest.digest)?;
    let descs = descriptors(&manifest.json, &r.whole())?;
    let mut fetched_any = false;
    for d in &descs {
        fetched_any |= fetch_blob(client, &mut staging, &oci, r, d, progress, cancel)?;
    }
    // The last moment a cancel stops the pull: after the commit the image is stored.
    cancel.check(&format!("pull of {}", r.whole()))?;
    let report = staging.commit(&PulledManifest {
        digest: manifest.digest,
        media_type: manifest.media_type.clone(),
        size: manifest.bytes.len() as u64,
        name: Some(name),
        extra_digests: list_digest.into_iter().collect(),
    })?;
    let image_id = report
        .images
        .first()
        .map(|i| i.id)
        .ok_or_else(|| Error::internal("a pull committed no image"))?;
    Ok(PullOutcome {
        image_id,
        reference: c.name.whole(),
        digest: registry_digest,
        up_to_date: !fetched_any,
    })
}

/// Config then layers of a manifest.
fn descriptors(m: &Value, what: &str) -> Result<Vec<OciDescriptor>> {
    let bad = |e: String| Error::new(ErrorKind::InvalidArchive, format!("manifest {what}: {e}"));
    let mut out = Vec::new();
    let config = m.get("config").ok_or_else(|| bad("no config".into()))?;
    out.push(serde_json::from_value(config.clone()).map_err(|e| bad(e.to_string()))?);
    for l in m
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no layers".into()))?
    {
        out.push(serde_json::from_value(l.clone()).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

/// Gets one blob into the staging: held when the store has it, waited for when another
/// pull is fetching it, else fetched. `true` when fetched.
fn fetch_blob(
    client: &RegistryClient,
    staging: &mut PullStaging<'_>,
    oci: &oci_client::Client,
    r: &Reference,
    d: &OciDescriptor,
    progress: &mut dyn FnMut(TransferEvent),
    cancel: &Cancel,
) -> Result<bool> {
    let digest = digest_of(&d.digest)?;
    let total = u64::try_from(d.size).unwrap_or(0);
    loop {
        if staging.hold_blob(&digest, total)? {
            progress(TransferEvent::Blob {
                digest,
                done: total,
                total,
                skipped: true,
            });
            return Ok(false);
        }
        let Claim::Owner(guard) = client.inflight.claim(digest, cancel)? else {
            continue;
        };
        let what = format!("blob {digest}");
        let stream = client
            .run(cancel, &what, oci.pull_blob_stream(r, d))?
            .map_err(|e| map_err(e, &what))?;
        let mut body = Body {
            rt: client.rt().handle(),
            cancel,
            stream: stream.stream,
            buf: Bytes::new(),
            done: 0,
            limit: total,
            err: None,
            digest,
            progress: &mut *progress,
        };
        let put = staging.put_blob(&mut body, &digest);
        let err = body.err.take();
        drop(guard);
        match (put, err) {
            (Ok(_), _) => return Ok(true),
            (Err(_), _) if cancel.is_cancelled() => return Err(Cancel::error(&what)),
            (Err(e), _) if e.kind == ErrorKind::DigestMismatch => return Err(e),
            (Err(_), Some(io)) => return Err(io_error(&io, &what)),
            (Err(e), None) => return Err(e),
        }
    }
}

/// A blocking reader over a blob's byte stream, bounded by its descriptor's size.
struct Body<'a> {
    rt: &'a tokio::runtime::Handle,
    cancel: &'a Cancel,
    stream: futures_util::stream::BoxStream<'static, std::result::Result<Bytes, io::Error>>,
    buf: Bytes,
    done: u64,
    limit: u64,
    err: Option<io::Error>,
    digest: Digest,
    progress: &'a mut dyn FnMut(TransferEvent),
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            let next = self.rt.block_on(async {
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => None,
                    next = self.stream.next() => Some(next),
                }
            });
            let Some(next) = next else {
                return Err(io::Error::other("cancelled by the caller"));
            };
            match next {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.done += chunk.len() as u64;
                    if self.done > self.limit {
                        let e = io::Error::other(format!(
                            "digest check: blob {} is larger than its descriptor's {} bytes",
                            self.digest, self.limit
                        ));
                        self.err = Some(io::Error::new(e.kind(), e.to_string()));
                        return Err(e);
                    }
                    self.buf = chunk;
                    (self.progress)(TransferEvent::Blob {
                        digest: self.digest,
                        done: self.done,
                        total: self.limit,
                        skipped: false,
                    });
                }
                Some(Err(e)) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.err = Some(e);
                    return Err(copy);
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}
