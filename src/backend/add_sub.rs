//! `add_sub`: OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1, elementwise, like
//! Triton's `simple` example. Integers wrap; BYTES elements hold decimal integers.

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::{DataType, Element, Tensor};

pub struct AddSubBackend;

impl Backend for AddSubBackend {
    fn name(&self) -> &'static str {
        "add_sub"
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
        if cfg.input.len() != 2 || cfg.output.len() != 2 {
            return Err(BackendError::Load(format!(
                "add_sub backend needs 2 inputs and 2 outputs, got {} and {}",
                cfg.input.len(),
                cfg.output.len()
            )));
        }
        let dt = cfg.input[0].data_type;
        if cfg.input[1].data_type != dt || cfg.output.iter().any(|o| o.data_type != dt) {
            return Err(BackendError::Load(
                "add_sub backend needs one datatype for all inputs and outputs".into(),
            ));
        }
        match DataType::from_config(dt) {
            Some(DataType::Bool) | None => {
                return Err(BackendError::Load(
                    "add_sub backend does not support BOOL tensors".into(),
                ));
            }
            _ => {}
        }
        Ok(Box::new(AddSub {
            inputs: [cfg.input[0].name.clone(), cfg.input[1].name.clone()],
            outputs: [cfg.output[0].name.clone(), cfg.output[1].name.clone()],
        }))
    }
}

struct AddSub {
    inputs: [String; 2],
    outputs: [String; 2],
}

impl Instance for AddSub {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        for mut req in batch {
            match self.compute(&req) {
                Ok(out) => req.responder.respond(out),
                Err(e) => req.responder.fail(e),
            }
        }
        timer.infer_done();
    }
}

impl AddSub {
    fn compute(&self, req: &InferRequest) -> Result<InferResponse, Status> {
        let get = |name: &str| {
            req.input(name)
                .ok_or_else(|| Status::invalid_arg(format!("missing input '{name}'")))
        };
        let (a, b) = (get(&self.inputs[0])?, get(&self.inputs[1])?);
        if a.shape != b.shape {
            return Err(Status::invalid_arg(format!(
                "inputs '{}' and '{}' must have the same shape, got {:?} and {:?}",
                self.inputs[0], self.inputs[1], a.shape, b.shape
            )));
        }
        let (sum, diff) = match a.datatype {
            DataType::Uint8 => ints::<u8>(a, b, u8::wrapping_add, u8::wrapping_sub),
            DataType::Uint16 => ints::<u16>(a, b, u16::wrapping_add, u16::wrapping_sub),
            DataType::Uint32 => ints::<u32>(a, b, u32::wrapping_add, u32::wrapping_sub),
            DataType::Uint64 => ints::<u64>(a, b, u64::wrapping_add, u64::wrapping_sub),
            DataType::Int8 => ints::<i8>(a, b, i8::wrapping_add, i8::wrapping_sub),
            DataType::Int16 => ints::<i16>(a, b, i16::wrapping_add, i16::wrapping_sub),
            DataType::Int32 => ints::<i32>(a, b, i32::wrapping_add, i32::wrapping_sub),
            DataType::Int64 => ints::<i64>(a, b, i64::wrapping_add, i64::wrapping_sub),
            DataType::Fp16 => ints::<half::f16>(a, b, |x, y| x + y, |x, y| x - y),
            DataType::Bf16 => ints::<half::bf16>(a, b, |x, y| x + y, |x, y| x - y),
            DataType::Fp32 => ints::<f32>(a, b, |x, y| x + y, |x, y| x - y),
            DataType::Fp64 => ints::<f64>(a, b, |x, y| x + y, |x, y| x - y),
            DataType::Bytes => strings(a, b)?,
            DataType::Bool => return Err(Status::invalid_arg("add_sub does not support BOOL")),
        };
        let mut outputs = Vec::with_capacity(2);
        for (name, t) in self.outputs.iter().zip([sum, diff]) {
            if req.wants(name) {
                outputs.push(NamedTensor::new(name.clone(), t));
            }
        }
        Ok(InferResponse::new(outputs))
    }
}

fn ints<T: Element>(
    a: &Tensor,
    b: &Tensor,
    add: impl Fn(T, T) -> T,
    sub: impl Fn(T, T) -> T,
) -> (Tensor, Tensor) {
    let (x, y) = (
        a.values::<T>().unwrap_or_default(),
        b.values::<T>().unwrap_or_default(),
    );
    let s: Vec<T> = x.iter().zip(&y).map(|(&p, &q)| add(p, q)).collect();
    let d: Vec<T> = x.iter().zip(&y).map(|(&p, &q)| sub(p, q)).collect();
    (
        Tensor::from_values(a.shape.clone(), &s),
        Tensor::from_values(a.shape.clone(), &d),
    )
}

fn strings(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor), Status> {
    let parse = |t: &Tensor| -> Result<Vec<i64>, Status> {
        let items = t
            .strings()
            .ok_or_else(|| Status::invalid_arg("malformed BYTES tensor"))?;
        items
            .iter()
            .map(|s| {
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        // The model fails, not the request's form: Triton answers INTERNAL.
                        Status::internal(format!(
                            "non-integer string input: {:?}",
                            String::from_utf8_lossy(s)
                        ))
                    })
            })
            .collect()
    };
    let (x, y) = (parse(a)?, parse(b)?);
    let s: Vec<String> = x
        .iter()
        .zip(&y)
        .map(|(p, q)| p.wrapping_add(*q).to_string())
        .collect();
    let d: Vec<String> = x
        .iter()
        .zip(&y)
        .map(|(p, q)| p.wrapping_sub(*q).to_string())
        .collect();
    Ok((
        Tensor::from_strings(a.shape.clone(), &s),
        Tensor::from_strings(a.shape.clone(), &d),
    ))
}
