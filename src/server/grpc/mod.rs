//! The gRPC frontend: `inference.GRPCInferenceService` (Triton's field numbers, status
//! codes and messages) and gRPC health checking, on tonic.
//!
//! Each RPC group lives in its own file; this one only routes and maps errors. Request-path
//! errors are `crate::status::Status` everywhere below and become `tonic::Status` once, here.

mod contents;
mod health;
mod infer;
mod models;
mod params;
mod repository;
mod settings;
mod shm;
mod stream;

use std::sync::Arc;

use tonic::codec::CompressionEncoding;
use tonic::transport::server::Router;
use tonic::{Request, Response, Streaming};

use super::ServerState;
use crate::proto::health::health_server::HealthServer;
use crate::proto::inference as pb;
use crate::proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::status::{Code, Status};

/// Transport settings of the gRPC listener (Triton's `--grpc-keepalive-*` and
/// `--grpc-infer-response-compression-level`).
#[derive(Clone, Debug, Default)]
pub struct GrpcTransport {
    pub keepalive_time: Option<std::time::Duration>,
    pub keepalive_timeout: Option<std::time::Duration>,
    pub max_connection_age: Option<std::time::Duration>,
    /// Gzip responses for clients that accept it.
    pub compress_responses: bool,
}

/// Both services on one router, with the message size limit and the compressions tritonclient
/// offers (gzip, deflate).
pub fn router(
    state: Arc<ServerState>,
    transport: &GrpcTransport,
) -> Router<tower::layer::util::Stack<super::restrict::GrpcLayer, tower::layer::util::Identity>> {
    let max = state.limits.max_grpc_message_bytes;
    let mut inference = GrpcInferenceServiceServer::new(Service {
        state: state.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Deflate)
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    if transport.compress_responses {
        // Sent compressed only to clients that said they accept gzip.
        inference = inference.send_compressed(CompressionEncoding::Gzip);
    }
    let state_rules = state.restricted_grpc.clone();
    let health = HealthServer::new(health::Health::new(state));
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(transport.keepalive_time)
        .http2_keepalive_timeout(transport.keepalive_timeout);
    if let Some(age) = transport.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    builder
        .layer(super::restrict::GrpcLayer::new(state_rules))
        .add_service(inference)
        .add_service(health)
}

/// The caller's W3C trace context, continued by OpenTelemetry traces.
fn traceparent(m: &tonic::metadata::MetadataMap) -> Option<String> {
    m.get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The one place a request-path error becomes a gRPC status.
fn to_grpc(s: Status) -> tonic::Status {
    let code = match s.code {
        Code::Unknown => tonic::Code::Unknown,
        Code::Internal => tonic::Code::Internal,
        Code::NotFound => tonic::Code::NotFound,
        Code::InvalidArg => tonic::Code::InvalidArgument,
        Code::Unavailable => tonic::Code::Unavailable,
        Code::Unsupported => tonic::Code::Unimplemented,
        Code::AlreadyExists => tonic::Code::AlreadyExists,
        Code::Cancelled => tonic::Code::Cancelled,
    };
    tonic::Status::new(code, s.message)
}

type GrpcResult<T> = Result<Response<T>, tonic::Status>;

fn reply<T>(r: Result<T, Status>) -> GrpcResult<T> {
    r.map(Response::new).map_err(to_grpc)
}

struct Service {
    state: Arc<ServerState>,
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> GrpcResult<pb::ServerLiveResponse> {
        Ok(Response::new(pb::ServerLiveResponse {
            live: self.state.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> GrpcResult<pb::ServerReadyResponse> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.state.ready(),
        }))
    }

    async fn model_ready(
        &self,
        r: Request<pb::ModelReadyRequest>,
    ) -> GrpcResult<pb::ModelReadyResponse> {
        reply(models::ready(&self.state, r.get_ref()))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> GrpcResult<pb::ServerMetadataResponse> {
        Ok(Response::new(super::common::server_metadata(
            &self.state.server_name,
        )))
    }

    async fn model_metadata(
        &self,
        r: Request<pb::ModelMetadataRequest>,
    ) -> GrpcResult<pb::ModelMetadataResponse> {
        reply(models::metadata(&self.state, r.get_ref()))
    }

    async fn model_config(
        &self,
        r: Request<pb::ModelConfigRequest>,
    ) -> GrpcResult<pb::ModelConfigResponse> {
        reply(models::config(&self.state, r.get_ref()))
    }

    async fn model_statistics(
        &self,
        r: Request<pb::ModelStatisticsRequest>,
    ) -> GrpcResult<pb::ModelStatisticsResponse> {
        reply(models::statistics(&self.state, r.get_ref()))
    }

    async fn model_infer(
        &self,
        r: Request<pb::ModelInferRequest>,
    ) -> GrpcResult<pb::ModelInferResponse> {
        let traceparent = traceparent(r.metadata());
        reply(infer::unary(&self.state, r.into_inner(), traceparent.as_deref()).await)
    }

    async fn model_stream_infer(
        &self,
        r: Request<Streaming<pb::ModelInferRequest>>,
    ) -> GrpcResult<tonic::codegen::BoxStream<pb::ModelStreamInferResponse>> {
        let traceparent = traceparent(r.metadata());
        Ok(Response::new(stream::start(
            self.state.clone(),
            r.into_inner(),
            traceparent,
        )))
    }

    async fn repository_index(
        &self,
        r: Request<pb::RepositoryIndexRequest>,
    ) -> GrpcResult<pb::RepositoryIndexResponse> {
        reply(repository::index(&self.state, r.get_ref()))
    }

    async fn repository_model_load(
        &self,
        r: Request<pb::RepositoryModelLoadRequest>,
    ) -> GrpcResult<pb::RepositoryModelLoadResponse> {
        reply(repository::load(&self.state, r.into_inner()).await)
    }

    async fn repository_model_unload(
        &self,
        r: Request<pb::RepositoryModelUnloadRequest>,
    ) -> GrpcResult<pb::RepositoryModelUnloadResponse> {
        reply(repository::unload(&self.state, r.into_inner()).await)
    }

    async fn system_shared_memory_status(
        &self,
        r: Request<pb::SystemSharedMemoryStatusRequest>,
    ) -> GrpcResult<pb::SystemSharedMemoryStatusResponse> {
        reply(shm::system_status(&self.state, r.get_ref()))
    }

    async fn system_shared_memory_register(
        &self,
        r: Request<pb::SystemSharedMemoryRegisterRequest>,
    ) -> GrpcResult<pb::SystemSharedMemoryRegisterResponse> {
        reply(shm::system_register(&self.state, r.get_ref()))
    }

    async fn system_shared_memory_unregister(
        &self,
        r: Request<pb::SystemSharedMemoryUnregisterRequest>,
    ) -> GrpcResult<pb::SystemSharedMemoryUnregisterResponse> {
        reply(Ok(shm::system_unregister(&self.state, r.get_ref())))
    }

    async fn cuda_shared_memory_status(
        &self,
        r: Request<pb::CudaSharedMemoryStatusRequest>,
    ) -> GrpcResult<pb::CudaSharedMemoryStatusResponse> {
        reply(shm::cuda_status(r.get_ref()))
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<pb::CudaSharedMemoryRegisterRequest>,
    ) -> GrpcResult<pb::CudaSharedMemoryRegisterResponse> {
        reply(shm::cuda_register())
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<pb::CudaSharedMemoryUnregisterRequest>,
    ) -> GrpcResult<pb::CudaSharedMemoryUnregisterResponse> {
        Ok(Response::new(pb::CudaSharedMemoryUnregisterResponse {}))
    }

    async fn trace_setting(
        &self,
        r: Request<pb::TraceSettingRequest>,
    ) -> GrpcResult<pb::TraceSettingResponse> {
        reply(settings::trace(&self.state, r.into_inner()))
    }

    async fn log_settings(
        &self,
        r: Request<pb::LogSettingsRequest>,
    ) -> GrpcResult<pb::LogSettingsResponse> {
        reply(settings::log(&self.state, r.into_inner()))
    }
}
