//! Triton's validation rules (`ValidateModelConfig`, `ValidateModelIOConfig`,
//! `ValidateInstanceGroup` and the ensemble checks of `model_config_utils.cc`)
//! as errors with field paths. Triton stops at the first error; this reports
//! every one, in the order Triton checks them, so the first matches Triton's.
//! Messages keep Triton's wording where clients may match on it.

use crate::proto::inference::model_config::SchedulingChoice;
use crate::proto::inference::model_instance_group::Kind as GroupKind;
use crate::proto::inference::model_queue_policy::TimeoutAction;
use crate::proto::inference::model_version_policy::PolicyChoice;
use crate::proto::inference::{ModelConfig, ModelDynamicBatching};

use super::error::{ConfigError, Suggestion, nearest};
use super::normalize::names::*;
use super::source_map::{SourceMap, field_path, index_path, scalar_key_path};
use super::{validate_ensemble, validate_io, validate_sequence};

/// What validation needs to know beyond the config.
#[derive(Debug, Clone, Copy)]
pub struct ValidateContext<'a> {
    /// The model's folder name, which `name` must equal.
    pub model_name: &'a str,
    /// The ids of the GPUs present; empty on a CPU-only host.
    pub gpus: &'a [i32],
    /// The backends this server can run; any other `backend` is an error.
    pub backends: &'a [&'a str],
    /// Where each field was written, to give errors a line and column.
    pub source_map: Option<&'a SourceMap>,
}

/// Every rule the config breaks, each with its field path (and position
/// when a source map is given). Run it on a normalised config.
pub fn validate(cfg: &ModelConfig, ctx: &ValidateContext<'_>) -> Vec<ConfigError> {
    let mut out = Errors { list: Vec::new() };
    model_config(cfg, ctx, &mut out);
    if cfg.name != ctx.model_name {
        out.push(
            "name",
            format!(
                "unexpected directory name '{}' for model '{}', directory name must equal model name",
                ctx.model_name, cfg.name
            ),
        );
    }
    instance_groups(cfg, ctx, &mut out);
    validate_io::model_io(cfg, &mut out);
    match ctx.source_map {
        Some(sm) => out.list.into_iter().map(|e| e.locate(sm)).collect(),
        None => out.list,
    }
}

/// The errors found so far.
pub(crate) struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError::invalid(path, message));
    }
}

fn backend_type(backend: &str) -> Option<&'static str> {
    match backend {
        TENSORFLOW_BACKEND => Some(TENSORFLOW_BACKEND),
        TENSORRT_BACKEND => Some(TENSORRT_BACKEND),
        ONNXRUNTIME_BACKEND => Some(ONNXRUNTIME_BACKEND),
        PYTORCH_BACKEND => Some(PYTORCH_BACKEND),
        _ => None,
    }
}

fn platform_type(platform: &str) -> Option<&'static str> {
    match platform {
        TENSORFLOW_GRAPHDEF_PLATFORM | TENSORFLOW_SAVEDMODEL_PLATFORM => Some(TENSORFLOW_BACKEND),
        TENSORRT_PLAN_PLATFORM => Some(TENSORRT_BACKEND),
        ONNXRUNTIME_ONNX_PLATFORM => Some(ONNXRUNTIME_BACKEND),
        PYTORCH_LIBTORCH_PLATFORM => Some(PYTORCH_BACKEND),
        _ => None,
    }
}

