//! gRPC plumbing shared by the imaged and containerd measurements: a channel on a unix
//! socket (authority `localhost`), the health client, the containerd images client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The minimal containerd images API compiled by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub(crate) mod containerd {
    /// Package `containerd.types`.
    pub(crate) mod types {
        tonic::include_proto!("containerd.types");
    }
    /// Package `containerd.services.*`.
    pub(crate) mod services {
        /// Package `containerd.services.images`.
        pub(crate) mod images {
            /// Package `containerd.services.images.v1`.
            pub(crate) mod v1 {
                tonic::include_proto!("containerd.services.images.v1");
            }
        }
    }
}

/// Connects a channel to the unix socket at `path` (one HTTP/2 connection, reused by
/// every call made through clones of the channel).
pub(crate) async fn unix_channel(path: &Path) -> Result<Channel> {
    let path: Arc<PathBuf> = Arc::new(path.to_owned());
    let shown = path.display().to_string();
    let connector = tower::service_fn(move |_: Uri| {
        let path = Arc::clone(&path);
        async move {
            let stream = UnixStream::connect(path.as_path()).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .with_context(|| format!("connecting to {shown}"))
}

/// One `grpc.health.v1.Health/Check` for the whole server: the no-op round trip.
pub(crate) async fn health_check(channel: &Channel) -> Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("health check")?;
    Ok(())
}
