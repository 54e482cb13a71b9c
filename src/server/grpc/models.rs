//! Per-model questions: readiness, metadata, configuration and statistics.

use super::ServerState;
use crate::proto::inference as pb;
use crate::server::common::{self, parse_version};
use crate::status::Status;

/// Unknown models and versions are simply not ready (Triton answers OK, ready=false).
pub(super) fn ready(
    state: &ServerState,
    r: &pb::ModelReadyRequest,
) -> Result<pb::ModelReadyResponse, Status> {
    let version = parse_version(&r.version)?;
    Ok(pb::ModelReadyResponse {
        ready: state.manager.get(&r.name, version).is_ok(),
    })
}

pub(super) fn metadata(
    state: &ServerState,
    r: &pb::ModelMetadataRequest,
) -> Result<pb::ModelMetadataResponse, Status> {
    common::model_metadata(state, &r.name, parse_version(&r.version)?)
}

pub(super) fn config(
    state: &ServerState,
    r: &pb::ModelConfigRequest,
) -> Result<pb::ModelConfigResponse, Status> {
    let model = state.manager.get(&r.name, parse_version(&r.version)?)?;
    Ok(pb::ModelConfigResponse {
        config: Some(model.config.as_ref().clone()),
    })
}

pub(super) fn statistics(
    state: &ServerState,
    r: &pb::ModelStatisticsRequest,
) -> Result<pb::ModelStatisticsResponse, Status> {
    common::model_statistics(state, &r.name, parse_version(&r.version)?)
}
