//! Instance threads: each backend instance lives on its own thread, created there and
//! never moved, and is the only thing that runs model code. A panic fails only the batch
//! in hand; the instance is then recreated and keeps serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::rate_limit::{Limit, Share};
use crate::backend::{Backend, BackendError, ExecTimer, Instance, InstanceSpec, ModelContext};
use crate::config::ModelConfig;
use crate::request::InferRequest;
use crate::stats::ModelStats;

/// Where an instance thread gets its batches.
pub trait BatchSource: Send + Sync {
    /// Blocks for the next batch of instance `index`; `None` tells the thread to exit.
    fn next_batch(&self, index: usize) -> Option<Vec<InferRequest>>;

    /// Instance `index` is gone for good (it could not be recreated after a panic).
    fn instance_lost(&self, index: usize, reason: &str);
}

/// Everything an instance thread needs to (re)create its instance.
#[derive(Clone)]
pub struct ModelFiles {
    pub name: String,
    pub version: i64,
    pub model_dir: PathBuf,
    pub version_dir: PathBuf,
    pub config: Arc<ModelConfig>,
}

impl ModelFiles {
    pub fn context(&self) -> ModelContext<'_> {
        ModelContext {
            name: &self.name,
            version: self.version,
            model_dir: &self.model_dir,
            version_dir: &self.version_dir,
            config: &self.config,
        }
    }
}

/// Starts one thread per instance and waits until every instance is created. On failure
/// the threads already started are stopped by the caller closing `source`.
pub fn start(
    backend: Arc<dyn Backend>,
    files: &ModelFiles,
    specs: Vec<(InstanceSpec, Option<Limit>)>,
    source: Arc<dyn BatchSource>,
    stats: Arc<ModelStats>,
) -> (Vec<JoinHandle<()>>, Result<(), BackendError>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(specs.len());
    let count = specs.len();
    for (index, (spec, limit)) in specs.into_iter().enumerate() {
        let ctx = Worker {
            backend: backend.clone(),
            files: files.clone(),
            spec,
            limit,
            index,
            source: source.clone(),
            stats: stats.clone(),
        };
        let ready = ready_tx.clone();
        let name = format!("{}-{}", files.name, index);
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || ctx.run(ready))
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                return (
                    handles,
                    Err(BackendError::Internal(format!(
                        "cannot start instance thread: {e}"
                    ))),
                );
            }
        }
    }
    drop(ready_tx);
    let mut result = Ok(());
    for _ in 0..count {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(_) => {
                result = Err(BackendError::Internal(
                    "an instance thread exited during load".into(),
                ));
                break;
            }
        }
    }
    (handles, result)
}

struct Worker {
    backend: Arc<dyn Backend>,
    files: ModelFiles,
    spec: InstanceSpec,
    /// Resources to hold while executing (`--rate-limit=execution_count`).
    limit: Option<Limit>,
    index: usize,
    source: Arc<dyn BatchSource>,
    stats: Arc<ModelStats>,
}

impl Worker {
    fn create(&self) -> Result<Box<dyn Instance>, BackendError> {
        let ctx = self.files.context();
        match catch_unwind(AssertUnwindSafe(|| {
            self.backend.instantiate(&ctx, &self.spec)
        })) {
            Ok(r) => r,
            Err(p) => Err(BackendError::Internal(format!(
                "instance creation panicked: {}",
                panic_message(&p)
            ))),
        }
    }

    fn run(self, ready: mpsc::Sender<Result<(), BackendError>>) {
        let mut instance = match self.create() {
            Ok(i) => {
                let _ = ready.send(Ok(()));
                i
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        drop(ready);
        let mut share = Share::default();
        while let Some(mut batch) = self.source.next_batch(self.index) {
            if batch.is_empty() {
                continue;
            }
            // Held for the execution only, so an idle instance blocks no one.
            let permit = self
                .limit
                .as_ref()
                .map(|l| l.limiter.acquire(&l.needs, &mut share));
            let gate = crate::request::Gate::closed();
            for r in &mut batch {
                r.responder.attach_gate(gate.clone());
            }
            let requests = batch.len();
            let rows: usize = batch.iter().map(|r| r.batch_size).sum();
            let traces: Vec<_> = batch.iter().filter_map(|r| r.trace.clone()).collect();
            let compute_start = crate::trace::now_ns();
            traces
                .iter()
                .for_each(|t| t.mark_at("COMPUTE_START", compute_start));
            let mut timer = ExecTimer::start();
            self.stats.executing_add(requests as i64);
            let outcome = catch_unwind(AssertUnwindSafe(|| instance.execute(batch, &mut timer)));
            drop(permit);
            self.stats.executing_add(-(requests as i64));
            let times = timer.finish();
            self.stats.record_execution(requests, rows, times);
            if !traces.is_empty() {
                // The backend's own phase marks, placed on the compute timeline.
                let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(0);
                let input_end = compute_start + ns(times.input);
                let output_start = input_end + ns(times.infer);
                for t in &traces {
                    t.mark_at("COMPUTE_INPUT_END", input_end);
                    t.mark_at("COMPUTE_OUTPUT_START", output_start);
                    t.mark("COMPUTE_END");
                }
            }
            gate.open();
            if let Err(p) = outcome {
                tracing::error!(
                    model = %self.files.name, version = self.files.version, instance = %self.spec.name,
                    "instance panicked: {}; recreating it", panic_message(&p)
                );
                instance = match self.recreate() {
                    Ok(i) => i,
                    Err(e) => {
                        self.source.instance_lost(self.index, &e.to_string());
                        return;
                    }
                };
            }
        }
    }

    /// Recreates a panicked instance, retrying with backoff while the model is served.
    fn recreate(&self) -> Result<Box<dyn Instance>, BackendError> {
        let mut delay = std::time::Duration::from_millis(10);
        let mut last = None;
        for _ in 0..6 {
            match self.create() {
                Ok(i) => return Ok(i),
                Err(e) => {
                    tracing::error!(model = %self.files.name, instance = %self.spec.name, "cannot recreate instance: {e}");
                    last = Some(e);
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
        Err(last
            .unwrap_or_else(|| BackendError::Internal("instance could not be recreated".into())))
    }
}

pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