/// `ValidateModelConfig`, plus the known-backend check.
fn model_config(cfg: &ModelConfig, ctx: &ValidateContext<'_>, out: &mut Errors) {
    let name = &cfg.name;
    if name.is_empty() {
        out.push("name", "model configuration must specify 'name'");
    }
    if cfg.backend.is_empty() {
        if cfg.platform != ENSEMBLE_PLATFORM {
            out.push(
                "platform",
                format!("unexpected platform type '{}' for {name}", cfg.platform),
            );
        }
    } else if cfg.platform == ENSEMBLE_PLATFORM {
        out.push(
            "backend",
            format!(
                "Ensemble model '{name}' must have platform type '{}' and empty backend type",
                cfg.platform
            ),
        );
    }
    if let Some(bt) = backend_type(&cfg.backend)
        && platform_type(&cfg.platform) != Some(bt)
    {
        out.push(
            "platform",
            format!(
                "unexpected 'platform' and 'backend' pair, got:{}, {}",
                cfg.platform, cfg.backend
            ),
        );
    }
    if !cfg.backend.is_empty() && !ctx.backends.contains(&cfg.backend.as_str()) {
        let suggestion = Suggestion(nearest(&cfg.backend, ctx.backends.iter().copied()));
        let mut known: Vec<&str> = ctx.backends.to_vec();
        known.sort_unstable();
        out.push(
            "backend",
            format!(
                "unknown backend '{}' for {name} (known backends: {}){suggestion}",
                cfg.backend,
                known.join(", ")
            ),
        );
    }
    if cfg.max_batch_size < 0 {
        out.push(
            "max_batch_size",
            format!("'max_batch_size' must be non-negative value for {name}"),
        );
    }
    version_policy(cfg, out);
    match &cfg.scheduling_choice {
        Some(SchedulingChoice::DynamicBatching(db)) => dynamic_batching(cfg, db, out),
        Some(SchedulingChoice::SequenceBatching(sb)) => {
            validate_sequence::sequence_batching(cfg, sb, out)
        }
        Some(SchedulingChoice::EnsembleScheduling(es)) => validate_ensemble::ensemble(cfg, es, out),
        None => {}
    }
    if cfg.platform == ENSEMBLE_PLATFORM
        && !matches!(
            cfg.scheduling_choice,
            Some(SchedulingChoice::EnsembleScheduling(_))
        )
    {
        out.push(
            "platform",
            format!("ensemble scheduling must be set for ensemble {name} whose platform is {ENSEMBLE_PLATFORM}"),
        );
    }
    let decoupled = cfg
        .model_transaction_policy
        .as_ref()
        .is_some_and(|p| p.decoupled);
    if decoupled && cfg.response_cache.as_ref().is_some_and(|c| c.enable) {
        out.push(
            "response_cache.enable",
            format!(
                "Response Cache does not currently support model {name} with 'decoupled' transaction policy. Please disable the response cache"
            ),
        );
    }
}

fn version_policy(cfg: &ModelConfig, out: &mut Errors) {
    let Some(policy) = &cfg.version_policy else {
        out.push(
            "version_policy",
            format!("must specify 'version policy' for {}", cfg.name),
        );
        return;
    };
    match &policy.policy_choice {
        Some(PolicyChoice::Specific(s)) => {
            for (i, v) in s.versions.iter().enumerate() {
                if *v <= 0 {
                    let path = index_path("version_policy.specific.versions", i);
                    out.push(
                        path,
                        format!(
                            "model version must be a positive integer, got {v} for {}",
                            cfg.name
                        ),
                    );
                }
            }
        }
        Some(PolicyChoice::Latest(l)) if l.num_versions == 0 => out.push(
            "version_policy.latest.num_versions",
            format!(
                "at least one version must be available under the version policy of model '{}'",
                cfg.name
            ),
        ),
        _ => {}
    }
}

fn dynamic_batching(cfg: &ModelConfig, db: &ModelDynamicBatching, out: &mut Errors) {
    let name = &cfg.name;
    for (i, size) in db.preferred_batch_size.iter().enumerate() {
        let path = index_path("dynamic_batching.preferred_batch_size", i);
        if *size <= 0 {
            out.push(
                path,
                format!("dynamic batching preferred size must be positive for {name}"),
            );
        } else if *size > cfg.max_batch_size {
            out.push(
                path,
                format!("dynamic batching preferred size must be <= max batch size for {name}"),
            );
        }
    }
    let levels = db.priority_levels;
    if levels != 0 {
        if db.default_priority_level == 0 || db.default_priority_level > levels {
            out.push(
                "dynamic_batching.default_priority_level",
                format!("default priority level must be in range [1, {levels}] for {name}"),
            );
        }
        let mut keys: Vec<&u64> = db.priority_queue_policy.keys().collect();
        keys.sort_unstable();
        for key in keys {
            if *key == 0 || *key > levels {
                out.push(
                    scalar_key_path("dynamic_batching.priority_queue_policy", key),
                    format!("priority queue policy must have priority level in range [1, {levels}] for {name}"),
                );
            }
        }
    }
    if db.preserve_ordering {
        if levels > 1 {
            out.push(
                "dynamic_batching.priority_levels",
                format!(
                    "Only one priority level is allowed when 'preserve_ordering' is true for {name}"
                ),
            );
        }
        let delays = |p: &crate::proto::inference::ModelQueuePolicy| {
            p.default_timeout_microseconds != 0 && p.timeout_action == TimeoutAction::Delay as i32
        };
        let delay_msg = format!(
            "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for {name}"
        );
        if db.default_queue_policy.as_ref().is_some_and(delays) {
            out.push(
                "dynamic_batching.default_queue_policy.timeout_action",
                delay_msg.clone(),
            );
        }
        let mut policies: Vec<_> = db.priority_queue_policy.iter().collect();
        policies.sort_unstable_by_key(|(k, _)| **k);
        for (key, policy) in policies {
            if delays(policy) {
                let path = scalar_key_path("dynamic_batching.priority_queue_policy", key);
                out.push(field_path(&path, "timeout_action"), delay_msg.clone());
            }
        }
    }
}

