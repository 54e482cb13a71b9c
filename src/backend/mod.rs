//! The `Backend` trait and the backends: one module each.
//!
//! A backend sees tensors and its own model config, nothing of HTTP, gRPC or tokio.
//! Instances are created on, and never leave, their own thread, so they need not be `Send`.

pub mod add_sub;
pub mod add_version;
pub mod fault;
pub mod identity;
pub mod onnx;
pub mod ragged;
pub mod sequence;
pub mod square;
#[cfg(feature = "torch")]
pub mod torch;
mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::config::ModelConfig;
use crate::request::InferRequest;
use crate::status::{Code, Status};

pub use util::{BatchInputs, Rows, split_rows};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The model cannot be loaded (bad file, bad config for this backend).
    #[error("{0}")]
    Load(String),
    /// A request the model cannot serve.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    pub fn code(&self) -> Code {
        match self {
            BackendError::Load(_) | BackendError::Internal(_) => Code::Internal,
            BackendError::Invalid(_) => Code::InvalidArg,
            BackendError::Unsupported(_) => Code::Unsupported,
        }
    }
}

impl From<BackendError> for Status {
    fn from(e: BackendError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// What a backend knows of the model version it serves.
pub struct ModelContext<'a> {
    pub name: &'a str,
    pub version: i64,
    pub model_dir: &'a Path,
    pub version_dir: &'a Path,
    pub config: &'a ModelConfig,
}

impl ModelContext<'_> {
    /// The model file of this version: `default_model_filename` inside the version folder.
    pub fn model_file(&self) -> std::path::PathBuf {
        self.version_dir.join(&self.config.default_model_filename)
    }

    /// A string parameter of the model config (`parameters { key: .. value { string_value: .. } }`).
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.config
            .parameters
            .get(key)
            .map(|p| p.string_value.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Gpu,
    Model,
}

/// One instance of an `instance_group`.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    pub name: String,
    pub kind: DeviceKind,
    /// GPU ordinal for `Gpu`, -1 otherwise.
    pub device: i32,
}

/// Marks the phases of one execution, for the compute_input/infer/output statistics.
/// Backends that do not call it have all their time counted as compute_infer.
pub struct ExecTimer {
    start: Instant,
    input_done: Option<Instant>,
    infer_done: Option<Instant>,
}

impl ExecTimer {
    pub fn start() -> Self {
        ExecTimer {
            start: Instant::now(),
            input_done: None,
            infer_done: None,
        }
    }
    pub fn input_done(&mut self) {
        self.input_done = Some(Instant::now());
    }
    pub fn infer_done(&mut self) {
        self.infer_done = Some(Instant::now());
    }
    pub fn finish(self) -> crate::stats::ComputeTimes {
        let end = Instant::now();
        let input_done = self.input_done.unwrap_or(self.start);
        let infer_done = self.infer_done.unwrap_or(end).max(input_done);
        crate::stats::ComputeTimes {
            input: input_done - self.start,
            infer: infer_done - input_done,
            output: end - infer_done,
        }
    }
}

pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;

    /// Whether each version folder must hold the model file (`default_model_filename`).
    fn needs_model_file(&self) -> bool {
        true
    }

    /// Fills what the config leaves out from the model itself (Triton's auto-complete).
    fn auto_complete(
        &self,
        _model: &ModelContext,
        _cfg: &mut ModelConfig,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// Creates one instance; called on the instance's own thread.
    fn instantiate(
        &self,
        model: &ModelContext,
        instance: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, BackendError>;
}

pub trait Instance {
    /// Executes a batch and answers every request through its responder: one final
    /// response each, or several for decoupled models. Blocking, never async.
    fn execute(&mut self, batch: Vec<InferRequest>, timer: &mut ExecTimer);
}

/// The backends this build provides, by name.
#[derive(Clone)]
pub struct Registry {
    backends: BTreeMap<&'static str, Arc<dyn Backend>>,
    /// Backends this build knows but cannot run here, with the reason.
    unavailable: BTreeMap<&'static str, String>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry {
            backends: BTreeMap::new(),
            unavailable: BTreeMap::new(),
        }
    }

    /// The built-in test backends, always present.
    pub fn with_builtins() -> Self {
        let mut r = Registry::empty();
        r.register(Arc::new(identity::IdentityBackend));
        r.register(Arc::new(add_sub::AddSubBackend));
        r.register(Arc::new(add_version::AddVersionBackend));
        r.register(Arc::new(fault::FaultBackend));
        r.register(Arc::new(square::SquareBackend));
        r.register(Arc::new(sequence::SequenceBackend));
        r
    }

    pub fn register(&mut self, backend: Arc<dyn Backend>) {
        self.backends.insert(backend.name(), backend);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.backends.get(name).cloned()
    }

    /// Records a backend that cannot run here, so loading its models says why.
    pub fn mark_unavailable(&mut self, name: &'static str, reason: String) {
        self.unavailable.insert(name, reason);
    }

    /// The backend, or a message saying why there is none.
    pub fn resolve(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        if let Some(b) = self.backends.get(name) {
            return Ok(b.clone());
        }
        match self.unavailable.get(name) {
            Some(reason) => Err(format!("backend '{name}' is unavailable: {reason}")),
            None => Err(format!(
                "backend '{name}' is not supported by despina; available backends: {}",
                self.names().join(", ")
            )),
        }
    }

    pub fn unavailable(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.unavailable.iter().map(|(k, v)| (*k, v.as_str()))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.backends.keys().copied().collect()
    }
}
