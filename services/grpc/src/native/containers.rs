//! `imaged.v1.ContainerService` over the engine.

use std::sync::Arc;

use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::container_service_server::ContainerService;
use tonic::{Request, Response, Status};

use crate::call::Ctx;
use imaged_proto::imaged::v1::container_service_methods as m;

use super::convert;

/// The `imaged.v1.ContainerService` handler.
#[derive(Debug, Clone)]
pub(crate) struct ContainerApi {
    ctx: Arc<Ctx>,
}

impl ContainerApi {
    /// A handler over the shared state.
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl ContainerService for ContainerApi {
    async fn register_container(
        &self,
        request: Request<pb::RegisterContainerRequest>,
    ) -> Result<Response<pb::RegisterContainerResponse>, Status> {
        self.ctx
            .unary(m::REGISTER_CONTAINER, request, |engine, req, call| {
                let reg = convert::register_container(req)?;
                let c = engine.register_container(&reg)?;
                tracing::info!(caller = %call.caller, container = %c.id, image = %c.image_id,
                    state = ?c.state, external = c.external, "container registered");
                Ok(pb::RegisterContainerResponse {
                    container: Some(convert::container(&c)),
                })
            })
            .await
    }

    async fn set_container_state(
        &self,
        request: Request<pb::SetContainerStateRequest>,
    ) -> Result<Response<pb::SetContainerStateResponse>, Status> {
        self.ctx
            .unary(m::SET_CONTAINER_STATE, request, |engine, req, call| {
                let state = convert::container_state_in("state", req.state, None)?;
                let c = engine.set_container_state(&req.id, state)?;
                tracing::info!(caller = %call.caller, container = %c.id, state = ?c.state,
                    "container state set");
                Ok(pb::SetContainerStateResponse {
                    container: Some(convert::container(&c)),
                })
            })
            .await
    }

    async fn unregister_container(
        &self,
        request: Request<pb::UnregisterContainerRequest>,
    ) -> Result<Response<pb::UnregisterContainerResponse>, Status> {
        self.ctx
            .unary(m::UNREGISTER_CONTAINER, request, |engine, req, call| {
                engine.unregister_container(&req.id, req.ignore_missing)?;
                tracing::info!(caller = %call.caller, container = %req.id,
                    "container unregistered");
                Ok(pb::UnregisterContainerResponse {})
            })
            .await
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        self.ctx
            .unary(m::LIST_CONTAINERS, request, |engine, req, _| {
                let list = engine.list_containers(&req.image)?;
                Ok(pb::ListContainersResponse {
                    containers: list.iter().map(convert::container).collect(),
                })
            })
            .await
    }
}
