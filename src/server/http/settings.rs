//! The trace and logging extensions: `GET/POST /v2/trace/setting`,
//! `GET/POST /v2/models/{m}/trace/setting` and `GET/POST /v2/logging`, read and applied
//! through the server's settings (so they change what the server does).

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::error::ApiResult;
use super::json::{self, NOT_ARRAY, NOT_STRING, parse_value, value_bool, value_str, value_u64};
use super::json_response;
use crate::server::settings::LogValue;
use crate::server::{ServerState, common};
use crate::status::Status;

pub fn trace(state: &ServerState, model: Option<&str>, method: &Method, body: &[u8]) -> ApiResult {
    if let Some(m) = model
        && state.manager.get(m, None).is_err()
    {
        return Err(Status::invalid_arg(format!("Request for unknown model : {m}")).into());
    }
    if method == Method::POST {
        let doc = parse_value(body, false)?.unwrap_or(Value::Null);
        let updates = trace_updates(&doc)?;
        common::check_trace_update(state, model, &updates)?;
        if !updates.is_empty() {
            state.settings.update_trace(model, &updates)?;
        }
    }
    let settings = state.settings.trace(model);
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (key, values)) in settings.to_map().into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::escape_into(&mut out, key.as_bytes());
        out.push(b':');
        if key == "trace_level" {
            out.push(b'[');
            for (j, v) in values.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                json::escape_into(&mut out, v.as_bytes());
            }
            out.push(b']');
        } else {
            json::escape_into(
                &mut out,
                values.first().map_or("", String::as_str).as_bytes(),
            );
        }
    }
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

/// One trace setting to change; `None` clears it.
type TraceUpdate = (String, Option<Vec<String>>);

/// The updates a trace setting request asks for, checked as Triton checks them; `None`
/// clears a setting (a model's goes back to the global one).
fn trace_updates(doc: &Value) -> Result<Vec<TraceUpdate>, Status> {
    let mut updates = Vec::new();
    if doc.get("trace_file").is_some() {
        return Err(Status::unsupported(
            "trace file location can not be updated through network protocol",
        ));
    }
    if let Some(v) = doc.get("trace_level") {
        if v.is_null() {
            updates.push(("trace_level".to_string(), None));
        } else {
            let items = v.as_array().ok_or_else(|| Status::internal(NOT_ARRAY))?;
            let mut levels: Vec<String> = Vec::new();
            for item in items {
                let l = item.as_str().ok_or_else(|| Status::internal(NOT_STRING))?;
                match l {
                    "OFF" if items.len() > 1 => {
                        return Err(Status::invalid_arg(
                            "Expect only one trace level 'OFF' is specified",
                        ));
                    }
                    "OFF" | "TIMESTAMPS" | "TENSORS" if !levels.iter().any(|x| x == l) => {
                        levels.push(l.to_string())
                    }
                    // Triton ignores levels it does not know.
                    _ => {}
                }
            }
            if !levels.is_empty() {
                updates.push(("trace_level".to_string(), Some(levels)));
            }
        }
    }
    for (key, min) in [
        ("trace_rate", 0i64),
        ("trace_count", -1),
        ("log_frequency", 0),
    ] {
        let Some(v) = doc.get(key) else { continue };
        if v.is_null() {
            updates.push((key.to_string(), None));
            continue;
        }
        let text = v.as_str().ok_or_else(|| Status::internal(NOT_STRING))?;
        let n = stoi(text)
            .ok_or_else(|| Status::invalid_arg(format!("Unable to parse '{key}', got: {text}")))?;
        if key == "trace_count" && n < min {
            return Err(Status::invalid_arg(format!(
                "Unable to parse 'trace_count'. Expecting value >= -1, got:{text}"
            )));
        }
        updates.push((key.to_string(), Some(vec![n.to_string()])));
    }
    Ok(updates)
}

