//! Preparing a model for loading: read its config (or start from nothing and let the
//! backend auto-complete it), normalise and validate it as Triton does, choose versions by
//! policy, and check the files each version needs. `despina check` runs the same steps.

use std::fmt;
use std::path::{Path, PathBuf};

use super::policy;
use super::scan::ModelDir;
use crate::backend::{ModelContext, Registry};
use crate::config::{self, ConfigExt, DirEntry, ModelConfig, NormalizeContext, SourceMap};

/// Backend names Triton users may have in their configs. despina runs those its registry
/// holds; the others are valid configs that fail to load with a clear reason.
pub const TRITON_BACKENDS: &[&str] = &[
    "onnxruntime",
    "pytorch",
    "python",
    "tensorflow",
    "tensorrt",
    "openvino",
    "fil",
    "dali",
    "vllm",
    "tensorrtllm",
];

/// One problem with a model, located in a file where possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Option<(u32, u32)>,
    pub message: String,
}

impl Problem {
    fn at(file: &Path, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            pos: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

pub struct PrepareContext<'a> {
    pub registry: &'a Registry,
    pub gpu_count: usize,
    /// Let backends fill inputs and outputs from the model files (off with --strict-model-config).
    pub auto_complete: bool,
    /// Whether a model (an ensemble's step) is decoupled; ensembles inherit it.
    pub is_decoupled: &'a dyn Fn(&str) -> bool,
    /// When set, ensemble steps must name models it knows (`despina check` passes the
    /// repositories' models; the server loads composing models instead).
    pub model_exists: Option<&'a dyn Fn(&str) -> bool>,
}

/// A model ready to load.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub config: ModelConfig,
    /// The versions to serve, ascending, with their folders.
    pub versions: Vec<(i64, PathBuf)>,
}

/// Reads and parses `config.pbtxt`; `Ok(None)` when the model has none.
pub fn read_config(dir: &ModelDir) -> Result<Option<(ModelConfig, SourceMap)>, Vec<Problem>> {
    let Some(file) = &dir.config_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![Problem::at(file, format!("cannot read: {e}"))])?;
    config::parse(&text)
        .map(Some)
        .map_err(|e| vec![locate(file, &e, None)])
}

fn locate(file: &Path, e: &config::ConfigError, map: Option<&SourceMap>) -> Problem {
    let pos = e.pos().or_else(|| map.and_then(|m| m.position(e.path())));
    let message = if e.path().is_empty() {
        e.message()
    } else {
        format!("{}: {}", e.path(), e.message())
    };
    Problem {
        file: file.to_path_buf(),
        pos: pos.map(|p| (p.line, p.col)),
        message,
    }
}

