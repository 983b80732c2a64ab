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
    out.push_str(&render_gc(&services.engine().gc_stats()));
    out
}

/// The GC runs' counters (SPEC §4.1): runs, bytes freed, images deleted, the last run's
/// time, and what held the last run back when it could not reach the low threshold.
fn render_gc(s: &imaged_core::engine::gc::GcStats) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "# HELP imaged_gc_runs_total GC runs finished (dry runs aside).
         # TYPE imaged_gc_runs_total counter
imaged_gc_runs_total {}
         # HELP imaged_gc_freed_bytes_total Bytes GC runs released.
         # TYPE imaged_gc_freed_bytes_total counter
imaged_gc_freed_bytes_total {}
         # HELP imaged_gc_deleted_images_total Images GC runs deleted.
         # TYPE imaged_gc_deleted_images_total counter
imaged_gc_deleted_images_total {}
         # HELP imaged_gc_last_run_timestamp_seconds When the last GC run finished (0: none yet).
         # TYPE imaged_gc_last_run_timestamp_seconds gauge
imaged_gc_last_run_timestamp_seconds {}
         # HELP imaged_gc_blocked_bytes Bytes the last GC run could not free, by reason (only when it missed the low threshold).
         # TYPE imaged_gc_blocked_bytes gauge
",
        s.runs,
        s.bytes_freed,
        s.images_deleted,
        s.last_run.map_or(0, |t| t.div_euclid(1_000_000_000)),
    );
    for b in &s.last_blocked {
        let _ = writeln!(
            out,
            "imaged_gc_blocked_bytes{{reason=\"{}\"}} {}",
            b.reason.as_str(),
            b.bytes
        );
    }
    out.push_str(
        "# HELP imaged_gc_blocked_images Images that held the last GC run back, by reason.
         # TYPE imaged_gc_blocked_images gauge
",
    );
    for b in &s.last_blocked {
        let _ = writeln!(
            out,
            "imaged_gc_blocked_images{{reason=\"{}\"}} {}",
            b.reason.as_str(),
            b.images
        );
    }
    out
}
