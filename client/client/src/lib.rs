//! Client library for imaged.
//!
//! * [`Client::connect`] takes `unix:///abs/path` (HTTP/2 authority `localhost`),
//!   `http://host:port` or `https://host:port` (rustls; CA file, client certificate and
//!   bearer token through [`ConnectOptions`]). [`default_url`] gives `$IMAGED_HOST`, else
//!   the root or per-user socket.
//! * One typed method per RPC of `imaged.v1.ImageService`, `imaged.v1.ContainerService`
//!   and `imaged.v1.GcService`, returning the generated messages re-exported as
//!   [`proto`]; [`Client::list_all`] and [`Client::list_pages`] follow the page tokens
//!   (pipelined: the next page is requested while one is decoded), [`Client::load`] streams an
//!   archive, [`Client::watch_events`] returns an [`EventStream`], [`Client::pull`] and
//!   [`Client::push`] a [`PullStream`] / [`PushStream`] of progress messages;
//!   [`Client::get_gc_policy`], [`Client::set_gc_policy`] and [`Client::run_gc`] show,
//!   replace and run the GC policy.
//! * Failures are [`ClientError`]s whose [`ErrorKind`] is the [`ErrorReason`] of the
//!   `google.rpc.ErrorInfo` the daemon attaches (domain `imaged.io`), or the gRPC code
//!   without one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), imaged_client::ClientError> {
//! use imaged_client::{Client, ErrorReason, proto};
//!
//! let client = Client::connect("unix:///run/imaged/imaged.sock").await?;
//! for image in client.list_all(proto::ListImagesRequest::default()).await? {
//!     println!("{} {:?}", image.id, image.names);
//! }
//! let req = proto::RemoveImageRequest { reference: "alpine".into(), ..Default::default() };
//! match client.remove_image(req).await {
//!     Ok(resp) => println!("{} records", resp.records.len()),
//!     Err(e) if e.kind == ErrorReason::ImageInUse => eprintln!("in use: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

mod client;
mod connect;
mod error;
pub mod load;
mod pages;
mod target;

pub use client::{Client, EventStream, MAX_RESPONSE_BYTES, PullStream, PushStream};
pub use connect::{BearerAuth, ConnectOptions, DEFAULT_CONNECT_TIMEOUT};
pub use error::{
    ClientError, ERROR_DOMAIN, ErrorKind, ErrorReason, FieldViolation, PreconditionViolation,
};
pub use target::{HOST_ENV, ROOT_SOCKET, Target, default_socket_url, default_url};

/// The generated messages and enums of `imaged.v1`.
pub use imaged_proto::imaged::v1 as proto;
/// `google.protobuf.Duration`, as used in [`proto`] messages (the GC policy's ages).
pub use prost_types::Duration;
/// `google.protobuf.Timestamp`, as used in [`proto`] messages.
pub use prost_types::Timestamp;
/// gRPC status codes ([`ClientError::code`]).
pub use tonic::Code;
/// The tonic channel accepted by [`Client::from_channel`].
pub use tonic::transport::Channel;

/// Compiles the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