/// C++ `std::stoi`: leading spaces, a sign and digits; what follows is ignored.
fn stoi(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().ok()?;
    i32::try_from(sign * n).ok().map(i64::from)
}

pub fn logging(state: &ServerState, method: &Method, body: &[u8]) -> ApiResult {
    if method == Method::POST {
        let doc = parse_value(body, false)?.unwrap_or(Value::Null);
        let mut updates: Vec<(String, LogValue)> = Vec::new();
        let field = |k: &str| doc.get(k).filter(|v| !v.is_null());
        if field("log_file").is_some() {
            return Err(Status::unsupported(
                "log file location can not be updated through network protocol",
            )
            .into());
        }
        for key in ["log_info", "log_warning", "log_error"] {
            if let Some(v) = field(key) {
                updates.push((
                    key.into(),
                    LogValue::Bool(value_bool(v).map_err(Status::internal)?),
                ));
            }
        }
        if let Some(v) = field("log_verbose_level") {
            let level = value_u64(v).map_err(Status::internal)?;
            updates.push((
                "log_verbose_level".into(),
                LogValue::Uint(u32::try_from(level).unwrap_or(u32::MAX)),
            ));
        }
        if let Some(v) = field("log_format") {
            let f = value_str(v).map_err(Status::internal)?;
            if f != "default" && f != "ISO8601" {
                return Err(Status::unavailable(format!(
                    "invalid argument for --log_format, got: {f}"
                ))
                .into());
            }
            updates.push(("log_format".into(), LogValue::Str(f.to_string())));
        }
        if !updates.is_empty() {
            state.settings.update_log(&updates)?;
        }
    }
    let mut out = Vec::with_capacity(160);
    out.push(b'{');
    for (i, (key, value)) in state.settings.log().to_map().into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::escape_into(&mut out, key.as_bytes());
        out.push(b':');
        match value {
            LogValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            LogValue::Uint(u) => json::write_u64(&mut out, u.into()),
            LogValue::Str(s) => json::escape_into(&mut out, s.as_bytes()),
        }
    }
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updates(body: &str) -> Result<Vec<TraceUpdate>, Status> {
        trace_updates(&serde_json::from_str(body).unwrap())
    }

    #[test]
    fn trace_requests_like_triton() {
        let s = |v: &str| Some(vec![v.to_string()]);
        assert_eq!(
            updates(r#"{"trace_level":["TIMESTAMPS","BOGUS"],"trace_rate":"1","trace_count":null,"log_frequency":" 3x"}"#).unwrap(),
            vec![
                ("trace_level".into(), s("TIMESTAMPS")),
                ("trace_rate".into(), s("1")),
                ("trace_count".into(), None),
                ("log_frequency".into(), s("3")),
            ]
        );
        assert_eq!(
            updates(r#"{"unknown":1,"trace_mode":"x"}"#).unwrap(),
            vec![]
        );
        let e = |b: &str| updates(b).unwrap_err();
        assert_eq!(
            e(r#"{"trace_file":"/tmp/x"}"#).code,
            crate::status::Code::Unsupported
        );
        assert_eq!(
            e(r#"{"trace_rate":1}"#).message,
            "attempt to access JSON non-string as string"
        );
        assert_eq!(
            e(r#"{"trace_rate":"abc"}"#).message,
            "Unable to parse 'trace_rate', got: abc"
        );
        assert_eq!(
            e(r#"{"trace_level":"TIMESTAMPS"}"#).message,
            "attempt to access JSON non-array as array"
        );
        assert_eq!(
            e(r#"{"trace_level":["OFF","TIMESTAMPS"]}"#).message,
            "Expect only one trace level 'OFF' is specified"
        );
        assert_eq!(
            e(r#"{"trace_count":"-5"}"#).message,
            "Unable to parse 'trace_count'. Expecting value >= -1, got:-5"
        );
        assert_eq!(stoi("99999999999"), None);
    }
}
