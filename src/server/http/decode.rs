//! Inference requests from the wire: the JSON header (ids, parameters, inputs with JSON,
//! binary or shared-memory data, requested outputs) and the raw binary form, checked in the
//! order and with the words Triton's HTTP frontend uses.

use std::sync::Arc;

use bytes::Bytes;

use super::data;
use super::json::{self, Node, Policy};
use crate::request::validate::ModelIo;
use crate::request::{CorrelationId, NamedTensor, ParamValue, Parameters, SequenceInfo};
use crate::server::shm::{Region, ShmRegistry};
use crate::status::Status;
use crate::tensor::{DataType, Tensor, element_count};

/// How an output travels back.
#[derive(Clone, Debug)]
pub enum OutputKind {
    Json,
    Binary,
    Shm(ShmSlice),
}

/// A bounds-checked window of a registered shared memory region.
#[derive(Clone)]
pub struct ShmSlice {
    pub region: Arc<Region>,
    pub offset: u64,
    pub byte_size: u64,
}

impl std::fmt::Debug for ShmSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShmSlice({}, {}, {})",
            self.region.name, self.offset, self.byte_size
        )
    }
}

#[derive(Clone, Debug)]
pub struct OutputSpec {
    pub name: String,
    pub kind: OutputKind,
    pub class_count: u32,
}

/// A decoded request, before it becomes an `InferRequest`.
#[derive(Debug)]
pub struct Decoded {
    pub id: String,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Vec<OutputSpec>,
    /// How outputs the request did not name travel.
    pub binary_by_default: bool,
    pub parameters: Parameters,
    pub priority: u64,
    pub timeout_us: u64,
    pub sequence: Option<SequenceInfo>,
}

pub struct Context<'a> {
    pub model: &'a str,
    pub shm: &'a ShmRegistry,
    /// Largest tensor a JSON `data` member may decode to.
    pub max_input_bytes: usize,
}

/// The request id prefix of Triton's request-scoped messages.
pub fn id_prefix(id: &str) -> String {
    if id.is_empty() {
        "[request id: <id_unknown>] ".into()
    } else {
        format!("[request id: {id}] ")
    }
}

/// Decodes a request whose first `header.len()` bytes are JSON and whose binary input data
/// (the binary tensor data extension) is `tail`.
pub fn decode_json(header: &[u8], tail: Bytes, cx: &Context) -> Result<Decoded, Status> {
    let doc = json::parse_document(header, Policy::INFER)?;
    let id = match doc.get("id") {
        Some(v) => v.as_str().map_err(|e| json::unable("id", e))?.into_owned(),
        None => String::new(),
    };
    let mut d = Decoded {
        id,
        inputs: Vec::new(),
        outputs: Vec::new(),
        binary_by_default: false,
        parameters: Parameters::default(),
        priority: 0,
        timeout_us: 0,
        sequence: None,
    };
    if let Some(params) = doc.get("parameters") {
        request_parameters(params, &mut d)?;
    }
    let inputs = doc
        .get("inputs")
        .ok_or_else(|| json::unable("inputs", json::missing("inputs")))?;
    let inputs = inputs.as_array().map_err(|e| json::unable("inputs", e))?;
    let mut tail = tail;
    for input in inputs {
        let t = read_input(input, &mut tail, &d.inputs, &d.id, cx)?;
        d.inputs.push(t);
    }
    if !tail.is_empty() {
        return Err(Status::invalid_arg(format!(
            "unexpected additional input data for model '{}'",
            cx.model
        )));
    }
    if let Some(outputs) = doc.get("outputs") {
        for o in outputs.as_array().map_err(|e| json::unable("outputs", e))? {
            let spec = read_output(o, cx)?;
            // Triton keeps the first mention of an output.
            if !d.outputs.iter().any(|x| x.name == spec.name) {
                d.outputs.push(spec);
            }
        }
    }
    Ok(d)
}

