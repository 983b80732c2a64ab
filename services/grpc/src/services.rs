//! [`Services`]: the engine, its handlers, health and reflection, as one set of routes.

use std::sync::Arc;
use std::time::Duration;

use imaged_core::transfer::Registry;
use imaged_core::{Engine, EngineConfig, Store};
use imaged_proto::imaged::v1::container_service_server::ContainerServiceServer;
use imaged_proto::imaged::v1::gc_service_server::GcServiceServer;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::call::Ctx;
use crate::call::auth::{AuthConfig, Authorizer};
use crate::cri::CriImageService;
use crate::limits::Guarded;
use crate::metrics::Metrics;
use crate::native::containers::ContainerApi;
use crate::native::events::{self, EventHub};
use crate::native::gc::GcApi;
use crate::native::list_route::ImageRoutes;
use crate::native::transfer::RegistrySlot;

/// `grpc.health.v1.Health`.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// `grpc.reflection.v1.ServerReflection`.
pub const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
/// `grpc.reflection.v1alpha.ServerReflection`.
pub const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Settings of the gRPC layer.
#[derive(Clone)]
pub struct GrpcOptions {
    /// Who may do what.
    pub auth: AuthConfig,
    /// Largest request message accepted, in bytes (LoadImages chunks included).
    pub max_recv_message_bytes: usize,
    /// Largest response message sent, in bytes.
    pub max_send_message_bytes: usize,
    /// Events buffered per WatchEvents watcher before it lags.
    pub event_capacity: usize,
    /// How long a LoadImages stream may send nothing before the load is abandoned
    /// (`DEADLINE_EXCEEDED`, nothing stored).
    pub load_idle_timeout: Duration,
    /// The registry client PullImage, PushImage and CRI PullImage use; without one they
    /// answer UNIMPLEMENTED (the default).
    pub registry: Option<Arc<dyn Registry>>,
}

impl std::fmt::Debug for GrpcOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcOptions")
            .field("auth", &self.auth)
            .field("max_recv_message_bytes", &self.max_recv_message_bytes)
            .field("max_send_message_bytes", &self.max_send_message_bytes)
            .field("event_capacity", &self.event_capacity)
            .field("load_idle_timeout", &self.load_idle_timeout)
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

/// Default of [`GrpcOptions::load_idle_timeout`].
pub const DEFAULT_LOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for GrpcOptions {
    fn default() -> Self {
        Self {
            auth: AuthConfig::default(),
            max_recv_message_bytes: 16 << 20,
            max_send_message_bytes: 64 << 20,
            event_capacity: events::DEFAULT_CAPACITY,
            load_idle_timeout: DEFAULT_LOAD_IDLE_TIMEOUT,
            registry: None,
        }
    }
}

/// Everything the daemon serves, built once: the engine (with its event sink), the
/// handlers, `grpc.health.v1` and reflection v1 and v1alpha.
#[derive(Debug)]
pub struct Services {
    ctx: Arc<Ctx>,
    health: HealthReporter,
    routes: Routes,
    served: Vec<&'static str>,
}

/// Errors building the services (a bad descriptor set: a bug).
pub type BuildError = tonic_reflection::server::Error;

impl Services {
    /// Builds the engine over `store` and every service. Health reports NOT_SERVING for
    /// `""` and each service until [`Services::set_serving`]`(true)`.
    pub async fn new(
        store: Arc<dyn Store>,
        config: EngineConfig,
        opts: GrpcOptions,
    ) -> Result<Self, BuildError> {
        let events = EventHub::new(opts.event_capacity);
        let engine = Arc::new(Engine::new(store, config).with_events(events.sink()));
        let ctx = Arc::new(Ctx {
            engine,
            auth: Authorizer::new(opts.auth.clone()),
            metrics: Arc::new(Metrics::default()),
            events,
            load_idle_timeout: opts.load_idle_timeout,
            registry: RegistrySlot(opts.registry.clone()),
        });
        let (recv, send) = (opts.max_recv_message_bytes, opts.max_send_message_bytes);
        // ListImages answers from encoded images (`native::encoded`); the rest of the
        // image service is the generated server.
        let images = Guarded::new(ImageRoutes::new(Arc::clone(&ctx), recv, send), recv);
        let containers = ContainerServiceServer::new(ContainerApi::new(Arc::clone(&ctx)))
            .max_decoding_message_size(recv)
            .max_encoding_message_size(send);
        let containers = Guarded::new(containers, recv);
        let gc = GcServiceServer::new(GcApi::new(Arc::clone(&ctx)))
            .max_decoding_message_size(recv)
            .max_encoding_message_size(send);
        let gc = Guarded::new(gc, recv);
        // CRI: `runtime.v1.ImageService` on the same routes (kubelet, crictl); its
        // handlers authorize through `Ctx::authorize` like the native ones.
        let cri = CriImageService::new(Arc::clone(&ctx))
            .server()
            .max_decoding_message_size(recv)
            .max_encoding_message_size(send);
        let cri = Guarded::new(cri, recv);
        // Health and reflection follow `served`.
        let served = vec![
            imaged_proto::imaged::v1::image_service_methods::SERVICE_NAME,
            imaged_proto::imaged::v1::container_service_methods::SERVICE_NAME,
            imaged_proto::imaged::v1::gc_service_methods::SERVICE_NAME,
            imaged_proto::runtime::v1::image_service_methods::SERVICE_NAME,
        ];

        let (health, health_server) = tonic_health::server::health_reporter();
        let routes = Routes::new(health_server)
            .add_service(reflection(&served).build_v1()?)
            .add_service(reflection(&served).build_v1alpha()?)
            .add_service(images)
            .add_service(containers)
            .add_service(gc)
            .add_service(cri);
        let this = Self {
            ctx,
            health,
            routes,
            served,
        };
        this.set_serving(false).await;
        Ok(this)
    }

    /// The routes to serve (`Server::builder().add_routes(services.routes())`).
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.ctx.engine
    }

    /// Call counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }

    /// WatchEvents fan-out.
    pub fn events(&self) -> &EventHub {
        &self.ctx.events
    }

    /// The health reporter.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Fully-qualified names of the application services served (health and reflection
    /// report these).
    pub fn served(&self) -> &[&'static str] {
        &self.served
    }

    /// Sets the health of `""` and of every served service to SERVING or NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status("", status).await;
        for name in &self.served {
            self.health.set_service_status(name, status).await;
        }
    }

    /// Sets the health of `imaged.v1.ImageService` from whether the store can write
    /// (SPEC §10): NOT_SERVING while loads and tags cannot succeed (e.g. a full disk). `""`
    /// and the other services keep their status: reads and removals still work.
    pub async fn set_store_writable(&self, writable: bool) {
        let status = if writable {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health
            .set_service_status(
                imaged_proto::imaged::v1::image_service_methods::SERVICE_NAME,
                status,
            )
            .await;
    }

    /// Starts the shutdown of long calls: NOT_SERVING everywhere and every WatchEvents
    /// stream ends, so that connections can drain.
    pub async fn begin_shutdown(&self) {
        self.set_serving(false).await;
        self.ctx.events.close();
    }
}

/// A reflection builder advertising exactly the served services, health and both
/// reflection versions, with the `google.rpc` error-detail descriptors for grpcurl.
fn reflection(served: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(imaged_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    for name in served
        .iter()
        .copied()
        .chain([HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA])
    {
        b = b.with_service_name(name);
    }
    b
}
