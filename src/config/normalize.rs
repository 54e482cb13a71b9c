//! Triton's auto-fill and normalisation, done before a config is validated
//! and served: `AutoCompleteBackendFields`, `NormalizeModelConfig` and
//! `NormalizeInstanceGroup` in Triton's `model_config_utils.cc`, plus the
//! ensemble's `model_transaction_policy` that Triton derives from the
//! composing models. Backend-specific auto-complete (inputs and outputs read
//! from a model file) is the backend's job, not this module's.

use crate::proto::inference::model_config::SchedulingChoice;
use crate::proto::inference::model_instance_group::Kind as GroupKind;
use crate::proto::inference::model_optimization_policy::PinnedMemoryBuffer;
use crate::proto::inference::model_sequence_batching::StrategyChoice;
use crate::proto::inference::model_version_policy::{Latest, PolicyChoice};
use crate::proto::inference::{
    ModelConfig, ModelInstanceGroup, ModelOptimizationPolicy, ModelTransactionPolicy,
    ModelVersionPolicy,
};

use super::error::ConfigError;

/// Platform and backend names Triton knows.
pub mod names {
    pub const ENSEMBLE_PLATFORM: &str = "ensemble";
    pub const TENSORFLOW_GRAPHDEF_PLATFORM: &str = "tensorflow_graphdef";
    pub const TENSORFLOW_SAVEDMODEL_PLATFORM: &str = "tensorflow_savedmodel";
    pub const TENSORRT_PLAN_PLATFORM: &str = "tensorrt_plan";
    pub const ONNXRUNTIME_ONNX_PLATFORM: &str = "onnxruntime_onnx";
    pub const PYTORCH_LIBTORCH_PLATFORM: &str = "pytorch_libtorch";
    pub const TENSORFLOW_BACKEND: &str = "tensorflow";
    pub const TENSORRT_BACKEND: &str = "tensorrt";
    pub const ONNXRUNTIME_BACKEND: &str = "onnxruntime";
    pub const OPENVINO_BACKEND: &str = "openvino";
    pub const PYTORCH_BACKEND: &str = "pytorch";
    pub const PYTHON_BACKEND: &str = "python";
    /// despina's native LLM backend (not a Triton backend).
    pub const LLM_BACKEND: &str = "llm";
    pub const TENSORFLOW_GRAPHDEF_FILENAME: &str = "model.graphdef";
    pub const TENSORFLOW_SAVEDMODEL_FILENAME: &str = "model.savedmodel";
    pub const TENSORRT_PLAN_FILENAME: &str = "model.plan";
    pub const ONNXRUNTIME_FILENAME: &str = "model.onnx";
    pub const OPENVINO_FILENAME: &str = "model.xml";
    pub const PYTORCH_FILENAME: &str = "model.pt";
    pub const PYTHON_FILENAME: &str = "model.py";
    pub const LLM_FILENAME: &str = "model.gguf";
}
use names::*;

/// Triton's default `sequence_batching.max_sequence_idle_microseconds`.
pub const SEQUENCE_IDLE_DEFAULT_MICROSECONDS: u64 = 1_000_000;

/// One entry of a version folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// What normalisation needs to know about the model's folder and the host.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    /// The model's folder name; fills an empty `name`.
    pub model_name: String,
    /// The entries of the model folder's first sub-folder in byte order of
    /// names (Triton takes `*std::set::begin()` of all sub-folders, so `10`
    /// comes before `2`); `None` when the model folder has no sub-folder.
    /// Used to guess a missing backend from the model file's name.
    pub version_entries: Option<Vec<DirEntry>>,
    /// The ids of the GPUs present; empty on a CPU-only host.
    pub gpus: Vec<i32>,
    /// Ensembles only: whether a composing model is decoupled (Triton sets
    /// `model_transaction_policy.decoupled` from the composing models).
    pub ensemble_decoupled: bool,
}

impl NormalizeContext {
    /// A context for a CPU-only host with no knowledge of the files.
    pub fn new(model_name: impl Into<String>) -> NormalizeContext {
        NormalizeContext {
            model_name: model_name.into(),
            version_entries: None,
            gpus: Vec::new(),
            ensemble_decoupled: false,
        }
    }

    fn has_file(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|e| !e.is_dir)
    }

    fn has_dir(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|e| e.is_dir)
    }

    fn has_entry(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    fn entry(&self, name: &str) -> Option<&DirEntry> {
        self.version_entries
            .as_ref()?
            .iter()
            .find(|e| e.name == name)
    }
}

/// Fills in what Triton fills in before it serves a config. Fails only
/// where Triton refuses the model at this stage (no backend can be guessed).
pub fn normalize(cfg: &mut ModelConfig, ctx: &NormalizeContext) -> Result<(), ConfigError> {
    auto_complete_backend_fields(cfg, ctx)?;
    normalize_model_config(cfg);
    normalize_instance_groups(cfg, ctx);
    if is_ensemble(cfg) {
        cfg.model_transaction_policy = Some(ModelTransactionPolicy {
            decoupled: ctx.ensemble_decoupled,
        });
    }
    Ok(())
}

