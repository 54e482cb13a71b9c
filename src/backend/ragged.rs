//! Ragged batches, as Triton's framework backends build them: inputs marked
//! `allow_ragged_batch` are concatenated into one 1-D tensor, `batch_input` tensors tell the
//! model where each request's elements lie, and `batch_output` outputs are scattered back
//! to the requests by the shape of a source input.

use bytes::BytesMut;

use super::util::split_elements;
use crate::config::ModelConfig;
use crate::proto::inference::DataType as ConfigType;
use crate::proto::inference::batch_input::Kind;
use crate::request::InferRequest;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// One model input generated per batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchInputPlan {
    pub target: String,
    pub kind: Kind,
    pub dtype: DataType,
    pub source: String,
}

/// One output scattered by `BATCH_SCATTER_WITH_INPUT_SHAPE`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPlan {
    pub output: String,
    pub source: String,
    /// The output's configured dims (without the batch dim).
    pub dims: Vec<i64>,
}

/// The batch inputs of `cfg`, one per target name. Validation already checked kinds,
/// sources and data types (TYPE_INT32 or TYPE_FP32).
pub fn batch_inputs(cfg: &ModelConfig) -> Result<Vec<BatchInputPlan>, String> {
    let mut out = Vec::new();
    for b in &cfg.batch_input {
        let plan = |target: &String| -> Result<BatchInputPlan, String> {
            let kind = Kind::try_from(b.kind).map_err(|_| format!("unknown kind {}", b.kind))?;
            let dtype = match ConfigType::try_from(b.data_type) {
                Ok(ConfigType::TypeInt32) => DataType::Int32,
                Ok(ConfigType::TypeFp32) => DataType::Fp32,
                _ => {
                    return Err(format!(
                        "batch input '{target}' must be TYPE_INT32 or TYPE_FP32"
                    ));
                }
            };
            let source = b
                .source_input
                .first()
                .cloned()
                .ok_or_else(|| format!("batch input '{target}' has no source input"))?;
            Ok(BatchInputPlan {
                target: target.clone(),
                kind,
                dtype,
                source,
            })
        };
        for target in &b.target_name {
            out.push(plan(target)?);
        }
    }
    Ok(out)
}

/// The outputs of `cfg` scattered by a source input's shape.
pub fn scatters(cfg: &ModelConfig) -> Vec<ScatterPlan> {
    let mut out = Vec::new();
    for b in &cfg.batch_output {
        let Some(source) = b.source_input.first() else {
            continue;
        };
        for target in &b.target_name {
            if let Some(o) = cfg.output.iter().find(|o| &o.name == target) {
                out.push(ScatterPlan {
                    output: target.clone(),
                    source: source.clone(),
                    dims: o.dims.clone(),
                });
            }
        }
    }
    out
}

fn source<'a>(req: &'a InferRequest, name: &str) -> Result<&'a Tensor, Status> {
    req.input(name).ok_or_else(|| {
        Status::invalid_arg(format!(
            "input '{name}' is missing from a request in the batch"
        ))
    })
}

/// Input `name` of every request, flattened and concatenated into one 1-D tensor.
pub fn concat_flat(batch: &[InferRequest], name: &str) -> Result<Tensor, Status> {
    let first = source(&batch[0], name)?;
    let mut data = BytesMut::new();
    let mut count = 0i64;
    for r in batch {
        let t = source(r, name)?;
        if t.datatype != first.datatype {
            return Err(Status::invalid_arg(format!(
                "input '{name}' is {} in one request and {} in another of the same batch",
                first.datatype.wire_name(),
                t.datatype.wire_name()
            )));
        }
        count += t.element_count() as i64;
        data.extend_from_slice(&t.data);
    }
    Ok(Tensor::new(first.datatype, vec![count], data.freeze()))
}

