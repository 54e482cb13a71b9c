//! Answers shared by the HTTP and gRPC frontends, built once as the protocol's messages:
//! gRPC sends them as they are, HTTP writes their JSON form.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ServerState;
use crate::proto::inference as pb;
use crate::repository::ModelVersion;
use crate::stats::DurationStat;
use crate::status::Status;

pub const SERVER_NAME: &str = "despina";

/// The protocol extensions despina implements, in Triton's order. CUDA shared memory is
/// answered as Triton answers on a machine without a GPU (nothing can be registered).
pub const EXTENSIONS: &[&str] = &[
    "classification",
    "sequence",
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "system_shared_memory",
    "cuda_shared_memory",
    "binary_tensor_data",
    "parameters",
    "statistics",
    "trace",
    "logging",
];

pub fn server_metadata(name: &str) -> pb::ServerMetadataResponse {
    pb::ServerMetadataResponse {
        name: name.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Parses a version as clients send it: empty means "the default version". Triton reads it
/// with `std::stol` (leading whitespace, a sign and digits; the rest is ignored), refuses
/// negative numbers and looks 0 up like any other version.
pub fn parse_version(v: &str) -> Result<Option<i64>, Status> {
    if v.is_empty() {
        return Ok(None);
    }
    let n = stol(v).ok_or_else(|| {
        Status::invalid_arg(format!(
            "failed to get model version from specified version string '{v}' (details: stol), version should be an integral value > 0"
        ))
    })?;
    if n < 0 {
        return Err(Status::invalid_arg(format!(
            "invalid model version specified '{v}' , version should be an integral value > 0"
        )));
    }
    Ok(Some(n))
}

/// `std::stol` in base 10: `None` where it would throw (no digits, or out of range).
fn stol(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let sign = usize::from(t.starts_with(['+', '-']));
    let digits = t[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    t[..sign + digits].parse().ok()
}

pub fn model_metadata(
    state: &ServerState,
    name: &str,
    version: Option<i64>,
) -> Result<pb::ModelMetadataResponse, Status> {
    let mv = state.manager.get(name, version)?;
    let tensor = |s: &crate::request::validate::IoSpec| {
        let mut shape = s.dims.clone();
        if mv.io.max_batch_size > 0 {
            shape.insert(0, -1);
        }
        pb::model_metadata_response::TensorMetadata {
            name: s.name.clone(),
            datatype: s.datatype.wire_name().into(),
            shape,
        }
    };
    let platform = if mv.config.platform.is_empty() {
        mv.config.backend.clone()
    } else {
        mv.config.platform.clone()
    };
    Ok(pb::ModelMetadataResponse {
        name: mv.name.clone(),
        // A request for one version lists only that one, as Triton does.
        versions: match version {
            Some(_) => vec![mv.version.to_string()],
            None => state
                .manager
                .versions(name)
                .iter()
                .map(|v| v.to_string())
                .collect(),
        },
        platform,
        inputs: mv.io.inputs.iter().map(tensor).collect(),
        outputs: mv.io.outputs.iter().map(tensor).collect(),
    })
}

fn duration(d: &DurationStat) -> Option<pb::StatisticDuration> {
    Some(pb::StatisticDuration {
        count: d.count(),
        ns: d.ns(),
    })
}

fn version_stats(v: &ModelVersion) -> pb::ModelStatistics {
    let s = &v.stats;
    pb::ModelStatistics {
        name: v.name.clone(),
        version: v.version.to_string(),
        last_inference: s.last_inference_ms.load(Ordering::Relaxed),
        inference_count: s.inference_count.load(Ordering::Relaxed),
        execution_count: s.execution_count.load(Ordering::Relaxed),
        inference_stats: Some(pb::InferStatistics {
            success: duration(&s.success),
            fail: duration(&s.fail),
            queue: duration(&s.queue),
            compute_input: duration(&s.compute_input),
            compute_infer: duration(&s.compute_infer),
            compute_output: duration(&s.compute_output),
            cache_hit: duration(&s.cache_hit),
            cache_miss: duration(&s.cache_miss),
        }),
        batch_stats: s
            .batch_stats()
            .into_iter()
            .map(|(size, b)| pb::InferBatchStatistics {
                batch_size: size,
                compute_input: duration(&b.compute_input),
                compute_infer: duration(&b.compute_infer),
                compute_output: duration(&b.compute_output),
            })
            .collect(),
        memory_usage: Vec::new(),
        response_stats: Default::default(),
    }
}

/// Statistics of every serving version, of one model, or of one version.
pub fn model_statistics(
    state: &ServerState,
    name: &str,
    version: Option<i64>,
) -> Result<pb::ModelStatisticsResponse, Status> {
    let versions: Vec<Arc<ModelVersion>> = if name.is_empty() {
        state.manager.serving()
    } else {
        let all: Vec<Arc<ModelVersion>> = state
            .manager
            .serving()
            .into_iter()
            .filter(|v| v.name == name)
            .collect();
        if all.is_empty() {
            return Err(Status::invalid_arg(format!(
                "requested model '{name}' is not available"
            )));
        }
        match version {
            None => all,
            Some(want) => {
                let one: Vec<_> = all.into_iter().filter(|v| v.version == want).collect();
                if one.is_empty() {
                    return Err(Status::invalid_arg(format!(
                        "requested model version is not available for model '{name}'"
                    )));
                }
                one
            }
        }
    };
    Ok(pb::ModelStatisticsResponse {
        model_stats: versions.iter().map(|v| version_stats(v)).collect(),
    })
}

pub fn repository_index(state: &ServerState, ready_only: bool) -> pb::RepositoryIndexResponse {
    pb::RepositoryIndexResponse {
        models: state
            .manager
            .index(ready_only)
            .into_iter()
            .map(|e| pb::repository_index_response::ModelIndex {
                name: e.name,
                version: e.version.map(|v| v.to_string()).unwrap_or_default(),
                state: e.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
                reason: e.reason,
            })
            .collect(),
    }
}

/// The model control API (load, unload) works in explicit mode only; Triton's answer otherwise.
pub fn check_model_control(state: &ServerState) -> Result<(), Status> {
    if state.manager.control_mode() == crate::repository::ControlMode::Explicit {
        Ok(())
    } else {
        Err(Status::unavailable(
            "explicit model load / unload is not allowed if polling is enabled",
        ))
    }
}

/// Triton refuses to turn tracing on while no trace file is set (only the command line sets
/// one), before applying any of the update.
pub fn check_trace_update(
    state: &ServerState,
    model: Option<&str>,
    updates: &[(String, Option<Vec<String>>)],
) -> Result<(), Status> {
    let current = state.settings.trace(model);
    let level = match updates.iter().rev().find(|(k, _)| k == "trace_level") {
        Some((_, Some(level))) => level.clone(),
        Some((_, None)) if model.is_some() => state.settings.trace(None).level,
        Some((_, None)) => vec!["OFF".to_string()],
        None => current.level.clone(),
    };
    if level.iter().any(|l| l != "OFF") && current.file.is_empty() {
        return Err(Status::invalid_arg(
            "Attempting to set invalid trace setting :trace file name is not given",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(v: &str, want: Result<Option<i64>, &str>) {
        match (parse_version(v), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{v:?}"),
            (Err(got), Err(want)) => {
                assert!(got.message.starts_with(want), "{v:?}: {}", got.message)
            }
            (got, want) => panic!("{v:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn versions_read_like_stol() {
        check("", Ok(None));
        check("1", Ok(Some(1)));
        check("00002", Ok(Some(2)));
        check(" +3", Ok(Some(3)));
        check("\n1", Ok(Some(1)));
        check("1abc", Ok(Some(1)));
        check("1.5", Ok(Some(1)));
        check("0", Ok(Some(0)));
        check("-0", Ok(Some(0)));
        check("0x1", Ok(Some(0)));
        check("9223372036854775807", Ok(Some(i64::MAX)));
        check(
            "abc",
            Err(
                "failed to get model version from specified version string 'abc' (details: stol), version should be an integral value > 0",
            ),
        );
        check(
            "-",
            Err("failed to get model version from specified version string '-' (details: stol)"),
        );
        check(
            "99999999999999999999",
            Err(
                "failed to get model version from specified version string '99999999999999999999' (details: stol)",
            ),
        );
        check(
            "-1",
            Err("invalid model version specified '-1' , version should be an integral value > 0"),
        );
        check(
            " -01",
            Err("invalid model version specified ' -01' , version should be an integral value > 0"),
        );
    }
}
