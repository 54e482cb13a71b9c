//! Health, server and model metadata, model configuration, readiness and statistics, as
//! Triton writes them (field order included).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::json;
use super::{empty, json_response, path_version};
use crate::proto::inference as pb;
use crate::server::{ServerState, common};

pub fn health(ok: bool) -> Response {
    empty(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        super::error::PLAIN,
    )
}

pub fn server_metadata(name: &str) -> Response {
    let m = common::server_metadata(name);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"name\":");
    json::escape_into(&mut out, m.name.as_bytes());
    out.extend_from_slice(b",\"version\":");
    json::escape_into(&mut out, m.version.as_bytes());
    out.extend_from_slice(b",\"extensions\":");
    strings(&mut out, &m.extensions);
    out.push(b'}');
    json_response(StatusCode::OK, out)
}

fn strings(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::escape_into(out, s.as_bytes());
    }
    out.push(b']');
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200, or 400 "Model version not ready".
pub fn model_ready(state: &ServerState, name: &str, version: Option<&str>) -> ApiResult {
    let version = path_version(version).map_err(ApiError::plain)?;
    match state.manager.get(name, version) {
        Ok(_) => Ok(empty(StatusCode::OK, super::error::PLAIN)),
        Err(_) => Err(ApiError::new(StatusCode::BAD_REQUEST, "Model version not ready").plain()),
    }
}

pub fn model_metadata(state: &ServerState, name: &str, version: Option<&str>) -> ApiResult {
    let v = path_version(version)?;
    let mut m = common::model_metadata(state, name, v)?;
    // A versioned request describes that version only, as Triton answers it.
    if let Some(v) = v {
        m.versions = vec![v.to_string()];
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"name\":");
    json::escape_into(&mut out, m.name.as_bytes());
    out.extend_from_slice(b",\"versions\":");
    strings(&mut out, &m.versions);
    out.extend_from_slice(b",\"platform\":");
    json::escape_into(&mut out, m.platform.as_bytes());
    for (key, tensors) in [("inputs", &m.inputs), ("outputs", &m.outputs)] {
        out.extend_from_slice(format!(",\"{key}\":[").as_bytes());
        for (i, t) in tensors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            json::escape_into(&mut out, t.name.as_bytes());
            out.extend_from_slice(b",\"datatype\":");
            json::escape_into(&mut out, t.datatype.as_bytes());
            out.extend_from_slice(b",\"shape\":[");
            for (k, d) in t.shape.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                json::write_i64(&mut out, *d);
            }
            out.extend_from_slice(b"]}");
        }
        out.push(b']');
    }
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