/// Element count of the source input in each request, and its shape less the batch dim.
fn per_request(
    batch: &[InferRequest],
    source_name: &str,
    batching: bool,
) -> Result<Vec<(usize, Vec<i64>)>, Status> {
    batch
        .iter()
        .map(|r| {
            let t = source(r, source_name)?;
            let item = if batching {
                t.shape.get(1..).unwrap_or(&[])
            } else {
                &t.shape[..]
            };
            Ok((t.element_count(), item.to_vec()))
        })
        .collect()
}

/// The tensor a batch input feeds the model for `batch`, with Triton's shapes: one value per
/// request, one more for `..._WITH_ZERO`, `[max count]` for `..._AS_SHAPE`, `[rows, ndims]`
/// for `BATCH_ITEM_SHAPE` and its flattened form.
pub fn batch_input(
    plan: &BatchInputPlan,
    batch: &[InferRequest],
    batching: bool,
) -> Result<Tensor, Status> {
    let items = per_request(batch, &plan.source, batching)?;
    let counts = items.iter().map(|(n, _)| *n as i64);
    let (values, shape): (Vec<i64>, Vec<i64>) = match plan.kind {
        Kind::BatchElementCount => {
            let v: Vec<i64> = counts.collect();
            let n = v.len() as i64;
            (v, vec![n])
        }
        Kind::BatchAccumulatedElementCount | Kind::BatchAccumulatedElementCountWithZero => {
            let mut v = Vec::with_capacity(items.len() + 1);
            if plan.kind == Kind::BatchAccumulatedElementCountWithZero {
                v.push(0);
            }
            let mut sum = 0;
            for n in counts {
                sum += n;
                v.push(sum);
            }
            let n = v.len() as i64;
            (v, vec![n])
        }
        Kind::BatchMaxElementCountAsShape => {
            // Only the shape carries information; the values are never read.
            let max = counts.max().unwrap_or(0);
            (vec![0; max as usize], vec![max])
        }
        Kind::BatchItemShape | Kind::BatchItemShapeFlatten => {
            let ndims = items.first().map_or(0, |(_, s)| s.len());
            if items.iter().any(|(_, s)| s.len() != ndims) {
                return Err(Status::invalid_arg(format!(
                    "batch input '{}': input '{}' has a different rank in two requests of the batch",
                    plan.target, plan.source
                )));
            }
            let mut v = Vec::new();
            for (r, (_, item)) in batch.iter().zip(&items) {
                for _ in 0..r.batch_size.max(1) {
                    v.extend_from_slice(item);
                }
            }
            let rows = (v.len() / ndims.max(1)) as i64;
            let shape = if plan.kind == Kind::BatchItemShape {
                vec![rows, ndims as i64]
            } else {
                vec![v.len() as i64]
            };
            (v, shape)
        }
    };
    Ok(match plan.dtype {
        DataType::Fp32 => {
            let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            Tensor::from_values(shape, &v)
        }
        _ => {
            let v: Vec<i32> = values.iter().map(|&x| x as i32).collect();
            Tensor::from_values(shape, &v)
        }
    })
}

/// The shape of each request's part of a scattered output: the request's batch dim, then
/// the configured dims with each variable one taken from the source input's same dim.
pub fn scatter_shapes(
    plan: &ScatterPlan,
    batch: &[InferRequest],
    batching: bool,
) -> Result<Vec<Vec<i64>>, Status> {
    batch
        .iter()
        .map(|r| {
            let src = source(r, &plan.source)?;
            let item = if batching {
                src.shape.get(1..).unwrap_or(&[])
            } else {
                &src.shape[..]
            };
            let mut shape = Vec::with_capacity(plan.dims.len() + 1);
            if batching {
                shape.push(r.batch_size as i64);
            }
            for (i, &d) in plan.dims.iter().enumerate() {
                shape.push(if d >= 0 {
                    d
                } else {
                    item.get(i).copied().unwrap_or(1)
                });
            }
            Ok(shape)
        })
        .collect()
}

