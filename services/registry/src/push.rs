//! Push: uploads a local image's config and layers, then its manifest, as stored (so the
//! digest in the registry is the local manifest digest). A blob the destination
//! repository has (HEAD) is skipped; one another repository of the same registry has,
//! among those the image is named in, is mounted from there (cross-repository mount, no
//! upload); any other is read from the store (`Store::read_blob`) and uploaded. A store
//! that keeps no compressed layer blobs (containers-storage) can therefore push an image
//! to the registry it was pulled from, under any repository; elsewhere it cannot.

use imaged_core::digest::Digest;
use imaged_core::engine::Engine;
use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::model::BlobRef;
use imaged_core::reference::resolve::resolve;
use imaged_core::transfer::{Cancel, PushOutcome, PushRequest, TransferEvent};
use oci_client::Reference;
use reqwest::header::HeaderValue;

use crate::client::{RegistryClient, map_err, parse_qualified};
use crate::token::{Access, Target};

pub(crate) fn push(
    client: &RegistryClient,
    engine: &Engine,
    req: &PushRequest,
    progress: &mut dyn FnMut(TransferEvent),
    cancel: &Cancel,
) -> Result<PushOutcome> {
    let view = engine.view();
    let image = resolve(&view, engine.config(), &req.source)?.image;
    if image.instances.is_some() {
        return Err(Error::new(
            ErrorKind::Unimplemented,
            format!(
                "{}: pushing a manifest list is not supported yet",
                req.source
            ),
        ));
    }
    let dest = if req.destination.is_empty() {
        image.names.first().cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{}: the image has no name: give a destination", req.source),
            )
        })?
    } else {
        req.destination.clone()
    };
    let r = parse_qualified(&dest)?;
    let host = r.resolve_registry().to_owned();
    let insecure = client.is_insecure(&host, client.conf_insecure(&dest), req.tls_verify);
    // Repositories of the same registry the image is named in: mount sources (an access
    // token an identity token buys covers pulling from them too).
    let sources: Vec<Reference> = image
        .names
        .iter()
        .filter_map(|n| parse_qualified(n).ok())
        .filter(|n| n.resolve_registry() == host && n.repository() != r.repository())
        .collect();
    let mount_from: Vec<&str> = sources.iter().map(Reference::repository).collect();
    let target = Target {
        host: &host,
        insecure,
        repo: r.repository(),
        access: Access::Push,
        mount_from: &mount_from,
    };
    let auth = client.auth(req.credentials.as_ref(), &host, &target, cancel)?;
    let oci = client.client_for(&host, insecure, &auth)?;
    let what = format!("authenticating to {host}");
    client
        .run(
            cancel,
            &what,
            oci.auth(&r, &auth, oci_client::RegistryOperation::Push),
        )?
        .map_err(|e| map_err(e, &what))?;
    progress(TransferEvent::Resolved {
        reference: r.whole(),
    });
    let blobs: Vec<&BlobRef> = image
        .config_blob
        .iter()
        .chain(image.layers.iter().map(|l| &l.blob))
        .collect();
    let dest = Destination {
        client,
        oci: &oci,
        r: &r,
        sources: &sources,
        cancel,
    };
    for b in blobs {
        let skipped = dest.put_blob(engine, b)?;
        progress(TransferEvent::Blob {
            digest: b.digest,
            done: b.size,
            total: b.size,
            skipped,
        });
    }
    let manifest = read(engine, &image.manifest.digest, "manifest")?;
    let ct = HeaderValue::from_str(&image.manifest.media_type).map_err(|e| {
        Error::internal(format!(
            "manifest media type {:?}: {e}",
            image.manifest.media_type
        ))
    })?;
    let what = format!("pushing the manifest to {}", r.whole());
    client
        .run(cancel, &what, oci.push_manifest_raw(&r, manifest, ct))?
        .map_err(|e| map_err(e, &what))?;
    Ok(PushOutcome {
        reference: r.whole(),
        digest: image.manifest.digest,
    })
}

fn read(engine: &Engine, digest: &Digest, what: &str) -> Result<Vec<u8>> {
    engine.store().read_blob(digest)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Unimplemented,
            format!("{what} {digest}: the store does not keep it, so the image cannot be pushed"),
        )
    })
}

/// Where a push goes: the transport, the reference, the repositories blobs may be
/// mounted from, and the push's cancellation.
struct Destination<'a> {
    client: &'a RegistryClient,
    oci: &'a oci_client::Client,
    r: &'a Reference,
    sources: &'a [Reference],
    cancel: &'a Cancel,
}

impl Destination<'_> {
    /// Gets blob `b` into the destination repository: `true` when it was there already
    /// or could be mounted, `false` when it was uploaded.
    fn put_blob(&self, engine: &Engine, b: &BlobRef) -> Result<bool> {
        let Self {
            client,
            oci,
            r,
            sources,
            cancel,
        } = *self;
        let what = format!("blob {}", b.digest);
        let digest = b.digest.to_string();
        let exists = client
            .run(cancel, &what, oci.blob_exists(r, &digest))?
            .map_err(|e| map_err(e, &what))?;
        if exists {
            return Ok(true);
        }
        // A failed mount is no error: the registry answers it by opening an upload.
        let mounted = sources.iter().any(|from| {
            client
                .run(cancel, &what, oci.mount_blob(r, from, &digest))
                .is_ok_and(|r| r.is_ok())
        });
        if mounted {
            return Ok(true);
        }
        let data = engine.store().read_blob(&b.digest)?.ok_or_else(|| {
            Error::new(
                ErrorKind::Unimplemented,
                format!(
                    "{what}: the store does not keep this blob (containers-storage keeps no \
                     compressed layer blobs) and no repository of {} the image is named in \
                     has it, so the image cannot be pushed there",
                    r.resolve_registry()
                ),
            )
        })?;
        let pushing = format!("pushing {what}");
        client
            .run(cancel, &pushing, oci.push_blob(r, data, &digest))?
            .map_err(|e| map_err(e, &pushing))?;
        Ok(false)
    }
}
