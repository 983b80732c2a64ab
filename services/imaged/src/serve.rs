//! Running the daemon: open the store, build the services, bind, serve, and shut down
//! cleanly on SIGTERM/SIGINT (health NOT_SERVING, stop accepting, drain within the grace
//! period, remove the sockets, close the store).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use imaged_core::store::WriteHealth;
use imaged_core::{EngineConfig, Store};
use imaged_grpc::auth::{ListenerInfo, ListenerLayer};
use imaged_grpc::{GrpcOptions, Services};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::authority;
use crate::config::{Listen, Settings, StoreKind};
use crate::conn::{self, ConnLayer, Stats, Table};
use crate::listen::{self, Bound};
use crate::metrics_http;

/// Opens the configured store (blocking I/O).
pub(crate) fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
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
            let options = imaged_store_local::Options {
                min_free_bytes: settings.min_free_bytes,
                ..imaged_store_local::Options::default()
            };
            let store = imaged_store_local::LocalStore::open_with(root, options)
                .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", root.display()))?;
            Ok(Arc::new(store))
        }
        StoreKind::CStorage => Ok(Arc::new(open_cstorage(settings, false)?)),
    }
}

/// Resolves the containers-storage store (flags, then `storage.conf` and podman's database
/// as podman reads them), logs where it is, and opens it (for inspection only: nothing
/// interrupted is finished, for `imaged fsck` without `--repair`).
pub(crate) fn open_cstorage(
    settings: &Settings,
    inspect: bool,
) -> Result<imaged_store_cstorage::CStorageStore> {
    use imaged_store_cstorage::config::{Environment, resolve_in};
    let r = resolve_in(&Environment::current(), &settings.cstorage)
        .context("cannot resolve the containers-storage store")?;
    let o = &r.options;
    let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
    let extra: Vec<String> = o
        .additional_image_stores
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    tracing::info!(
        graph_root = %o.graph_root.display(),
        run_root = %o.run_root.display(),
        driver = o.driver.name(),
        driver_from = %r.driver_from,
        storage_conf = ?files,
        additional_image_stores = ?extra,
        "containers-storage store resolved"
    );
    let root = o.graph_root.clone();
    let opened = if inspect {
        imaged_store_cstorage::CStorageStore::open_for_inspection(r.options)
    } else {
        imaged_store_cstorage::open(r.options)
    };
    opened.map_err(|e| anyhow::anyhow!("cannot open containers-storage in {}: {e}", root.display()))
}

/// The registry client of PullImage / PushImage / CRI PullImage (its runtime shuts down
/// without blocking when the services are dropped).
fn registry_client(
    platform: &imaged_core::model::Platform,
) -> Result<Arc<dyn imaged_core::transfer::Registry>> {
    use imaged_registry::conf::{Env, RegistriesConf};
    // registries.conf and stored credentials as podman reads them in this environment
    // (`$CONTAINERS_REGISTRIES_CONF`, the system and user files and drop-in directories;
    // `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, Docker's config). A
    // broken registries.conf does not stop the daemon: pulls of fully-qualified
    // references still work, and a short name says why it cannot.
    let env = Env::from_process();
    let (registries, registries_error) = match RegistriesConf::load(&env) {
        Ok(c) => {
            tracing::info!(sources = c.sources(), "registries configuration read");
            (Some(Arc::new(c)), None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "registries configuration not read: only fully-qualified references can be pulled");
            (None, Some(e.to_string()))
        }
    };
    Ok(Arc::new(imaged_registry::RegistryClient::new(
        imaged_registry::Options {
            registries,
            registries_error,
            // Stored credentials (auth.json, Docker's config, credential helpers) and
            // certs.d CA files.
            env: Some(env),
            default_platform: Some(platform.clone()),
            ..imaged_registry::Options::default()
        },
    )?))
}