fn request_parameters(params: &Node, d: &mut Decoded) -> Result<(), Status> {
    let members = params
        .members()
        .map_err(|e| Status::internal(format!("failed to get request params.: {e}")))?;
    let mut seq: Option<SequenceInfo> = None;
    let seq_info = |s: &mut Option<SequenceInfo>| {
        s.get_or_insert(SequenceInfo {
            id: CorrelationId::Int(0),
            start: false,
            end: false,
        })
        .clone()
    };
    for (key, value) in members {
        match key.as_ref() {
            "sequence_id" => {
                let id = match value.as_u64() {
                    Ok(n) => CorrelationId::Int(n),
                    Err(_) => CorrelationId::Str(
                        value
                            .as_str()
                            .map_err(|e| json::unable("sequence_id", e))?
                            .into_owned(),
                    ),
                };
                let mut s = seq_info(&mut seq);
                s.id = id;
                seq = Some(s);
            }
            "sequence_start" | "sequence_end" => {
                let flag = value.as_bool().map_err(|e| json::unable(key, e))?;
                let mut s = seq_info(&mut seq);
                if key == "sequence_start" {
                    s.start = flag;
                } else {
                    s.end = flag;
                }
                seq = Some(s);
            }
            // Negative or fractional: a client error, so 400 (Triton answers 500 with these words).
            "priority" => {
                d.priority = value
                    .as_u64()
                    .map_err(|e| Status::invalid_arg(format!("Unable to parse 'priority': {e}")))?
            }
            "timeout" => {
                d.timeout_us = value
                    .as_u64()
                    .map_err(|e| Status::invalid_arg(format!("Unable to parse 'timeout': {e}")))?
            }
            "binary_data_output" => {
                d.binary_by_default = value
                    .as_bool()
                    .map_err(|e| json::unable("binary_data_output", e))?
            }
            k if k.starts_with("triton_") => {
                return Err(Status::invalid_arg(
                    "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.",
                ));
            }
            k => d.parameters.insert(k, parameter(k, value)?),
        }
    }
    d.sequence = seq;
    Ok(())
}

/// A free-form request parameter: a string, integer, boolean or number.
pub fn parameter(key: &str, value: &Node) -> Result<ParamValue, Status> {
    value.as_param().ok_or_else(|| {
        Status::invalid_arg(format!(
            "parameter '{key}' has invalid type. It should be either 'int', 'bool', or 'string'."
        ))
    })
}

fn content_error(has_data: bool, has_binary: bool, has_shm: bool) -> Status {
    let mut msg = String::from(
        "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But",
    );
    if !(has_data || has_binary || has_shm) {
        msg.push_str(" no field is set");
    } else {
        msg.push_str(" set");
        for (set, name) in [
            (has_data, " 'data'"),
            (has_binary, " 'binary_data_size'"),
            (has_shm, " 'shared_memory_region'"),
        ] {
            if set {
                msg.push_str(name);
            }
        }
    }
    Status::invalid_arg(msg)
}

