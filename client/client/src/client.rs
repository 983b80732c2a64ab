//! [`Client`]: one typed method per RPC of `imaged.v1.ImageService`,
//! `imaged.v1.ContainerService` and `imaged.v1.GcService`.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use imaged_proto::imaged::v1 as pb;
use pb::container_service_client::ContainerServiceClient;
use pb::gc_service_client::GcServiceClient;
use pb::image_service_client::ImageServiceClient;
use tokio::io::AsyncRead;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::connect::{self, BearerAuth, ConnectOptions};
use crate::target::{self, Target};
use crate::{ClientError, load, pages};

/// Largest response accepted (a ListImages page of 10000 images fits).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

type Transport = InterceptedService<Channel, BearerAuth>;

/// A connection to imaged. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    images: ImageServiceClient<Transport>,
    containers: ContainerServiceClient<Transport>,
    gc: GcServiceClient<Transport>,
    /// ListImages with undecoded responses (`pages`: pipelined listings).
    raw: tonic::client::Grpc<Transport>,
    url: String,
}

impl Client {
    /// Connects to `url` (`unix:///path`, `http://host:port` or `https://host:port`) with
    /// default options.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connects to [`target::default_url`] with default options.
    pub async fn connect_default() -> Result<Self, ClientError> {
        Self::connect(&target::default_url()).await
    }

    /// Connects to `url` with TLS, token and timeout options.
    pub async fn connect_with(url: &str, opts: ConnectOptions) -> Result<Self, ClientError> {
        let target = Target::parse(url)?;
        let auth = opts.auth()?;
        let channel = connect::channel(&target, &opts).await?;
        Ok(Self::build(channel, auth, url.trim().to_owned()))
    }

    /// Wraps an existing channel (tests, custom transports). `url` is only used in messages.
    pub fn from_channel(
        channel: Channel,
        token: Option<&str>,
        url: impl Into<String>,
    ) -> Result<Self, ClientError> {
        Ok(Self::build(channel, BearerAuth::new(token)?, url.into()))
    }