/// Serves until a termination signal, then shuts down. Errors are start-up failures.
pub(crate) async fn run(settings: Settings) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;

    let store = {
        let s = settings.clone();
        tokio::task::spawn_blocking(move || open_store(&s)).await??
    };
    tracing::info!(store = store.info().kind, root = %store.info().root.display(), "store opened");
    let engine_cfg = EngineConfig {
        search_registries: settings.search_registries.clone(),
        platform: settings.platform.clone(),
        pinned_images: settings.pinned_images.clone(),
        max_load_bytes: settings.max_load_bytes,
        max_load_unpacked_bytes: settings.max_load_unpacked_bytes,
        max_load_header_bytes: settings.max_load_header_bytes,
        max_load_metadata_bytes: settings.max_load_metadata_bytes,
        max_load_metadata_total_bytes: settings.max_load_metadata_total_bytes,
        gc: settings.gc.clone(),
    };
    let opts = GrpcOptions {
        auth: settings.auth.clone(),
        max_recv_message_bytes: settings.max_recv_message_bytes,
        max_send_message_bytes: settings.max_send_message_bytes,
        load_idle_timeout: settings.load_idle_timeout,
        // PullImage / PushImage / CRI PullImage, with registries.conf.
        registry: Some(registry_client(&settings.platform)?),
        ..GrpcOptions::default()
    };
    let services = Arc::new(
        Services::new(Arc::clone(&store), engine_cfg, opts)
            .await
            .context("building services")?,
    );
    {
        // Build the derived indexes in the background right away, so the first List after
        // start does not pay for them, without holding readiness up.
        let engine = Arc::clone(services.engine());
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            crate::heap::trim();
            tracing::debug!(
                trim_ms = t.elapsed().as_millis(),
                "heap trimmed after the open"
            );
            engine.warm();
            crate::heap::trim();
        });
    }
    let gc = crate::gc_loop::GcLoop::start(Arc::clone(services.engine()))
        .context("starting the GC loop")?;
    warn_about_tcp(&settings);
    check_fd_limit(&settings);
    let table = Table::new(settings.limits, Arc::new(Stats::default()));

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
            Some(tokio::spawn(metrics_http::serve(
                l,
                Arc::clone(&services),
                Arc::clone(table.stats()),
            )))
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
                let mut server = Server::builder()
                    .max_frame_size(MAX_FRAME_SIZE)
                    .layer(ListenerLayer::new(ListenerInfo::default()))
                    .layer(ConnLayer);
                let router = server.add_routes(routes);
                servers.push(tokio::spawn(router.serve_with_incoming_shutdown(
                    authority::fix_each(conn::incoming(l, Arc::clone(&table))),
                    stop,
                )));
            }
            Bound::Tcp(l) => {
                let mut builder = Server::builder().max_frame_size(MAX_FRAME_SIZE);
                let mut info = ListenerInfo::default();
                if let Some(tls) = &settings.tls {
                    builder = builder
                        .tls_config(tls.server_config())
                        .context("TLS configuration")?;
                    info.client_cert_verified = tls.verifies_clients();
                }
                let mut server = builder.layer(ListenerLayer::new(info)).layer(ConnLayer);
                let router = server.add_routes(routes);
                servers.push(tokio::spawn(router.serve_with_incoming_shutdown(
                    conn::incoming(l, Arc::clone(&table)),
                    stop,
                )));
            }
        }
    }
    services.set_serving(true).await;
    let write_health = tokio::spawn(watch_write_health(Arc::clone(&services), store));
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
    // Stopped (and awaited) first, so that it cannot set SERVING again after this.
    write_health.abort();
    let _ = write_health.await;
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
    tokio::task::spawn_blocking(move || gc.stop()).await.ok();
    drop(services);
    tracing::info!("shutdown complete");
    Ok(())
}

/// How often the store is asked whether it can write.
const WRITE_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// The largest HTTP/2 frame the daemon accepts (it advertises it in its SETTINGS): a
/// LoadImages archive then arrives in a few large DATA frames instead of 16 KiB ones,
/// each costing a frame header, a wake-up and a copy. The flow-control windows, which
/// bound what a client may have in flight, are unchanged.
const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Keeps the health of `imaged.v1.ImageService` in line with [`Store::write_health`]
/// (SPEC §10): NOT_SERVING while the store cannot write, SERVING again once it can.
async fn watch_write_health(services: Arc<Services>, store: Arc<dyn Store>) {
    let mut writable = true;
    let mut tick = tokio::time::interval(WRITE_HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = Arc::clone(&store);
        let Ok(health) = tokio::task::spawn_blocking(move || s.write_health()).await else {
            continue;
        };
        let now = health == WriteHealth::Writable;
        if now == writable {
            continue;
        }
        match &health {
            WriteHealth::Unwritable(why) => tracing::warn!(
                reason = %why,
                "the store cannot write: imaged.v1.ImageService is NOT_SERVING"
            ),
            WriteHealth::Writable => {
                tracing::info!("the store can write again: imaged.v1.ImageService is SERVING");
            }
        }
        services.set_store_writable(now).await;
        writable = now;
    }
}

fn remove_sockets(bound: &[Bound]) {
    for b in bound {
        if let Bound::Unix(_, f) = b {
            f.remove();
        }
    }
}

/// Raises the soft open-files limit to the hard one (as Go does) and warns when
/// `max_connections` cannot fit under it: accept would then fail with EMFILE (handled:
/// the accept loop waits) before the limit refuses connections cleanly.
fn check_fd_limit(settings: &Settings) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    // The store, the listeners, the runtime and logging need some descriptors too.
    const RESERVE: u64 = 64;
    let want = u64::try_from(settings.limits.max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVE);
    if want > soft {
        tracing::warn!(
            "max_connections = {} does not fit under the open-files limit ({soft}, {RESERVE} \
             kept for the store): lower max_connections or raise LimitNOFILE",
            settings.limits.max_connections
        );
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
