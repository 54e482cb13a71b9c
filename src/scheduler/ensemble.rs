//! Ensembles: a request flows through a graph of steps, each a request to another model
//! that that model's own scheduler batches. This orchestration only moves tensors between
//! steps; it runs on one small dedicated async runtime per ensemble version, never on the
//! frontends' workers, and never runs model code.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::model_ensembling::Step;
use crate::request::{InferRequest, InferResponse, NamedTensor, ParamValue, RequestedOutput};
use crate::status::Status;
use crate::tensor::Tensor;

/// Submits a request to a model by name (and version; `None` for the default one).
pub type Submit = Arc<dyn Fn(&str, Option<i64>, InferRequest) -> Result<(), Status> + Send + Sync>;

pub struct Ensemble {
    tx: Mutex<Option<mpsc::UnboundedSender<InferRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Plan {
    name: String,
    steps: Vec<Step>,
    outputs: Vec<String>,
}

impl Ensemble {
    pub fn start(cfg: &ModelConfig, submit: Submit) -> Result<Ensemble, Status> {
        let steps = cfg
            .ensemble_scheduling()
            .map(|e| e.step.clone())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Status::invalid_arg(format!(
                    "ensemble '{}' has no ensemble_scheduling steps",
                    cfg.name
                ))
            })?;
        let plan = Arc::new(Plan {
            name: cfg.name.clone(),
            steps,
            outputs: cfg.output.iter().map(|o| o.name.clone()).collect(),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<InferRequest>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Status::internal(format!("cannot start ensemble runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name(format!("{}-ensemble", cfg.name))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut running = FuturesUnordered::new();
                    loop {
                        tokio::select! {
                            next = rx.recv() => match next {
                                Some(req) => running.push(run(plan.clone(), submit.clone(), req)),
                                None => break,
                            },
                            Some(()) = running.next(), if !running.is_empty() => {}
                        }
                    }
                    // Closed: let what is in flight finish.
                    while running.next().await.is_some() {}
                });
            })
            .map_err(|e| Status::internal(format!("cannot start ensemble thread: {e}")))?;
        Ok(Ensemble {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn enqueue(&self, req: InferRequest) -> Result<(), (Status, InferRequest)> {
        match self.tx.lock().as_ref() {
            Some(tx) => tx
                .send(req)
                .map_err(|e| (Status::unavailable("ensemble is being unloaded"), e.0)),
            None => Err((Status::unavailable("ensemble is being unloaded"), req)),
        }
    }

    pub fn close(&self) {
        self.tx.lock().take();
    }

    /// Closes and waits for in-flight requests to finish.
    pub fn stop(&self) {
        self.close();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Runs one request through the steps, each as soon as its inputs exist.
async fn run(plan: Arc<Plan>, submit: Submit, mut req: InferRequest) {
    match execute(&plan, &submit, &req).await {
        Ok(mut tensors) => {
            let mut outputs = Vec::new();
            for name in &plan.outputs {
                if !req.wants(name) {
                    continue;
                }
                match tensors.remove(name) {
                    Some(t) => outputs.push(NamedTensor::new(name.clone(), t)),
                    None => {
                        req.responder.fail(Status::internal(format!(
                            "in ensemble '{}', output '{name}' was not produced by any step",
                            plan.name
                        )));
                        return;
                    }
                }
            }
            // Triton's ensemble scheduler reports the sequence fields of the request.
            let mut response = InferResponse::new(outputs);
            let (id, start, end) = match &req.sequence {
                Some(s) => (s.id.clone(), s.start, s.end),
                None => (crate::request::CorrelationId::Int(0), false, false),
            };
            let id = match id {
                crate::request::CorrelationId::Int(i) => ParamValue::Int(i as i64),
                crate::request::CorrelationId::Str(s) => ParamValue::String(s),
            };
            response.parameters.insert("sequence_id", id);
            response
                .parameters
                .insert("sequence_start", ParamValue::Bool(start));
            response
                .parameters
                .insert("sequence_end", ParamValue::Bool(end));
            req.responder.respond(response);
        }
        Err(e) => req.responder.fail(e),
    }
}

async fn execute(
    plan: &Plan,
    submit: &Submit,
    req: &InferRequest,
) -> Result<HashMap<String, Tensor>, Status> {
    let mut tensors: HashMap<String, Tensor> = req
        .inputs
        .iter()
        .map(|t| (t.name.clone(), t.tensor.clone()))
        .collect();
    let mut done = vec![false; plan.steps.len()];
    let mut pending = FuturesUnordered::new();
    loop {
        for (i, step) in plan.steps.iter().enumerate() {
            if done[i] || !step.input_map.values().all(|t| tensors.contains_key(t)) {
                continue;
            }
            done[i] = true;
            pending.push(step_request(submit, req, i, step, &tensors)?);
        }
        let Some(result) = pending.next().await else {
            break;
        };
        let (i, response) = result;
        let response: InferResponse = response.map_err(|e| {
            Status::new(
                e.code,
                format!(
                    "in ensemble '{}', step '{}': {}",
                    plan.name, plan.steps[i].model_name, e.message
                ),
            )
        })?;
        for (step_output, ensemble_tensor) in &plan.steps[i].output_map {
            if let Some(t) = response.output(step_output) {
                tensors.insert(ensemble_tensor.clone(), t.clone());
            }
        }
        if req.cancel.is_cancelled() {
            return Err(Status::cancelled("request was cancelled"));
        }
    }
    if let Some(i) = done.iter().position(|d| !d) {
        return Err(Status::internal(format!(
            "in ensemble '{}', step '{}' never received all its inputs",
            plan.name, plan.steps[i].model_name
        )));
    }
    Ok(tensors)
}

type StepFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, Result<InferResponse, Status>)> + Send>,
>;

fn step_request(
    submit: &Submit,
    req: &InferRequest,
    index: usize,
    step: &Step,
    tensors: &HashMap<String, Tensor>,
) -> Result<StepFuture, Status> {
    let inputs = step
        .input_map
        .iter()
        .map(|(model_input, ensemble_tensor)| {
            NamedTensor::new(model_input.clone(), tensors[ensemble_tensor].clone())
        })
        .collect();
    let (mut sub, stream) = InferRequest::new(req.id.clone(), inputs);
    sub.outputs = step
        .output_map
        .keys()
        .map(|n| RequestedOutput {
            name: n.clone(),
            class_count: 0,
        })
        .collect();
    sub.parameters = req.parameters.clone();
    sub.priority = req.priority;
    sub.timeout_us = req.timeout_us;
    sub.sequence = req.sequence.clone();
    sub.cancel = req.cancel.child_token();
    let version = (step.model_version > 0).then_some(step.model_version);
    submit(&step.model_name, version, sub)?;
    Ok(Box::pin(async move { (index, stream.single().await) }))
}
