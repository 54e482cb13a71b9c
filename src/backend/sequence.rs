//! `sequence`: a stateful backend keeping a running sum per correlation id, driven by the
//! sequence batcher's control inputs (START, END, READY, CORRID), like Triton's sequence
//! test backends. OUTPUT = sum of INPUT over the sequence so far; a READY = 0 slot echoes INPUT.

use std::collections::HashMap;

use super::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::config::ConfigExt;
use crate::proto::inference::model_sequence_batching::control::Kind;
use crate::request::{CorrelationId, InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

pub struct SequenceBackend;

impl Backend for SequenceBackend {
    fn name(&self) -> &'static str {
        "sequence"
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
        let Some(seq) = cfg.sequence_batching() else {
            return Err(BackendError::Load(
                "sequence backend needs sequence_batching in the config".into(),
            ));
        };
        let (Some(input), Some(output)) = (cfg.input.first(), cfg.output.first()) else {
            return Err(BackendError::Load(
                "sequence backend needs one input and one output".into(),
            ));
        };
        for (name, dt) in [
            (&input.name, input.data_type),
            (&output.name, output.data_type),
        ] {
            if DataType::from_config(dt) != Some(DataType::Int32) {
                return Err(BackendError::Load(format!(
                    "sequence backend: '{name}' must be TYPE_INT32"
                )));
            }
        }
        let mut controls = Controls::default();
        for ci in &seq.control_input {
            for c in &ci.control {
                let slot = match Kind::try_from(c.kind) {
                    Ok(Kind::ControlSequenceStart) => &mut controls.start,
                    Ok(Kind::ControlSequenceEnd) => &mut controls.end,
                    Ok(Kind::ControlSequenceReady) => &mut controls.ready,
                    Ok(Kind::ControlSequenceCorrid) => &mut controls.corrid,
                    Err(_) => continue,
                };
                *slot = Some(ci.name.clone());
            }
        }
        Ok(Box::new(Sequence {
            input: input.name.clone(),
            output: output.name.clone(),
            controls,
            sums: HashMap::new(),
        }))
    }
}

#[derive(Default)]
struct Controls {
    start: Option<String>,
    end: Option<String>,
    ready: Option<String>,
    corrid: Option<String>,
}

struct Sequence {
    input: String,
    output: String,
    controls: Controls,
    sums: HashMap<CorrelationId, i64>,
}

impl Instance for Sequence {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        timer.input_done();
        for mut req in batch {
            match self.step(&req) {
                Ok(out) => req.responder.respond(out),
                Err(e) => req.responder.fail(e),
            }
        }
        timer.infer_done();
    }
}

impl Sequence {
    fn step(&mut self, req: &InferRequest) -> Result<InferResponse, Status> {
        let x = req
            .input(&self.input)
            .and_then(|t| t.values::<i32>())
            .ok_or_else(|| Status::invalid_arg(format!("input '{}' must be INT32", self.input)))?;
        let value = x.first().copied().unwrap_or(0) as i64;
        let flag = |name: &Option<String>, default: bool| {
            name.as_ref()
                .and_then(|n| req.input(n))
                .map_or(default, truthy)
        };
        let out = if !flag(&self.controls.ready, true) {
            value
        } else {
            let id = self
                .controls
                .corrid
                .as_ref()
                .and_then(|n| req.input(n))
                .and_then(corrid)
                .or_else(|| req.sequence.as_ref().map(|s| s.id.clone()))
                .unwrap_or(CorrelationId::Int(0));
            let start = flag(
                &self.controls.start,
                req.sequence.as_ref().is_some_and(|s| s.start),
            );
            let end = flag(
                &self.controls.end,
                req.sequence.as_ref().is_some_and(|s| s.end),
            );
            if start {
                self.sums.insert(id.clone(), 0);
            }
            let sum = self.sums.entry(id.clone()).or_insert(0);
            *sum = sum.wrapping_add(value);
            let out = *sum;
            if end {
                self.sums.remove(&id);
            }
            out
        };
        let t = Tensor::from_values(
            req.input(&self.input).map_or(vec![1], |t| t.shape.clone()),
            &vec![out as i32; x.len()],
        );
        Ok(InferResponse::new(vec![NamedTensor::new(
            self.output.clone(),
            t,
        )]))
    }
}

/// A control tensor's first element as a flag.
fn truthy(t: &Tensor) -> bool {
    match t.datatype {
        DataType::Bool => t.data.first().is_some_and(|&b| b != 0),
        DataType::Fp32 => t
            .values::<f32>()
            .and_then(|v| v.first().copied())
            .is_some_and(|v| v != 0.0),
        _ => t
            .data
            .iter()
            .take(t.datatype.size().unwrap_or(1))
            .any(|&b| b != 0),
    }
}

fn corrid(t: &Tensor) -> Option<CorrelationId> {
    Some(match t.datatype {
        DataType::Uint64 => CorrelationId::Int(*t.values::<u64>()?.first()?),
        DataType::Int64 => CorrelationId::Int(*t.values::<i64>()?.first()? as u64),
        DataType::Uint32 => CorrelationId::Int(*t.values::<u32>()?.first()? as u64),
        DataType::Int32 => CorrelationId::Int(*t.values::<i32>()?.first()? as u64),
        DataType::Bytes => {
            CorrelationId::Str(String::from_utf8_lossy(t.strings()?.first()?).into_owned())
        }
        _ => return None,
    })
}