/// `ValidateInstanceGroup`.
fn instance_groups(cfg: &ModelConfig, ctx: &ValidateContext<'_>, out: &mut Errors) {
    if matches!(
        cfg.scheduling_choice,
        Some(SchedulingChoice::EnsembleScheduling(_))
    ) {
        return;
    }
    let name = &cfg.name;
    if cfg.instance_group.is_empty() {
        out.push(
            "instance_group",
            format!("must specify one or more 'instance group's for {name}"),
        );
    }
    for (i, group) in cfg.instance_group.iter().enumerate() {
        let path = index_path("instance_group", i);
        let prefix = format!("instance group {} of model {name}", group.name);
        let kind = GroupKind::try_from(group.kind);
        match kind {
            Ok(GroupKind::Model) if !group.gpus.is_empty() => {
                out.push(
                    field_path(&path, "gpus"),
                    format!("{prefix} has kind KIND_MODEL but specifies one or more GPUs"),
                );
            }
            Ok(GroupKind::Gpu) if group.gpus.is_empty() && ctx.gpus.is_empty() => {
                out.push(
                    field_path(&path, "kind"),
                    format!("{prefix} has kind KIND_GPU but no GPUs are available"),
                );
            }
            Ok(GroupKind::Gpu) if group.gpus.is_empty() => {
                out.push(
                    field_path(&path, "gpus"),
                    format!("{prefix} has kind KIND_GPU but specifies no GPUs"),
                );
            }
            Ok(GroupKind::Gpu) => {
                let mut present: Vec<i32> = ctx.gpus.to_vec();
                present.sort_unstable();
                present.dedup();
                let list: Vec<String> = present.iter().map(i32::to_string).collect();
                let list = if list.is_empty() {
                    "none (no GPUs are available)".to_string()
                } else {
                    list.join(", ")
                };
                for (j, gid) in group.gpus.iter().enumerate() {
                    if !ctx.gpus.contains(gid) {
                        out.push(
                            index_path(&field_path(&path, "gpus"), j),
                            format!(
                                "{prefix} specifies invalid or unsupported gpu id {gid}. GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: {list}"
                            ),
                        );
                    }
                }
            }
            Ok(GroupKind::Cpu) if !group.gpus.is_empty() => {
                out.push(
                    field_path(&path, "gpus"),
                    format!("{prefix} has kind KIND_CPU but specifies one or more GPUs"),
                );
            }
            Ok(GroupKind::Model | GroupKind::Cpu) => {}
            Ok(GroupKind::Auto) => {
                out.push(
                    field_path(&path, "kind"),
                    format!("{prefix} has unexpected kind KIND_AUTO"),
                );
            }
            Err(_) => {
                out.push(
                    field_path(&path, "kind"),
                    format!("{prefix} has unknown kind {}", group.kind),
                );
            }
        }
        if cfg.platform != TENSORRT_PLAN_PLATFORM && !group.profile.is_empty() {
            out.push(
                field_path(&path, "profile"),
                format!(
                    "{prefix} and platform {}specifies profile field which is only supported for TensorRT models",
                    cfg.platform
                ),
            );
        } else {
            for (j, profile) in group.profile.iter().enumerate() {
                let ppath = index_path(&field_path(&path, "profile"), j);
                if profile.is_empty() {
                    out.push(ppath, "profile name must not be empty");
                } else if !profile.trim_start().parse::<i64>().is_ok_and(|p| p >= 0) {
                    out.push(
                        ppath,
                        format!(
                            "{prefix} and platform {} specifies invalid profile {profile}. The field should contain the string representation of a non-negative integer",
                            cfg.platform
                        ),
                    );
                }
            }
        }
    }
}