pub fn model_config(state: &ServerState, name: &str, version: Option<&str>) -> ApiResult {
    let v = path_version(version)?;
    let mv = state.manager.get(name, v)?;
    let body = serde_json::to_vec(&crate::config::to_json(&mv.config)).map_err(|e| {
        ApiError::from(crate::status::Status::internal(format!(
            "cannot write the model config: {e}"
        )))
    })?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /v2/models[/{m}[/versions/{v}]]/stats`, in the layout of Triton's JSON.
pub fn stats(state: &Arc<ServerState>, name: &str, version: Option<&str>) -> ApiResult {
    let v = path_version(version)?;
    let s = common::model_statistics(state, name, v)?;
    Ok(json_response(StatusCode::OK, stats_json(&s)))
}

fn duration(out: &mut Vec<u8>, key: &str, d: &Option<pb::StatisticDuration>) {
    let d = d.unwrap_or_default();
    out.extend_from_slice(format!("\"{key}\":{{\"count\":").as_bytes());
    json::write_u64(out, d.count);
    out.extend_from_slice(b",\"ns\":");
    json::write_u64(out, d.ns);
    out.push(b'}');
}

fn durations(out: &mut Vec<u8>, items: &[(&str, &Option<pb::StatisticDuration>)]) {
    for (i, (k, d)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        duration(out, k, d);
    }
}

pub fn stats_json(s: &pb::ModelStatisticsResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"model_stats\":[");
    for (i, m) in s.model_stats.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        json::escape_into(&mut out, m.name.as_bytes());
        out.extend_from_slice(b",\"version\":");
        json::escape_into(&mut out, m.version.as_bytes());
        for (k, v) in [
            ("last_inference", m.last_inference),
            ("inference_count", m.inference_count),
            ("execution_count", m.execution_count),
        ] {
            out.extend_from_slice(format!(",\"{k}\":").as_bytes());
            json::write_u64(&mut out, v);
        }
        let is = m.inference_stats.unwrap_or_default();
        out.extend_from_slice(b",\"inference_stats\":{");
        durations(
            &mut out,
            &[
                ("success", &is.success),
                ("fail", &is.fail),
                ("queue", &is.queue),
                ("compute_input", &is.compute_input),
                ("compute_infer", &is.compute_infer),
                ("compute_output", &is.compute_output),
                ("cache_hit", &is.cache_hit),
                ("cache_miss", &is.cache_miss),
            ],
        );
        out.extend_from_slice(b"},\"response_stats\":{");
        let mut keys: Vec<&String> = m.response_stats.keys().collect();
        keys.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        for (j, k) in keys.into_iter().enumerate() {
            let r = &m.response_stats[k];
            if j > 0 {
                out.push(b',');
            }
            json::escape_into(&mut out, k.as_bytes());
            out.extend_from_slice(b":{");
            durations(
                &mut out,
                &[
                    ("compute_infer", &r.compute_infer),
                    ("compute_output", &r.compute_output),
                    ("success", &r.success),
                    ("fail", &r.fail),
                    ("empty_response", &r.empty_response),
                    ("cancel", &r.cancel),
                ],
            );
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"batch_stats\":[");
        for (j, b) in m.batch_stats.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"batch_size\":");
            json::write_u64(&mut out, b.batch_size);
            out.push(b',');
            durations(
                &mut out,
                &[
                    ("compute_input", &b.compute_input),
                    ("compute_infer", &b.compute_infer),
                    ("compute_output", &b.compute_output),
                ],
            );
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"memory_usage\":[");
        for (j, u) in m.memory_usage.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":");
            json::escape_into(&mut out, u.r#type.as_bytes());
            out.extend_from_slice(b",\"id\":");
            json::write_i64(&mut out, u.id);
            out.extend_from_slice(b",\"byte_size\":");
            json::write_u64(&mut out, u.byte_size);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_layout_is_tritons() {
        let d = |c, n| Some(pb::StatisticDuration { count: c, ns: n });
        let mut m = pb::ModelStatistics {
            name: "simple".into(),
            version: "1".into(),
            last_inference: 5,
            inference_count: 12,
            execution_count: 11,
            inference_stats: Some(pb::InferStatistics {
                success: d(11, 49),
                ..Default::default()
            }),
            batch_stats: vec![pb::InferBatchStatistics {
                batch_size: 1,
                compute_input: d(10, 42),
                compute_infer: d(10, 47),
                compute_output: d(10, 9),
            }],
            memory_usage: vec![pb::MemoryUsage {
                r#type: "CPU".into(),
                id: 0,
                byte_size: 64,
            }],
            response_stats: Default::default(),
        };
        m.response_stats.insert(
            "0".into(),
            pb::InferResponseStatistics {
                success: d(1, 2),
                ..Default::default()
            },
        );
        let text = String::from_utf8(stats_json(&pb::ModelStatisticsResponse {
            model_stats: vec![m],
        }))
        .unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"model_stats":[{"name":"simple","version":"1","last_inference":5,"inference_count":12,"execution_count":11,"#,
                r#""inference_stats":{"success":{"count":11,"ns":49},"fail":{"count":0,"ns":0},"queue":{"count":0,"ns":0},"compute_input":{"count":0,"ns":0},"compute_infer":{"count":0,"ns":0},"compute_output":{"count":0,"ns":0},"cache_hit":{"count":0,"ns":0},"cache_miss":{"count":0,"ns":0}},"#,
                r#""response_stats":{"0":{"compute_infer":{"count":0,"ns":0},"compute_output":{"count":0,"ns":0},"success":{"count":1,"ns":2},"fail":{"count":0,"ns":0},"empty_response":{"count":0,"ns":0},"cancel":{"count":0,"ns":0}}},"#,
                r#""batch_stats":[{"batch_size":1,"compute_input":{"count":10,"ns":42},"compute_infer":{"count":10,"ns":47},"compute_output":{"count":10,"ns":9}}],"#,
                r#""memory_usage":[{"type":"CPU","id":0,"byte_size":64}]}]}"#
            )
        );
    }
}
