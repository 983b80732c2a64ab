//! Running the daemon: open the store, build the services, bind, serve, and shut down
//! cleanly on SIGTERM/SIGINT (health NOT_SERVING, stop accepting, drain within the grace
//! period, remove the sockets, close the store).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result};
use imaged_core::{EngineConfig, Store};
use imaged_grpc::auth::{ListenerInfo, ListenerLayer};
use imaged_grpc::{GrpcOptions, Services};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;

use crate::authority;
use crate::config::{Listen, Settings, StoreKind};
use crate::listen::{self, Bound};
use crate::metrics_http;

/// Opens the configured store (blocking I/O).
pub fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    match settings.store {
        StoreKind::Memory => Ok(Arc::new(imaged_core::MemoryStore::new())),
        StoreKind::Local => {
            let root = &settings.root;
            if !root.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(root)
                    .with_context(|| format!("cannot create the store root {}", root.display()))?;
            }
            let store = imaged_store_local::open(root)
                .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", root.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// Serves until a termination signal, then shuts down. Errors are start-up failures.
pub async fn run(settings: Settings) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;

    let store = {
        let s = settings.clone();
        tokio::task::spawn_blocking(move || open_store(&s)).await??
    };
    tracing::info!(store = store.info().kind, root = %store.info().root.display(), "store opened");
    let engine_cfg = EngineConfig {
        search_registries: settings.search_registries.clone(),
        pinned_images: settings.pinned_images.clone(),
        max_load_bytes: settings.max_load_bytes,
        ..EngineConfig::default()
    };
    let opts = GrpcOptions {
        auth: settings.auth.clone(),
        max_recv_message_bytes: settings.max_recv_message_bytes,
        max_send_message_bytes: settings.max_send_message_bytes,
        ..GrpcOptions::default()
    };
    let services = Arc::new(
        Services::new(store, engine_cfg, opts)
            .await
            .context("building services")?,
    );
    {
        // Build the derived indexes in the background right away, so the first List after
        // start does not pay for them, without holding readiness up.
        let engine = Arc::clone(services.engine());
        tokio::task::spawn_blocking(move || engine.warm());
    }
    warn_about_tcp(&settings);

    let bound = listen::bind_all(&settings.listen).await?;
    let metrics = match settings.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"));
            let l = match l {
                Ok(l) => l,
                Err(e) => {
                    remove_sockets(&bound);
                    return Err(e);
                }
            };
            tracing::info!(addr = %l.local_addr()?, "metrics on http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(metrics_http::serve(l, Arc::clone(&services))))
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let urls: Vec<String> = bound.iter().map(Bound::url).collect();
    let mut sockets = Vec::new();
    let mut servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>> = Vec::new();
    for b in bound {
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let routes = services.routes();
        match b {
            Bound::Unix(l, file) => {
                sockets.push(file);
                let mut server =
                    Server::builder().layer(ListenerLayer::new(ListenerInfo::default()));
                let router = server.add_routes(routes);
                servers.push(tokio::spawn(router.serve_with_incoming_shutdown(
                    authority::fix_each(UnixListenerStream::new(l)),
                    stop,
                )));
            }
            Bound::Tcp(l) => {
                let mut builder = Server::builder();
                let mut info = ListenerInfo::default();
                if let Some(tls) = &settings.tls {
                    builder = builder
                        .tls_config(tls.server_config())
                        .context("TLS configuration")?;
                    info.client_cert_verified = tls.verifies_clients();
                }
                let mut server = builder.layer(ListenerLayer::new(info));
                let router = server.add_routes(routes);
                servers.push(tokio::spawn(
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(l), stop),
                ));
            }
        }
    }
    services.set_serving(true).await;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "imaged ready: listening on {}", urls.join(", "))?;
        out.flush()?;
    }
    tracing::info!("ready");

    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(grace_period = ?settings.grace_period, "{why}: shutting down");
    services.begin_shutdown().await;
    let _ = stop_tx.send(true);
    let drain = async {
        for s in &mut servers {
            match s.await {
                Ok(Err(e)) => tracing::warn!("server ended with an error: {e}"),
                Err(e) => tracing::warn!("server task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    };
    tokio::select! {
        () = drain => tracing::info!("all connections drained"),
        () = tokio::time::sleep(settings.grace_period) => {
            tracing::warn!("grace period expired: closing the remaining connections");
        }
        _ = term.recv() => tracing::warn!("second SIGTERM: closing the remaining connections"),
        _ = int.recv() => tracing::warn!("second SIGINT: closing the remaining connections"),
    }
    for s in &servers {
        s.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    for f in &sockets {
        f.remove();
    }
    drop(services);
    tracing::info!("shutdown complete");
    Ok(())
}

fn remove_sockets(bound: &[Bound]) {
    for b in bound {
        if let Bound::Unix(_, f) = b {
            f.remove();
        }
    }
}

fn warn_about_tcp(settings: &Settings) {
    let mtls = settings
        .tls
        .as_ref()
        .is_some_and(crate::config::Tls::verifies_clients);
    if mtls || settings.auth.has_tokens() {
        return;
    }
    for l in &settings.listen {
        if let Listen::Tcp(a) = l {
            tracing::warn!(
                "tcp://{a}: no bearer token and no client certificate configured: this listener \
                 serves health and reflection only; every imaged.v1 call is UNAUTHENTICATED"
            );
        }
    }
}
