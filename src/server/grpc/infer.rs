//! ModelInfer's wire form, shared by the unary and the streaming RPC: a `ModelInferRequest`
//! becomes an `InferRequest` (tensors from raw contents, typed contents or shared memory;
//! Triton's request parameters), and each answer becomes a `ModelInferResponse`. Outputs
//! always travel as raw contents, as Triton sends them on gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::ServerState;
use super::contents::typed;
use super::params::controls;
use super::shm::{ShmParams, ShmSlot};
use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice as P;
use crate::repository::ModelVersion;
use crate::request::classify::classify;
use crate::request::{
    InferRequest, InferResponse, NamedTensor, ParamValue, Parameters, RequestedOutput,
    ResponseStream,
};
use crate::server::common::parse_version;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};
use crate::trace::Trace;

/// Unary ModelInfer refuses decoupled models; the stream takes both kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Rpc {
    Unary,
    Stream,
}

/// A decoded request, ready to submit, and what answering it needs.
pub(super) struct Decoded {
    pub model: Arc<ModelVersion>,
    pub request: InferRequest,
    pub responses: ResponseStream,
    pub reply: Reply,
}

/// What encoding the answers of one request needs once the request itself is submitted.
pub(super) struct Reply {
    pub id: String,
    pub plan: OutputPlan,
    /// `triton_enable_empty_final_response`: answer the bare final flag of decoupled models.
    pub empty_final: bool,
    pub trace: Option<Arc<Trace>>,
}

impl Reply {
    pub fn mark(&self, event: &'static str) {
        if let Some(t) = &self.trace {
            t.mark(event);
        }
    }
}

/// The outputs the client asked for; none means every output, as plain tensors.
#[derive(Default)]
pub(super) struct OutputPlan {
    requested: Vec<Planned>,
}

struct Planned {
    name: String,
    class_count: u32,
    shm: Option<ShmSlot>,
}

/// Answers one unary ModelInfer.
pub(super) async fn unary(
    state: &Arc<ServerState>,
    msg: pb::ModelInferRequest,
    traceparent: Option<&str>,
) -> Result<pb::ModelInferResponse, Status> {
    let _inflight = state.begin_request();
    let Decoded {
        model,
        request,
        responses,
        reply,
    } = decode(state, msg, Rpc::Unary, traceparent)?;
    // A client that goes away drops this future and the guard with it: the request is cancelled.
    let cancel = request.cancel.clone().drop_guard();
    reply.mark("REQUEST_START");
    model.submit(request)?;
    let answer = responses.single().await;
    cancel.disarm();
    reply.mark("INFER_RESPONSE_COMPLETE");
    reply.mark("GRPC_SEND_START");
    let out = encode(&model, &reply, answer?);
    reply.mark("GRPC_SEND_END");
    out
}

/// Decodes a request for `model_name`/`model_version`, in Triton's order of checks: version,
/// model, transaction policy, request parameters, inputs, requested outputs.
pub(super) fn decode(
    state: &ServerState,
    msg: pb::ModelInferRequest,
    rpc: Rpc,
    traceparent: Option<&str>,
) -> Result<Decoded, Status> {
    let version = parse_version(&msg.model_version)?;
    let model = state.manager.get(&msg.model_name, version)?;
    if rpc == Rpc::Unary && model.is_decoupled() {
        return Err(Status::unsupported(
            "ModelInfer RPC doesn't support models with decoupled transaction policy",
        ));
    }
    tracing::debug!(
        "{}{} for model '{}' version {}",
        request_prefix(&msg.id),
        if rpc == Rpc::Unary {
            "ModelInfer"
        } else {
            "ModelStreamInfer"
        },
        model.name,
        model.version
    );
    let trace = state.settings.sample(&model.name, traceparent);
    if let Some(t) = &trace {
        // tonic hands over the message already read; both marks fall at that moment.
        t.set_version(model.version);
        t.mark("GRPC_WAITREAD_START");
        t.mark("GRPC_WAITREAD_END");
    }
    let controls = controls(&msg.parameters)?;
    let inputs = inputs(state, &model, &msg.id, msg.inputs, msg.raw_input_contents)?;
    let plan = outputs(state, msg.outputs)?;
    let (mut request, responses) = InferRequest::new(msg.id.clone(), inputs);
    request.outputs = plan
        .requested
        .iter()
        .map(|p| RequestedOutput {
            name: p.name.clone(),
            class_count: p.class_count,
        })
        .collect();
    request.parameters = controls.custom;
    request.priority = controls.priority;
    request.timeout_us = controls.timeout_us;
    request.sequence = controls.sequence;
    request.trace = trace.clone();
    let reply = Reply {
        id: msg.id,
        plan,
        empty_final: controls.empty_final,
        trace,
    };
    Ok(Decoded {
        model,
        request,
        responses,
        reply,
    })
}