fn read_input(
    input: &Node,
    tail: &mut Bytes,
    seen: &[NamedTensor],
    id: &str,
    cx: &Context,
) -> Result<NamedTensor, Status> {
    let params = input.get("parameters");
    let has_data = input.get("data").is_some();
    let has_binary = params.and_then(|p| p.get("binary_data_size")).is_some();
    let has_shm = params.and_then(|p| p.get("shared_memory_region")).is_some();
    if usize::from(has_data) + usize::from(has_binary) + usize::from(has_shm) != 1 {
        return Err(content_error(has_data, has_binary, has_shm));
    }
    let name = member_str(input, "name")?;
    let datatype = member_str(input, "datatype")?;
    let shape_node = input
        .get("shape")
        .ok_or_else(|| json::unable("shape", json::missing("shape")))?;
    let mut shape = Vec::new();
    for d in shape_node
        .as_array()
        .map_err(|e| json::unable("shape", e))?
    {
        let d = d.as_u64().map_err(|e| json::unable("shape", e))?;
        shape.push(d as i64);
    }
    let dtype = DataType::from_wire(&datatype);
    if seen.iter().any(|t| t.name == name) {
        return Err(Status::invalid_arg(format!(
            "{}input '{name}' already exists in request",
            id_prefix(id)
        )));
    }

    let data = if let Some(size) = params.and_then(|p| p.get("binary_data_size")) {
        let size = size
            .as_u64()
            .map_err(|e| json::unable("binary_data_size", e))?;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > tail.len() {
            return Err(Status::invalid_arg(format!(
                "unexpected size for input '{name}', expecting {} additional bytes for model '{}'",
                size - tail.len(),
                cx.model
            )));
        }
        tail.split_to(size)
    } else if has_shm {
        let slice = shm_slice(params, cx.shm)?;
        slice.region.read(slice.offset, slice.byte_size)?
    } else {
        let count = match checked_count(&shape) {
            Some(c) => c,
            None if shape.iter().any(|&d| d < 0) => {
                return Err(Status::invalid_arg(format!(
                    "invalid shape for input '{name}': shape {} contains one or more invalid dimensions",
                    dims(&shape)
                )));
            }
            None => {
                return Err(Status::invalid_arg(format!(
                    "invalid shape for input '{name}': shape {} causes total element count to exceed maximum size of {}",
                    dims(&shape),
                    i64::MAX
                )));
            }
        };
        if count == 0 {
            Bytes::new()
        } else {
            let Some(dtype) = dtype else {
                return Err(Status::invalid_arg(format!(
                    "invalid datatype for input {name}"
                )));
            };
            let raw = match input.get("data") {
                Some(Node::Raw(r)) => *r,
                _ => return Err(json::unable("data", json::NOT_ARRAY)),
            };
            if let Some(size) = dtype.size() {
                let bytes = count.saturating_mul(size);
                if bytes > cx.max_input_bytes {
                    return Err(Status::invalid_arg(format!(
                        "JSON input '{name}' has a byte_size ({bytes} bytes) that exceeds the maximum allowed value of {} bytes. Use --http-max-input-size to increase the limit.",
                        cx.max_input_bytes
                    )));
                }
            }
            data::read(raw, dtype, count)?
        }
    };
    let Some(dtype) = dtype else {
        return Err(Status::invalid_arg(format!(
            "invalid datatype for input {name}"
        )));
    };
    Ok(NamedTensor::new(name, Tensor::new(dtype, shape, data)))
}

/// Element count of a shape as Triton computes it; `None` on a negative dim or overflow.
fn checked_count(shape: &[i64]) -> Option<usize> {
    element_count(shape).filter(|&c| i64::try_from(c).is_ok())
}

