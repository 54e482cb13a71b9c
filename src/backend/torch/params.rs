//! The model config `parameters` Triton's PyTorch backend reads, parsed as it parses them
//! (booleans: true/false, on/off, 1/0 in any case; integers: decimal).

use crate::config::ModelConfig;

/// Intra-op threads when the config names none: one per instance, so instances (not
/// threads inside one execution) share the cores.
pub const DEFAULT_INTRA_OP_THREADS: i32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// `INTRA_OP_THREAD_COUNT` for the instance thread; `None` (a count below 1) leaves
    /// libtorch's process-wide value.
    pub intra_op_threads: Option<i32>,
    /// `INTER_OP_THREAD_COUNT`: process-wide, the first model that sets it wins (as in Triton).
    pub inter_op_threads: Option<i32>,
    /// Not `DISABLE_OPTIMIZED_EXECUTION`.
    pub optimized_execution: bool,
    /// `INFERENCE_MODE`: accepted; tch has no inference-mode guard, so execution always
    /// runs under no_grad, which gives the same results.
    pub inference_mode: bool,
    /// Not `DISABLE_CUDNN` (GPU instances only).
    pub cudnn: bool,
    /// `ENABLE_JIT_PROFILING`, process-wide; `None` leaves libtorch's setting.
    pub jit_profiling: Option<bool>,
    /// `ENABLE_TENSOR_FUSER`, process-wide; `None` leaves libtorch's setting.
    pub tensor_fuser: Option<bool>,
    /// Parameters that are valid for Triton but have no effect here (with the reason).
    pub ignored: Vec<(&'static str, &'static str)>,
}

/// Parameters that parse but do nothing in this backend, and why.
const IGNORED: [(&str, &str); 4] = [
    (
        "ENABLE_JIT_EXECUTOR",
        "tch offers no switch for the JIT executor mode",
    ),
    (
        "ENABLE_WEIGHT_SHARING",
        "each instance loads its own copy of the module on its own thread",
    ),
    ("ENABLE_CACHE_CLEANING", "tch offers no CUDA cache control"),
    ("ENABLE_NVFUSER", "nvfuser is gone from libtorch 2.x"),
];

impl Params {
    pub fn from_config(cfg: &ModelConfig) -> Result<Params, String> {
        let get = |key: &str| cfg.parameters.get(key).map(|p| p.string_value.as_str());
        let intra = match get("INTRA_OP_THREAD_COUNT").or_else(|| get("intra_op_thread_count")) {
            None => Some(DEFAULT_INTRA_OP_THREADS),
            // Triton leaves libtorch's default in place for counts below 1.
            Some(v) => Some(parse_int("INTRA_OP_THREAD_COUNT", v)?).filter(|&n| n > 0),
        };
        let inter = match get("INTER_OP_THREAD_COUNT").or_else(|| get("inter_op_thread_count")) {
            None => None,
            Some(v) => Some(parse_int("INTER_OP_THREAD_COUNT", v)?).filter(|&n| n > 0),
        };
        let flag = |key: &str| get(key).map(|v| parse_bool(key, v)).transpose();
        let mut ignored = Vec::new();
        for (key, why) in IGNORED {
            if flag(key)? == Some(true) {
                ignored.push((key, why));
            }
        }
        Ok(Params {
            intra_op_threads: intra,
            inter_op_threads: inter,
            optimized_execution: !flag("DISABLE_OPTIMIZED_EXECUTION")?.unwrap_or(false),
            inference_mode: flag("INFERENCE_MODE")?.unwrap_or(true),
            cudnn: !flag("DISABLE_CUDNN")?.unwrap_or(false),
            jit_profiling: flag("ENABLE_JIT_PROFILING")?,
            tensor_fuser: flag("ENABLE_TENSOR_FUSER")?,
            ignored,
        })
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "parameter '{key}': failed to convert '{value}' to boolean"
        )),
    }
}

fn parse_int(key: &str, value: &str) -> Result<i32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("parameter '{key}': failed to convert '{value}' to integral number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::ModelParameter;

    fn params(pairs: &[(&str, &str)]) -> Result<Params, String> {
        let mut cfg = ModelConfig::default();
        for (k, v) in pairs {
            cfg.parameters.insert(
                k.to_string(),
                ModelParameter {
                    string_value: v.to_string(),
                },
            );
        }
        Params::from_config(&cfg)
    }

    #[test]
    fn defaults() {
        let p = params(&[]).unwrap();
        assert_eq!(p.intra_op_threads, Some(1));
        assert_eq!(p.inter_op_threads, None);
        assert!(p.optimized_execution && p.inference_mode && p.cudnn);
        assert_eq!((p.jit_profiling, p.tensor_fuser), (None, None));
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn thread_counts() {
        assert_eq!(
            params(&[("INTRA_OP_THREAD_COUNT", "2")])
                .unwrap()
                .intra_op_threads,
            Some(2)
        );
        assert_eq!(
            params(&[("intra_op_thread_count", " 3 ")])
                .unwrap()
                .intra_op_threads,
            Some(3)
        );
        assert_eq!(
            params(&[("INTRA_OP_THREAD_COUNT", "0")])
                .unwrap()
                .intra_op_threads,
            None
        );
        assert_eq!(
            params(&[("INTER_OP_THREAD_COUNT", "4")])
                .unwrap()
                .inter_op_threads,
            Some(4)
        );
        assert_eq!(
            params(&[("INTRA_OP_THREAD_COUNT", "two")]).unwrap_err(),
            "parameter 'INTRA_OP_THREAD_COUNT': failed to convert 'two' to integral number"
        );
    }

    #[test]
    fn flags() {
        let p = params(&[
            ("DISABLE_OPTIMIZED_EXECUTION", "TRUE"),
            ("INFERENCE_MODE", "off"),
            ("DISABLE_CUDNN", "1"),
            ("ENABLE_JIT_PROFILING", "false"),
            ("ENABLE_TENSOR_FUSER", "On"),
            ("ENABLE_WEIGHT_SHARING", "true"),
            ("ENABLE_CACHE_CLEANING", "false"),
        ])
        .unwrap();
        assert!(!p.optimized_execution && !p.inference_mode && !p.cudnn);
        assert_eq!((p.jit_profiling, p.tensor_fuser), (Some(false), Some(true)));
        assert_eq!(p.ignored.len(), 1);
        assert_eq!(p.ignored[0].0, "ENABLE_WEIGHT_SHARING");
        assert_eq!(
            params(&[("DISABLE_OPTIMIZED_EXECUTION", "yes")]).unwrap_err(),
            "parameter 'DISABLE_OPTIMIZED_EXECUTION': failed to convert 'yes' to boolean"
        );
    }
}
