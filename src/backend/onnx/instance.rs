//! One instance: an ONNX Runtime session, created and run on the instance's own thread.
//!
//! A batch runs as one session call: each input is concatenated once across the requests
//! (no copy for a single request), handed to ONNX Runtime without another copy, and each
//! output is copied out once and split into per-request tensors that share its bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ort::session::{
    HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue, SessionOutputs,
};

use super::convert::{InputValue, read_output};
use super::signature::Plan;
use crate::backend::{BatchInputs, ExecTimer, Instance, Rows, ragged, split_rows};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;

pub struct OnnxInstance {
    model: String,
    session: Session,
    plan: Plan,
    /// Run options per set of selected outputs (a bit per config output).
    run_options: HashMap<u64, RunOptions<HasSelectedOutputs>>,
    arena_shrinkage: Option<String>,
    /// The mask of a run that needs no options: every model output, no run settings.
    plain_mask: Option<u64>,
}

/// Whether config output `i` is computed for `mask`. Outputs past the 64th always are.
fn selected(mask: u64, i: usize) -> bool {
    i >= 64 || mask & (1 << i) != 0
}

/// ONNX Runtime's numeric error code, which Triton puts in its messages.
fn ort_code(code: ort::error::ErrorCode) -> u32 {
    use ort::error::ErrorCode as C;
    match code {
        C::Ok => 0,
        C::GenericFailure => 1,
        C::InvalidArgument => 2,
        C::NoSuchFile => 3,
        C::NoModel => 4,
        C::EngineError => 5,
        C::RuntimeException => 6,
        C::InvalidProtobuf => 7,
        C::ModelLoaded => 8,
        C::NotImplemented => 9,
        C::InvalidGraph => 10,
        C::ExecutionProviderFailure => 11,
        C::ModelLoadCanceled => 12,
        C::CompilationRequired => 13,
        C::NotFound => 14,
        C::DeviceReset => 15,
        _ => 1,
    }
}

/// Triton's form of an ONNX Runtime error: "onnx runtime error 2: ...".
pub fn ort_message<R>(e: &ort::Error<R>) -> String {
    format!("onnx runtime error {}: {}", ort_code(e.code()), e.message())
}

impl OnnxInstance {
    pub fn new(
        model: &str,
        session: Session,
        plan: Plan,
        arena_shrinkage: Option<String>,
    ) -> OnnxInstance {
        let every_output = plan.outputs.len() == session.outputs().len();
        let plain_mask = (every_output && plan.outputs.len() <= 64 && arena_shrinkage.is_none())
            .then(|| (0..plan.outputs.len()).fold(0u64, |m, i| m | 1 << i));
        OnnxInstance {
            model: model.to_string(),
            session,
            plan,
            run_options: HashMap::new(),
            arena_shrinkage,
            plain_mask,
        }
    }

    /// Runs `batch` as one session call and answers every request.
    fn run(&mut self, mut batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        match self.compute(&batch, timer) {
            Ok(outputs) => {
                for (req, outs) in batch.iter_mut().zip(outputs) {
                    req.responder.respond(InferResponse::new(outs));
                }
            }
            Err(status) => {
                for req in &mut batch {
                    req.responder.fail(status.clone());
                }
            }
        }
    }