/// Splits the model's flat output into consecutive parts of the given shapes.
pub fn scatter(t: &Tensor, shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, Status> {
    let total: usize = shapes
        .iter()
        .map(|s| s.iter().map(|&d| d.max(0) as usize).product::<usize>())
        .sum();
    if t.element_count() != total {
        return Err(Status::internal(format!(
            "scattered output has {} elements, the batch's source inputs make {total}",
            t.element_count()
        )));
    }
    split_elements(t, shapes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::NamedTensor;

    fn req(values: &[f32]) -> InferRequest {
        let t = Tensor::from_values(vec![1, values.len() as i64], values);
        let (mut r, _) = InferRequest::new("r".into(), vec![NamedTensor::new("X", t)]);
        r.batch_size = 1;
        r
    }

    fn plan(kind: Kind, dtype: DataType) -> BatchInputPlan {
        BatchInputPlan {
            target: "T".into(),
            kind,
            dtype,
            source: "X".into(),
        }
    }

    fn ints(t: &Tensor) -> Vec<i32> {
        t.data
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn concatenates_and_describes_a_ragged_batch() {
        let batch = vec![req(&[1.0, 2.0, 3.0]), req(&[4.0; 4]), req(&[5.0; 5])];
        let flat = concat_flat(&batch, "X").unwrap();
        assert_eq!((flat.shape.clone(), flat.data.len()), (vec![12], 48));
        let bi = |k| batch_input(&plan(k, DataType::Int32), &batch, true).unwrap();
        let t = bi(Kind::BatchElementCount);
        assert_eq!((t.shape.clone(), ints(&t)), (vec![3], vec![3, 4, 5]));
        let t = bi(Kind::BatchAccumulatedElementCount);
        assert_eq!((t.shape.clone(), ints(&t)), (vec![3], vec![3, 7, 12]));
        let t = bi(Kind::BatchAccumulatedElementCountWithZero);
        assert_eq!((t.shape.clone(), ints(&t)), (vec![4], vec![0, 3, 7, 12]));
        assert_eq!(bi(Kind::BatchMaxElementCountAsShape).shape, vec![5]);
        let t = bi(Kind::BatchItemShape);
        assert_eq!((t.shape.clone(), ints(&t)), (vec![3, 1], vec![3, 4, 5]));
        let t = bi(Kind::BatchItemShapeFlatten);
        assert_eq!((t.shape.clone(), ints(&t)), (vec![3], vec![3, 4, 5]));
        let f = batch_input(&plan(Kind::BatchElementCount, DataType::Fp32), &batch, true).unwrap();
        assert_eq!(f, Tensor::from_values(vec![3], &[3.0f32, 4.0, 5.0]));
    }

    #[test]
    fn scatters_by_the_source_inputs_shape() {
        let batch = vec![req(&[1.0, 2.0]), req(&[3.0, 4.0, 5.0])];
        let p = ScatterPlan {
            output: "Y".into(),
            source: "X".into(),
            dims: vec![-1],
        };
        let shapes = scatter_shapes(&p, &batch, true).unwrap();
        assert_eq!(shapes, vec![vec![1, 2], vec![1, 3]]);
        let flat = Tensor::from_values(vec![5], &[10.0f32, 20.0, 30.0, 40.0, 50.0]);
        let parts = scatter(&flat, &shapes).unwrap();
        assert_eq!(
            parts[1],
            Tensor::from_values(vec![1, 3], &[30.0f32, 40.0, 50.0])
        );
        let short = Tensor::from_values(vec![4], &[0.0f32; 4]);
        assert!(
            scatter(&short, &shapes)
                .unwrap_err()
                .message
                .contains("4 elements")
        );
        let words = Tensor::from_strings(vec![3], &["a", "bb", "ccc"]);
        let parts = scatter(&words, &[vec![1, 1], vec![1, 2]]).unwrap();
        assert_eq!(parts[1], Tensor::from_strings(vec![1, 2], &["bb", "ccc"]));
    }
}