    fn build(channel: Channel, auth: BearerAuth, url: String) -> Self {
        let images = ImageServiceClient::with_interceptor(channel.clone(), auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let containers = ContainerServiceClient::with_interceptor(channel.clone(), auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let raw = tonic::client::Grpc::new(InterceptedService::new(channel.clone(), auth.clone()))
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let gc = GcServiceClient::with_interceptor(channel, auth)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        Self {
            images,
            containers,
            gc,
            raw,
            url,
        }
    }

    /// The URL this client was connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One page of `ListImages`.
    pub async fn list_images(
        &self,
        req: pb::ListImagesRequest,
    ) -> Result<pb::ListImagesResponse, ClientError> {
        Ok(self.images.clone().list_images(req).await?.into_inner())
    }

    /// Every image matching `req`, following `next_page_token` from `req.page_token` to
    /// the last page.
    pub async fn list_all(
        &self,
        req: pb::ListImagesRequest,
    ) -> Result<Vec<pb::Image>, ClientError> {
        let pages = self.list_pages(req).await?;
        let mut images = Vec::with_capacity(pages.iter().map(|p| p.images.len()).sum());
        for p in pages {
            images.extend(p.images);
        }
        Ok(images)
    }

    /// Every page of the listing `req` asks for, from `req.page_token` to the last. The
    /// next page is requested as soon as a page arrives (its token is read before the
    /// page is decoded), so the daemon answers it while this client decodes.
    pub async fn list_pages(
        &self,
        mut req: pb::ListImagesRequest,
    ) -> Result<Vec<pb::ListImagesResponse>, ClientError> {
        let mut grpc = self.raw.clone();
        let mut raw = pages::fetch(&mut grpc, req.clone()).await?;
        let mut out = Vec::new();
        loop {
            let token = pages::next_token(&raw)?;
            if token.is_empty() {
                out.push(pages::decode(raw).await?);
                return Ok(out);
            }
            if token == req.page_token {
                return Err(ClientError::local(
                    crate::ErrorKind::Code(tonic::Code::Internal),
                    tonic::Code::Internal,
                    "the daemon returned the same page token twice",
                ));
            }
            req.page_token = token;
            let (page, next) =
                tokio::join!(pages::decode(raw), pages::fetch(&mut grpc, req.clone()));
            out.push(page?);
            raw = next?;
        }
    }

    /// `InspectImage` of one reference.
    pub async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<pb::InspectImageResponse, ClientError> {
        let req = pb::InspectImageRequest {
            reference: reference.to_owned(),
            ..pb::InspectImageRequest::default()
        };
        Ok(self.images.clone().inspect_image(req).await?.into_inner())
    }

    /// `RemoveImage` of one reference.
    pub async fn remove_image(
        &self,
        req: pb::RemoveImageRequest,
    ) -> Result<pb::RemoveImageResponse, ClientError> {
        Ok(self.images.clone().remove_image(req).await?.into_inner())
    }

    /// `RemoveImages`: many removals in one call, a result per removal.
    pub async fn remove_images(
        &self,
        req: pb::RemoveImagesRequest,
    ) -> Result<pb::RemoveImagesResponse, ClientError> {
        Ok(self.images.clone().remove_images(req).await?.into_inner())
    }

    /// `PruneImages`.
    pub async fn prune_images(
        &self,
        req: pb::PruneImagesRequest,
    ) -> Result<pb::PruneImagesResponse, ClientError> {
        Ok(self.images.clone().prune_images(req).await?.into_inner())
    }

    /// `LoadImages`: streams `reader` in [`load::CHUNK_SIZE`] chunks. `progress` is called
    /// with the total number of bytes read so far after each chunk. A read error cancels
    /// the call (the daemon stores nothing) and is returned with kind
    /// [`crate::ErrorKind::Io`].
    pub async fn load<R, P>(
        &self,
        reader: R,
        format: pb::ArchiveFormat,
        default_names: Vec<String>,
        progress: P,
    ) -> Result<pb::LoadImagesResponse, ClientError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        P: FnMut(u64) + Send + 'static,
    {
        let (requests, read_error) = load::chunks(reader, format, default_names, progress);
        let mut images = self.images.clone();
        let call = images.load_images(requests);
        tokio::pin!(call);
        tokio::select! {
            res = &mut call => Ok(res?.into_inner()),
            Ok(err) = read_error => Err(ClientError::io("reading the archive", &err)),
        }
    }

    /// `PullImage`: starts a pull and returns its progress stream (`resolved`, `blob`s,
    /// `done`). The pull runs in the daemon; dropping the stream stops listening.
    pub async fn pull(&self, req: pb::PullImageRequest) -> Result<PullStream, ClientError> {
        let inner = self.images.clone().pull_image(req).await?.into_inner();
        Ok(PullStream { inner })
    }

    /// `PullImage` to the end: calls `on_event` with every progress message and returns
    /// the final `done`.
    pub async fn pull_wait(
        &self,
        req: pb::PullImageRequest,
        mut on_event: impl FnMut(&pb::pull_image_response::Event),
    ) -> Result<pb::PullDone, ClientError> {
        let mut s = self.pull(req).await?;
        while let Some(ev) = s.next_event().await? {
            on_event(&ev);
            if let pb::pull_image_response::Event::Done(d) = ev {
                return Ok(d);
            }
        }
        Err(missing("PullImageResponse.done"))
    }

    /// `PushImage`: starts a push and returns its progress stream (`resolved`, `blob`s,
    /// `done`).
    pub async fn push(&self, req: pb::PushImageRequest) -> Result<PushStream, ClientError> {
        let inner = self.images.clone().push_image(req).await?.into_inner();
        Ok(PushStream { inner })
    }

    /// `PushImage` to the end: calls `on_event` with every progress message and returns
    /// the final `done`.
    pub async fn push_wait(
        &self,
        req: pb::PushImageRequest,
        mut on_event: impl FnMut(&pb::push_image_response::Event),
    ) -> Result<pb::PushDone, ClientError> {
        let mut s = self.push(req).await?;
        while let Some(ev) = s.next_event().await? {
            on_event(&ev);
            if let pb::push_image_response::Event::Done(d) = ev {
                return Ok(d);
            }
        }
        Err(missing("PushImageResponse.done"))
    }

    /// `TagImage`: adds `names` to the image `source`.
    pub async fn tag_image(
        &self,
        source: &str,
        names: Vec<String>,
    ) -> Result<pb::TagImageResponse, ClientError> {
        let req = pb::TagImageRequest {
            source: source.to_owned(),
            names,
            // podman tag: the daemon's platform, instances by name.
            platform: None,
            lookup_manifest: false,
        };
        Ok(self.images.clone().tag_image(req).await?.into_inner())
    }

    /// `UntagImage`: removes `names` (every name when empty) from the image `reference`.
    pub async fn untag_image(
        &self,
        reference: &str,
        names: Vec<String>,
    ) -> Result<pb::UntagImageResponse, ClientError> {
        let req = pb::UntagImageRequest {
            reference: reference.to_owned(),
            names,
            platform: None,
            lookup_manifest: false,
        };
        Ok(self.images.clone().untag_image(req).await?.into_inner())
    }

    /// `ImageDiskUsage`; `verbose` adds one entry per image.
    pub async fn image_disk_usage(
        &self,
        verbose: bool,
    ) -> Result<pb::ImageDiskUsageResponse, ClientError> {
        let req = pb::ImageDiskUsageRequest { verbose };
        Ok(self
            .images
            .clone()
            .image_disk_usage(req)
            .await?
            .into_inner())
    }

    /// `WatchEvents`: a stream of events of `types` (all when empty) that never ends on its
    /// own; drop it to stop watching.
    pub async fn watch_events(&self, types: &[pb::EventType]) -> Result<EventStream, ClientError> {
        let req = pb::WatchEventsRequest {
            types: types.iter().map(|t| *t as i32).collect(),
        };
        let inner = self.images.clone().watch_events(req).await?.into_inner();
        Ok(EventStream { inner })
    }

    /// `RegisterContainer`.
    pub async fn register_container(
        &self,
        req: pb::RegisterContainerRequest,
    ) -> Result<pb::Container, ClientError> {
        let resp = self
            .containers
            .clone()
            .register_container(req)
            .await?
            .into_inner();
        resp.container
            .ok_or_else(|| missing("RegisterContainerResponse.container"))
    }

    /// `SetContainerState`.
    pub async fn set_container_state(
        &self,
        id: &str,
        state: pb::ContainerState,
    ) -> Result<pb::Container, ClientError> {
        let req = pb::SetContainerStateRequest {
            id: id.to_owned(),
            state: state as i32,
        };
        let resp = self
            .containers
            .clone()
            .set_container_state(req)
            .await?
            .into_inner();
        resp.container
            .ok_or_else(|| missing("SetContainerStateResponse.container"))
    }

    /// `UnregisterContainer`.
    pub async fn unregister_container(
        &self,
        id: &str,
        ignore_missing: bool,
    ) -> Result<(), ClientError> {
        let req = pb::UnregisterContainerRequest {
            id: id.to_owned(),
            ignore_missing,
        };
        self.containers.clone().unregister_container(req).await?;
        Ok(())
    }

    /// `ListContainers`, optionally only those of `image` (any reference form).
    pub async fn list_containers(
        &self,
        image: Option<&str>,
    ) -> Result<Vec<pb::Container>, ClientError> {
        let req = pb::ListContainersRequest {
            image: image.unwrap_or_default().to_owned(),
        };
        Ok(self
            .containers
            .clone()
            .list_containers(req)
            .await?
            .into_inner()
            .containers)
    }

    /// `GetGcPolicy`: the GC policy in force.
    pub async fn get_gc_policy(&self) -> Result<pb::GcPolicy, ClientError> {
        Ok(self
            .gc
            .clone()
            .get_gc_policy(pb::GetGcPolicyRequest {})
            .await?
            .into_inner())
    }

    /// `SetGcPolicy`: replaces the GC policy in force (until the daemon stops) and returns
    /// it as the daemon stored it (an unset `min_age` becomes the default).
    pub async fn set_gc_policy(&self, policy: pb::GcPolicy) -> Result<pb::GcPolicy, ClientError> {
        let req = pb::SetGcPolicyRequest {
            policy: Some(policy),
        };
        Ok(self.gc.clone().set_gc_policy(req).await?.into_inner())
    }

    /// `RunGc`: runs the GC policy once now; with `dry_run`, reports what a run would
    /// delete and changes nothing.
    pub async fn run_gc(&self, dry_run: bool) -> Result<pb::RunGcResponse, ClientError> {
        let req = pb::RunGcRequest { dry_run };
        Ok(self.gc.clone().run_gc(req).await?.into_inner())
    }
}

fn missing(field: &str) -> ClientError {
    ClientError::local(
        crate::ErrorKind::Code(tonic::Code::Internal),
        tonic::Code::Internal,
        format!("the daemon sent no {field}"),
    )
}

/// The events of [`Client::watch_events`].
#[derive(Debug)]
pub struct EventStream {
    inner: tonic::Streaming<pb::Event>,
}

impl EventStream {
    /// The next event; `None` when the daemon closed the stream (e.g. shutting down).
    pub async fn next_event(&mut self) -> Result<Option<pb::Event>, ClientError> {
        Ok(self.inner.message().await?)
    }
}

impl Stream for EventStream {
    type Item = Result<pb::Event, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(ClientError::from)))
    }
}

