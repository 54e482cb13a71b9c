//! `onnxruntime`: ONNX models through ONNX Runtime, like Triton's onnxruntime backend
//! (configs say `platform: "onnxruntime_onnx"` or `backend: "onnxruntime"`).
//!
//! The runtime is loaded at start-up from a shared library ([`find_library`]); one
//! session per instance is created on the instance's thread, configured from the config's
//! parameters (`options`) and checked against the config (`signature`).

mod convert;
mod instance;
mod library;
mod options;
mod signature;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use parking_lot::Mutex;

use super::{Backend, BackendError, DeviceKind, Instance, InstanceSpec, ModelContext};
use crate::config::ModelConfig;

pub use instance::OnnxInstance;
pub use library::{ENV_VAR, find_library};
pub use options::{DEFAULT_INTRA_OP_THREADS, Device, GraphLevel, SessionSettings};
pub use signature::{DEFAULT_MAX_BATCH_SIZE, Signature};

/// The backend name in configs and the registry.
pub const NAME: &str = "onnxruntime";
pub const PLATFORM: &str = "onnxruntime_onnx";
pub const DEFAULT_MODEL_FILENAME: &str = "model.onnx";

/// Like Triton, sessions are created one at a time (its `LoadSession` holds a lock
/// because session creation in ONNX Runtime has not always been thread-safe).
static CREATE_SESSION: Mutex<()> = Mutex::new(());

/// ONNX Runtime allows one library and one environment per process.
static LOADED: OnceLock<(Environment, PathBuf)> = OnceLock::new();

pub struct OnnxBackend {
    env: Environment,
    library: PathBuf,
    cuda: bool,
    /// `max_batch_size` that auto-complete gives a batching model
    /// (`--backend-config default-max-batch-size`).
    default_max_batch_size: i32,
}

impl OnnxBackend {
    /// Loads libonnxruntime (see [`find_library`] for where it is looked for) and creates
    /// the process's ONNX Runtime environment. Errors tell the user how to provide the
    /// library. ONNX Runtime allows one library and one environment per process, so later
    /// calls share the first ones (and refuse to name another library).
    pub fn new(library: Option<&Path>) -> Result<OnnxBackend, BackendError> {
        static LOADING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = LOADING.lock();
        let (env, path) = match LOADED.get() {
            Some((env, loaded)) => {
                if let Some(asked) = library {
                    let asked = asked.canonicalize().unwrap_or_else(|_| asked.to_path_buf());
                    if asked != *loaded {
                        return Err(BackendError::Load(format!(
                            "ONNX Runtime is already loaded from '{}' in this process; it cannot also be loaded from '{}'",
                            loaded.display(),
                            asked.display()
                        )));
                    }
                }
                (env.clone(), loaded.clone())
            }
            None => {
                let loaded = load(library)?;
                let _ = LOADED.set(loaded.clone());
                loaded
            }
        };
        let cuda = ort::ep::CUDA::is_available().unwrap_or(false);
        Ok(OnnxBackend {
            env,
            library: path,
            cuda,
            default_max_batch_size: DEFAULT_MAX_BATCH_SIZE,
        })
    }

    /// Sets the `max_batch_size` auto-complete gives a model that can batch.
    pub fn with_default_max_batch_size(mut self, n: i32) -> Self {
        self.default_max_batch_size = n;
        self
    }

    /// The process's ONNX Runtime environment, for sessions made outside the backend.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// The library in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Whether the library has the CUDA execution provider (an onnxruntime-gpu build).
    pub fn cuda_available(&self) -> bool {
        self.cuda
    }

    /// The model file of a version: Triton's `default_model_filename` (default
    /// `model.onnx`), or `model.onnx` inside it when it names a folder.
    pub fn model_path(version_dir: &Path, cfg: &ModelConfig) -> PathBuf {
        let name = match cfg.default_model_filename.as_str() {
            "" => DEFAULT_MODEL_FILENAME,
            n => n,
        };
        let path = version_dir.join(name);
        if path.is_dir() {
            path.join(DEFAULT_MODEL_FILENAME)
        } else {
            path
        }
    }

    /// Creates a session for `model` from `path` with `settings` on `device`.
    pub fn session(
        &self,
        model: &str,
        path: &Path,
        settings: &SessionSettings,
        device: Device,
    ) -> Result<Session, BackendError> {
        if !path.is_file() {
            return Err(BackendError::Load(format!(
                "unable to find '{}' for model instance '{model}'",
                path.display()
            )));
        }
        let mut builder = settings.builder(&self.env, device).map_err(|e| {
            BackendError::Load(format!(
                "unable to load model '{model}': cannot set up the ONNX Runtime session: {e}"
            ))
        })?;
        let _one_at_a_time = CREATE_SESSION.lock();
        builder.commit_from_file(path).map_err(|e| {
            let mut msg = instance::ort_message(&e);
            if e.code() == ort::error::ErrorCode::InvalidProtobuf {
                msg.push_str(" (the file is not an ONNX model, or it is truncated or corrupt)");
            }
            BackendError::Load(msg)
        })
    }

