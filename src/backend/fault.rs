//! `fault`: a test backend for fault isolation and draining. OUTPUT0 = INPUT0 (INT32) after
//! sleeping INPUT0[0] milliseconds (at most 10 s); a negative first value makes the
//! instance panic, as a crashing model would.

use std::time::Duration;

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::DataType;

const MAX_SLEEP_MS: i32 = 10_000;

pub struct FaultBackend;

impl Backend for FaultBackend {
    fn name(&self) -> &'static str {
        "fault"
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
        let (Some(i), Some(o)) = (cfg.input.first(), cfg.output.first()) else {
            return Err(BackendError::Load(
                "fault backend needs one input and one output".into(),
            ));
        };
        if DataType::from_config(i.data_type) != Some(DataType::Int32) || i.data_type != o.data_type
        {
            return Err(BackendError::Load(
                "fault backend: input and output must be TYPE_INT32".into(),
            ));
        }
        Ok(Box::new(Fault {
            input: i.name.clone(),
            output: o.name.clone(),
        }))
    }
}

struct Fault {
    input: String,
    output: String,
}

impl Instance for Fault {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        let first = |r: &InferRequest| {
            r.input(&self.input)
                .and_then(|t| t.values::<i32>())
                .and_then(|v| v.first().copied())
        };
        if batch.iter().any(|r| first(r).is_some_and(|v| v < 0)) {
            panic!("fault backend: a request asked this instance to crash");
        }
        let sleep = batch
            .iter()
            .filter_map(first)
            .max()
            .unwrap_or(0)
            .clamp(0, MAX_SLEEP_MS);
        std::thread::sleep(Duration::from_millis(sleep as u64));
        for mut req in batch {
            match req.input(&self.input) {
                Some(t) => {
                    let out = NamedTensor::new(self.output.clone(), t.clone());
                    req.responder.respond(InferResponse::new(vec![out]));
                }
                None => req.responder.fail(Status::invalid_arg(format!(
                    "missing input '{}'",
                    self.input
                ))),
            }
        }
        timer.infer_done();
    }
}
