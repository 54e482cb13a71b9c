//! gRPC health checking (`grpc.health.v1.Health`). Like Triton, the answer is the server's
//! readiness whatever service is named. Watch follows the gRPC health protocol (Triton
//! leaves it unimplemented): the current status, then each change, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response};

use super::ServerState;
use crate::proto::health::health_check_response::ServingStatus;
use crate::proto::health::{HealthCheckRequest, HealthCheckResponse, health_server};

/// How often a watch looks at readiness, which has no change notification of its own.
const WATCH_POLL: Duration = Duration::from_millis(250);

pub(super) struct Health {
    state: Arc<ServerState>,
}

impl Health {
    pub fn new(state: Arc<ServerState>) -> Health {
        Health { state }
    }
}

fn status(state: &ServerState) -> ServingStatus {
    if state.ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

fn response(s: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: s as i32 }
}

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        Ok(Response::new(response(status(&self.state))))
    }

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<BoxStream<HealthCheckResponse>>, tonic::Status> {
        let (tx, rx) = mpsc::channel(4);
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(WATCH_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let now = status(&state);
                if last != Some(now) {
                    if tx.send(Ok(response(now))).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                // NOT_SERVING has been sent: the watch ends with the server.
                if state.shutdown.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    () = state.shutdown.cancelled() => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
