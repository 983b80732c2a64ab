//! Push: uploads a local image's config and layers (skipping those the registry already
//! has: HEAD), then its manifest, as stored (so the digest in the registry is the local
//! manifest digest). Blobs come from `Store::read_blob`; a store that does not keep
//! compressed layer blobs (containers-storage) cannot push yet.

use imaged_core::digest::Digest;
use imaged_core::engine::Engine;
use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::model::BlobRef;
use imaged_core::reference::resolve::resolve;
use imaged_core::transfer::{PushOutcome, PushRequest, TransferEvent};
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
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
    for b in blobs {
        push_blob(client, engine, &oci, &r, &auth, b, progress)?;
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
            format!(
                "{what} {digest}: the store does not keep this blob (containers-storage keeps \
                 no compressed layer blobs), so the image cannot be pushed from it"
            ),
        )
    })
}

fn push_blob(
    client: &RegistryClient,
    engine: &Engine,
    oci: &oci_client::Client,
    r: &Reference,
    _auth: &RegistryAuth,
    b: &BlobRef,
    progress: &mut dyn FnMut(TransferEvent),
) -> Result<()> {
    let what = format!("blob {}", b.digest);
    let exists = client
        .rt()
        .block_on(oci.blob_exists(r, &b.digest.to_string()))
        .map_err(|e| map_err(e, &what))?;
    if !exists {
        let data = read(engine, &b.digest, "blob")?;
        client
            .rt()
            .block_on(oci.push_blob(r, data, &b.digest.to_string()))
            .map_err(|e| map_err(e, &format!("pushing {what}")))?;
    }
    progress(TransferEvent::Blob {
        digest: b.digest,
        done: b.size,
        total: b.size,
        skipped: exists,
    });
    Ok(())
}
