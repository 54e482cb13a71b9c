//! Inference responses to the wire: the JSON header written directly (no intermediate
//! values), binary outputs appended after it as they are, shared-memory outputs written to
//! their regions, classification applied where asked.

use super::data;
use super::decode::{OutputKind, OutputSpec};
use super::json;
use crate::request::InferResponse;
use crate::request::classify::classify;
use crate::request::validate::ModelIo;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// What the client asked of the outputs.
pub struct Plan<'a> {
    pub outputs: &'a [OutputSpec],
    pub binary_by_default: bool,
}

#[derive(Debug)]
pub struct Encoded {
    pub body: Vec<u8>,
    /// Length of the JSON header when binary data follows it.
    pub header_len: Option<usize>,
}

pub fn encode(
    resp: &InferResponse,
    id: &str,
    model: &str,
    version: i64,
    io: &ModelIo,
    plan: &Plan,
) -> Result<Encoded, Status> {
    let mut out = Vec::with_capacity(256);
    let mut tail: Vec<&[u8]> = Vec::new();
    // Classification results are new tensors; they must live until the tail is joined.
    let mut made: Vec<Tensor> = Vec::new();
    out.push(b'{');
    if !id.is_empty() {
        out.extend_from_slice(b"\"id\":");
        json::escape_into(&mut out, id.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"model_name\":");
    json::escape_into(&mut out, model.as_bytes());
    out.extend_from_slice(b",\"model_version\":\"");
    json::write_i64(&mut out, version);
    out.push(b'"');
    write_parameters(&mut out, &resp.parameters);

    let default = OutputSpec {
        name: String::new(),
        kind: if plan.binary_by_default {
            OutputKind::Binary
        } else {
            OutputKind::Json
        },
        class_count: 0,
    };
    // First pass: classification, so that every tensor has its final form.
    let mut chosen: Vec<(&str, &OutputSpec, usize)> = Vec::new();
    for (i, o) in resp.outputs.iter().enumerate() {
        let spec = match plan.outputs.iter().find(|s| s.name == o.name) {
            Some(s) => s,
            None if plan.outputs.is_empty() => &default,
            None => continue,
        };
        chosen.push((&o.name, spec, i));
    }
    let mut tensors: Vec<Option<usize>> = vec![None; chosen.len()];
    for (slot, (name, spec, i)) in chosen.iter().enumerate() {
        if spec.class_count > 0 && !matches!(spec.kind, OutputKind::Shm(_)) {
            let t = &resp.outputs[*i].tensor;
            let labels = io
                .output(name)
                .and_then(|o| o.labels.as_deref())
                .map(Vec::as_slice);
            made.push(classify(
                t,
                spec.class_count as usize,
                io.max_batch_size > 0,
                labels,
            )?);
            tensors[slot] = Some(made.len() - 1);
        }
    }

    out.extend_from_slice(b",\"outputs\":[");
    for (slot, (name, spec, i)) in chosen.iter().enumerate() {
        let t: &Tensor = match tensors[slot] {
            Some(m) => &made[m],
            None => &resp.outputs[*i].tensor,
        };
        if slot > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        json::escape_into(&mut out, name.as_bytes());
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(t.datatype.wire_name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":[");
        for (k, d) in t.shape.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            json::write_i64(&mut out, *d);
        }
        out.push(b']');
        let binary = match &spec.kind {
            OutputKind::Shm(slice) => {
                let n = t.data.len() as u64;
                if n > slice.byte_size {
                    return Err(Status::internal(format!(
                        "shared memory size specified with the request for output '{name}' ({} bytes) should be at least {n} bytes to hold the results",
                        slice.byte_size
                    )));
                }
                slice.region.write(slice.offset, &t.data)?;
                out.push(b'}');
                continue;
            }
            OutputKind::Binary => true,
            // JSON cannot carry BYTES that are not UTF-8: those travel as binary data, which
            // clients of the binary extension read transparently (Triton writes invalid JSON).
            OutputKind::Json => t.datatype == DataType::Bytes && !data::bytes_are_utf8(&t.data),
        };
        if binary {
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            json::write_u64(&mut out, t.data.len() as u64);
            out.extend_from_slice(b"}}");
            if !t.data.is_empty() {
                tail.push(&t.data);
            }
        } else {
            check_size(name, t)?;
            out.extend_from_slice(b",\"data\":");
            data::write(&mut out, t.datatype, &t.data)
                .map_err(|_| Status::internal(format!("output '{name}' is not valid UTF-8")))?;
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"]}");
    if tail.is_empty() {
        return Ok(Encoded {
            body: out,
            header_len: None,
        });
    }
    let header_len = out.len();
    out.reserve_exact(tail.iter().map(|t| t.len()).sum());
    for t in tail {
        out.extend_from_slice(t);
    }
    Ok(Encoded {
        body: out,
        header_len: Some(header_len),
    })
}

fn write_parameters(out: &mut Vec<u8>, params: &crate::request::Parameters) {
    if params.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"parameters\":{");
    for (i, (k, v)) in params.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::escape_into(out, k.as_bytes());
        out.push(b':');
        json::write_param(out, v);
    }
    out.push(b'}');
}

