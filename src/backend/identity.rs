//! `identity`: each output is a copy of the input at the same position in the config
//! (Triton's identity test backend). Any datatype and shape.

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;

pub struct IdentityBackend;

impl Backend for IdentityBackend {
    fn name(&self) -> &'static str {
        "identity"
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
            return Err(BackendError::Load(format!(
                "identity backend needs as many outputs as inputs, got {} inputs and {} outputs",
                cfg.input.len(),
                cfg.output.len()
            )));
        }
        for (i, o) in cfg.input.iter().zip(&cfg.output) {
            if i.data_type != o.data_type {
                return Err(BackendError::Load(format!(
                    "identity backend: output '{}' must have the datatype of input '{}'",
                    o.name, i.name
                )));
            }
        }
        let pairs = cfg
            .input
            .iter()
            .zip(&cfg.output)
            .map(|(i, o)| (i.name.clone(), o.name.clone()))
            .collect();
        Ok(Box::new(Identity { pairs }))
    }
}

struct Identity {
    pairs: Vec<(String, String)>,
}

impl Instance for Identity {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        for mut req in batch {
            let mut outputs = Vec::with_capacity(self.pairs.len());
            for (input, output) in &self.pairs {
                if let Some(t) = req.input(input) {
                    if req.wants(output) {
                        outputs.push(NamedTensor::new(output.clone(), t.clone()));
                    }
                } else if req.wants(output) && !req.outputs.is_empty() {
                    req.responder.fail(Status::invalid_arg(format!(
                        "output '{output}' was requested but its input '{input}' was not given"
                    )));
                }
            }
            req.responder.respond(InferResponse::new(outputs));
        }
        timer.infer_done();
    }
}