fn dims(shape: &[i64]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn member_str(node: &Node, key: &str) -> Result<String, Status> {
    let v = node
        .get(key)
        .ok_or_else(|| json::unable(key, json::missing(key)))?;
    Ok(v.as_str().map_err(|e| json::unable(key, e))?.into_owned())
}

/// The shared-memory window named by an input's or output's parameters, checked against the
/// registered region as Triton's shared memory manager does.
fn shm_slice(params: Option<&Node>, shm: &ShmRegistry) -> Result<ShmSlice, Status> {
    let get = |k: &str| params.and_then(|p| p.get(k));
    let region = match get("shared_memory_region") {
        Some(v) => v
            .as_str()
            .map_err(|e| json::unable("shared_memory_region", e))?
            .into_owned(),
        None => String::new(),
    };
    let offset = match get("shared_memory_offset") {
        Some(v) => v
            .as_u64()
            .map_err(|e| json::unable("shared_memory_offset", e))?,
        None => 0,
    };
    let byte_size = match get("shared_memory_byte_size") {
        Some(v) => v
            .as_u64()
            .map_err(|e| json::unable("shared_memory_byte_size", e))?,
        None => 0,
    };
    let region = shm.get(&region).map_err(|_| {
        Status::not_found(format!("Unable to find shared memory region: '{region}'"))
    })?;
    if offset >= region.byte_size {
        return Err(Status::invalid_arg(format!(
            "Invalid offset for shared memory region: '{}'",
            region.name
        )));
    }
    if byte_size == 0
        || offset
            .checked_add(byte_size)
            .is_none_or(|end| end > region.byte_size)
    {
        return Err(Status::invalid_arg(format!(
            "Invalid offset + byte size for shared memory region: '{}'",
            region.name
        )));
    }
    Ok(ShmSlice {
        region,
        offset,
        byte_size,
    })
}

fn read_output(o: &Node, cx: &Context) -> Result<OutputSpec, Status> {
    let params = o.get("parameters");
    let get = |k: &str| params.and_then(|p| p.get(k));
    let has_shm = get("shared_memory_region").is_some();
    if has_shm {
        if get("classification").is_some() {
            return Err(Status::invalid_arg(
                "Output can't set both 'shared_memory_region' and 'classification'",
            ));
        }
        if let Some(b) = get("binary_data")
            && b.as_bool()
                .map_err(|e| Status::internal(format!("Unable to set 'binary_data': {e}")))?
        {
            return Err(Status::invalid_arg(
                "Output can't set both 'shared_memory_region' and 'binary_data'",
            ));
        }
    }
    let name = member_str(o, "name")?;
    let class_count = match get("classification") {
        Some(v) => v
            .as_u64()
            .map_err(|e| Status::internal(format!("Unable to set 'classification': {e}")))?,
        None => 0,
    };
    let class_count = u32::try_from(class_count).unwrap_or(u32::MAX);
    let kind = if has_shm {
        OutputKind::Shm(shm_slice(params, cx.shm)?)
    } else {
        match get("binary_data") {
            Some(b) if b.as_bool().map_err(|e| json::unable("binary_data", e))? => {
                OutputKind::Binary
            }
            _ => OutputKind::Json,
        }
    };
    Ok(OutputSpec {
        name,
        kind,
        class_count,
    })
}

/// Decodes a raw binary request (`Inference-Header-Content-Length: 0`): the whole body is the
/// data of the model's only input, whose shape is deduced from the config as Triton does.
pub fn decode_raw(body: Bytes, io: &ModelIo) -> Result<Decoded, Status> {
    let prefix = id_prefix("");
    if io.inputs.len() != 1 {
        return Err(Status::invalid_arg(format!(
            "{prefix}Raw request must only have 1 input (found 1) to be deduced but got {} inputs in '{}' model configuration",
            io.inputs.len(),
            io.model
        )));
    }
    let spec = &io.inputs[0];
    let mut shape: Vec<i64> = Vec::new();
    if io.max_batch_size > 0 {
        shape.push(1);
    }
    let mut dynamic = None;
    let mut fixed: i64 = 1;
    for &d in &spec.dims {
        if d == -1 {
            if dynamic.is_some() {
                return Err(Status::invalid_arg(format!(
                    "{prefix}The shape of the raw input '{}' can not be deduced because there are more than one variable-sized dimension",
                    spec.name
                )));
            }
            dynamic = Some(shape.len());
        } else {
            fixed = fixed.saturating_mul(d);
        }
        shape.push(d);
    }
    let data = match spec.datatype.size() {
        None => {
            if dynamic.is_some() || fixed != 1 {
                return Err(Status::invalid_arg(format!(
                    "{prefix}For BYTE datatype raw input, the model must have input shape [1]"
                )));
            }
            let len = u32::try_from(body.len()).map_err(|_| {
                Status::invalid_arg(format!("{prefix}raw BYTES input is longer than 4 GiB"))
            })?;
            let mut buf = Vec::with_capacity(body.len() + 4);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&body);
            Bytes::from(buf)
        }
        Some(size) => {
            if let Some(axis) = dynamic {
                shape[axis] = if fixed > 0 {
                    (body.len() as i64) / fixed / size as i64
                } else {
                    0
                };
            }
            body
        }
    };
    Ok(Decoded {
        id: String::new(),
        inputs: vec![NamedTensor::new(
            spec.name.clone(),
            Tensor::new(spec.datatype, shape, data),
        )],
        outputs: Vec::new(),
        binary_by_default: true,
        parameters: Parameters::default(),
        priority: 0,
        timeout_us: 0,
        sequence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::validate::IoSpec;

    fn cx(shm: &ShmRegistry) -> Context<'_> {
        Context {
            model: "simple",
            shm,
            max_input_bytes: 1 << 20,
        }
    }

    #[track_caller]
    fn err(header: &str, tail: &'static [u8], want: &str) -> Status {
        let shm = ShmRegistry::default();
        let e = match decode_json(header.as_bytes(), Bytes::from_static(tail), &cx(&shm)) {
            Ok(_) => panic!("{header} decoded"),
            Err(e) => e,
        };
        assert_eq!(e.message, want, "{header}");
        e
    }

    const I1: &str = r#"{"name":"INPUT1","datatype":"INT32","shape":[1,2],"data":[1,2]}"#;

    #[test]
    fn decodes_json_binary_and_parameters() {
        let shm = ShmRegistry::default();
        let header = format!(
            r#"{{"id":"r1","parameters":{{"sequence_id":"s","sequence_end":true,"priority":2,"timeout":7,"custom":1.5,"flag":false,"binary_data_output":true}},
               "inputs":[{{"name":"INPUT0","datatype":"INT32","shape":[1,2],"parameters":{{"binary_data_size":8}}}},{I1}],
               "outputs":[{{"name":"OUTPUT0","parameters":{{"classification":2}}}},{{"name":"OUTPUT1","parameters":{{"binary_data":false}}}},{{"name":"OUTPUT0"}}]}}"#
        );
        let tail = Bytes::from_static(&[5, 0, 0, 0, 6, 0, 0, 0]);
        let d = decode_json(header.as_bytes(), tail, &cx(&shm)).unwrap();
        assert_eq!(d.id, "r1");
        assert_eq!(
            d.inputs[0].tensor,
            Tensor::from_values(vec![1, 2], &[5i32, 6])
        );
        assert_eq!(
            d.inputs[1].tensor,
            Tensor::from_values(vec![1, 2], &[1i32, 2])
        );
        assert_eq!(
            d.sequence,
            Some(SequenceInfo {
                id: CorrelationId::Str("s".into()),
                start: false,
                end: true
            })
        );
        assert_eq!(
            (d.priority, d.timeout_us, d.binary_by_default),
            (2, 7, true)
        );
        assert_eq!(d.parameters.get("custom"), Some(&ParamValue::Double(1.5)));
        assert_eq!(d.parameters.get("flag"), Some(&ParamValue::Bool(false)));
        assert_eq!(d.outputs.len(), 2);
        assert_eq!(d.outputs[0].class_count, 2);
        assert!(matches!(d.outputs[1].kind, OutputKind::Json));
    }

    #[test]
    fn triton_errors_in_triton_order() {
        let i0 = r#"{"name":"INPUT0","datatype":"INT32","shape":[1,2],"data":[1,2]}"#;
        err(
            r#"{"id":5,"inputs":[]}"#,
            b"",
            "Unable to parse 'id': attempt to access JSON non-string as string",
        );
        err(
            r#"{"outputs":[]}"#,
            b"",
            "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'",
        );
        err(
            "[1]",
            b"",
            "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'",
        );
        err(
            r#"{"inputs":{}}"#,
            b"",
            "Unable to parse 'inputs': attempt to access JSON non-array as array",
        );
        err(
            r#"{"inputs":[5]}"#,
            b"",
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But no field is set",
        );
        err(
            r#"{"inputs":[{"name":"A","data":[1],"parameters":{"binary_data_size":4,"shared_memory_region":"r"}}]}"#,
            b"",
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But set 'data' 'binary_data_size' 'shared_memory_region'",
        );
        err(
            r#"{"inputs":[{"datatype":"INT32","shape":[1],"data":[1]}]}"#,
            b"",
            "Unable to parse 'name': attempt to access non-existing object member 'name'",
        );
        err(
            r#"{"inputs":[{"name":"A","shape":[1],"data":[1]}]}"#,
            b"",
            "Unable to parse 'datatype': attempt to access non-existing object member 'datatype'",
        );
        err(
            r#"{"inputs":[{"name":"A","datatype":"INT32","shape":"1,2","data":[1]}]}"#,
            b"",
            "Unable to parse 'shape': attempt to access JSON non-array as array",
        );
        err(
            r#"{"inputs":[{"name":"A","datatype":"INT32","shape":[1,-1],"data":[1]}]}"#,
            b"",
            "Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer",
        );
        err(
            r#"{"inputs":[{"name":"A","datatype":"INT31","shape":[1],"data":[1]}]}"#,
            b"",
            "invalid datatype for input A",
        );
        err(
            r#"{"inputs":[{"name":"A","datatype":"INT32","shape":[4611686018427387904,4],"data":[1]}]}"#,
            b"",
            "invalid shape for input 'A': shape [4611686018427387904,4] causes total element count to exceed maximum size of 9223372036854775807",
        );
        err(
            r#"{"inputs":[{"name":"A","datatype":"INT64","shape":[1,1000000],"data":[1]}]}"#,
            b"",
            "JSON input 'A' has a byte_size (8000000 bytes) that exceeds the maximum allowed value of 1048576 bytes. Use --http-max-input-size to increase the limit.",
        );
        err(
            &format!(r#"{{"inputs":[{i0},{i0}]}}"#),
            b"",
            "[request id: <id_unknown>] input 'INPUT0' already exists in request",
        );
        err(
            r#"{"id":"q","inputs":[{"name":"A","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":8}}]}"#,
            b"1234",
            "unexpected size for input 'A', expecting 4 additional bytes for model 'simple'",
        );
        err(
            &format!(r#"{{"inputs":[{i0}]}}"#),
            b"x",
            "unexpected additional input data for model 'simple'",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":{{"triton_x":1}}}}"#),
            b"",
            "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":{{"x":[1]}}}}"#),
            b"",
            "parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'.",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":[]}}"#),
            b"",
            "failed to get request params.: attempt to get members for non-object",
        );
        assert_eq!(err(&format!(r#"{{"inputs":[{i0}],"parameters":{{"priority":-1}}}}"#), b"", "Unable to parse 'priority': attempt to access JSON non-unsigned-integer as unsigned-integer").code, crate::status::Code::InvalidArg);
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":{{"timeout":1.5}}}}"#),
            b"",
            "Unable to parse 'timeout': attempt to access JSON non-unsigned-integer as unsigned-integer",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":{{"sequence_id":1.5}}}}"#),
            b"",
            "Unable to parse 'sequence_id': attempt to access JSON non-string as string",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"parameters":{{"sequence_start":"yes"}}}}"#),
            b"",
            "Unable to parse 'sequence_start': attempt to access JSON non-boolean as boolean",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"outputs":{{}}}}"#),
            b"",
            "Unable to parse 'outputs': attempt to access JSON non-array as array",
        );
        err(
            &format!(r#"{{"inputs":[{i0}],"outputs":[{{"parameters":{{}}}}]}}"#),
            b"",
            "Unable to parse 'name': attempt to access non-existing object member 'name'",
        );
        err(
            &format!(
                r#"{{"inputs":[{i0}],"outputs":[{{"name":"O","parameters":{{"classification":-1}}}}]}}"#
            ),
            b"",
            "Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer",
        );
        err(
            &format!(
                r#"{{"inputs":[{i0}],"outputs":[{{"name":"O","parameters":{{"binary_data":"yes"}}}}]}}"#
            ),
            b"",
            "Unable to parse 'binary_data': attempt to access JSON non-boolean as boolean",
        );
        err(
            &format!(
                r#"{{"inputs":[{i0}],"outputs":[{{"name":"O","parameters":{{"shared_memory_region":"r","classification":1}}}}]}}"#
            ),
            b"",
            "Output can't set both 'shared_memory_region' and 'classification'",
        );
        err(
            &format!(
                r#"{{"inputs":[{i0}],"outputs":[{{"name":"O","parameters":{{"shared_memory_region":"r","binary_data":true}}}}]}}"#
            ),
            b"",
            "Output can't set both 'shared_memory_region' and 'binary_data'",
        );
        let e = err(
            r#"{"inputs":[{"name":"A","datatype":"INT32","shape":[1],"parameters":{"shared_memory_region":"nope","shared_memory_byte_size":4}}]}"#,
            b"",
            "Unable to find shared memory region: 'nope'",
        );
        assert_eq!(e.code, crate::status::Code::NotFound);
    }

    #[test]
    fn zero_elements_ignore_data() {
        let shm = ShmRegistry::default();
        let d = decode_json(
            br#"{"inputs":[{"name":"A","datatype":"FP32","shape":[1,0],"data":[1,2,3]}]}"#,
            Bytes::new(),
            &cx(&shm),
        )
        .unwrap();
        assert_eq!(d.inputs[0].tensor.data.len(), 0);
    }

    fn io(dims: Vec<i64>, dtype: DataType, batch: usize, n: usize) -> ModelIo {
        let spec = |i: usize| IoSpec {
            name: format!("IN{i}"),
            datatype: dtype,
            dims: dims.clone(),
            reshape: None,
            optional: false,
            labels: None,
        };
        ModelIo {
            model: "m".into(),
            max_batch_size: batch,
            inputs: (0..n).map(spec).collect(),
            outputs: vec![],
        }
    }

    #[test]
    fn raw_requests_deduce_the_shape() {
        let body = Bytes::from(vec![0u8; 16]);
        let d = decode_raw(body.clone(), &io(vec![-1], DataType::Fp32, 8, 1)).unwrap();
        assert_eq!(d.inputs[0].tensor.shape, vec![1, 4]);
        assert!(d.binary_by_default);
        let d = decode_raw(body.clone(), &io(vec![2, -1], DataType::Int16, 0, 1)).unwrap();
        assert_eq!(d.inputs[0].tensor.shape, vec![2, 4]);
        let d = decode_raw(
            Bytes::from_static(b"hi"),
            &io(vec![1], DataType::Bytes, 0, 1),
        )
        .unwrap();
        assert_eq!(d.inputs[0].tensor, Tensor::from_strings(vec![1], &["hi"]));
        let e = decode_raw(body.clone(), &io(vec![4], DataType::Fp32, 0, 2)).unwrap_err();
        assert_eq!(
            e.message,
            "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be deduced but got 2 inputs in 'm' model configuration"
        );
        let e = decode_raw(body.clone(), &io(vec![-1, -1], DataType::Fp32, 0, 1)).unwrap_err();
        assert_eq!(
            e.message,
            "[request id: <id_unknown>] The shape of the raw input 'IN0' can not be deduced because there are more than one variable-sized dimension"
        );
        let e = decode_raw(body, &io(vec![2], DataType::Bytes, 0, 1)).unwrap_err();
        assert_eq!(
            e.message,
            "[request id: <id_unknown>] For BYTE datatype raw input, the model must have input shape [1]"
        );
    }
}
