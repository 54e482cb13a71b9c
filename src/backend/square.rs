//! `square`: a decoupled backend (Triton's square test backend). Input IN = n (INT32) gives
//! n responses, each OUT = n, then a final flag with no response.

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// Default bound on responses per request, so one request cannot stream forever.
const DEFAULT_MAX_RESPONSES: i32 = 64;

pub struct SquareBackend;

impl Backend for SquareBackend {
    fn name(&self) -> &'static str {
        "square"
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
        let decoupled = cfg
            .model_transaction_policy
            .as_ref()
            .is_some_and(|p| p.decoupled);
        if !decoupled {
            return Err(BackendError::Load(
                "square backend needs model_transaction_policy { decoupled: true }".into(),
            ));
        }
        let (Some(input), Some(output)) = (cfg.input.first(), cfg.output.first()) else {
            return Err(BackendError::Load(
                "square backend needs one input and one output".into(),
            ));
        };
        for (name, dt) in [
            (&input.name, input.data_type),
            (&output.name, output.data_type),
        ] {
            if DataType::from_config(dt) != Some(DataType::Int32) {
                return Err(BackendError::Load(format!(
                    "square backend: '{name}' must be TYPE_INT32"
                )));
            }
        }
        let max = match model.parameter("max_responses") {
            Some(v) => v.parse::<i32>().map_err(|_| {
                BackendError::Load(format!(
                    "parameter max_responses must be an integer, got '{v}'"
                ))
            })?,
            None => DEFAULT_MAX_RESPONSES,
        };
        Ok(Box::new(Square {
            input: input.name.clone(),
            output: output.name.clone(),
            max,
        }))
    }
}

struct Square {
    input: String,
    output: String,
    max: i32,
}

impl Instance for Square {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        for mut req in batch {
            let n = req
                .input(&self.input)
                .and_then(|t| t.values::<i32>())
                .and_then(|v| v.first().copied());
            let Some(n) = n else {
                req.responder.fail(Status::invalid_arg(format!(
                    "input '{}' must hold one INT32",
                    self.input
                )));
                continue;
            };
            if !(0..=self.max).contains(&n) {
                req.responder.fail(Status::invalid_arg(format!(
                    "{} must be in [0, {}], got {n}",
                    self.input, self.max
                )));
                continue;
            }
            for _ in 0..n {
                if req.cancel.is_cancelled() || req.responder.is_closed() {
                    break;
                }
                let out = Tensor::from_values(vec![1], &[n]);
                req.responder.send(
                    InferResponse::new(vec![NamedTensor::new(self.output.clone(), out)]),
                    false,
                );
            }
            if req.cancel.is_cancelled() {
                req.responder
                    .fail(Status::cancelled("request was cancelled"));
            } else {
                req.responder.finish();
            }
        }
        timer.infer_done();
    }
}