/// Triton checks that the bytes of a fixed-size output match its shape before writing them.
pub fn check_size(name: &str, t: &Tensor) -> Result<(), Status> {
    if let Some(size) = t.datatype.size()
        && t.element_count().checked_mul(size) != Some(t.data.len())
    {
        return Err(Status::internal(format!(
            "Failed to write 'data' field: output tensor shape does not match size of output for '{name}'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::validate::IoSpec;
    use crate::request::{NamedTensor, ParamValue};
    use std::sync::Arc;

    fn io() -> ModelIo {
        let spec = |n: &str| IoSpec {
            name: n.into(),
            datatype: DataType::Fp32,
            dims: vec![3],
            reshape: None,
            optional: false,
            labels: Some(Arc::new(vec!["a".into(), "b".into(), "c".into()])),
        };
        ModelIo {
            model: "m".into(),
            max_batch_size: 4,
            inputs: vec![],
            outputs: vec![spec("X"), spec("Y")],
        }
    }

    fn resp() -> InferResponse {
        let mut r = InferResponse::new(vec![
            NamedTensor::new("X", Tensor::from_values(vec![1, 3], &[0.5f32, 2.0, 1.0])),
            NamedTensor::new("Y", Tensor::from_values(vec![1, 3], &[1i32, 2, 3])),
        ]);
        r.parameters.insert("p", ParamValue::Int(3));
        r
    }

    fn spec(name: &str, kind: OutputKind, class_count: u32) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            kind,
            class_count,
        }
    }

    #[test]
    fn json_binary_and_classification() {
        let e = encode(
            &resp(),
            "q",
            "m",
            2,
            &io(),
            &Plan {
                outputs: &[],
                binary_by_default: false,
            },
        )
        .unwrap();
        assert_eq!(e.header_len, None);
        assert_eq!(
            String::from_utf8(e.body).unwrap(),
            r#"{"id":"q","model_name":"m","model_version":"2","parameters":{"p":3},"outputs":[{"name":"X","datatype":"FP32","shape":[1,3],"data":[0.5,2.0,1.0]},{"name":"Y","datatype":"INT32","shape":[1,3],"data":[1,2,3]}]}"#
        );
        let outputs = [
            spec("Y", OutputKind::Binary, 0),
            spec("X", OutputKind::Json, 2),
        ];
        let e = encode(
            &resp(),
            "",
            "m",
            1,
            &io(),
            &Plan {
                outputs: &outputs,
                binary_by_default: false,
            },
        )
        .unwrap();
        let n = e.header_len.unwrap();
        assert_eq!(
            std::str::from_utf8(&e.body[..n]).unwrap(),
            r#"{"model_name":"m","model_version":"1","parameters":{"p":3},"outputs":[{"name":"X","datatype":"BYTES","shape":[1,2],"data":["2.000000:1:b","1.000000:2:c"]},{"name":"Y","datatype":"INT32","shape":[1,3],"parameters":{"binary_data_size":12}}]}"#
        );
        assert_eq!(&e.body[n..], &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn unrequested_outputs_are_left_out_and_non_utf8_goes_binary() {
        let r = InferResponse::new(vec![NamedTensor::new(
            "X",
            Tensor::from_strings(vec![2], &[&b"ok"[..], b"\xff"]),
        )]);
        let outputs = [spec("X", OutputKind::Json, 0)];
        let e = encode(
            &r,
            "",
            "m",
            1,
            &io(),
            &Plan {
                outputs: &outputs,
                binary_by_default: false,
            },
        )
        .unwrap();
        let n = e.header_len.unwrap();
        assert!(
            std::str::from_utf8(&e.body[..n])
                .unwrap()
                .ends_with(r#""shape":[2],"parameters":{"binary_data_size":11}}]}"#)
        );
        let outputs = [spec("Z", OutputKind::Json, 0)];
        let e = encode(
            &resp(),
            "",
            "m",
            1,
            &io(),
            &Plan {
                outputs: &outputs,
                binary_by_default: true,
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(e.body).unwrap(),
            r#"{"model_name":"m","model_version":"1","parameters":{"p":3},"outputs":[]}"#
        );
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let r = InferResponse::new(vec![NamedTensor::new(
            "X",
            Tensor::new(DataType::Fp32, vec![2], bytes::Bytes::from_static(&[0; 4])),
        )]);
        let e = encode(
            &r,
            "",
            "m",
            1,
            &io(),
            &Plan {
                outputs: &[],
                binary_by_default: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Failed to write 'data' field: output tensor shape does not match size of output for 'X'"
        );
    }
}
