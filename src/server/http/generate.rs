//! Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` and
//! `generate_stream`. Top-level JSON members named like model inputs become tensors (shaped
//! from the model's metadata), the others request parameters; outputs come back as members
//! (a lone element without its array). The stream is server-sent events, `data: {json}\n\n`
//! per response, and ends with the last response, the client, or server shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use bytes::Bytes;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::body;
use super::data;
use super::decode::parameter;
use super::encode::check_size;
use super::error::{ApiError, ApiResult, error_body, http_status};
use super::json::{self, Node, Policy};
use super::path_version;
use crate::request::validate::ModelIo;
use crate::request::{InferRequest, InferResponse, NamedTensor, Parameters, ResponseStream};
use crate::server::ServerState;
use crate::server::state::InflightGuard;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};
use crate::trace::Trace;

const SSE: &str = "text/event-stream; charset=utf-8";

pub async fn generate(
    state: Arc<ServerState>,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: axum::body::Body,
    streaming: bool,
) -> ApiResult {
    let version = path_version(version.as_deref())?;
    let mv = state.manager.get(&model, version)?;
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let trace = state.settings.sample(&model, traceparent);
    if let Some(t) = &trace {
        t.set_version(mv.version);
        t.mark("HTTP_RECV_START");
    }
    if !matches!(body::request_codec(&headers), Ok(body::Codec::Identity)) {
        return Err(Status::invalid_arg(
            "Unsupported content-encoding, only 'identity' is supported.",
        )
        .into());
    }
    let limit = state.limits.max_body_bytes;
    let raw = body::read(&headers, body, limit).await?;
    if let Some(t) = &trace {
        t.mark("HTTP_RECV_END");
    }
    let doc = json::parse_document(&raw, Policy::GENERATE)?;
    let id = match doc.get("id") {
        Some(v) => v.as_str().map_err(|e| json::unable("id", e))?.into_owned(),
        None => String::new(),
    };
    let mut inputs = Vec::new();
    let mut params = Parameters::default();
    let mut consumed = 0usize;
    let members = doc.members().map_err(Status::internal)?;
    convert(
        members,
        &mv.io,
        limit,
        &mut consumed,
        &mut inputs,
        &mut params,
    )?;

    let (mut req, stream) = InferRequest::new(id.clone(), inputs);
    req.parameters = params;
    req.trace = trace.clone();
    let inflight = state.begin_request();
    let guard = req.cancel.clone().drop_guard();
    if let Some(t) = &trace {
        t.mark("REQUEST_START");
    }
    mv.submit(req)?;
    let run = Run {
        model: mv.name.clone(),
        version: mv.version,
        id,
        stream,
        trace,
        _inflight: Some(inflight),
        guard: Some(guard),
        shutdown: state.shutdown.clone(),
        done: false,
    };
    if streaming {
        stream_response(run).await
    } else {
        single_response(run).await
    }
}

/// Members of a generate request (or of its `parameters` object) into inputs and parameters.
fn convert(
    members: &[(std::borrow::Cow<'_, str>, Node<'_>)],
    io: &ModelIo,
    limit: usize,
    consumed: &mut usize,
    inputs: &mut Vec<NamedTensor>,
    params: &mut Parameters,
) -> Result<(), Status> {
    for (key, value) in members {
        if key == "parameters" && !matches!(value, Node::Raw(_)) {
            if io.input("parameters").is_some() {
                return Err(Status::invalid_arg(
                    "Keyword 'parameters' for nested schema also given as input tensor name",
                ));
            }
            let nested = value.members().map_err(|_| {
                Status::internal(format!(
                    "Expected JSON object for keyword: 'parameters': {}",
                    json::NOT_OBJECT
                ))
            })?;
            convert(nested, io, limit, consumed, inputs, params).map_err(|e| {
                Status::new(
                    e.code,
                    format!("Converting keyword: 'parameters': {}", e.message),
                )
            })?;
            continue;
        }
        match io.input(key) {
            None => params.insert(key.as_ref(), parameter(key, value)?),
            Some(spec) => {
                let mut shape: Vec<i64> = spec.dims.clone();
                if io.max_batch_size > 0 {
                    shape.insert(0, -1);
                }
                inputs.push(tensor(key, value, spec.datatype, shape, limit, consumed)?);
            }
        }
    }
    Ok(())
}

