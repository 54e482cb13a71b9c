//! ModelInfer's wire form, shared by the unary and the streaming RPC: a `ModelInferRequest`
//! becomes an `InferRequest` (tensors from raw contents, typed contents or shared memory;
//! Triton's request parameters), and each answer becomes a `ModelInferResponse`. Outputs
//! always travel as raw contents, as Triton sends them on gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::ServerState;
use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice as P;
use crate::repository::ModelVersion;
use crate::request::classify::classify;
use crate::request::{
    CorrelationId, InferRequest, InferResponse, NamedTensor, ParamValue, Parameters,
    RequestedOutput, ResponseStream, SequenceInfo,
};
use crate::server::common::parse_version;
use crate::server::shm::Region;
use crate::status::Status;
use crate::tensor::{DataType, Tensor, serialize_bytes};
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

/// A bounds-checked window of a registered shared memory region.
struct ShmSlot {
    region: Arc<Region>,
    offset: u64,
    byte_size: u64,
}

/// Answers one unary ModelInfer.
pub(super) async fn unary(
    state: &Arc<ServerState>,
    msg: pb::ModelInferRequest,
) -> Result<pb::ModelInferResponse, Status> {
    let _inflight = state.begin_request();
    let Decoded {
        model,
        request,
        responses,
        reply,
    } = decode(state, msg, Rpc::Unary)?;
    // A client that goes away drops this future and the guard with it: the request is cancelled.
    let cancel = request.cancel.clone().drop_guard();
    reply.mark("REQUEST_START");
    model.submit(request)?;
    let answer = responses.single().await;
    cancel.disarm();
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
    let trace = state.settings.sample(&model.name);
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

/// Request parameters: Triton's reserved ones, and the rest passed on to the model.
#[derive(Default)]
struct Controls {
    priority: u64,
    timeout_us: u64,
    sequence: Option<SequenceInfo>,
    empty_final: bool,
    custom: Parameters,
}

fn controls(params: &HashMap<String, pb::InferParameter>) -> Result<Controls, Status> {
    let mut c = Controls::default();
    let (mut id, mut start, mut end, mut is_sequence) = (None, false, false, false);
    let wrong_type = |key: &str, expected: &str| {
        Status::invalid_arg(format!(
            "invalid value type for '{key}' parameter, expected {expected}."
        ))
    };
    for (key, p) in params {
        let value = p.parameter_choice.as_ref();
        match key.as_str() {
            "sequence_id" => {
                id = Some(match value {
                    // Triton reads signed ids as unsigned.
                    Some(P::Int64Param(v)) => CorrelationId::Int(*v as u64),
                    Some(P::StringParam(s)) => CorrelationId::Str(s.clone()),
                    _ => return Err(wrong_type(key, "int64_param or string_param")),
                });
                is_sequence = true;
            }
            "sequence_start" | "sequence_end" => {
                let Some(P::BoolParam(b)) = value else {
                    return Err(wrong_type(key, "bool_param"));
                };
                if key == "sequence_start" {
                    start = *b
                } else {
                    end = *b
                }
                is_sequence = true;
            }
            "priority" => {
                c.priority = match value {
                    Some(P::Int64Param(v)) => u64::try_from(*v).map_err(|_| {
                        Status::invalid_arg("invalid value for 'priority', expected value >= 0.")
                    })?,
                    Some(P::Uint64Param(v)) => *v,
                    _ => return Err(wrong_type(key, "int64_param or uint64_param")),
                }
            }
            "timeout" => {
                let Some(P::Int64Param(v)) = value else {
                    return Err(wrong_type(key, "int64_param"));
                };
                // Triton would read -1 as 2^64-1 microseconds; a clear refusal serves better.
                c.timeout_us = u64::try_from(*v).map_err(|_| {
                    Status::invalid_arg("invalid value for 'timeout', expected value >= 0.")
                })?;
            }
            "triton_enable_empty_final_response" => {
                let Some(P::BoolParam(b)) = value else {
                    return Err(wrong_type(key, "bool_param"));
                };
                c.empty_final = *b;
            }
            k if k.starts_with("triton_") => {
                return Err(Status::invalid_arg(
                    "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: triton_enable_empty_final_response",
                ));
            }
            _ => {
                let v = match value {
                    Some(P::BoolParam(b)) => ParamValue::Bool(*b),
                    Some(P::Int64Param(i)) => ParamValue::Int(*i),
                    Some(P::StringParam(s)) => ParamValue::String(s.clone()),
                    Some(P::DoubleParam(d)) => ParamValue::Double(*d),
                    _ => return Err(wrong_type(key, "int64_param, bool_param, or string_param")),
                };
                c.custom.0.push((key.clone(), v));
            }
        }
    }
    // The wire map has no order; give the model a stable one.
    c.custom.0.sort_by(|a, b| a.0.cmp(&b.0));
    if is_sequence {
        c.sequence = Some(SequenceInfo {
            id: id.unwrap_or(CorrelationId::Int(0)),
            start,
            end,
        });
    }
    Ok(c)
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

/// Converts typed contents to little-endian tensor bytes. Triton looks at the fields in this
/// order, each allowed only for its own data types and only one per tensor.
fn typed(
    c: pb::InferTensorContents,
    declared: Option<DataType>,
    name: &str,
    model: &str,
) -> Result<Bytes, Status> {
    use DataType as D;
    let mut out: Option<Bytes> = None;
    let claim = |out: &Option<Bytes>, field: &str, fits: bool| {
        if out.is_some() {
            return Err(Status::invalid_arg(format!(
                "unexpected explicit tensor data for input tensor '{name}' for model '{model}', binary data was already supplied."
            )));
        }
        if !fits {
            return Err(Status::invalid_arg(format!(
                "unexpected explicit tensor data for input tensor '{name}' for model '{model}' of type '{field}', expected datatype '{}'",
                declared.map_or("<invalid>", DataType::wire_name)
            )));
        }
        Ok(())
    };
    if !c.bool_contents.is_empty() {
        claim(&out, "BOOL", declared == Some(D::Bool))?;
        out = Some(pack(&c.bool_contents, 1, |b, v| b.put_u8(u8::from(*v))));
    }
    if !c.int_contents.is_empty() {
        claim(
            &out,
            "INT32",
            matches!(declared, Some(D::Int8 | D::Int16 | D::Int32)),
        )?;
        // Narrow types keep the low bits, as Triton's casts do.
        out = Some(match declared {
            Some(D::Int8) => pack(&c.int_contents, 1, |b, v| b.put_i8(*v as i8)),
            Some(D::Int16) => pack(&c.int_contents, 2, |b, v| b.put_i16_le(*v as i16)),
            _ => pack(&c.int_contents, 4, |b, v| b.put_i32_le(*v)),
        });
    }
    if !c.int64_contents.is_empty() {
        claim(&out, "INT64", declared == Some(D::Int64))?;
        out = Some(pack(&c.int64_contents, 8, |b, v| b.put_i64_le(*v)));
    }
    if !c.uint_contents.is_empty() {
        claim(
            &out,
            "UINT32",
            matches!(declared, Some(D::Uint8 | D::Uint16 | D::Uint32)),
        )?;
        out = Some(match declared {
            Some(D::Uint8) => pack(&c.uint_contents, 1, |b, v| b.put_u8(*v as u8)),
            Some(D::Uint16) => pack(&c.uint_contents, 2, |b, v| b.put_u16_le(*v as u16)),
            _ => pack(&c.uint_contents, 4, |b, v| b.put_u32_le(*v)),
        });
    }
    if !c.uint64_contents.is_empty() {
        claim(&out, "UINT64", declared == Some(D::Uint64))?;
        out = Some(pack(&c.uint64_contents, 8, |b, v| b.put_u64_le(*v)));
    }
    if !c.fp32_contents.is_empty() {
        claim(&out, "FP32", declared == Some(D::Fp32))?;
        out = Some(pack(&c.fp32_contents, 4, |b, v| b.put_f32_le(*v)));
    }
    if !c.fp64_contents.is_empty() {
        claim(&out, "FP64", declared == Some(D::Fp64))?;
        out = Some(pack(&c.fp64_contents, 8, |b, v| b.put_f64_le(*v)));
    }
    if !c.bytes_contents.is_empty() {
        claim(&out, "BYTES", declared == Some(D::Bytes))?;
        out = Some(serialize_bytes(&c.bytes_contents));
    }
    Ok(out.unwrap_or_default())
}

fn pack<T>(values: &[T], size: usize, put: impl Fn(&mut BytesMut, &T)) -> Bytes {
    let mut buf = BytesMut::with_capacity(values.len() * size);
    for v in values {
        put(&mut buf, v);
    }
    buf.freeze()
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

/// The `shared_memory_*` parameters of one tensor.
struct ShmParams {
    region: String,
    offset: i64,
    byte_size: i64,
}

impl ShmParams {
    fn parse(
        params: &HashMap<String, pb::InferParameter>,
        tensor: &str,
    ) -> Result<Option<ShmParams>, Status> {
        let wrong_type = |key: &str, expected: &str| {
            Status::invalid_arg(format!(
                "invalid value type for '{key}' parameter for tensor '{tensor}', expected {expected}."
            ))
        };
        let region = match params
            .get("shared_memory_region")
            .map(|p| &p.parameter_choice)
        {
            None => None,
            Some(Some(P::StringParam(s))) => Some(s.clone()),
            Some(_) => return Err(wrong_type("shared_memory_region", "string_param")),
        };
        let int = |key: &str| match params.get(key).map(|p| &p.parameter_choice) {
            None => Ok(None),
            Some(Some(P::Int64Param(v))) => Ok(Some(*v)),
            Some(_) => Err(wrong_type(key, "int64_param")),
        };
        let offset = int("shared_memory_offset")?;
        let byte_size = int("shared_memory_byte_size")?;
        let without_region = |key: &str| {
            Status::invalid_arg(format!(
                "'{key}' can not be specified without 'shared_memory_region' parameter for tensor '{tensor}'"
            ))
        };
        match (region, byte_size) {
            (Some(region), Some(byte_size)) => Ok(Some(ShmParams {
                region,
                offset: offset.unwrap_or(0),
                byte_size,
            })),
            (Some(_), None) => Err(Status::invalid_arg(format!(
                "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor '{tensor}'"
            ))),
            (None, Some(_)) => Err(without_region("shared_memory_byte_size")),
            (None, None) if offset.is_some() => Err(without_region("shared_memory_offset")),
            (None, None) => Ok(None),
        }
    }

    fn resolve(&self, state: &ServerState) -> Result<ShmSlot, Status> {
        let region = state.shm.get(&self.region).map_err(|_| {
            Status::not_found(format!(
                "Unable to find shared memory region: '{}'",
                self.region
            ))
        })?;
        let offset = u64::try_from(self.offset).map_err(|_| {
            Status::invalid_arg(format!(
                "Invalid offset for shared memory region: '{}'",
                self.region
            ))
        })?;
        let byte_size = u64::try_from(self.byte_size).map_err(|_| out_of_bounds(&self.region))?;
        Ok(ShmSlot {
            region,
            offset,
            byte_size,
        })
    }

    /// Outputs are checked against the region before the model runs; Triton leaves this to
    /// chance and may write past the region.
    fn resolve_output(&self, state: &ServerState) -> Result<ShmSlot, Status> {
        let slot = self.resolve(state)?;
        match slot.offset.checked_add(slot.byte_size) {
            Some(end) if end <= slot.region.byte_size => Ok(slot),
            _ => Err(out_of_bounds(&self.region)),
        }
    }
}

fn out_of_bounds(region: &str) -> Status {
    Status::invalid_arg(format!(
        "Invalid offset + byte size for shared memory region: '{region}'"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(f: impl FnOnce(&mut pb::InferTensorContents)) -> pb::InferTensorContents {
        let mut c = pb::InferTensorContents::default();
        f(&mut c);
        c
    }

    #[track_caller]
    fn ok(c: pb::InferTensorContents, dt: DataType) -> Vec<u8> {
        typed(c, Some(dt), "IN", "m").unwrap().to_vec()
    }

    #[track_caller]
    fn err(c: pb::InferTensorContents, dt: Option<DataType>) -> String {
        typed(c, dt, "IN", "m").unwrap_err().message
    }

    #[test]
    fn typed_contents_pack_little_endian() {
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![1, -2]), DataType::Int32),
            [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![300, -1]), DataType::Int8),
            [44, 0xff]
        );
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![258]), DataType::Int16),
            [2, 1]
        );
        assert_eq!(
            ok(contents(|c| c.uint_contents = vec![258]), DataType::Uint8),
            [2]
        );
        assert_eq!(
            ok(contents(|c| c.uint_contents = vec![258]), DataType::Uint16),
            [2, 1]
        );
        assert_eq!(
            ok(contents(|c| c.uint64_contents = vec![1]), DataType::Uint64),
            [1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            ok(contents(|c| c.int64_contents = vec![-1]), DataType::Int64),
            [0xff; 8]
        );
        assert_eq!(
            ok(
                contents(|c| c.bool_contents = vec![true, false]),
                DataType::Bool
            ),
            [1, 0]
        );
        assert_eq!(
            ok(contents(|c| c.fp32_contents = vec![1.0]), DataType::Fp32),
            1.0f32.to_le_bytes()
        );
        assert_eq!(
            ok(contents(|c| c.fp64_contents = vec![-2.5]), DataType::Fp64),
            (-2.5f64).to_le_bytes()
        );
        assert_eq!(
            ok(
                contents(|c| c.bytes_contents = vec![b"ab".to_vec(), vec![]]),
                DataType::Bytes
            ),
            b"\x02\0\0\0ab\0\0\0\0"
        );
        assert_eq!(ok(pb::InferTensorContents::default(), DataType::Fp32), b"");
    }

    #[test]
    fn typed_contents_triton_messages() {
        let pre = "unexpected explicit tensor data for input tensor 'IN' for model 'm'";
        assert_eq!(
            err(
                contents(|c| c.fp32_contents = vec![1.0]),
                Some(DataType::Int32)
            ),
            format!("{pre} of type 'FP32', expected datatype 'INT32'")
        );
        assert_eq!(
            err(
                contents(|c| c.fp32_contents = vec![1.0]),
                Some(DataType::Fp16)
            ),
            format!("{pre} of type 'FP32', expected datatype 'FP16'")
        );
        assert_eq!(
            err(contents(|c| c.int_contents = vec![1]), None),
            format!("{pre} of type 'INT32', expected datatype '<invalid>'")
        );
        assert_eq!(
            err(
                contents(|c| c.int_contents = vec![1]),
                Some(DataType::Bytes)
            ),
            format!("{pre} of type 'INT32', expected datatype 'BYTES'")
        );
        assert_eq!(
            err(
                contents(|c| c.uint_contents = vec![1]),
                Some(DataType::Int32)
            ),
            format!("{pre} of type 'UINT32', expected datatype 'INT32'")
        );
        assert_eq!(
            err(
                contents(|c| c.bool_contents = vec![true]),
                Some(DataType::Uint8)
            ),
            format!("{pre} of type 'BOOL', expected datatype 'UINT8'")
        );
        assert_eq!(
            err(
                contents(|c| {
                    c.int_contents = vec![1];
                    c.fp32_contents = vec![1.0];
                }),
                Some(DataType::Int32)
            ),
            format!("{pre}, binary data was already supplied.")
        );
    }

    fn param(p: P) -> pb::InferParameter {
        pb::InferParameter {
            parameter_choice: Some(p),
        }
    }

    #[track_caller]
    fn control_err(key: &str, p: Option<P>) -> String {
        let params = HashMap::from([(
            key.to_string(),
            pb::InferParameter {
                parameter_choice: p,
            },
        )]);
        controls(&params).err().expect("an error").message
    }

    #[test]
    fn request_parameters() {
        let params = HashMap::from([
            (
                "sequence_id".to_string(),
                param(P::StringParam("abc".into())),
            ),
            ("sequence_start".to_string(), param(P::BoolParam(true))),
            ("priority".to_string(), param(P::Uint64Param(2))),
            ("timeout".to_string(), param(P::Int64Param(1500))),
            (
                "triton_enable_empty_final_response".to_string(),
                param(P::BoolParam(true)),
            ),
            ("zeta".to_string(), param(P::DoubleParam(1.5))),
            ("alpha".to_string(), param(P::StringParam("x".into()))),
        ]);
        let c = controls(&params).unwrap();
        assert_eq!(
            c.sequence,
            Some(SequenceInfo {
                id: CorrelationId::Str("abc".into()),
                start: true,
                end: false
            })
        );
        assert_eq!((c.priority, c.timeout_us, c.empty_final), (2, 1500, true));
        assert_eq!(
            c.custom.0,
            vec![
                ("alpha".to_string(), ParamValue::String("x".into())),
                ("zeta".to_string(), ParamValue::Double(1.5))
            ]
        );
        let c = controls(&HashMap::from([(
            "sequence_id".to_string(),
            param(P::Int64Param(-1)),
        )]))
        .unwrap();
        assert_eq!(c.sequence.unwrap().id, CorrelationId::Int(u64::MAX));
        assert!(controls(&HashMap::new()).unwrap().sequence.is_none());

        assert_eq!(
            control_err("priority", Some(P::Int64Param(-1))),
            "invalid value for 'priority', expected value >= 0."
        );
        assert_eq!(
            control_err("priority", Some(P::StringParam("1".into()))),
            "invalid value type for 'priority' parameter, expected int64_param or uint64_param."
        );
        assert_eq!(
            control_err("timeout", Some(P::Int64Param(-1))),
            "invalid value for 'timeout', expected value >= 0."
        );
        assert_eq!(
            control_err("timeout", Some(P::Uint64Param(5))),
            "invalid value type for 'timeout' parameter, expected int64_param."
        );
        assert_eq!(
            control_err("sequence_id", Some(P::BoolParam(true))),
            "invalid value type for 'sequence_id' parameter, expected int64_param or string_param."
        );
        assert_eq!(
            control_err("sequence_end", Some(P::Int64Param(1))),
            "invalid value type for 'sequence_end' parameter, expected bool_param."
        );
        assert_eq!(
            control_err("custom", Some(P::Uint64Param(1))),
            "invalid value type for 'custom' parameter, expected int64_param, bool_param, or string_param."
        );
        assert_eq!(
            control_err("custom", None),
            "invalid value type for 'custom' parameter, expected int64_param, bool_param, or string_param."
        );
        assert!(
            control_err("triton_x", Some(P::BoolParam(true)))
                .starts_with("parameter keys starting with 'triton_' are reserved")
        );
    }

    #[track_caller]
    fn shm_err(params: &[(&str, P)]) -> String {
        let map: HashMap<String, pb::InferParameter> = params
            .iter()
            .map(|(k, p)| (k.to_string(), param(p.clone())))
            .collect();
        ShmParams::parse(&map, "T").err().expect("an error").message
    }

    #[test]
    fn shared_memory_parameters() {
        let region = || ("shared_memory_region", P::StringParam("r".into()));
        let size = || ("shared_memory_byte_size", P::Int64Param(8));
        assert_eq!(
            shm_err(&[region()]),
            "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[size()]),
            "'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[("shared_memory_offset", P::Int64Param(0))]),
            "'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[("shared_memory_region", P::Int64Param(1)), size()]),
            "invalid value type for 'shared_memory_region' parameter for tensor 'T', expected string_param."
        );
        assert_eq!(
            shm_err(&[
                region(),
                ("shared_memory_byte_size", P::StringParam("8".into()))
            ]),
            "invalid value type for 'shared_memory_byte_size' parameter for tensor 'T', expected int64_param."
        );
        let map: HashMap<String, pb::InferParameter> = [region(), size()]
            .into_iter()
            .map(|(k, p)| (k.to_string(), param(p)))
            .collect();
        let p = ShmParams::parse(&map, "T").unwrap().unwrap();
        assert_eq!((p.region.as_str(), p.offset, p.byte_size), ("r", 0, 8));
    }
}