fn is_ensemble(cfg: &ModelConfig) -> bool {
    matches!(
        cfg.scheduling_choice,
        Some(SchedulingChoice::EnsembleScheduling(_))
    )
}

/// `AutoCompleteBackendFields`: name, platform, backend and
/// `default_model_filename` from each other and from the model file present.
fn auto_complete_backend_fields(
    cfg: &mut ModelConfig,
    ctx: &NormalizeContext,
) -> Result<(), ConfigError> {
    let has_version = ctx.version_entries.is_some();
    if cfg.name.is_empty() {
        cfg.name = ctx.model_name.clone();
    }

    // TensorFlow: the platform is required, guessed from the file name.
    if cfg.platform.is_empty() && (cfg.backend.is_empty() || cfg.backend == TENSORFLOW_BACKEND) {
        if cfg.default_model_filename == TENSORFLOW_SAVEDMODEL_FILENAME {
            cfg.platform = TENSORFLOW_SAVEDMODEL_PLATFORM.into();
        } else if cfg.default_model_filename == TENSORFLOW_GRAPHDEF_FILENAME {
            cfg.platform = TENSORFLOW_GRAPHDEF_PLATFORM.into();
        } else if cfg.default_model_filename.is_empty() && has_version {
            if ctx.has_dir(TENSORFLOW_SAVEDMODEL_FILENAME) {
                cfg.platform = TENSORFLOW_SAVEDMODEL_PLATFORM.into();
            }
            if ctx.has_file(TENSORFLOW_GRAPHDEF_FILENAME) {
                cfg.platform = TENSORFLOW_GRAPHDEF_PLATFORM.into();
            }
        }
    }
    if cfg.platform == TENSORFLOW_SAVEDMODEL_PLATFORM
        || cfg.platform == TENSORFLOW_GRAPHDEF_PLATFORM
    {
        fill(&mut cfg.backend, TENSORFLOW_BACKEND);
        let file = if cfg.platform == TENSORFLOW_SAVEDMODEL_PLATFORM {
            TENSORFLOW_SAVEDMODEL_FILENAME
        } else {
            TENSORFLOW_GRAPHDEF_FILENAME
        };
        fill(&mut cfg.default_model_filename, file);
        return Ok(());
    }

    // Backends whose file name (or platform) names them.
    let guess = |cfg: &ModelConfig, platform: Option<&str>, file: &str, present: bool| {
        cfg.backend.is_empty()
            && (platform.is_some_and(|p| cfg.platform == p)
                || cfg.default_model_filename == file
                || (cfg.platform.is_empty()
                    && cfg.default_model_filename.is_empty()
                    && has_version
                    && present))
    };

    if guess(
        cfg,
        Some(TENSORRT_PLAN_PLATFORM),
        TENSORRT_PLAN_FILENAME,
        ctx.has_file(TENSORRT_PLAN_FILENAME),
    ) {
        cfg.backend = TENSORRT_BACKEND.into();
    }
    if cfg.backend == TENSORRT_BACKEND {
        fill(&mut cfg.platform, TENSORRT_PLAN_PLATFORM);
        fill(&mut cfg.default_model_filename, TENSORRT_PLAN_FILENAME);
        return Ok(());
    }

    // An ONNX model may be a file or, for large models, a folder.
    if guess(
        cfg,
        Some(ONNXRUNTIME_ONNX_PLATFORM),
        ONNXRUNTIME_FILENAME,
        ctx.has_entry(ONNXRUNTIME_FILENAME),
    ) {
        cfg.backend = ONNXRUNTIME_BACKEND.into();
    }
    if cfg.backend == ONNXRUNTIME_BACKEND {
        fill(&mut cfg.platform, ONNXRUNTIME_ONNX_PLATFORM);
        fill(&mut cfg.default_model_filename, ONNXRUNTIME_FILENAME);
        return Ok(());
    }

    if guess(
        cfg,
        None,
        OPENVINO_FILENAME,
        ctx.has_entry(OPENVINO_FILENAME),
    ) {
        cfg.backend = OPENVINO_BACKEND.into();
    }
    if cfg.backend == OPENVINO_BACKEND {
        fill(&mut cfg.default_model_filename, OPENVINO_FILENAME);
        return Ok(());
    }

    if guess(
        cfg,
        Some(PYTORCH_LIBTORCH_PLATFORM),
        PYTORCH_FILENAME,
        ctx.has_file(PYTORCH_FILENAME),
    ) {
        cfg.backend = PYTORCH_BACKEND.into();
    }
    if cfg.backend == PYTORCH_BACKEND {
        fill(&mut cfg.platform, PYTORCH_LIBTORCH_PLATFORM);
        // The PyTorch backend's Python runtime takes no model.pt default.
        if cfg.runtime != PYTHON_FILENAME {
            fill(&mut cfg.default_model_filename, PYTORCH_FILENAME);
        }
        return Ok(());
    }

    if guess(cfg, None, PYTHON_FILENAME, ctx.has_entry(PYTHON_FILENAME)) {
        cfg.backend = PYTHON_BACKEND.into();
    }
    if cfg.backend == PYTHON_BACKEND {
        fill(&mut cfg.default_model_filename, PYTHON_FILENAME);
        return Ok(());
    }

    // despina's LLM backend, found the same way from `model.gguf`.
    if guess(cfg, None, LLM_FILENAME, ctx.has_file(LLM_FILENAME)) {
        cfg.backend = LLM_BACKEND.into();
    }
    if cfg.backend == LLM_BACKEND {
        fill(&mut cfg.default_model_filename, LLM_FILENAME);
        return Ok(());
    }

    // A custom backend named by a model called `model.<backend>`, and only
    // when the config says nothing at all.
    if cfg.backend.is_empty() && cfg.platform.is_empty() && cfg.default_model_filename.is_empty() {
        let Some((_, backend)) = ctx.model_name.split_once('.') else {
            return Err(ConfigError::invalid(
                "backend",
                format!(
                    "Invalid model name: Could not determine backend for model '{}' with no backend in model configuration. Expected model name of the form 'model.<backend_name>'",
                    ctx.model_name
                ),
            ));
        };
        cfg.backend = backend.to_string();
        cfg.default_model_filename = format!("model.{backend}");
    }
    Ok(())
}