fn tensor(
    name: &str,
    value: &Node,
    dtype: DataType,
    mut shape: Vec<i64>,
    limit: usize,
    consumed: &mut usize,
) -> Result<NamedTensor, Status> {
    let raw = match value {
        Node::Raw(r) => *r,
        _ => {
            return Err(Status::internal(format!(
                "input '{name}' could not be read"
            )));
        }
    };
    let count = match json::raw_kind(raw) {
        json::Kind::Array => serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw.get())
            .map(|v| v.len())
            .map_err(|e| json::unable("data", e))?,
        _ => 1,
    };
    let data = match dtype.size() {
        Some(size) => {
            let bytes = count.checked_mul(size).ok_or_else(|| {
                Status::invalid_arg(format!(
                    "input '{name}' has too many elements of datatype {}",
                    dtype.wire_name()
                ))
            })?;
            if bytes == 0 {
                return Ok(NamedTensor::new(
                    name,
                    Tensor::new(dtype, Vec::new(), Bytes::new()),
                ));
            }
            check_limit(name, bytes, limit, consumed)?;
            None
        }
        None => {
            let d = data::read_value(raw, dtype, usize::MAX)?;
            if d.is_empty() {
                return Ok(NamedTensor::new(
                    name,
                    Tensor::new(dtype, Vec::new(), Bytes::new()),
                ));
            }
            check_limit(name, d.len(), limit, consumed)?;
            Some(d)
        }
    };
    // Fixed dims take their share of the elements; the innermost variable dim takes the
    // rest and the others 1, as Triton pads a generate value to the input's shape.
    let cannot = || {
        Status::invalid_arg(format!(
            "The schema can not convert input '{name}' to tensor with proper shape"
        ))
    };
    let mut left = count as i64;
    for &d in shape.iter().rev() {
        if d != -1 {
            if d <= 0 || left % d != 0 {
                return Err(cannot());
            }
            left /= d;
        }
    }
    for d in shape.iter_mut().rev() {
        if *d == -1 {
            *d = left;
            left = 1;
        }
    }
    if left != 1 {
        return Err(cannot());
    }
    let data = match data {
        Some(d) => d,
        None => data::read_value(raw, dtype, count)?,
    };
    Ok(NamedTensor::new(name, Tensor::new(dtype, shape, data)))
}

fn check_limit(name: &str, bytes: usize, limit: usize, consumed: &mut usize) -> Result<(), Status> {
    match consumed.checked_add(bytes) {
        Some(total) if total <= limit => {
            *consumed = total;
            Ok(())
        }
        _ => Err(Status::invalid_arg(format!(
            "request size of {consumed} bytes with input '{name}' of size {bytes} bytes exceeds the maximum allowed input size of {limit}. Use --http-max-input-size to increase the limit."
        ))),
    }
}

/// One generate request's answers, with what must live as long as they are awaited.
struct Run {
    model: String,
    version: i64,
    id: String,
    stream: ResponseStream,
    trace: Option<Arc<Trace>>,
    _inflight: Option<InflightGuard>,
    /// Cancels the request if the answers are abandoned (client gone, shutdown).
    guard: Option<DropGuard>,
    shutdown: CancellationToken,
    /// The final answer arrived.
    done: bool,
}

impl Run {
    /// The next response or error, skipping flag-only answers; `None` at the end, when the
    /// server shuts down, or when the request's answers stop.
    async fn next(&mut self) -> Option<Result<InferResponse, Status>> {
        loop {
            if self.done {
                return None;
            }
            let item = tokio::select! {
                item = self.stream.next() => item,
                _ = self.shutdown.cancelled() => None,
            };
            let item = item?;
            if item.last {
                self.done = true;
                if let Some(g) = self.guard.take() {
                    g.disarm();
                }
            }
            match item.response {
                Some(r) => return Some(r),
                None if item.last => return None,
                None => continue,
            }
        }
    }

    /// One response as a JSON object, or the error object.
    fn render(&self, r: Result<InferResponse, Status>) -> Vec<u8> {
        match r.and_then(|resp| response_json(&resp, &self.id, &self.model, self.version)) {
            Ok(body) => body,
            Err(e) => error_body(&e.message),
        }
    }
}

