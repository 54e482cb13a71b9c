//! The two ways to talk to a KServe v2 server: HTTP/REST and gRPC. Setup calls
//! (metadata, config, statistics) return typed errors; inference returns the failure
//! text, which the load loop counts.

mod grpc;
mod http;

pub use http::{HttpBody, encode as encode_http_body};

use std::time::Duration;

use serde::Serialize;

use super::error::PerfError;
use super::inputs::{BatchTensor, DataType, InputSpec};
use super::server_stats::StatsSnapshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Grpc,
}

impl Protocol {
    pub fn default_url(self) -> &'static str {
        match self {
            Protocol::Http => "localhost:8000",
            Protocol::Grpc => "localhost:8001",
        }
    }
}

/// How tensors travel in HTTP requests (gRPC always sends raw contents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorFormat {
    /// The binary tensor data extension, for inputs and outputs.
    Binary,
    /// Plain JSON arrays.
    Json,
}

/// What the metadata and config calls tell about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<String>,
    pub max_batch_size: u64,
    pub dynamic_batching: bool,
    pub sequence_batching: bool,
    pub decoupled: bool,
}

/// A tensor as model metadata lists it (the shape includes the batch dimension when
/// the model batches).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// The parts of the model config that matter here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigFacts {
    pub max_batch_size: u64,
    pub dynamic_batching: bool,
    pub sequence_batching: bool,
    pub decoupled: bool,
}

impl ConfigFacts {
    /// Reads the JSON form of a model config (`GET /v2/models/<m>/config`).
    pub fn from_json(v: &serde_json::Value) -> ConfigFacts {
        ConfigFacts {
            max_batch_size: v
                .get("max_batch_size")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            dynamic_batching: v.get("dynamic_batching").is_some_and(|d| !d.is_null()),
            sequence_batching: v.get("sequence_batching").is_some_and(|d| !d.is_null()),
            decoupled: v
                .pointer("/model_transaction_policy/decoupled")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }
    }
}

impl ModelInfo {
    /// Combines metadata and config: drops the batch dimension from the metadata shapes
    /// of a batching model and parses the datatypes.
    pub fn new(
        inputs: &[TensorMeta],
        outputs: &[TensorMeta],
        cfg: ConfigFacts,
    ) -> Result<ModelInfo, PerfError> {
        let inputs = inputs
            .iter()
            .map(|t| {
                let datatype = DataType::parse(&t.datatype).ok_or_else(|| {
                    PerfError::input(format!(
                        "input '{}' has datatype '{}', which is not supported",
                        t.name, t.datatype
                    ))
                })?;
                let dims = if cfg.max_batch_size > 0 {
                    if t.shape.is_empty() {
                        return Err(PerfError::input(format!(
                            "input '{}' of a batching model has an empty shape in the metadata",
                            t.name
                        )));
                    }
                    t.shape[1..].to_vec()
                } else {
                    t.shape.clone()
                };
                Ok(InputSpec {
                    name: t.name.clone(),
                    datatype,
                    dims,
                })
            })
            .collect::<Result<Vec<_>, PerfError>>()?;
        Ok(ModelInfo {
            inputs,
            outputs: outputs.iter().map(|o| o.name.clone()).collect(),
            max_batch_size: cfg.max_batch_size,
            dynamic_batching: cfg.dynamic_batching,
            sequence_batching: cfg.sequence_batching,
            decoupled: cfg.decoupled,
        })
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub protocol: Protocol,
    /// `host:port`, with or without an `http://` prefix.
    pub url: String,
    pub model: String,
    /// Empty: the server's choice.
    pub version: String,
    pub request_timeout: Duration,
}

impl Target {
    /// `host:port` without any scheme.
    pub fn host_port(&self) -> &str {
        let u = self.url.trim_end_matches('/');
        u.strip_prefix("http://")
            .or_else(|| u.strip_prefix("grpc://"))
            .unwrap_or(u)
    }
}

pub enum Client {
    Http(Box<http::HttpClient>),
    Grpc(grpc::GrpcClient),
}

/// Request bodies built once and reused for every request.
pub enum Prepared {
    Http(Vec<http::HttpBody>),
    Grpc(Vec<crate::proto::inference::ModelInferRequest>),
}

impl Prepared {
    pub fn len(&self) -> usize {
        match self {
            Prepared::Http(v) => v.len(),
            Prepared::Grpc(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of request `i` as sent: the HTTP body, or the encoded gRPC message.
    pub fn body_bytes(&self, i: usize) -> usize {
        match self {
            Prepared::Http(v) => v.get(i).map_or(0, |b| b.body.len()),
            Prepared::Grpc(v) => v.get(i).map_or(0, prost::Message::encoded_len),
        }
    }
}

impl Client {
    /// Connects; `lanes` gRPC channels are opened (HTTP pools its connections).
    pub async fn connect(target: &Target, lanes: usize) -> Result<Client, PerfError> {
        Ok(match target.protocol {
            Protocol::Http => Client::Http(Box::new(http::HttpClient::new(target)?)),
            Protocol::Grpc => Client::Grpc(grpc::GrpcClient::connect(target, lanes.max(1)).await?),
        })
    }

    pub async fn model_info(&self) -> Result<ModelInfo, PerfError> {
        match self {
            Client::Http(c) => c.model_info().await,
            Client::Grpc(c) => c.model_info().await,
        }
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, PerfError> {
        match self {
            Client::Http(c) => c.stats().await,
            Client::Grpc(c) => c.stats().await,
        }
    }

    /// Encodes every request once. `outputs` are requested as binary in HTTP binary mode.
    pub fn prepare(
        &self,
        requests: &[Vec<BatchTensor>],
        outputs: &[String],
        format: TensorFormat,
    ) -> Result<Prepared, PerfError> {
        Ok(match self {
            Client::Http(_) => Prepared::Http(
                requests
                    .iter()
                    .map(|r| http::encode(r, outputs, format))
                    .collect::<Result<_, _>>()?,
            ),
            Client::Grpc(c) => Prepared::Grpc(requests.iter().map(|r| c.encode(r)).collect()),
        })
    }

    /// Sends prepared request `index` on `lane`. `Err` holds a one-line reason.
    pub async fn infer(
        &self,
        prepared: &Prepared,
        index: usize,
        lane: usize,
    ) -> Result<(), String> {
        match (self, prepared) {
            (Client::Http(c), Prepared::Http(b)) => c.infer(&b[index % b.len()]).await,
            (Client::Grpc(c), Prepared::Grpc(r)) => c.infer(&r[index % r.len()], lane).await,
            _ => Err("prepared requests belong to the other protocol".to_string()),
        }
    }
}

/// Joins an error and its sources: hyper and tonic put the useful part
/// ("Connection refused") in the source chain.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}
