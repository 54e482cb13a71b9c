//! The HTTP/REST frontend (KServe v2 with Triton's extensions), on axum.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::ServerState;

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .with_state(state)
}

async fn live(State(s): State<Arc<ServerState>>) -> StatusCode {
    if s.live() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn ready(State(s): State<Arc<ServerState>>) -> StatusCode {
    if s.ready() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}