fn response_json(
    resp: &InferResponse,
    id: &str,
    model: &str,
    version: i64,
) -> Result<Vec<u8>, Status> {
    // Triton collects the members in a sorted map: outputs, parameters and the reserved
    // names in byte order, the first of equal names winning.
    let mut members: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let text = |s: &str| {
        let mut v = Vec::new();
        json::escape_into(&mut v, s.as_bytes());
        v
    };
    if !id.is_empty() {
        members.insert("id", text(id));
    }
    members.insert("model_name", text(model));
    members.insert("model_version", text(&version.to_string()));
    for (k, v) in &resp.parameters.0 {
        let mut out = Vec::new();
        json::write_param(&mut out, v);
        members.entry(k.as_str()).or_insert(out);
    }
    for o in &resp.outputs {
        let t = &o.tensor;
        check_size(&o.name, t)?;
        let mut out = Vec::new();
        data::write(&mut out, t.datatype, &t.data).map_err(|_| {
            Status::internal(format!("output '{}' holds BYTES that are not UTF-8, which a generate response cannot carry", o.name))
        })?;
        if t.element_count() == 1 && out.len() >= 2 {
            out = out[1..out.len() - 1].to_vec();
        }
        members.entry(o.name.as_str()).or_insert(out);
    }
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::escape_into(&mut out, k.as_bytes());
        out.push(b':');
        out.extend_from_slice(v);
    }
    out.push(b'}');
    Ok(out)
}

fn status_of(r: &Option<Result<InferResponse, Status>>) -> StatusCode {
    match r {
        Some(Err(e)) => http_status(e.code),
        _ => StatusCode::OK,
    }
}

async fn single_response(mut run: Run) -> ApiResult {
    let first = run.next().await;
    let status = status_of(&first);
    let mut answers = Vec::new();
    if let Some(r) = first {
        answers.push(r);
        while let Some(r) = run.next().await {
            answers.push(r);
        }
    }
    let body = if answers.len() == 1 {
        let r = answers
            .pop()
            .unwrap_or_else(|| Err(Status::internal("no response")));
        run.render(r)
    } else {
        error_body(
            "generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses",
        )
    };
    mark_sent(&run.trace);
    respond(status, "application/json", Body::from(body))
}

async fn stream_response(mut run: Run) -> ApiResult {
    // The first answer sets the status code; later errors travel inside the stream.
    let first = run.next().await;
    let status = status_of(&first);
    let first = first.map(|r| sse(run.render(r)));
    let events = futures::stream::unfold((first, Some(run)), |(pending, run)| async move {
        if let Some(ev) = pending {
            return Some((Ok::<_, std::convert::Infallible>(ev), (None, run)));
        }
        let mut run = run?;
        match run.next().await {
            Some(r) => {
                let ev = sse(run.render(r));
                Some((Ok(ev), (None, Some(run))))
            }
            None => {
                mark_sent(&run.trace);
                None
            }
        }
    });
    respond(status, SSE, Body::from_stream(events))
}

fn sse(json: Vec<u8>) -> Bytes {
    let mut ev = Vec::with_capacity(json.len() + 8);
    ev.extend_from_slice(b"data: ");
    ev.extend_from_slice(&json);
    ev.extend_from_slice(b"\n\n");
    Bytes::from(ev)
}

