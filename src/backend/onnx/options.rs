//! Session options from the model config, read like Triton's onnxruntime backend reads
//! them (`ModelState::ModelState` in `onnxruntime.cc`): `parameters` keys
//! `intra_op_thread_count`, `inter_op_thread_count`, `execution_mode`, `enable_mem_arena`,
//! `enable_mem_pattern`, `session.use_device_allocator_for_initializers`,
//! `memory.enable_memory_arena_shrinkage`, and `optimization { graph { level } }`.

use ort::environment::Environment;
use ort::ep;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::backend::BackendError;
use crate::config::ModelConfig;

/// Intra-op threads when the config does not say. Triton leaves it to ONNX Runtime,
/// which starts one spinning thread per core for every session. Here each instance is
/// already a thread of its own (instance_group count is the unit of parallelism), the
/// machines are small (2 cores), and small models lose time to the pool's hand-offs, so
/// one instance runs on its own thread; `intra_op_thread_count: "0"` restores ONNX
/// Runtime's default.
pub const DEFAULT_INTRA_OP_THREADS: usize = 1;

/// Triton's `optimization { graph { level } }`: -1 basic, 1 extended, 2 disabled, anything
/// else (0 by default) all optimizations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphLevel {
    Basic,
    Extended,
    Disabled,
    All,
}

impl GraphLevel {
    pub fn from_config(level: i32) -> GraphLevel {
        match level {
            -1 => GraphLevel::Basic,
            1 => GraphLevel::Extended,
            2 => GraphLevel::Disabled,
            _ => GraphLevel::All,
        }
    }

    fn ort(self) -> GraphOptimizationLevel {
        match self {
            GraphLevel::Basic => GraphOptimizationLevel::Level1,
            GraphLevel::Extended => GraphOptimizationLevel::Level2,
            GraphLevel::Disabled => GraphOptimizationLevel::Disable,
            GraphLevel::All => GraphOptimizationLevel::All,
        }
    }
}

/// Where a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// The CUDA execution provider on this GPU ordinal.
    Cuda(i32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionSettings {
    /// 0 leaves the choice to ONNX Runtime (one per core).
    pub intra_op_threads: usize,
    /// `None` leaves the choice to ONNX Runtime; only used in parallel execution mode.
    pub inter_op_threads: Option<usize>,
    pub parallel: bool,
    pub level: GraphLevel,
    pub mem_arena: Option<bool>,
    pub mem_pattern: Option<bool>,
    pub device_allocator_for_initializers: Option<String>,
    /// Run option `memory.enable_memory_arena_shrinkage` (e.g. "cpu:0").
    pub arena_shrinkage: Option<String>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            intra_op_threads: DEFAULT_INTRA_OP_THREADS,
            inter_op_threads: None,
            parallel: false,
            level: GraphLevel::All,
            mem_arena: None,
            mem_pattern: None,
            device_allocator_for_initializers: None,
            arena_shrinkage: None,
        }
    }
}

fn param<'a>(cfg: &'a ModelConfig, key: &str) -> Option<&'a str> {
    cfg.parameters.get(key).map(|p| p.string_value.as_str())
}

fn int_param(model: &str, cfg: &ModelConfig, key: &str) -> Result<Option<i64>, BackendError> {
    param(cfg, key)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                BackendError::Load(format!(
                    "unable to load model '{model}': failed to convert '{v}' to integral number (parameter '{key}')"
                ))
            })
        })
        .transpose()
}

fn bool_param(model: &str, cfg: &ModelConfig, key: &str) -> Result<Option<bool>, BackendError> {
    param(cfg, key)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "1" => Ok(true),
            "false" | "off" | "0" => Ok(false),
            _ => Err(BackendError::Load(format!(
                "unable to load model '{model}': failed to convert '{v}' to boolean (parameter '{key}')"
            ))),
        })
        .transpose()
}

impl SessionSettings {
    pub fn from_config(model: &str, cfg: &ModelConfig) -> Result<SessionSettings, BackendError> {
        let mut s = SessionSettings::default();
        if let Some(n) = int_param(model, cfg, "intra_op_thread_count")? {
            s.intra_op_threads = usize::try_from(n).unwrap_or(0);
        }
        if let Some(n) = int_param(model, cfg, "inter_op_thread_count")? {
            s.inter_op_threads = usize::try_from(n).ok().filter(|&n| n > 0);
        }
        match int_param(model, cfg, "execution_mode")? {
            None | Some(0) => {}
            Some(1) => s.parallel = true,
            Some(n) => {
                return Err(BackendError::Load(format!(
                    "unable to load model '{model}': invalid configuration value provided, expected values for execution_mode are 0 or 1 but got {n}"
                )));
            }
        }
        if let Some(g) = cfg.optimization.as_ref().and_then(|o| o.graph.as_ref()) {
            s.level = GraphLevel::from_config(g.level);
        }
        s.mem_arena = bool_param(model, cfg, "enable_mem_arena")?;
        s.mem_pattern = bool_param(model, cfg, "enable_mem_pattern")?;
        s.device_allocator_for_initializers =
            param(cfg, "session.use_device_allocator_for_initializers").map(str::to_string);
        s.arena_shrinkage = param(cfg, "memory.enable_memory_arena_shrinkage").map(str::to_string);
        Ok(s)
    }

