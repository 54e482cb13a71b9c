//! The model repository extension: index, load (with `config` and `file:` overrides) and
//! unload. Loads and unloads block, so they run on the blocking pool.

use std::sync::Arc;

use super::ServerState;
use crate::proto::inference as pb;
use crate::proto::inference::model_repository_parameter::ParameterChoice as R;
use crate::repository::ControlMode;
use crate::repository::manager::LoadOverrides;
use crate::server::common;
use crate::status::Status;

fn no_repository_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        Ok(())
    } else {
        Err(Status::unsupported(
            "'repository_name' specification is not supported",
        ))
    }
}

fn explicit_mode(state: &ServerState) -> Result<(), Status> {
    if state.manager.control_mode() == ControlMode::Explicit {
        Ok(())
    } else {
        Err(Status::unavailable(
            "explicit model load / unload is not allowed if polling is enabled",
        ))
    }
}

pub(super) fn index(
    state: &ServerState,
    r: &pb::RepositoryIndexRequest,
) -> Result<pb::RepositoryIndexResponse, Status> {
    no_repository_name(&r.repository_name)?;
    Ok(common::repository_index(state, r.ready))
}

pub(super) async fn load(
    state: &Arc<ServerState>,
    r: pb::RepositoryModelLoadRequest,
) -> Result<pb::RepositoryModelLoadResponse, Status> {
    no_repository_name(&r.repository_name)?;
    let name = r.model_name;
    let mut config = None;
    let mut files = Vec::new();
    for (key, p) in r.parameters {
        match (key.as_str(), p.parameter_choice) {
            ("config", Some(R::StringParam(text))) => config = Some(text),
            ("config", _) => {
                return Err(Status::invalid_arg(
                    "invalid value type for load parameter 'config', expected string_param.",
                ));
            }
            (k, Some(R::BytesParam(content))) if k.starts_with("file:") => {
                files.push((k["file:".len()..].to_string(), content));
            }
            (k, _) if k.starts_with("file:") => {
                return Err(Status::invalid_arg(format!(
                    "invalid value type for load parameter '{k}', expected bytes_param."
                )));
            }
            (k, _) => {
                return Err(Status::invalid_arg(format!(
                    "unrecognized load parameter '{k}'."
                )));
            }
        }
    }
    explicit_mode(state)?;
    // Triton answers a bad override with a generic poll failure and logs the reason.
    let poll_failed = |why: String| {
        tracing::error!("Poll failed for model directory '{name}': {why}");
        Status::internal(format!(
            "failed to load '{name}', failed to poll from model repository"
        ))
    };
    let config = match config {
        Some(text) => Some(
            crate::config::from_json(&text).map_err(|e| {
                Status::invalid_arg(format!(
                    "failed to load '{name}': the 'config' parameter is not a valid model configuration: {e}"
                ))
            })?,
        ),
        None => None,
    };
    if !files.is_empty() && config.is_none() {
        return Err(poll_failed(
            "Load parameter 'config' must be specified for model file override".into(),
        ));
    }
    let manager = state.manager.clone();
    tokio::task::spawn_blocking(move || manager.load(&name, LoadOverrides { config, files }))
        .await
        .map_err(|e| Status::internal(format!("model load did not finish: {e}")))??;
    Ok(pb::RepositoryModelLoadResponse {})
}

/// Unloads a model; with `unload_dependents`, an ensemble's composing models too.
pub(super) async fn unload(
    state: &Arc<ServerState>,
    r: pb::RepositoryModelUnloadRequest,
) -> Result<pb::RepositoryModelUnloadResponse, Status> {
    no_repository_name(&r.repository_name)?;
    if let Some(p) = r.parameters.get("unload_dependents")
        && !matches!(p.parameter_choice, Some(R::BoolParam(_)))
    {
        return Err(Status::invalid_arg(
            "invalid value type for 'unload_dependents' parameter, expected bool_param.",
        ));
    }
    let dependents = matches!(
        r.parameters
            .get("unload_dependents")
            .and_then(|p| p.parameter_choice.as_ref()),
        Some(R::BoolParam(true))
    );
    explicit_mode(state)?;
    let manager = state.manager.clone();
    let name = r.model_name;
    tokio::task::spawn_blocking(move || manager.unload(&name, dependents))
        .await
        .map_err(|e| Status::internal(format!("model unload did not finish: {e}")))??;
    Ok(pb::RepositoryModelUnloadResponse {})
}