/// The progress of [`Client::pull`].
#[derive(Debug)]
pub struct PullStream {
    inner: tonic::Streaming<pb::PullImageResponse>,
}

impl PullStream {
    /// The next progress message; `None` after `done` (the daemon closed the stream).
    /// A failed pull ends with an error instead of `done`.
    pub async fn next_event(
        &mut self,
    ) -> Result<Option<pb::pull_image_response::Event>, ClientError> {
        loop {
            match self.inner.message().await? {
                None => return Ok(None),
                // A message without an event (a newer daemon's event kind): skipped.
                Some(pb::PullImageResponse { event: None }) => {}
                Some(pb::PullImageResponse { event: Some(e) }) => return Ok(Some(e)),
            }
        }
    }
}

/// The progress of [`Client::push`].
#[derive(Debug)]
pub struct PushStream {
    inner: tonic::Streaming<pb::PushImageResponse>,
}

impl PushStream {
    /// The next progress message; `None` after `done`. A failed push ends with an error.
    pub async fn next_event(
        &mut self,
    ) -> Result<Option<pb::push_image_response::Event>, ClientError> {
        loop {
            match self.inner.message().await? {
                None => return Ok(None),
                Some(pb::PushImageResponse { event: None }) => {}
                Some(pb::PushImageResponse { event: Some(e) }) => return Ok(Some(e)),
            }
        }
    }
}
