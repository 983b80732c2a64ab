//! `imagectl tag` and `imagectl untag` (silent on success, like podman).

use imaged_client::Client;

use crate::args::{TagArgs, UntagArgs};
use crate::exit::{Failure, Report};

/// Adds the names to the source image.
pub(crate) async fn tag(client: &Client, args: &TagArgs) -> Result<Report, Failure> {
    client
        .tag_image(&args.source, args.names.clone())
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(String::new()))
}

/// Removes the names (every name when none is given) from the image.
pub(crate) async fn untag(client: &Client, args: &UntagArgs) -> Result<Report, Failure> {
    client
        .untag_image(&args.reference, args.names.clone())
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(String::new()))
}