    fn compute(
        &mut self,
        batch: &[InferRequest],
        timer: &mut ExecTimer,
    ) -> Result<Vec<Vec<NamedTensor>>, Status> {
        let OnnxInstance {
            model,
            session,
            plan,
            run_options,
            arena_shrinkage,
            plain_mask,
        } = self;
        let prefix = usize::from(plan.batching);

        let mut values = Vec::with_capacity(plan.inputs.len());
        for input in &plan.inputs {
            if input.optional {
                let given = batch
                    .iter()
                    .filter(|r| r.input(&input.name).is_some())
                    .count();
                if given == 0 {
                    continue;
                }
                if given != batch.len() {
                    return Err(Status::invalid_arg(format!(
                        "optional input '{}' is given by some requests of the batch but not all",
                        input.name
                    )));
                }
            }
            let t = if input.ragged {
                ragged::concat_flat(batch, &input.name)?
            } else {
                BatchInputs::concat(batch, &input.name)?
            };
            if let Some(dt) = input.dtype
                && t.datatype != dt
            {
                return Err(Status::invalid_arg(format!(
                    "inference input '{}' data-type is '{}', but model '{model}' expects '{}'",
                    input.name,
                    t.datatype.wire_name(),
                    dt.wire_name()
                )));
            }
            let bad = |e: String| Status::invalid_arg(format!("input '{}': {e}", input.name));
            let value = match &input.reshape {
                _ if input.ragged => InputValue::new(&t, &t.shape),
                Some(r) => InputValue::new(&t, &r.apply(&t.shape, prefix).map_err(bad)?),
                None => InputValue::new(&t, &t.shape),
            }
            .map_err(bad)?;
            values.push((input.name.as_str(), value));
        }
        for b in &plan.batch_inputs {
            let t = ragged::batch_input(b, batch, plan.batching)?;
            let value = InputValue::new(&t, &t.shape)
                .map_err(|e| Status::internal(format!("batch input '{}': {e}", b.target)))?;
            values.push((b.target.as_str(), value));
        }
        timer.input_done();

        let mut mask = 0u64;
        for (i, o) in plan.outputs.iter().enumerate().take(64) {
            if o.always || batch.iter().any(|r| r.wants(&o.name)) {
                mask |= 1 << i;
            }
        }
        let feeds: Vec<(Cow<str>, SessionInputValue)> = values
            .iter()
            .map(|(n, v)| (Cow::Borrowed(*n), SessionInputValue::from(v.value())))
            .collect();
        let ort_failed = |e: ort::Error| Status::internal(ort_message(&e));
        if *plain_mask == Some(mask) {
            // Every output, no settings: the plain call is a little cheaper.
            let outputs = session.run(feeds).map_err(ort_failed)?;
            timer.infer_done();
            return answer(plan, batch, mask, &outputs);
        }
        let options = match run_options.entry(mask) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let mut selector = OutputSelector::no_default();
                for (i, o) in plan.outputs.iter().enumerate() {
                    if selected(mask, i) {
                        selector = selector.with(o.name.as_str());
                    }
                }
                let mut opts = RunOptions::new().map_err(ort_failed)?;
                if let Some(v) = arena_shrinkage {
                    opts.set("memory.enable_memory_arena_shrinkage", v)
                        .map_err(ort_failed)?;
                }
                e.insert(opts.with_outputs(selector))
            }
        };
        let outputs = session
            .run_with_options(feeds, options)
            .map_err(ort_failed)?;
        timer.infer_done();
        answer(plan, batch, mask, &outputs)
    }
}

/// Each request's outputs: the selected ones it asked for, split from the batch's.
fn answer(
    plan: &Plan,
    batch: &[InferRequest],
    mask: u64,
    outputs: &SessionOutputs,
) -> Result<Vec<Vec<NamedTensor>>, Status> {
    let prefix = usize::from(plan.batching);
    let rows = Rows::of(batch);
    let mut answers: Vec<Vec<NamedTensor>> = batch
        .iter()
        .map(|_| Vec::with_capacity(plan.outputs.len()))
        .collect();
    for (i, o) in plan.outputs.iter().enumerate() {
        if !selected(mask, i) {
            continue;
        }
        let bad = |e: String| Status::internal(format!("output '{}': {e}", o.name));
        let value = outputs
            .get(o.name.as_str())
            .ok_or_else(|| bad("the model did not return it".into()))?;
        let mut t = read_output(value).map_err(bad)?;
        if t.datatype != o.dtype {
            return Err(bad(format!(
                "the model returned {} where the configuration says {}",
                t.datatype.wire_name(),
                o.dtype.wire_name()
            )));
        }
        if let Some(r) = &o.reshape {
            t.shape = r.apply(&t.shape, prefix).map_err(bad)?;
        }
        let parts = if let Some(s) = plan.scatters.iter().find(|s| s.output == o.name) {
            ragged::scatter(&t, &ragged::scatter_shapes(s, batch, plan.batching)?)?
        } else if plan.batching {
            split_rows(&t, &rows)?
        } else {
            vec![t]
        };
        for ((req, answer), part) in batch.iter().zip(&mut answers).zip(parts) {
            if o.always || req.wants(&o.name) {
                answer.push(NamedTensor::new(o.name.clone(), part));
            }
        }
    }
    Ok(answers)
}

impl Instance for OnnxInstance {
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        if self.plan.batching || batch.len() <= 1 {
            self.run(batch, timer);
        } else {
            // Without a batch dim the requests cannot share a session call.
            for req in batch {
                self.run(vec![req], timer);
            }
        }
    }
}