/// The entries of the model folder's lexically first sub-folder, which Triton inspects to
/// guess a missing backend.
fn first_folder_entries(dir: &ModelDir) -> Option<Vec<DirEntry>> {
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(&dir.path)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort_by(|a, b| {
        a.file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .cmp(&b.file_name().map(|n| n.as_encoded_bytes().to_vec()))
    });
    let first = subdirs.first()?;
    let mut entries: Vec<DirEntry> = std::fs::read_dir(first)
        .ok()?
        .flatten()
        .map(|e| DirEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            is_dir: e.path().is_dir(),
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Some(entries)
}

/// Everything short of creating instances. `supplied` replaces `config.pbtxt` (the
/// repository load API's config override).
pub fn prepare(
    dir: &ModelDir,
    supplied: Option<ModelConfig>,
    ctx: &PrepareContext,
) -> Result<Prepared, Vec<Problem>> {
    let config_path = dir.path.join(super::scan::CONFIG_FILE);
    let (mut cfg, map) = match supplied {
        Some(c) => (c, None),
        None => match read_config(dir)? {
            Some((c, m)) => (c, Some(m)),
            None if ctx.auto_complete => (ModelConfig::default(), None),
            None => {
                return Err(vec![Problem::at(
                    &config_path,
                    format!(
                        "model '{}' has no config.pbtxt and auto-complete is disabled (--strict-model-config)",
                        dir.name
                    ),
                )]);
            }
        },
    };
    let gpus: Vec<i32> = (0..ctx.gpu_count as i32).collect();
    let ensemble_decoupled = cfg
        .ensemble_scheduling()
        .is_some_and(|e| e.step.iter().any(|s| (ctx.is_decoupled)(&s.model_name)));
    let norm = NormalizeContext {
        model_name: dir.name.clone(),
        version_entries: first_folder_entries(dir),
        gpus: gpus.clone(),
        ensemble_decoupled,
    };
    config::normalize(&mut cfg, &norm).map_err(|e| vec![locate(&config_path, &e, map.as_ref())])?;

    let available: Vec<i64> = dir.versions.iter().map(|v| v.0).collect();
    let selected = policy::select(cfg.version_policy.as_ref(), &available);
    let versions: Vec<(i64, PathBuf)> = dir
        .versions
        .iter()
        .filter(|v| selected.contains(&v.0))
        .cloned()
        .collect();

    let backend = ctx.registry.get(&cfg.backend);
    if ctx.auto_complete
        && let (Some(b), Some((v, vdir))) = (&backend, versions.last())
    {
        let snapshot = cfg.clone();
        let mctx = ModelContext {
            name: &dir.name,
            version: *v,
            model_dir: &dir.path,
            version_dir: vdir,
            config: &snapshot,
        };
        if let Err(e) = b.auto_complete(&mctx, &mut cfg) {
            return Err(vec![Problem::at(
                &config_path,
                format!("auto-complete failed: {e}"),
            )]);
        }
        config::normalize(&mut cfg, &norm)
            .map_err(|e| vec![locate(&config_path, &e, map.as_ref())])?;
    }

    let mut known: Vec<&str> = ctx.registry.names();
    known.extend(TRITON_BACKENDS.iter().copied());
    known.sort_unstable();
    known.dedup();
    let vctx = config::ValidateContext {
        model_name: &dir.name,
        gpus: &gpus,
        backends: &known,
        source_map: map.as_ref(),
    };
    let mut problems: Vec<Problem> = config::validate(&cfg, &vctx)
        .iter()
        .map(|e| locate(&config_path, e, map.as_ref()))
        .collect();

    if let (Some(exists), Some(e)) = (ctx.model_exists, cfg.ensemble_scheduling()) {
        for (i, step) in e.step.iter().enumerate() {
            if !step.model_name.is_empty() && !exists(&step.model_name) {
                let err = config::ConfigError::invalid(
                    format!("ensemble_scheduling.step[{i}].model_name"),
                    format!(
                        "ensemble '{}' uses model '{}', which is in none of the repositories",
                        dir.name, step.model_name
                    ),
                );
                problems.push(locate(&config_path, &err, map.as_ref()));
            }
        }
    }
    if versions.is_empty() {
        problems.push(Problem::at(
            &dir.path,
            format!(
                "at least one version must be available under the version policy of model '{}'",
                dir.name
            ),
        ));
    }
    let ensemble = cfg.ensemble_scheduling().is_some() || cfg.platform == "ensemble";
    let needs_file = !ensemble && backend.as_ref().is_none_or(|b| b.needs_model_file());
    if needs_file && !cfg.default_model_filename.is_empty() {
        for (v, vdir) in &versions {
            let f = vdir.join(&cfg.default_model_filename);
            if !f.exists() {
                problems.push(Problem::at(
                    &f,
                    format!("model file of version {v} is missing"),
                ));
            }
        }
    }
    for (i, out) in cfg.output.iter().enumerate() {
        if !out.label_filename.is_empty() && !dir.path.join(&out.label_filename).is_file() {
            let e = config::ConfigError::invalid(
                format!("output[{i}].label_filename"),
                format!(
                    "labels file '{}' of output '{}' does not exist in the model folder",
                    out.label_filename, out.name
                ),
            );
            problems.push(locate(&config_path, &e, map.as_ref()));
        }
    }
    // Implicit state read from files: missing or mis-sized files show before any load.
    if let Some(seq) = cfg.sequence_batching()
        && let Err(e) = crate::scheduler::state::specs(seq, &dir.path)
    {
        let e = config::ConfigError::invalid("sequence_batching.state".to_string(), e.to_string());
        problems.push(locate(&config_path, &e, map.as_ref()));
    }
    if problems.is_empty() {
        Ok(Prepared {
            config: cfg,
            versions,
        })
    } else {
        Err(problems)
    }
}

/// Reads a labels file: one label per line.
pub fn read_labels(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::to_string)
        .collect())
}
