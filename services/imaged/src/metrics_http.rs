//! A minimal HTTP/1.1 responder for Prometheus on a loopback address: `GET /metrics`
//! returns the text exposition format; anything else is 404. One request per connection.

use std::sync::Arc;
use std::time::Duration;

use imaged_grpc::Services;

use crate::conn::Stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8192;

/// Serves metrics until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, services: Arc<Services>, conns: Arc<Stats>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let services = Arc::clone(&services);
                let conns = Arc::clone(&conns);
                tokio::spawn(async move {
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        handle(sock, &services, &conns),
                    )
                    .await;
                    if let Ok(Err(e)) = r {
                        tracing::debug!("metrics connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut sock: TcpStream, services: &Services, conns: &Stats) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, body) =
        if method == b"GET" && (path == b"/metrics" || path.starts_with(b"/metrics?")) {
            ("200 OK", render(services, conns))
        } else {
            ("404 Not Found", "not found: try GET /metrics\n".to_owned())
        };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

/// Counters and gauges in the Prometheus text format.
pub(crate) fn render(services: &Services, conns: &Stats) -> String {
    let view = services.engine().view();
    let mut out = services.metrics().render();
    out.push_str(&format!(
        "# HELP imaged_images Images in the store (manifest lists included).\n\
         # TYPE imaged_images gauge\nimaged_images {}\n\
         # HELP imaged_containers Registered containers.\n\
         # TYPE imaged_containers gauge\nimaged_containers {}\n\
         # HELP imaged_event_watchers Open WatchEvents streams.\n\
         # TYPE imaged_event_watchers gauge\nimaged_event_watchers {}\n",
        view.len(),
        view.containers().count(),
        services.events().watchers(),
    ));
    out.push_str(&conns.render());
    out
}