fn mark_sent(trace: &Option<Arc<Trace>>) {
    if let Some(t) = trace {
        t.mark("HTTP_SEND_START");
        t.mark("HTTP_SEND_END");
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> ApiResult {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|e| ApiError::from(Status::internal(format!("cannot build the response: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::validate::IoSpec;

    fn io() -> ModelIo {
        let spec = |n: &str, t, dims: Vec<i64>| IoSpec {
            name: n.into(),
            datatype: t,
            dims,
            reshape: None,
            optional: false,
            labels: None,
        };
        ModelIo {
            model: "m".into(),
            max_batch_size: 8,
            inputs: vec![
                spec("A", DataType::Int32, vec![4]),
                spec("S", DataType::Bytes, vec![-1]),
                spec("F", DataType::Fp32, vec![1]),
            ],
            outputs: vec![],
        }
    }

    fn run(body: &str) -> Result<(Vec<NamedTensor>, Parameters), Status> {
        let doc = json::parse_document(body.as_bytes(), Policy::GENERATE)?;
        let (mut inputs, mut params, mut consumed) = (Vec::new(), Parameters::default(), 0);
        convert(
            doc.members().map_err(Status::internal)?,
            &io(),
            1 << 20,
            &mut consumed,
            &mut inputs,
            &mut params,
        )?;
        Ok((inputs, params))
    }

    #[test]
    fn members_become_inputs_and_parameters() {
        let (inputs, params) = run(
            r#"{"A":[1,2,3,4,5,6,7,8],"S":["x","yz"],"F":2.5,"n":3,"parameters":{"flag":true}}"#,
        )
        .unwrap();
        assert_eq!(
            inputs[0].tensor,
            Tensor::from_values(vec![2, 4], &[1i32, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(
            inputs[1].tensor,
            Tensor::from_strings(vec![1, 2], &["x", "yz"])
        );
        assert_eq!(inputs[2].tensor, Tensor::from_values(vec![1, 1], &[2.5f32]));
        assert_eq!(params.get("n"), Some(&crate::request::ParamValue::Int(3)));
        assert_eq!(
            params.get("flag"),
            Some(&crate::request::ParamValue::Bool(true))
        );
        let (inputs, _) = run(r#"{"parameters":{"A":[1,2,3,4]}}"#).unwrap();
        assert_eq!(inputs[0].tensor.shape, vec![1, 4]);
    }

    #[tokio::test]
    async fn answers_end_on_shutdown_and_cancel_the_request() {
        let (mut req, stream) = InferRequest::new("q".into(), vec![]);
        let shutdown = CancellationToken::new();
        let cancel = req.cancel.clone();
        let mut run = Run {
            model: "m".into(),
            version: 1,
            id: "q".into(),
            stream,
            trace: None,
            _inflight: None,
            guard: Some(req.cancel.clone().drop_guard()),
            shutdown: shutdown.clone(),
            done: false,
        };
        req.responder.send(
            InferResponse::new(vec![NamedTensor::new(
                "OUT",
                Tensor::from_values(vec![1], &[7i32]),
            )]),
            false,
        );
        let first = run.next().await.unwrap().unwrap();
        assert_eq!(
            String::from_utf8(run.render(Ok(first))).unwrap(),
            r#"{"OUT":7,"id":"q","model_name":"m","model_version":"1"}"#
        );
        // The request is still running (its responder is alive) when the server shuts down.
        shutdown.cancel();
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), run.next())
            .await
            .unwrap();
        assert!(next.is_none());
        assert!(!cancel.is_cancelled());
        drop(run);
        assert!(
            cancel.is_cancelled(),
            "abandoned answers cancel the request"
        );
        drop(req);
    }

    #[tokio::test]
    async fn a_finished_request_is_not_cancelled() {
        let (mut req, stream) = InferRequest::new(String::new(), vec![]);
        let cancel = req.cancel.clone();
        let mut run = Run {
            model: "m".into(),
            version: 1,
            id: String::new(),
            stream,
            trace: None,
            _inflight: None,
            guard: Some(req.cancel.clone().drop_guard()),
            shutdown: CancellationToken::new(),
            done: false,
        };
        req.responder.send(InferResponse::new(vec![]), false);
        req.responder
            .fail(Status::invalid_arg("IN must be in [0, 64], got -1"));
        assert!(run.next().await.unwrap().is_ok());
        let e = run.next().await.unwrap().unwrap_err();
        assert_eq!(
            String::from_utf8(run.render(Err(e))).unwrap(),
            r#"{"error":"IN must be in [0, 64], got -1"}"#
        );
        assert!(run.next().await.is_none());
        drop(run);
        assert!(!cancel.is_cancelled());
    }

    #[test]
    fn errors_like_triton() {
        let e = |b: &str| run(b).unwrap_err().message;
        assert_eq!(
            e(r#"{"A":[1,2,3]}"#),
            "The schema can not convert input 'A' to tensor with proper shape"
        );
        assert_eq!(
            e(r#"{"A":[[1,2,3,4]]}"#),
            "The schema can not convert input 'A' to tensor with proper shape"
        );
        assert_eq!(
            e(r#"{"A":"abc"}"#),
            "The schema can not convert input 'A' to tensor with proper shape"
        );
        assert_eq!(
            e(r#"{"F":"x"}"#),
            "Unable to parse 'data': attempt to access JSON non-number as double"
        );
        assert_eq!(
            e(r#"{"x":[1]}"#),
            "parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'."
        );
        assert_eq!(
            e(r#"{"x":null}"#),
            "parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'."
        );
        assert_eq!(
            e(r#"{"parameters":5}"#),
            "Expected JSON object for keyword: 'parameters': attempt to access JSON non-object as object"
        );
        assert_eq!(
            e(r#"{"parameters":{"x":[]}}"#),
            "Converting keyword: 'parameters': parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'."
        );
    }
}