    /// A session builder with these settings on `device`.
    pub fn builder(&self, env: &Environment, device: Device) -> Result<SessionBuilder, String> {
        let msg = |e: ort::Error<SessionBuilder>| e.to_string();
        let mut b = SessionBuilder::new(env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(self.level.ort())
            .map_err(msg)?
            .with_parallel_execution(self.parallel)
            .map_err(msg)?;
        if self.intra_op_threads > 0 {
            b = b.with_intra_threads(self.intra_op_threads).map_err(msg)?;
        }
        if let Some(n) = self.inter_op_threads {
            b = b.with_inter_threads(n).map_err(msg)?;
        }
        if let Some(on) = self.mem_pattern {
            b = b.with_memory_pattern(on).map_err(msg)?;
        }
        if let Some(v) = &self.device_allocator_for_initializers {
            b = b
                .with_config_entry("session.use_device_allocator_for_initializers", v)
                .map_err(msg)?;
        }
        let mut providers = Vec::new();
        if let Device::Cuda(id) = device {
            providers.push(
                ep::CUDA::default()
                    .with_device_id(id)
                    .build()
                    .error_on_failure(),
            );
        }
        if let Some(on) = self.mem_arena {
            providers.push(
                ep::CPU::default()
                    .with_arena_allocator(on)
                    .build()
                    .error_on_failure(),
            );
        }
        if !providers.is_empty() {
            b = b.with_execution_providers(providers).map_err(msg)?;
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::model_optimization_policy::Graph;
    use crate::proto::inference::{ModelOptimizationPolicy, ModelParameter};

    fn cfg(params: &[(&str, &str)], level: Option<i32>) -> ModelConfig {
        ModelConfig {
            parameters: params
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        ModelParameter {
                            string_value: v.to_string(),
                        },
                    )
                })
                .collect(),
            optimization: level.map(|level| ModelOptimizationPolicy {
                graph: Some(Graph { level }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[track_caller]
    fn check(params: &[(&str, &str)], level: Option<i32>, want: SessionSettings) {
        assert_eq!(
            SessionSettings::from_config("m", &cfg(params, level)).unwrap(),
            want
        );
    }

    #[test]
    fn defaults() {
        check(&[], None, SessionSettings::default());
        assert_eq!(SessionSettings::default().intra_op_threads, 1);
    }

    #[test]
    fn triton_parameters() {
        let d = SessionSettings::default;
        check(
            &[("intra_op_thread_count", "0")],
            None,
            SessionSettings {
                intra_op_threads: 0,
                ..d()
            },
        );
        check(
            &[
                ("intra_op_thread_count", "2"),
                ("inter_op_thread_count", "3"),
            ],
            None,
            SessionSettings {
                intra_op_threads: 2,
                inter_op_threads: Some(3),
                ..d()
            },
        );
        check(
            &[("execution_mode", "1"), ("inter_op_thread_count", "0")],
            None,
            SessionSettings {
                parallel: true,
                ..d()
            },
        );
        check(
            &[("enable_mem_arena", "Off"), ("enable_mem_pattern", "true")],
            None,
            SessionSettings {
                mem_arena: Some(false),
                mem_pattern: Some(true),
                ..d()
            },
        );
        check(
            &[("memory.enable_memory_arena_shrinkage", "cpu:0")],
            None,
            SessionSettings {
                arena_shrinkage: Some("cpu:0".into()),
                ..d()
            },
        );
    }

    #[test]
    fn graph_levels_follow_triton() {
        let level = |l| {
            SessionSettings::from_config("m", &cfg(&[], Some(l)))
                .unwrap()
                .level
        };
        assert_eq!(level(-1), GraphLevel::Basic);
        assert_eq!(level(0), GraphLevel::All);
        assert_eq!(level(1), GraphLevel::Extended);
        assert_eq!(level(2), GraphLevel::Disabled);
        assert_eq!(level(7), GraphLevel::All);
    }

    #[test]
    fn bad_values() {
        let err = |p: &[(&str, &str)]| {
            SessionSettings::from_config("m", &cfg(p, None))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("execution_mode", "2")]),
            "unable to load model 'm': invalid configuration value provided, expected values for execution_mode are 0 or 1 but got 2"
        );
        assert!(err(&[("intra_op_thread_count", "many")]).contains("'many' to integral number"));
        assert!(err(&[("enable_mem_arena", "yes")]).contains("'yes' to boolean"));
    }
}
