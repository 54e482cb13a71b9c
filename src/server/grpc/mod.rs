//! The gRPC frontend: `inference.GRPCInferenceService` (Triton's field numbers) and gRPC
//! health checking, on tonic.

use std::sync::Arc;

use tonic::transport::server::Router;
use tonic::{Request, Response, Status as GrpcStatus};

use super::ServerState;
use crate::proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::proto::inference::{
    ServerLiveRequest, ServerLiveResponse, ServerReadyRequest, ServerReadyResponse,
};

pub fn router(state: Arc<ServerState>) -> Router {
    let max = state.limits.max_grpc_message_bytes;
    let svc = GrpcInferenceServiceServer::new(Service { state })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    tonic::transport::Server::builder().add_service(svc)
}

struct Service {
    state: Arc<ServerState>,
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, GrpcStatus> {
        Ok(Response::new(ServerLiveResponse {
            live: self.state.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, GrpcStatus> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.ready(),
        }))
    }
}
