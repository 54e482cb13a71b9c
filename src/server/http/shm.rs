//! The shared memory extensions: system shared memory (status, register, unregister), and
//! CUDA shared memory answered as Triton answers it on a machine without a usable GPU.

use axum::http::StatusCode;
use base64::Engine;
use serde_json::Value;

use super::error::ApiResult;
use super::json::{self, parse_value, value_str, value_u64};
use super::routes::ShmAction;
use super::{empty, json_response};
use crate::server::ServerState;
use crate::status::Status;

pub fn system(
    state: &ServerState,
    region: Option<&str>,
    action: ShmAction,
    body: &[u8],
) -> ApiResult {
    match action {
        ShmAction::Status => {
            let regions = state.shm.status(region)?;
            let mut out = Vec::with_capacity(2 + 80 * regions.len());
            out.push(b'[');
            for (i, r) in regions.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                json::escape_into(&mut out, r.name.as_bytes());
                out.extend_from_slice(b",\"key\":");
                json::escape_into(&mut out, r.key.as_bytes());
                out.extend_from_slice(b",\"offset\":");
                json::write_u64(&mut out, r.offset);
                out.extend_from_slice(b",\"byte_size\":");
                json::write_u64(&mut out, r.byte_size);
                out.push(b'}');
            }
            out.push(b']');
            Ok(json_response(StatusCode::OK, out))
        }
        ShmAction::Register => {
            let Some(name) = region else {
                return Err(Status::invalid_arg(
                    "'region name' is necessary to register system shared memory region",
                )
                .into());
            };
            let doc = parse_value(body, false)?.unwrap_or(Value::Null);
            let key = doc.get("key").ok_or_else(|| {
                Status::invalid_arg("Shared memory register request has no 'key' field")
            })?;
            let key = value_str(key).map_err(Status::internal)?;
            let offset = match doc.get("offset") {
                Some(v) => value_u64(v).map_err(Status::internal)?,
                None => 0,
            };
            let byte_size = doc.get("byte_size").ok_or_else(|| {
                Status::invalid_arg("Shared memory register request has no 'byte_size' field")
            })?;
            let byte_size = value_u64(byte_size).map_err(Status::internal)?;
            state.shm.register(name, key, offset, byte_size)?;
            Ok(empty(StatusCode::OK, super::error::JSON))
        }
        ShmAction::Unregister => {
            state.shm.unregister(region);
            Ok(empty(StatusCode::OK, super::error::JSON))
        }
    }
}

/// Size of a `cudaIpcMemHandle_t`.
const CUDA_IPC_HANDLE_BYTES: usize = 64;

pub fn cuda(
    state: &ServerState,
    region: Option<&str>,
    action: ShmAction,
    body: &[u8],
) -> ApiResult {
    match action {
        ShmAction::Status => match region {
            None => Ok(json_response(StatusCode::OK, b"[]".to_vec())),
            Some(name) if state.shm.get(name).is_ok() => Err(Status::not_found(format!(
                "The region named '{name}' is registered as system shared memory, not CUDA shared memory"
            ))
            .into()),
            Some(name) => Err(Status::not_found(format!("Unable to find cuda shared memory region: '{name}'")).into()),
        },
        ShmAction::Register => {
            if region.is_none() {
                return Err(Status::invalid_arg("'region name' is necessary to register cuda shared memory region").into());
            }
            let doc = parse_value(body, false)?.unwrap_or(Value::Null);
            let handle = doc
                .get("raw_handle")
                .ok_or_else(|| Status::invalid_arg("Shared memory register request has no 'raw_handle' field"))?;
            let member = |v: &Value, k: &str| v.get(k).cloned().ok_or_else(|| Status::internal(json::missing(k)));
            let b64 = member(handle, "b64")?;
            let b64 = value_str(&b64).map_err(Status::internal)?.to_string();
            value_u64(&member(&doc, "byte_size")?).map_err(Status::internal)?;
            value_u64(&member(&doc, "device_id")?).map_err(Status::internal)?;
            if lenient_base64(&b64).len() != CUDA_IPC_HANDLE_BYTES {
                return Err(Status::invalid_arg("'raw_handle' must be a valid base64 encoded cudaIpcMemHandle_t").into());
            }
            // No device can open the handle.
            Err(Status::invalid_arg("failed to register shared memory region: invalid args").into())
        }
        ShmAction::Unregister => Ok(empty(StatusCode::OK, super::error::JSON)),
    }
}

/// Decodes base64 the way Triton's decoder does: characters outside the alphabet are skipped.
fn lenient_base64(text: &str) -> Vec<u8> {
    let clean: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(clean).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles() {
        assert_eq!(lenient_base64("AAAA").len(), 3);
        assert_eq!(lenient_base64(&"A".repeat(86)).len(), 64);
        assert_eq!(lenient_base64(&format!("{}==", "A".repeat(86))).len(), 64);
    }
}
