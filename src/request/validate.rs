//! Checks a decoded request against its model's inputs and outputs, once, before it is
//! queued. Messages follow Triton's wording, since clients and tests match on them.

use std::sync::Arc;

use super::InferRequest;
use crate::config::ModelConfig;
use crate::status::Status;
use crate::tensor::{DataType, element_count};

/// One input or output of a model, as requests see it.
#[derive(Clone, Debug)]
pub struct IoSpec {
    pub name: String,
    pub datatype: DataType,
    /// Dims without the batch dimension; -1 is variable.
    pub dims: Vec<i64>,
    /// The shape the backend sees instead of `dims`, when the config reshapes.
    pub reshape: Option<Vec<i64>>,
    pub optional: bool,
    /// Class labels, for the classification extension (outputs only).
    pub labels: Option<Arc<Vec<String>>>,
}

/// The request-facing view of a model config, built once at load time.
#[derive(Clone, Debug)]
pub struct ModelIo {
    pub model: String,
    pub max_batch_size: usize,
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
}

impl ModelIo {
    /// Builds the view; the config must already be validated.
    pub fn from_config(cfg: &ModelConfig) -> Result<ModelIo, String> {
        let dt = |name: &str, t: i32| {
            DataType::from_config(t)
                .ok_or_else(|| format!("tensor '{name}' has no valid data_type"))
        };
        let reshape = |r: &Option<crate::proto::inference::ModelTensorReshape>| {
            r.as_ref().map(|r| r.shape.clone())
        };
        let inputs = cfg
            .input
            .iter()
            .map(|i| {
                Ok(IoSpec {
                    name: i.name.clone(),
                    datatype: dt(&i.name, i.data_type)?,
                    dims: i.dims.clone(),
                    reshape: reshape(&i.reshape),
                    optional: i.optional,
                    labels: None,
                })
            })
            .collect::<Result<_, String>>()?;
        let outputs = cfg
            .output
            .iter()
            .map(|o| {
                Ok(IoSpec {
                    name: o.name.clone(),
                    datatype: dt(&o.name, o.data_type)?,
                    dims: o.dims.clone(),
                    reshape: reshape(&o.reshape),
                    optional: false,
                    labels: None,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ModelIo {
            model: cfg.name.clone(),
            max_batch_size: cfg.max_batch_size.max(0) as usize,
            inputs,
            outputs,
        })
    }

    pub fn input(&self, name: &str) -> Option<&IoSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&IoSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

fn dims_str(d: &[i64]) -> String {
    let parts: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Validates `req` against `io` and fills in its batch size; applies config reshapes.
///
/// Triton keeps a request's inputs in a hash map that, for the few inputs of a request, lists
/// them last to first; its checks (and so which input an error names) follow that order.
pub fn validate(io: &ModelIo, req: &mut InferRequest) -> Result<(), Status> {
    let prefix = if req.id.is_empty() {
        "[request id: <id_unknown>] ".to_string()
    } else {
        format!("[request id: {}] ", req.id)
    };
    let model = &io.model;

    for out in &req.outputs {
        if io.output(&out.name).is_none() {
            return Err(Status::invalid_arg(format!(
                "unexpected inference output '{}' for model '{model}'",
                out.name
            )));
        }
    }

    // The batch size is the first dim, which every input must agree on.
    let mut batch = 0usize;
    if io.max_batch_size > 0 {
        for (i, input) in req.inputs.iter().rev().enumerate() {
            let Some(&first) = input.tensor.shape.first() else {
                return Err(Status::invalid_arg(format!(
                    "{prefix}input '{}' has no shape but model requires batch dimension for '{model}'",
                    input.name
                )));
            };
            let b = usize::try_from(first).unwrap_or(usize::MAX);
            if i == 0 {
                batch = b;
            } else if b != batch {
                return Err(Status::invalid_arg(format!(
                    "{prefix}input '{}' batch size does not match other inputs for '{model}'",
                    input.name
                )));
            }
        }
        if batch > io.max_batch_size {
            return Err(Status::invalid_arg(format!(
                "{prefix}inference request batch-size must be <= {} for '{model}'",
                io.max_batch_size
            )));
        }
        // An empty batch: Triton sizes the inputs as if the batch were 1, so the byte-size
        // check of the last input is what refuses it.
        if batch == 0
            && let Some(last) = req.inputs.last()
        {
            let t = &last.tensor;
            let per_row = element_count(t.shape.get(1..).unwrap_or(&[])).unwrap_or(0);
            let want = per_row * t.datatype.size().unwrap_or(4);
            return Err(Status::invalid_arg(format!(
                "{prefix}input byte size mismatch for input '{}' for model '{model}'. Expected {want}, got {}",
                last.name,
                t.data.len()
            )));
        }
    }

    let required = io.inputs.iter().filter(|i| !i.optional).count();
    let known = req
        .inputs
        .iter()
        .filter(|t| io.input(&t.name).is_some())
        .count();
    let missing: Vec<&str> = io
        .inputs
        .iter()
        .filter(|s| !s.optional && req.input(&s.name).is_none())
        .map(|s| s.name.as_str())
        .collect();
    let count_ok = req.inputs.len() >= required && req.inputs.len() <= io.inputs.len();
    // With a plausible count, Triton names the first unknown input (without the request id).
    if count_ok
        && known != req.inputs.len()
        && let Some(t) = req
            .inputs
            .iter()
            .rev()
            .find(|t| io.input(&t.name).is_none())
    {
        return Err(Status::invalid_arg(format!(
            "unexpected inference input '{}' for model '{model}'",
            t.name
        )));
    }
    if !count_ok || !missing.is_empty() {
        let got: Vec<String> = req
            .inputs
            .iter()
            .rev()
            .map(|t| format!("'{}'", t.name))
            .collect();
        let missing: Vec<String> = missing.iter().map(|n| format!("'{n}'")).collect();
        let missing = if missing.is_empty() {
            "]".to_string()
        } else {
            format!("[{}]", missing.join(","))
        };
        let expected = if required == io.inputs.len() {
            required.to_string()
        } else {
            format!("{required}-{}", io.inputs.len())
        };
        return Err(Status::invalid_arg(format!(
            "{prefix}expected {expected} inputs but got {} inputs for model '{model}'. Got input(s) [{}], but missing required input(s) {missing}. Please provide all required input(s).",
            req.inputs.len(),
            got.join(",")
        )));
    }

    for input in req.inputs.iter_mut().rev() {
        let Some(spec) = io.input(&input.name) else {
            continue;
        };
        let t = &mut input.tensor;
        if t.datatype != spec.datatype {
            return Err(Status::invalid_arg(format!(
                "{prefix}inference input '{}' data-type is '{}', but model '{model}' expects '{}'",
                input.name,
                t.datatype.wire_name(),
                spec.datatype.wire_name()
            )));
        }
        let skip = usize::from(io.max_batch_size > 0);
        let body = t.shape.get(skip..).unwrap_or(&[]);
        let matches = body.len() == spec.dims.len()
            && body
                .iter()
                .zip(&spec.dims)
                .all(|(&got, &want)| want == -1 || got == want)
            && t.shape.iter().all(|&d| d >= 0);
        if !matches {
            let mut expected = spec.dims.clone();
            let note = if io.max_batch_size > 0 {
                expected.insert(0, -1);
                "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."
            } else {
                ""
            };
            return Err(Status::invalid_arg(format!(
                "{prefix}unexpected shape for input '{}' for model '{model}'. Expected {}, got {}. {note}",
                input.name,
                dims_str(&expected),
                dims_str(&t.shape)
            )));
        }
        let count = element_count(&t.shape).ok_or_else(|| {
            Status::invalid_arg(format!(
                "{prefix}input '{}' has too many elements",
                input.name
            ))
        })?;
        match t.datatype.size() {
            Some(size) => {
                let want = count.saturating_mul(size);
                if t.data.len() != want {
                    return Err(Status::invalid_arg(format!(
                        "{prefix}input byte size mismatch for input '{}' for model '{model}'. Expected {want}, got {}",
                        input.name,
                        t.data.len()
                    )));
                }
            }
            None => check_bytes(&prefix, &input.name, model, &t.data, count)?,
        }
        if let Some(r) = &spec.reshape {
            let mut shape: Vec<i64> = t.shape[..skip].to_vec();
            shape.extend_from_slice(r);
            // Variable reshape dims take what is left of the element count.
            if let Some(pos) = shape.iter().position(|&d| d == -1) {
                let known: i64 = shape.iter().filter(|&&d| d != -1).product();
                if known > 0 {
                    shape[pos] = count as i64 / known;
                }
            }
            t.shape = shape;
        }
    }
    req.batch_size = if io.max_batch_size > 0 { batch } else { 1 };
    Ok(())
}

/// Walks a serialized BYTES buffer as Triton does, with its messages for each way it can
/// be wrong: too many elements, a cut length indicator, cut data, too few elements.
fn check_bytes(
    prefix: &str,
    name: &str,
    model: &str,
    mut data: &[u8],
    expected: usize,
) -> Result<(), Status> {
    let mut n = 0usize;
    while !data.is_empty() {
        if n >= expected {
            return Err(Status::invalid_arg(format!(
                "{prefix}unexpected number of string elements {} for inference input '{name}' for model '{model}', expecting {expected}",
                n + 1
            )));
        }
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            return Err(Status::invalid_arg(format!(
                "{prefix}incomplete string length indicator for inference input '{name}' for model '{model}', expecting 4 bytes but only {} bytes available. Please make sure the string length indicator is in one buffer.",
                data.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(Status::invalid_arg(format!(
                "incomplete string data for inference input '{name}', expecting string of length {len} but only {} bytes available",
                rest.len()
            )));
        }
        data = &rest[len..];
        n += 1;
    }
    if n != expected {
        return Err(Status::invalid_arg(format!(
            "{prefix}expected {expected} string elements for inference input '{name}' for model '{model}', got {n}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{NamedTensor, RequestedOutput};
    use crate::tensor::Tensor;

    fn io() -> ModelIo {
        let spec = |n: &str, dims: Vec<i64>| IoSpec {
            name: n.into(),
            datatype: DataType::Int32,
            dims,
            reshape: None,
            optional: false,
            labels: None,
        };
        ModelIo {
            model: "simple".into(),
            max_batch_size: 8,
            inputs: vec![spec("INPUT0", vec![16]), spec("INPUT1", vec![16])],
            outputs: vec![spec("OUTPUT0", vec![16])],
        }
    }

    fn req(inputs: Vec<(&str, Vec<i64>, usize)>) -> InferRequest {
        let inputs = inputs
            .into_iter()
            .map(|(n, shape, count)| {
                NamedTensor::new(n, Tensor::from_values(shape, &vec![1i32; count]))
            })
            .collect();
        let (r, s) = InferRequest::new(String::new(), inputs);
        std::mem::forget(s);
        r
    }

    #[track_caller]
    fn check_err(mut r: InferRequest, want: &str) {
        let e = validate(&io(), &mut r).unwrap_err();
        assert!(
            e.message.contains(want),
            "{} does not contain {want}",
            e.message
        );
        std::mem::forget(r);
    }

    #[test]
    fn accepts_and_sets_batch() {
        let mut r = req(vec![
            ("INPUT0", vec![3, 16], 48),
            ("INPUT1", vec![3, 16], 48),
        ]);
        validate(&io(), &mut r).unwrap();
        assert_eq!(r.batch_size, 3);
        std::mem::forget(r);
    }

    #[test]
    fn inputs_checked_last_to_first_like_triton() {
        check_err(
            req(vec![("INPUT0", vec![1, 8], 8), ("INPUT1", vec![1, 8], 8)]),
            "unexpected shape for input 'INPUT1' for model 'simple'",
        );
        check_err(
            req(vec![
                ("INPUT0", vec![2, 16], 32),
                ("INPUT1", vec![1, 16], 16),
            ]),
            "[request id: <id_unknown>] input 'INPUT0' batch size does not match other inputs for 'simple'",
        );
        check_err(
            req(vec![("X", vec![1, 16], 16), ("Y", vec![1, 16], 16)]),
            "unexpected inference input 'Y' for model 'simple'",
        );
    }

    #[test]
    fn bytes_messages() {
        let p = "[request id: r] ";
        let err = |data: &[u8], n| check_bytes(p, "IN", "m", data, n).unwrap_err().message;
        assert!(check_bytes(p, "IN", "m", b"\x01\0\0\0a\0\0\0\0", 2).is_ok());
        assert_eq!(
            err(b"\x01\0\0\0a\x01\0\0\0b", 1),
            "[request id: r] unexpected number of string elements 2 for inference input 'IN' for model 'm', expecting 1"
        );
        assert_eq!(
            err(b"\x01\0\0\0a", 2),
            "[request id: r] expected 2 string elements for inference input 'IN' for model 'm', got 1"
        );
        assert_eq!(
            err(b"\x01\0", 1),
            "[request id: r] incomplete string length indicator for inference input 'IN' for model 'm', expecting 4 bytes but only 2 bytes available. Please make sure the string length indicator is in one buffer."
        );
        assert_eq!(
            err(b"\x0a\0\0\0abc", 1),
            "incomplete string data for inference input 'IN', expecting string of length 10 but only 3 bytes available"
        );
        assert!(check_bytes(p, "IN", "m", b"", 0).is_ok());
    }

    #[test]
    fn triton_messages() {
        check_err(
            req(vec![("INPUT0", vec![1, 16], 16)]),
            "expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).",
        );
        check_err(
            req(vec![
                ("INPUT0", vec![1, 16], 16),
                ("INPUT1", vec![1, 16], 16),
                ("X", vec![1, 16], 16),
            ]),
            "expected 2 inputs but got 3 inputs for model 'simple'. Got input(s) ['X','INPUT1','INPUT0'], but missing required input(s) ]. Please provide all required input(s).",
        );
        check_err(
            req(vec![("INPUT0", vec![16], 16), ("INPUT1", vec![16], 16)]),
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'",
        );
        check_err(
            req(vec![("INPUT0", vec![1, 8], 8), ("INPUT1", vec![1, 16], 16)]),
            "unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,8]. NOTE:",
        );
        check_err(
            req(vec![
                ("INPUT0", vec![1, 16], 15),
                ("INPUT1", vec![1, 16], 16),
            ]),
            "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60",
        );
        check_err(
            req(vec![("INPUT0", vec![1, 16], 16), ("Y", vec![1, 16], 16)]),
            "unexpected inference input 'Y' for model 'simple'",
        );
        let mut r = req(vec![
            ("INPUT0", vec![1, 16], 16),
            ("INPUT1", vec![1, 16], 16),
        ]);
        r.outputs.push(RequestedOutput {
            name: "NOPE".into(),
            class_count: 0,
        });
        check_err(r, "unexpected inference output 'NOPE' for model 'simple'");
    }
}
