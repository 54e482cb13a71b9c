//! The model repository extension: the index, and loading (with config and file overrides)
//! and unloading models. Loads and unloads block, so they run on the blocking pool.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::json::{self, parse_value, value_bool, value_str};
use super::{empty, json_response};
use crate::repository::manager::LoadOverrides;
use crate::server::{ServerState, common};
use crate::status::Status;

pub fn index(state: &ServerState, body: &[u8]) -> ApiResult {
    let mut ready = false;
    if let Some(Value::Object(doc)) = parse_value(body, true)?
        && let Some(v) = doc.get("ready")
    {
        ready = value_bool(v).map_err(Status::internal)?;
    }
    let index = common::repository_index(state, ready);
    let mut out = Vec::with_capacity(64 * index.models.len() + 2);
    out.push(b'[');
    for (i, m) in index.models.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        json::escape_into(&mut out, m.name.as_bytes());
        for (k, v) in [
            ("version", &m.version),
            ("state", &m.state),
            ("reason", &m.reason),
        ] {
            if !v.is_empty() {
                out.extend_from_slice(format!(",\"{k}\":").as_bytes());
                json::escape_into(&mut out, v.as_bytes());
            }
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(json_response(StatusCode::OK, out))
}

fn repository_unsupported(repository: &Option<String>) -> Result<(), Status> {
    match repository {
        Some(_) => Err(Status::unsupported(
            "'repository_name' specification is not supported",
        )),
        None => Ok(()),
    }
}

pub async fn load(
    state: Arc<ServerState>,
    repository: Option<String>,
    model: String,
    body: Bytes,
) -> ApiResult {
    repository_unsupported(&repository)?;
    let overrides = load_overrides(&model, &body)?;
    common::check_model_control(&state)?;
    let manager = state.manager.clone();
    tokio::task::spawn_blocking(move || manager.load(&model, overrides))
        .await
        .map_err(|e| ApiError::from(Status::internal(format!("model load failed: {e}"))))??;
    Ok(done())
}

pub async fn unload(
    state: Arc<ServerState>,
    repository: Option<String>,
    model: String,
    body: Bytes,
) -> ApiResult {
    repository_unsupported(&repository)?;
    let mut dependents = false;
    if let Some(Value::Object(doc)) = parse_value(&body, true)?
        && let Some(Value::Object(params)) = doc.get("parameters")
        && let Some(v) = params.get("unload_dependents")
    {
        dependents = value_bool(v)
            .map_err(|e| Status::internal(format!("Unable to parse 'unload_dependents': {e}")))?;
    }
    common::check_model_control(&state)?;
    let manager = state.manager.clone();
    tokio::task::spawn_blocking(move || manager.unload(&model, dependents))
        .await
        .map_err(|e| ApiError::from(Status::internal(format!("model unload failed: {e}"))))??;
    Ok(done())
}

fn done() -> Response {
    empty(StatusCode::OK, super::error::JSON)
}

/// `{"parameters": {"config": "<json>", "file:<version>/<name>": "<base64>"}}`.
fn load_overrides(model: &str, body: &[u8]) -> Result<LoadOverrides, Status> {
    let mut overrides = LoadOverrides::default();
    let Some(Value::Object(doc)) = parse_value(body, true)? else {
        return Ok(overrides);
    };
    let Some(params) = doc.get("parameters") else {
        return Ok(overrides);
    };
    let params = params
        .as_object()
        .ok_or_else(|| Status::internal(json::NO_MEMBERS))?;
    for (key, value) in params {
        let text = value_str(value).map_err(Status::internal)?;
        if key == "config" {
            let cfg = crate::config::from_json(text)
                .map_err(|e| Status::invalid_arg(format!("failed to load '{model}': the 'config' parameter is not a valid model configuration: {e}")))?;
            overrides.config = Some(cfg);
        } else if let Some(path) = key.strip_prefix("file:") {
            let content = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| {
                    Status::invalid_arg(format!(
                        "failed to load '{model}': parameter '{key}' is not valid base64: {e}"
                    ))
                })?;
            overrides.files.push((path.to_string(), content));
        } else {
            return Err(Status::invalid_arg(format!(
                "failed to load '{model}': unexpected parameter '{key}': only 'config' and 'file:<version>/<name>' are accepted"
            )));
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides() {
        let o = load_overrides(
            "m",
            br#"{"parameters":{"config":"{\"max_batch_size\":4}","file:1/model.onnx":"AAEC"}}"#,
        )
        .unwrap();
        assert_eq!(o.config.unwrap().max_batch_size, 4);
        assert_eq!(o.files, vec![("1/model.onnx".to_string(), vec![0u8, 1, 2])]);
        assert!(load_overrides("m", b"").unwrap().config.is_none());
        let e = |b: &str| load_overrides("m", b.as_bytes()).unwrap_err();
        assert_eq!(
            e(r#"{"parameters":{"config":{"name":"x"}}}"#).message,
            "attempt to access JSON non-string as string"
        );
        assert_eq!(
            e(r#"{"parameters":[1]}"#).message,
            "attempt to get members for non-object"
        );
        assert!(
            e(r#"{"parameters":{"file:1/m":"!!"}}"#)
                .message
                .starts_with("failed to load 'm': parameter 'file:1/m' is not valid base64: ")
        );
        assert!(e(r#"{"parameters":{"config":"{not json"}}"#).message.starts_with("failed to load 'm': the 'config' parameter is not a valid model configuration: "));
        assert_eq!(
            e(r#"{"parameters":{"foo":"bar"}}"#).message,
            "failed to load 'm': unexpected parameter 'foo': only 'config' and 'file:<version>/<name>' are accepted"
        );
        assert_eq!(
            e("{oops").message,
            "failed to parse the request JSON buffer: Missing a name for object member. at 1"
        );
    }
}
