//! `add_version`: OUTPUTi = INPUTi + the model's version number, for numeric tensors. A test
//! backend that shows which version answered (the reference Triton's `versioned` model).

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

pub struct AddVersionBackend;

impl Backend for AddVersionBackend {
    fn name(&self) -> &'static str {
        "add_version"
    }

    fn needs_model_file(&self) -> bool {
        false
    }

    fn instantiate(
        &self,
        model: &ModelContext,
        _: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, BackendError> {
        let cfg = model.config;
        if cfg.input.len() != cfg.output.len() {
            return Err(BackendError::Load(
                "add_version backend needs as many outputs as inputs".into(),
            ));
        }
        for t in cfg
            .input
            .iter()
            .map(|i| (&i.name, i.data_type))
            .chain(cfg.output.iter().map(|o| (&o.name, o.data_type)))
        {
            if !matches!(
                DataType::from_config(t.1),
                Some(DataType::Int32 | DataType::Int64 | DataType::Fp32 | DataType::Fp64)
            ) {
                return Err(BackendError::Load(format!(
                    "add_version backend: '{}' must be TYPE_INT32, TYPE_INT64, TYPE_FP32 or TYPE_FP64",
                    t.0
                )));
            }
        }
        let pairs = cfg
            .input
            .iter()
            .zip(&cfg.output)
            .map(|(i, o)| (i.name.clone(), o.name.clone()))
            .collect();
        Ok(Box::new(AddVersion {
            pairs,
            version: model.version,
        }))
    }
}

struct AddVersion {
    pairs: Vec<(String, String)>,
    version: i64,
}

impl Instance for AddVersion {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        for mut req in batch {
            let mut outputs = Vec::new();
            for (input, output) in &self.pairs {
                let Some(t) = req.input(input) else { continue };
                if !req.wants(output) {
                    continue;
                }
                let v = self.version;
                let out = match t.datatype {
                    DataType::Int32 => t
                        .values::<i32>()
                        .map(|x| add(t, x, |a| a.wrapping_add(v as i32))),
                    DataType::Int64 => t.values::<i64>().map(|x| add(t, x, |a| a.wrapping_add(v))),
                    DataType::Fp32 => t.values::<f32>().map(|x| add(t, x, |a| a + v as f32)),
                    DataType::Fp64 => t.values::<f64>().map(|x| add(t, x, |a| a + v as f64)),
                    _ => None,
                };
                match out {
                    Some(o) => outputs.push(NamedTensor::new(output.clone(), o)),
                    None => {
                        req.responder.fail(Status::invalid_arg(format!(
                            "input '{input}' has an unsupported datatype"
                        )));
                        break;
                    }
                }
            }
            req.responder.respond(InferResponse::new(outputs));
        }
        timer.infer_done();
    }
}

fn add<T: crate::tensor::Element>(t: &Tensor, values: Vec<T>, f: impl Fn(T) -> T) -> Tensor {
    let out: Vec<T> = values.into_iter().map(f).collect();
    Tensor::from_values(t.shape.clone(), &out)
}