/// Triton's prefix for messages about one request.
fn request_prefix(id: &str) -> String {
    if id.is_empty() {
        "[request id: <id_unknown>] ".to_string()
    } else {
        format!("[request id: {id}] ")
    }
}

/// The input tensors. Data comes from shared memory, else from the next raw contents entry
/// (raw contents are consumed in order by the inputs that do not use shared memory), else
/// from the typed contents; raw and typed contents never mix in one request.
fn inputs(
    state: &ServerState,
    model: &ModelVersion,
    id: &str,
    tensors: Vec<pb::model_infer_request::InferInputTensor>,
    raw: Vec<Bytes>,
) -> Result<Vec<NamedTensor>, Status> {
    let model_name = &model.name;
    let has_raw = !raw.is_empty();
    let mut raw = raw.into_iter();
    let mut out: Vec<NamedTensor> = Vec::with_capacity(tensors.len());
    for t in tensors {
        if out.iter().any(|n| n.name == t.name) {
            return Err(Status::invalid_arg(format!(
                "{}input '{}' already exists in request",
                request_prefix(id),
                t.name
            )));
        }
        let declared = DataType::from_wire(&t.datatype);
        let no_data = || {
            Status::invalid_arg(format!(
                "unable to find data for input tensor '{}' for model '{model_name}' in request.",
                t.name
            ))
        };
        let data = if let Some(p) = ShmParams::parse(&t.parameters, &t.name)? {
            if t.contents.is_some() {
                return Err(Status::invalid_arg(format!(
                    "unexpected 'content' provided when using shared memory for input tensor '{}' for model '{model_name}'",
                    t.name
                )));
            }
            let slot = p.resolve(state)?;
            slot.region.read(slot.offset, slot.byte_size)?
        } else if has_raw {
            if t.contents.is_some() {
                return Err(Status::invalid_arg(format!(
                    "contents field must not be specified when using raw_input_contents for '{}' for model '{model_name}'",
                    t.name
                )));
            }
            raw.next().ok_or_else(no_data)?
        } else if let Some(c) = t.contents {
            typed(c, declared, &t.name, model_name)?
        } else {
            return Err(no_data());
        };
        let datatype = match (declared, model.io.input(&t.name)) {
            (Some(d), _) => d,
            (None, Some(spec)) => {
                return Err(Status::invalid_arg(format!(
                    "{}inference input '{}' data-type is '<invalid>', but model '{model_name}' expects '{}'",
                    request_prefix(id),
                    t.name,
                    spec.datatype.wire_name()
                )));
            }
            // Validation refuses the unknown name before it looks at the type.
            (None, None) => DataType::Bytes,
        };
        out.push(NamedTensor::new(
            t.name,
            Tensor::new(datatype, t.shape, data),
        ));
    }
    Ok(out)
}

