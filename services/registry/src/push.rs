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
use imaged_core::transfer::{PushOutcome, PushRequest, TransferEvent};
use oci_client::Reference;
use reqwest::header::HeaderValue;

use crate::client::{RegistryClient, map_err, parse_qualified};

pub(crate) fn push(
    client: &RegistryClient,
    engine: &Engine,
    req: &PushRequest,
    progress: &mut dyn FnMut(TransferEvent),
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
    let auth = client.auth(req.credentials.as_ref(), &host, &host, r.repository())?;
    let oci = client.client_for(&host, insecure, &auth)?;
    client
        .rt()
        .block_on(oci.auth(&r, &auth, oci_client::RegistryOperation::Push))
        .map_err(|e| map_err(e, &format!("authenticating to {host}")))?;
    progress(TransferEvent::Resolved {
        reference: r.whole(),
    });
    let blobs: Vec<&BlobRef> = image
        .config_blob
        .iter()
        .chain(image.layers.iter().map(|l| &l.blob))
        .collect();
    // Repositories of the same registry the image is named in: mount sources.
    let sources: Vec<Reference> = image
        .names
        .iter()
        .filter_map(|n| parse_qualified(n).ok())
        .filter(|n| n.resolve_registry() == host && n.repository() != r.repository())
        .collect();
    for b in blobs {
        push_blob(client, engine, &oci, &r, &sources, b, progress)?;
    }
    let manifest = read(engine, &image.manifest.digest, "manifest")?;
    let ct = HeaderValue::from_str(&image.manifest.media_type).map_err(|e| {
        Error::internal(format!(
            "manifest media type {:?}: {e}",
            image.manifest.media_type
        ))
    })?;
    client
        .rt()
        .block_on(oci.push_manifest_raw(&r, manifest, ct))
        .map_err(|e| map_err(e, &format!("pushing the manifest to {}", r.whole())))?;
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

fn push_blob(
    client: &RegistryClient,
    engine: &Engine,
    oci: &oci_client::Client,
    r: &Reference,
    sources: &[Reference],
    b: &BlobRef,
    progress: &mut dyn FnMut(TransferEvent),
) -> Result<()> {
    let what = format!("blob {}", b.digest);
    let digest = b.digest.to_string();
    let exists = client
        .rt()
        .block_on(oci.blob_exists(r, &digest))
        .map_err(|e| map_err(e, &what))?;
    // A failed mount is no error: the registry answers it by opening an upload instead.
    let mounted = !exists
        && sources.iter().any(|from| {
            client
                .rt()
                .block_on(oci.mount_blob(r, from, &digest))
                .is_ok()
        });
    if !exists && !mounted {
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
        client
            .rt()
            .block_on(oci.push_blob(r, data, &digest))
            .map_err(|e| map_err(e, &format!("pushing {what}")))?;
    }
    progress(TransferEvent::Blob {
        digest: b.digest,
        done: b.size,
        total: b.size,
        skipped: exists || mounted,
    });
    Ok(())
}