    fn device(&self, model: &str, spec: &InstanceSpec) -> Result<Device, BackendError> {
        match spec.kind {
            DeviceKind::Gpu if self.cuda => Ok(Device::Cuda(spec.device.max(0))),
            DeviceKind::Gpu => Err(BackendError::Load(format!(
                "unable to load model '{model}': instance '{}' is KIND_GPU, but the ONNX Runtime library '{}' has no CUDA execution provider (it is a CPU-only build); use KIND_CPU, or point --onnxruntime-lib or {ENV_VAR} at an onnxruntime-gpu build",
                spec.name,
                self.library.display()
            ))),
            DeviceKind::Cpu | DeviceKind::Model => Ok(Device::Cpu),
        }
    }
}

fn load(library: Option<&Path>) -> Result<(Environment, PathBuf), BackendError> {
    let path =
        find_library(library).ok_or_else(|| BackendError::Load(library::not_found_message()))?;
    let path = path.canonicalize().unwrap_or(path);
    let cannot = |e: String| {
        BackendError::Load(format!(
            "cannot load ONNX Runtime from '{}': {e}; {}",
            path.display(),
            library::how_to_fix()
        ))
    };
    // A bare file name is left to the dynamic loader's search path.
    if path.components().count() > 1 && !path.is_file() {
        return Err(cannot("no such file".into()));
    }
    // ort returns errors for missing or incompatible libraries; the guard covers the
    // asserts it still has on that path.
    let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<Environment, String> {
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        builder
            .with_name("despina")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    }));
    let env = match loaded {
        Ok(Ok(env)) => env,
        Ok(Err(e)) => return Err(cannot(e)),
        Err(_) => return Err(cannot("the library panicked while loading".into())),
    };
    // ort hands ONNX Runtime's log to `tracing` at verbose level; formatting every
    // verbose line costs time on each run, and warnings are what operators need.
    env.set_log_level(ort::logging::LogLevel::Warning);
    tracing::info!(library = %path.display(), "loaded ONNX Runtime");
    Ok((env, path))
}

impl Backend for OnnxBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn auto_complete(
        &self,
        model: &ModelContext,
        cfg: &mut ModelConfig,
    ) -> Result<(), BackendError> {
        if cfg.backend.is_empty() {
            cfg.backend = NAME.into();
        }
        if cfg.platform.is_empty() {
            cfg.platform = PLATFORM.into();
        }
        if cfg.default_model_filename.is_empty() {
            cfg.default_model_filename = DEFAULT_MODEL_FILENAME.into();
        }
        if !signature::needs_io(cfg) {
            return Ok(());
        }
        // The signature does not depend on graph optimizations; skipping them loads faster.
        let settings = SessionSettings {
            level: GraphLevel::Disabled,
            ..SessionSettings::default()
        };
        let path = Self::model_path(model.version_dir, cfg);
        let session = self.session(model.name, &path, &settings, Device::Cpu)?;
        let sig = Signature::of(&session)?;
        signature::auto_complete(model.name, cfg, &sig, self.default_max_batch_size)
    }

    fn instantiate(
        &self,
        model: &ModelContext,
        spec: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, BackendError> {
        let cfg = model.config;
        let settings = SessionSettings::from_config(model.name, cfg)?;
        let device = self.device(model.name, spec)?;
        let path = Self::model_path(model.version_dir, cfg);
        let session = self.session(model.name, &path, &settings, device)?;
        let sig = Signature::of(&session)?;
        let plan = signature::validate(model.name, cfg, &sig)?;
        Ok(Box::new(OnnxInstance::new(
            model.name,
            session,
            plan,
            settings.arena_shrinkage,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_libraries_are_errors_that_say_what_to_do() {
        if LOADED.get().is_some() {
            // Another test of this binary loaded the real library; these paths are then
            // refused as a second library, which says nothing about the messages below.
            assert!(OnnxBackend::new(Some(Path::new("/nonexistent/lib.so"))).is_err());
            return;
        }
        let missing = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
        let e = OnnxBackend::new(Some(missing)).err().unwrap().to_string();
        assert!(e.starts_with("cannot load ONNX Runtime from '/nonexistent/libonnxruntime.so.1.31.1': no such file; run scripts/setup.sh"), "{e}");
        assert!(
            e.contains("--onnxruntime-lib") && e.contains("ORT_DYLIB_PATH"),
            "{e}"
        );

        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not a shared library").unwrap();
        let e = OnnxBackend::new(Some(&fake)).err().unwrap().to_string();
        assert!(e.contains("failed to load from"), "{e}");
        assert!(e.contains("scripts/setup.sh"), "{e}");
    }
}