/// The requested outputs, with classification and shared memory resolved up front.
fn outputs(
    state: &ServerState,
    tensors: Vec<pb::model_infer_request::InferRequestedOutputTensor>,
) -> Result<OutputPlan, Status> {
    let mut requested: Vec<Planned> = Vec::with_capacity(tensors.len());
    for o in tensors {
        let shm = ShmParams::parse(&o.parameters, &o.name)?;
        let class_count = match o
            .parameters
            .get("classification")
            .map(|p| &p.parameter_choice)
        {
            None => 0,
            Some(Some(P::Int64Param(k))) if *k > 0 => u32::try_from(*k).unwrap_or(u32::MAX),
            Some(Some(P::Int64Param(_))) => {
                return Err(Status::invalid_arg(
                    "invalid value for 'classification' parameter, expected >= 0",
                ));
            }
            Some(_) => {
                return Err(Status::invalid_arg(
                    "invalid value type for 'classification' parameter, expected int64_param",
                ));
            }
        };
        if shm.is_some() && class_count > 0 {
            return Err(Status::invalid_arg(
                "output can't set both 'shared_memory_region' and 'classification'",
            ));
        }
        let shm = match shm {
            Some(p) => Some(p.resolve_output(state)?),
            None => None,
        };
        // Asking twice for one output answers it once.
        if !requested.iter().any(|p| p.name == o.name) {
            requested.push(Planned {
                name: o.name,
                class_count,
                shm,
            });
        }
    }
    Ok(OutputPlan { requested })
}

/// Encodes one answer: outputs in the model's order (only the requested ones, when some
/// were named), classification applied, shared memory outputs written and answered without
/// data, as Triton does.
pub(super) fn encode(
    model: &ModelVersion,
    reply: &Reply,
    resp: InferResponse,
) -> Result<pb::ModelInferResponse, Status> {
    let requested = &reply.plan.requested;
    let mut outputs = Vec::with_capacity(resp.outputs.len());
    let mut raw = Vec::with_capacity(resp.outputs.len());
    for NamedTensor { name, tensor } in resp.outputs {
        let planned = requested.iter().find(|p| p.name == name);
        if planned.is_none() && !requested.is_empty() {
            continue;
        }
        let Tensor {
            datatype,
            shape,
            data,
        } = match planned {
            Some(p) if p.class_count > 0 => {
                let labels = model
                    .io
                    .output(&name)
                    .and_then(|o| o.labels.as_deref())
                    .map(Vec::as_slice);
                classify(
                    &tensor,
                    p.class_count as usize,
                    model.io.max_batch_size > 0,
                    labels,
                )?
            }
            _ => tensor,
        };
        let data = match planned.and_then(|p| p.shm.as_ref()) {
            Some(slot) => {
                if data.len() as u64 > slot.byte_size {
                    return Err(Status::internal(format!(
                        "shared memory size specified with the request for output '{name}' ({} bytes) should be at least {} bytes to hold the results",
                        slot.byte_size,
                        data.len()
                    )));
                }
                slot.region.write(slot.offset, &data)?;
                Bytes::new()
            }
            None => data,
        };
        outputs.push(pb::model_infer_response::InferOutputTensor {
            name,
            datatype: datatype.wire_name().to_string(),
            shape,
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(data);
    }
    Ok(pb::ModelInferResponse {
        model_name: model.name.clone(),
        model_version: model.version.to_string(),
        id: reply.id.clone(),
        parameters: wire_parameters(resp.parameters),
        outputs,
        raw_output_contents: raw,
    })
}

fn wire_parameters(params: Parameters) -> HashMap<String, pb::InferParameter> {
    params
        .0
        .into_iter()
        .map(|(k, v)| {
            let choice = match v {
                ParamValue::Bool(b) => P::BoolParam(b),
                ParamValue::Int(i) => P::Int64Param(i),
                ParamValue::Uint(u) => P::Uint64Param(u),
                ParamValue::Double(d) => P::DoubleParam(d),
                ParamValue::String(s) => P::StringParam(s),
            };
            (
                k,
                pb::InferParameter {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect()
}
