//! Helpers for the gRPC integration tests: a server on `tests/models` in explicit mode, the
//! generated tonic client, and builders for requests and parameters.
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
pub use despina::proto::inference as pb;
use pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use pb::infer_parameter::ParameterChoice as P;
use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tonic::transport::Channel;

use crate::common::{TestServer, test_models};

pub type Client = GrpcInferenceServiceClient<Channel>;

/// Every test model that loads today (ensembles come later).
pub const MODELS: &[&str] = &[
    "add_sub",
    "classify_fp32",
    "identity_fp32",
    "sequence_accumulate",
    "simple",
    "simple_identity",
    "simple_int8",
    "simple_string",
    "square_int32",
    "versioned",
];

/// despina on `tests/models`, explicit mode, every model of [`MODELS`] loaded.
pub fn start() -> TestServer {
    start_with(&[])
}

pub fn start_with(extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = vec!["--model-control-mode=explicit".into()];
    args.extend(MODELS.iter().map(|m| format!("--load-model={m}")));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(&test_models(), &args)
}

/// A repository with `slow_batch`: an identity model whose batcher holds a request for up to
/// two seconds waiting for company, so a test can act while requests are in flight.
pub fn slow_batch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("slow_batch");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::write(
        model.join("config.pbtxt"),
        r#"name: "slow_batch"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 2000000 }
"#,
    )
    .unwrap();
    dir
}

/// despina on `tests/models` and a [`slow_batch_repo`], every model loaded.
pub fn start_with_slow_batch(repo: &tempfile::TempDir, extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = vec![
        "--model-control-mode=explicit".into(),
        "--load-model=slow_batch".into(),
    ];
    args.extend(MODELS.iter().map(|m| format!("--load-model={m}")));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(&[&test_models(), repo.path()], &args)
}

pub fn slow_batch_request(id: &str) -> pb::ModelInferRequest {
    let mut r = request(
        "slow_batch",
        vec![typed("INPUT0", "FP32", &[1, 2], |c| {
            c.fp32_contents = vec![1.0, 2.0]
        })],
    );
    r.id = id.into();
    r
}

/// Polls a model's statistics until `done` holds (bounded: 10 s).
pub async fn wait_for_stats(
    c: &mut Client,
    model: &str,
    done: impl Fn(&pb::ModelStatistics) -> bool,
) -> pb::ModelStatistics {
    for _ in 0..500 {
        let req = pb::ModelStatisticsRequest {
            name: model.into(),
            version: String::new(),
        };
        let s = c
            .model_statistics(req)
            .await
            .unwrap()
            .into_inner()
            .model_stats
            .remove(0);
        if done(&s) {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("statistics of {model} never reached the expected state");
}

pub fn counts(s: &pb::ModelStatistics) -> (u64, u64) {
    let is = s.inference_stats.as_ref().unwrap();
    (
        is.success.as_ref().unwrap().count,
        is.fail.as_ref().unwrap().count,
    )
}

pub async fn client(server: &TestServer) -> Client {
    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("connect to despina");
    GrpcInferenceServiceClient::new(channel)
}

pub fn int32s(values: &[i32]) -> Bytes {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

pub fn fp32s(values: &[f32]) -> Bytes {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// Triton's serialized BYTES form: a 4-byte little-endian length before each element.
pub fn serialized<S: AsRef<[u8]>>(items: &[S]) -> Bytes {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(&(s.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_ref());
    }
    out.into()
}

pub fn as_int32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn as_fp32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn as_strings(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&b[4..4 + n]).into_owned());
        b = &b[4 + n..];
    }
    out
}

/// An input without data (for raw contents or shared memory).
pub fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        ..Default::default()
    }
}

/// An input with typed contents.
pub fn typed(
    name: &str,
    datatype: &str,
    shape: &[i64],
    fill: impl FnOnce(&mut pb::InferTensorContents),
) -> InferInputTensor {
    let mut contents = pb::InferTensorContents::default();
    fill(&mut contents);
    InferInputTensor {
        contents: Some(contents),
        ..input(name, datatype, shape)
    }
}

pub fn ints(name: &str, datatype: &str, shape: &[i64], values: &[i32]) -> InferInputTensor {
    typed(name, datatype, shape, |c| c.int_contents = values.to_vec())
}

pub fn output(name: &str) -> InferRequestedOutputTensor {
    InferRequestedOutputTensor {
        name: name.into(),
        parameters: HashMap::new(),
    }
}

pub fn request(model: &str, inputs: Vec<InferInputTensor>) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs,
        ..Default::default()
    }
}

/// `simple` with INPUT0 = 0..16 and INPUT1 = 1s, as typed contents.
pub fn simple_request() -> pb::ModelInferRequest {
    let a: Vec<i32> = (0..16).collect();
    request(
        "simple",
        vec![
            ints("INPUT0", "INT32", &[1, 16], &a),
            ints("INPUT1", "INT32", &[1, 16], &[1; 16]),
        ],
    )
}

pub fn param(p: P) -> pb::InferParameter {
    pb::InferParameter {
        parameter_choice: Some(p),
    }
}

pub fn params(pairs: &[(&str, P)]) -> HashMap<String, pb::InferParameter> {
    pairs
        .iter()
        .map(|(k, p)| (k.to_string(), param(p.clone())))
        .collect()
}

pub fn bool_param(p: &pb::InferParameter) -> Option<bool> {
    match p.parameter_choice {
        Some(P::BoolParam(b)) => Some(b),
        _ => None,
    }
}

/// The code and message of a failed call.
pub fn failure<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
) -> (tonic::Code, String) {
    let s = r.expect_err("the call should fail");
    (s.code(), s.message().to_string())
}