fn fill(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

/// `NormalizeModelConfig`: version policy, preferred batch sizes, the
/// sequence idle time and pinned memory.
fn normalize_model_config(cfg: &mut ModelConfig) {
    if cfg.version_policy.is_none() {
        cfg.version_policy = Some(ModelVersionPolicy {
            policy_choice: Some(PolicyChoice::Latest(Latest { num_versions: 1 })),
        });
    }
    let max_batch_size = cfg.max_batch_size;
    match &mut cfg.scheduling_choice {
        Some(SchedulingChoice::DynamicBatching(db))
            if db.preferred_batch_size.is_empty() && max_batch_size > 0 =>
        {
            db.preferred_batch_size.push(max_batch_size);
        }
        Some(SchedulingChoice::SequenceBatching(sb)) => {
            if sb.max_sequence_idle_microseconds == 0 {
                sb.max_sequence_idle_microseconds = SEQUENCE_IDLE_DEFAULT_MICROSECONDS;
            }
            if let Some(StrategyChoice::Oldest(oldest)) = &mut sb.strategy_choice
                && oldest.preferred_batch_size.is_empty()
                && max_batch_size > 0
            {
                oldest.preferred_batch_size.push(max_batch_size);
            }
        }
        _ => {}
    }
    if !is_ensemble(cfg) {
        let opt = cfg
            .optimization
            .get_or_insert_with(ModelOptimizationPolicy::default);
        opt.input_pinned_memory
            .get_or_insert(PinnedMemoryBuffer { enable: true });
        opt.output_pinned_memory
            .get_or_insert(PinnedMemoryBuffer { enable: true });
    }
}

/// `NormalizeInstanceGroup` without backend-preferred groups: one group
/// named after the model when none is given, then per group a name
/// (`<model>_<index>`), a kind (`KIND_AUTO` becomes GPU when every listed
/// GPU is present, else CPU), a count (1; 2 on CPU for the TensorFlow and
/// ONNX Runtime backends) and, for GPU groups, every GPU present.
fn normalize_instance_groups(cfg: &mut ModelConfig, ctx: &NormalizeContext) {
    if is_ensemble(cfg) {
        return;
    }
    if cfg.instance_group.is_empty() {
        cfg.instance_group.push(ModelInstanceGroup {
            name: cfg.name.clone(),
            ..ModelInstanceGroup::default()
        });
    }
    let two_on_cpu = cfg.backend == TENSORFLOW_BACKEND || cfg.backend == ONNXRUNTIME_BACKEND;
    for (i, group) in cfg.instance_group.iter_mut().enumerate() {
        if group.name.is_empty() {
            group.name = format!("{}_{i}", cfg.name);
        }
        if group.kind == GroupKind::Auto as i32 {
            let all_present = group.gpus.iter().all(|g| ctx.gpus.contains(g));
            group.kind = if ctx.gpus.is_empty() || !all_present {
                GroupKind::Cpu as i32
            } else {
                GroupKind::Gpu as i32
            };
        }
        if group.count < 1 {
            group.count = if group.kind == GroupKind::Cpu as i32 && two_on_cpu {
                2
            } else {
                1
            };
        }
        if group.kind == GroupKind::Gpu as i32 && group.gpus.is_empty() {
            let mut gpus = ctx.gpus.clone();
            gpus.sort_unstable();
            gpus.dedup();
            group.gpus = gpus;
        }
    }
}
