//! KServe v2 over HTTP/1.1 with a keep-alive connection pool (one connection per
//! request in flight, reused across requests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{ConfigFacts, ModelInfo, Target, TensorFormat, TensorMeta, error_chain};
use crate::perf::error::PerfError;
use crate::perf::inputs::{BatchTensor, raw_to_json};
use crate::perf::server_stats::StatsSnapshot;

/// One encoded request: the body and, for binary tensors, the JSON header length.
#[derive(Clone, Debug)]
pub struct HttpBody {
    pub body: Bytes,
    pub header_len: Option<HeaderValue>,
}

pub struct HttpClient {
    base: String,
    model_path: String,
    infer_uri: Uri,
    target: Target,
    client: HyperClient<HttpConnector, Full<Bytes>>,
}

/// Builds the body of one request.
pub fn encode(
    inputs: &[BatchTensor],
    outputs: &[String],
    format: TensorFormat,
) -> Result<HttpBody, PerfError> {
    match format {
        TensorFormat::Json => {
            let inputs = inputs
                .iter()
                .map(|t| {
                    Ok(json!({
                        "name": t.name,
                        "shape": t.shape,
                        "datatype": t.datatype.name(),
                        "data": raw_to_json(t.datatype, &t.raw)?,
                    }))
                })
                .collect::<Result<Vec<_>, PerfError>>()?;
            let body = serde_json::to_vec(&json!({ "inputs": inputs }))
                .map_err(|e| PerfError::input(format!("cannot encode the JSON request: {e}")))?;
            Ok(HttpBody {
                body: Bytes::from(body),
                header_len: None,
            })
        }
        TensorFormat::Binary => {
            let header = json!({
                "inputs": inputs.iter().map(|t| json!({
                    "name": t.name,
                    "shape": t.shape,
                    "datatype": t.datatype.name(),
                    "parameters": { "binary_data_size": t.raw.len() },
                })).collect::<Vec<_>>(),
                "outputs": outputs.iter().map(|o| json!({
                    "name": o,
                    "parameters": { "binary_data": true },
                })).collect::<Vec<_>>(),
            });
            let mut body = serde_json::to_vec(&header)
                .map_err(|e| PerfError::input(format!("cannot encode the request header: {e}")))?;
            let header_len = body.len();
            for t in inputs {
                body.extend_from_slice(&t.raw);
            }
            Ok(HttpBody {
                body: Bytes::from(body),
                header_len: Some(HeaderValue::from(header_len)),
            })
        }
    }
}

/// The `error` text of a KServe error body, or the body itself.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    if msg.trim().is_empty() {
        return format!("HTTP {} with an empty body", status);
    }
    format!("HTTP {}: {msg}", status.as_u16())
}

impl HttpClient {
    pub fn new(target: &Target) -> Result<HttpClient, PerfError> {
        let base = format!("http://{}", target.host_port());
        let mut model_path = format!("/v2/models/{}", target.model);
        if !target.version.is_empty() {
            model_path.push_str(&format!("/versions/{}", target.version));
        }
        let infer_uri: Uri = format!("{base}{model_path}/infer")
            .parse()
            .map_err(|e| PerfError::config(format!("invalid url '{}': {e}", target.url)))?;
        let mut connector = HttpConnector::new();
        // Small requests must not wait for Nagle's algorithm.
        connector.set_nodelay(true);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .build(connector);
        Ok(HttpClient {
            base,
            model_path,
            infer_uri,
            target: target.clone(),
            client,
        })
    }

    async fn get_json(&self, path: &str, what: &str) -> Result<Value, PerfError> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| PerfError::config(format!("invalid url '{}': {e}", self.target.url)))?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| PerfError::config(e.to_string()))?;
        let resp = tokio::time::timeout(self.target.request_timeout, self.client.request(req))
            .await
            .map_err(|_| PerfError::Connect {
                url: self.base.clone(),
                reason: format!("{what} timed out"),
            })?
            .map_err(|e| PerfError::Connect {
                url: self.base.clone(),
                reason: error_chain(&e),
            })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PerfError::Connect {
                url: self.base.clone(),
                reason: error_chain(&e),
            })?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(PerfError::Server {
                what: what.to_string(),
                message: error_text(status, &body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| PerfError::Server {
            what: what.to_string(),
            message: format!("answer is not JSON: {e}"),
        })
    }

    pub async fn model_info(&self) -> Result<ModelInfo, PerfError> {
        let meta = self.get_json(&self.model_path, "model metadata").await?;
        let config = self
            .get_json(&format!("{}/config", self.model_path), "model config")
            .await?;
        let tensors = |key: &str| -> Result<Vec<TensorMeta>, PerfError> {
            let list = meta
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.iter()
                .map(|t| {
                    let name = t.get("name").and_then(Value::as_str);
                    let datatype = t.get("datatype").and_then(Value::as_str);
                    let shape = t
                        .get("shape")
                        .and_then(|s| serde_json::from_value::<Vec<i64>>(s.clone()).ok());
                    match (name, datatype, shape) {
                        (Some(n), Some(d), Some(s)) => Ok(TensorMeta {
                            name: n.to_string(),
                            datatype: d.to_string(),
                            shape: s,
                        }),
                        _ => Err(PerfError::Server {
                            what: "model metadata".into(),
                            message: format!("malformed tensor entry {t}"),
                        }),
                    }
                })
                .collect()
        };
        ModelInfo::new(
            &tensors("inputs")?,
            &tensors("outputs")?,
            ConfigFacts::from_json(&config),
        )
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, PerfError> {
        let v = self
            .get_json(&format!("{}/stats", self.model_path), "model statistics")
            .await?;
        StatsSnapshot::from_json(&v, &self.target.model, &self.target.version).map_err(|message| {
            PerfError::Server {
                what: "model statistics".into(),
                message,
            }
        })
    }

    pub async fn infer(&self, body: &HttpBody) -> Result<(), String> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.infer_uri.clone());
        builder = match &body.header_len {
            Some(len) => builder
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Inference-Header-Content-Length", len.clone()),
            None => builder.header(CONTENT_TYPE, "application/json"),
        };
        let req = builder
            .body(Full::new(body.body.clone()))
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status();
            // The body is read to the end so the connection goes back to the pool.
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| error_chain(&e))?
                .to_bytes();
            if status == StatusCode::OK {
                Ok(())
            } else {
                Err(error_text(status, &bytes))
            }
        };
        match tokio::time::timeout(self.target.request_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.target.request_timeout.as_millis()
            )),
        }
    }
}
