//! KServe v2 over gRPC: a few HTTP/2 channels, requests spread over them by lane.

use tonic::transport::{Channel, Endpoint};

use super::{ConfigFacts, ModelInfo, Target, TensorMeta, error_chain};
use crate::perf::error::PerfError;
use crate::perf::inputs::BatchTensor;
use crate::perf::server_stats::{Duration as StatDuration, StatsSnapshot};
use crate::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use crate::proto::inference::model_config::SchedulingChoice;
use crate::proto::inference::model_infer_request::InferInputTensor;
use crate::proto::inference::{
    ModelConfigRequest, ModelInferRequest, ModelMetadataRequest, ModelStatisticsRequest,
    StatisticDuration,
};

pub struct GrpcClient {
    lanes: Vec<GrpcInferenceServiceClient<Channel>>,
    target: Target,
}

fn status_text(s: &tonic::Status) -> String {
    format!("gRPC {:?}: {}", s.code(), s.message())
}

impl GrpcClient {
    pub async fn connect(target: &Target, lanes: usize) -> Result<GrpcClient, PerfError> {
        let url = format!("http://{}", target.host_port());
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| PerfError::config(format!("invalid url '{}': {e}", target.url)))?
            .tcp_nodelay(true)
            .connect_timeout(target.request_timeout);
        let mut out = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let channel = endpoint.connect().await.map_err(|e| PerfError::Connect {
                url: url.clone(),
                reason: error_chain(&e),
            })?;
            out.push(
                GrpcInferenceServiceClient::new(channel)
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            );
        }
        Ok(GrpcClient {
            lanes: out,
            target: target.clone(),
        })
    }

    fn setup_client(&self) -> GrpcInferenceServiceClient<Channel> {
        self.lanes[0].clone()
    }

    pub async fn model_info(&self) -> Result<ModelInfo, PerfError> {
        let (name, version) = (self.target.model.clone(), self.target.version.clone());
        let meta = self
            .setup_client()
            .model_metadata(ModelMetadataRequest {
                name: name.clone(),
                version: version.clone(),
            })
            .await
            .map_err(|s| PerfError::Server {
                what: "model metadata".into(),
                message: status_text(&s),
            })?
            .into_inner();
        let config = self
            .setup_client()
            .model_config(ModelConfigRequest { name, version })
            .await
            .map_err(|s| PerfError::Server {
                what: "model config".into(),
                message: status_text(&s),
            })?
            .into_inner()
            .config
            .unwrap_or_default();
        let facts = ConfigFacts {
            max_batch_size: config.max_batch_size.max(0) as u64,
            dynamic_batching: matches!(
                config.scheduling_choice,
                Some(SchedulingChoice::DynamicBatching(_))
            ),
            sequence_batching: matches!(
                config.scheduling_choice,
                Some(SchedulingChoice::SequenceBatching(_))
            ),
            decoupled: config.model_transaction_policy.is_some_and(|p| p.decoupled),
        };
        let tensors =
            |list: &[crate::proto::inference::model_metadata_response::TensorMetadata]| {
                list.iter()
                    .map(|t| TensorMeta {
                        name: t.name.clone(),
                        datatype: t.datatype.clone(),
                        shape: t.shape.clone(),
                    })
                    .collect::<Vec<_>>()
            };
        ModelInfo::new(&tensors(&meta.inputs), &tensors(&meta.outputs), facts)
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, PerfError> {
        let resp = self
            .setup_client()
            .model_statistics(ModelStatisticsRequest {
                name: self.target.model.clone(),
                version: self.target.version.clone(),
            })
            .await
            .map_err(|s| PerfError::Server {
                what: "model statistics".into(),
                message: status_text(&s),
            })?
            .into_inner();
        let d = |s: Option<StatisticDuration>| {
            s.map_or(StatDuration::default(), |s| StatDuration {
                count: s.count,
                ns: s.ns,
            })
        };
        let mut total = StatsSnapshot::default();
        let mut found = false;
        for m in resp
            .model_stats
            .into_iter()
            .filter(|m| m.name == self.target.model)
        {
            if !self.target.version.is_empty() && m.version != self.target.version {
                continue;
            }
            found = true;
            let is = m.inference_stats.unwrap_or_default();
            let one = StatsSnapshot {
                inference_count: m.inference_count,
                execution_count: m.execution_count,
                success: d(is.success),
                fail: d(is.fail),
                queue: d(is.queue),
                compute_input: d(is.compute_input),
                compute_infer: d(is.compute_infer),
                compute_output: d(is.compute_output),
            };
            total.add(&one);
        }
        if !found {
            return Err(PerfError::Server {
                what: "model statistics".into(),
                message: format!("the answer has no entry for model '{}'", self.target.model),
            });
        }
        Ok(total)
    }

    pub fn encode(&self, inputs: &[BatchTensor]) -> ModelInferRequest {
        ModelInferRequest {
            model_name: self.target.model.clone(),
            model_version: self.target.version.clone(),
            inputs: inputs
                .iter()
                .map(|t| InferInputTensor {
                    name: t.name.clone(),
                    datatype: t.datatype.name().to_string(),
                    shape: t.shape.clone(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: inputs.iter().map(|t| t.raw.clone()).collect(),
            ..Default::default()
        }
    }

    pub async fn infer(&self, req: &ModelInferRequest, lane: usize) -> Result<(), String> {
        let mut client = self.lanes[lane % self.lanes.len()].clone();
        let mut request = tonic::Request::new(req.clone());
        request.set_timeout(self.target.request_timeout);
        match tokio::time::timeout(self.target.request_timeout, client.model_infer(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) => Err(status_text(&s)),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.target.request_timeout.as_millis()
            )),
        }
    }
}
