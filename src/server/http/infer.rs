//! `POST /v2/models/{m}[/versions/{v}]/infer`: body (compressed or not; JSON, JSON header plus
//! binary data, or raw binary), one inference, the answer (JSON, or JSON header plus binary
//! data; compressed when the client accepts it).

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::body::{self, Codec};
use super::decode::{self, Decoded};
use super::encode::{self, Plan};
use super::error::{ApiError, ApiResult};
use super::path_version;
use crate::repository::ModelVersion;
use crate::request::{InferRequest, RequestedOutput};
use crate::server::ServerState;
use crate::status::Status;
use crate::trace::Trace;

pub const HEADER_LENGTH: &str = "inference-header-content-length";

pub async fn infer(
    state: Arc<ServerState>,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // Errors up to the body's parsing are Triton's plain-labelled ones.
    let version = path_version(version.as_deref()).map_err(ApiError::plain)?;
    let mv = state
        .manager
        .get(&model, version)
        .map_err(|e| ApiError::from(e).plain())?;
    if mv.is_decoupled() {
        return Err(ApiError::from(Status::unsupported(
            "HTTP end point doesn't support models with decoupled transaction policy",
        ))
        .plain());
    }
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let trace = state.settings.sample(&model, traceparent);
    if let Some(t) = &trace {
        t.set_version(mv.version);
        t.mark("HTTP_RECV_START");
    }
    let codec = body::request_codec(&headers)?;
    let limit = state.limits.max_body_bytes;
    let raw = body::read(&headers, body, limit).await?;
    let raw = body::decompress(codec, raw, limit)
        .await
        .map_err(|e| ApiError::from(e).plain())?;
    if let Some(t) = &trace {
        t.mark("HTTP_RECV_END");
    }
    let header_len = header_length(&headers, raw.len())?;

    let decoded = if header_len == Some(0) {
        decode::decode_raw(raw, &mv.io)?
    } else {
        let n = header_len.unwrap_or(raw.len());
        let tail = raw.slice(n..);
        let cx = decode::Context {
            model: &model,
            shm: &state.shm,
            max_input_bytes: limit,
        };
        decode::decode_json(&raw[..n], tail, &cx)?
    };
    let response_codec = body::response_codec(&headers);
    run(&state, &mv, decoded, trace, response_codec).await
}

/// `Inference-Header-Content-Length`: absent (the whole body is JSON), 0 (raw binary), or the
/// JSON header's length within the body.
fn header_length(headers: &HeaderMap, body_len: usize) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get(HEADER_LENGTH) else {
        // An empty body with no header is a raw request, as Triton reads it.
        return Ok((body_len == 0).then_some(0));
    };
    let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
    let bad = |msg: String| ApiError::from(Status::invalid_arg(msg)).plain();
    let n: i64 = text.trim().parse().map_err(|_| {
        bad(format!(
            "Unable to parse Inference-Header-Content-Length, got: {text}"
        ))
    })?;
    if n < 0 || n as u64 > body_len as u64 {
        return Err(bad(format!(
            "inference header size should be in range (0, {body_len}), got: {text}"
        )));
    }
    Ok(Some(n as usize))
}

async fn run(
    state: &Arc<ServerState>,
    mv: &Arc<ModelVersion>,
    d: Decoded,
    trace: Option<Arc<Trace>>,
    codec: Codec,
) -> ApiResult {
    let (mut req, stream) = InferRequest::new(d.id.clone(), d.inputs);
    req.outputs = d
        .outputs
        .iter()
        .map(|o| RequestedOutput {
            name: o.name.clone(),
            class_count: o.class_count,
        })
        .collect();
    req.parameters = d.parameters;
    req.priority = d.priority;
    req.timeout_us = d.timeout_us;
    req.sequence = d.sequence;
    req.trace = trace.clone();
    let _inflight = state.begin_request();
    // Dropping this handler (the client went away) cancels the request.
    let cancel = req.cancel.clone().drop_guard();
    if let Some(t) = &trace {
        t.mark("REQUEST_START");
    }
    mv.submit(req)?;
    let result = stream.single().await;
    if let Some(t) = &trace {
        t.mark("INFER_RESPONSE_COMPLETE");
    }
    cancel.disarm();
    let resp = result.map_err(|e| ApiError::from(e).plain())?;
    let plan = Plan {
        outputs: &d.outputs,
        binary_by_default: d.binary_by_default,
    };
    let encoded = encode::encode(&resp, &d.id, &mv.name, mv.version, &mv.io, &plan)
        .map_err(|e| ApiError::from(e).plain())?;
    if let Some(t) = &trace {
        t.mark("HTTP_SEND_START");
    }
    let (codec, bytes) = body::compress(codec, encoded.body)
        .await
        .map_err(|e| ApiError::from(e).plain())?;
    let mut builder = Response::builder().status(StatusCode::OK);
    match encoded.header_len {
        Some(n) => {
            builder = builder
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(HEADER_LENGTH, n);
        }
        None => builder = builder.header(CONTENT_TYPE, "application/json"),
    }
    if codec != Codec::Identity {
        builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static(codec.name()));
    }
    let body = match trace {
        Some(t) => traced_body(Bytes::from(bytes), t),
        None => Body::from(bytes),
    };
    builder
        .body(body)
        .map_err(|e| ApiError::from(Status::internal(format!("cannot build the response: {e}"))))
}

/// A body that marks HTTP_SEND_END on its trace once the last byte was handed to the connection.
fn traced_body(bytes: Bytes, trace: Arc<Trace>) -> Body {
    let chunks = futures::stream::unfold((Some(bytes), Some(trace)), |(bytes, trace)| async move {
        match bytes {
            Some(b) => Some((Ok::<_, std::convert::Infallible>(b), (None, trace))),
            None => {
                if let Some(t) = trace {
                    t.mark("HTTP_SEND_END");
                }
                None
            }
        }
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(v) = v {
            m.insert(HEADER_LENGTH, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn header_lengths() {
        assert_eq!(header_length(&h(None), 10).unwrap(), None);
        assert_eq!(header_length(&h(None), 0).unwrap(), Some(0));
        assert_eq!(header_length(&h(Some("0")), 10).unwrap(), Some(0));
        assert_eq!(header_length(&h(Some("10")), 10).unwrap(), Some(10));
        let e = header_length(&h(Some("11")), 10).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                StatusCode::BAD_REQUEST,
                "inference header size should be in range (0, 10), got: 11"
            )
        );
        assert_eq!(
            header_length(&h(Some("-5")), 10).unwrap_err().message,
            "inference header size should be in range (0, 10), got: -5"
        );
        assert_eq!(
            header_length(&h(Some("abc")), 10).unwrap_err().message,
            "Unable to parse Inference-Header-Content-Length, got: abc"
        );
    }
}
