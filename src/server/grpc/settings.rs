//! The trace and logging extensions over gRPC. The values go to `state.settings`, which
//! changes what the server traces and logs; this file only speaks Triton's gRPC dialect of
//! them (which keys are ignored, which refused, and the messages).

use std::collections::HashMap;

use super::ServerState;
use crate::proto::inference as pb;
use crate::proto::inference::log_settings_request::setting_value::ParameterChoice as L;
use crate::proto::inference::log_settings_response::setting_value::ParameterChoice as LOut;
use crate::server::settings::{LogValue, TraceSettings};
use crate::status::Status;

/// A key and its new value; `None` resets it.
type TraceUpdate = (String, Option<Vec<String>>);

pub(super) fn trace(
    state: &ServerState,
    r: pb::TraceSettingRequest,
) -> Result<pb::TraceSettingResponse, Status> {
    let model = (!r.model_name.is_empty()).then_some(r.model_name.as_str());
    if let Some(m) = model
        && state.manager.get(m, None).is_err()
    {
        return Err(Status::invalid_arg(format!(
            "Request for unknown model : {m}"
        )));
    }
    let current = state.settings.trace(model);
    let settings = if r.settings.is_empty() {
        current
    } else {
        let updates = trace_updates(r.settings, &current)?;
        state.settings.update_trace(model, &updates)?
    };
    Ok(trace_response(&settings))
}

/// Triton's reading of a trace update: unknown keys and `trace_mode` are ignored, the file
/// cannot be changed over the network, an empty value resets the key.
fn trace_updates(
    settings: HashMap<String, pb::trace_setting_request::SettingValue>,
    current: &TraceSettings,
) -> Result<Vec<TraceUpdate>, Status> {
    let mut updates = Vec::new();
    for (key, setting) in settings {
        let value = setting.value;
        match key.as_str() {
            "trace_file" => {
                return Err(Status::unsupported(
                    "trace file location can not be updated through network protocol",
                ));
            }
            "trace_level" | "trace_rate" | "trace_count" | "log_frequency" if value.is_empty() => {
                updates.push((key, None));
            }
            "trace_level" => {
                if value.len() > 1 && value.iter().any(|l| l == "OFF") {
                    return Err(Status::invalid_arg(
                        "Expect only one trace level 'OFF' is specified",
                    ));
                }
                // Levels Triton does not know add nothing; none left means OFF.
                let mut levels: Vec<String> = value
                    .into_iter()
                    .filter(|l| matches!(l.as_str(), "OFF" | "TIMESTAMPS" | "TENSORS"))
                    .collect();
                if levels.is_empty() {
                    levels.push("OFF".into());
                }
                if levels[0] != "OFF" && current.file.is_empty() {
                    return Err(Status::invalid_arg(
                        "Attempting to set invalid trace setting :trace file name is not given",
                    ));
                }
                updates.push((key, Some(levels)));
            }
            "trace_rate" | "trace_count" | "log_frequency" => {
                let [v] = value.as_slice() else {
                    return Err(Status::invalid_arg(format!(
                        "expect only 1 value for '{key}'"
                    )));
                };
                let Ok(n) = v.trim().parse::<i64>() else {
                    return Err(Status::invalid_arg(format!(
                        "Unable to parse '{key}', got: {v}"
                    )));
                };
                if key == "trace_count" && n < -1 {
                    return Err(Status::invalid_arg(format!(
                        "Unable to parse 'trace_count'. Expecting value >= -1, got: {v}"
                    )));
                }
                updates.push((key, Some(value)));
            }
            _ => {}
        }
    }
    Ok(updates)
}

fn trace_response(s: &TraceSettings) -> pb::TraceSettingResponse {
    let settings = s
        .to_map()
        .into_iter()
        .map(|(k, value)| {
            (
                k.to_string(),
                pb::trace_setting_response::SettingValue { value },
            )
        })
        .collect();
    pb::TraceSettingResponse { settings }
}

pub(super) fn log(
    state: &ServerState,
    r: pb::LogSettingsRequest,
) -> Result<pb::LogSettingsResponse, Status> {
    let mut updates = Vec::new();
    for (key, setting) in r.settings {
        let value = setting.parameter_choice;
        let update = match (key.as_str(), value) {
            ("log_file", _) => {
                return Err(Status::unsupported(
                    "log file location can not be updated through network protocol",
                ));
            }
            ("log_info" | "log_warning" | "log_error", Some(L::BoolParam(b))) => LogValue::Bool(b),
            ("log_info" | "log_warning" | "log_error", _) => {
                return Err(Status::invalid_arg(format!("expect boolean for '{key}'")));
            }
            ("log_verbose_level", Some(L::Uint32Param(v))) => LogValue::Uint(v),
            ("log_verbose_level", _) => {
                return Err(Status::invalid_arg("expect int32 for 'log_verbose_level'"));
            }
            ("log_format", Some(L::StringParam(f))) if f == "default" || f == "ISO8601" => {
                LogValue::Str(f)
            }
            ("log_format", Some(L::StringParam(f))) => {
                return Err(Status::invalid_arg(format!(
                    "invalid argument for log_format, got: {f}"
                )));
            }
            ("log_format", _) => return Err(Status::invalid_arg("expect string for 'log_format'")),
            // Triton ignores settings it does not know.
            _ => continue,
        };
        updates.push((key, update));
    }
    let settings = if updates.is_empty() {
        state.settings.log()
    } else {
        state.settings.update_log(&updates)?
    };
    let settings = settings
        .to_map()
        .into_iter()
        .map(|(k, v)| {
            let choice = match v {
                LogValue::Bool(b) => LOut::BoolParam(b),
                LogValue::Uint(u) => LOut::Uint32Param(u),
                LogValue::Str(s) => LOut::StringParam(s),
            };
            (
                k.to_string(),
                pb::log_settings_response::SettingValue {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect();
    Ok(pb::LogSettingsResponse { settings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &[&str])]) -> HashMap<String, pb::trace_setting_request::SettingValue> {
        pairs
            .iter()
            .map(|(k, v)| {
                let value = v.iter().map(|s| s.to_string()).collect();
                (
                    k.to_string(),
                    pb::trace_setting_request::SettingValue { value },
                )
            })
            .collect()
    }

    #[track_caller]
    fn err(pairs: &[(&str, &[&str])], file: &str) -> String {
        let current = TraceSettings {
            file: file.into(),
            ..TraceSettings::default()
        };
        trace_updates(req(pairs), &current).unwrap_err().message
    }

    #[test]
    fn trace_updates_like_triton() {
        let current = TraceSettings::default();
        let u = trace_updates(
            req(&[
                ("trace_rate", &["7"]),
                ("trace_mode", &["opentelemetry"]),
                ("nope", &["1"]),
            ]),
            &current,
        )
        .unwrap();
        assert_eq!(
            u,
            vec![("trace_rate".to_string(), Some(vec!["7".to_string()]))]
        );
        let u = trace_updates(req(&[("trace_count", &[])]), &current).unwrap();
        assert_eq!(u, vec![("trace_count".to_string(), None)]);
        let u = trace_updates(req(&[("trace_level", &["LOUD"])]), &current).unwrap();
        assert_eq!(
            u,
            vec![("trace_level".to_string(), Some(vec!["OFF".to_string()]))]
        );
        let u = trace_updates(
            req(&[("trace_level", &["TIMESTAMPS", "LOUD"])]),
            &TraceSettings {
                file: "/t".into(),
                ..current
            },
        )
        .unwrap();
        assert_eq!(
            u,
            vec![(
                "trace_level".to_string(),
                Some(vec!["TIMESTAMPS".to_string()])
            )]
        );

        assert_eq!(
            err(&[("trace_file", &["/tmp/x"])], ""),
            "trace file location can not be updated through network protocol"
        );
        assert_eq!(
            err(&[("trace_level", &["TIMESTAMPS"])], ""),
            "Attempting to set invalid trace setting :trace file name is not given"
        );
        assert_eq!(
            err(&[("trace_level", &["OFF", "TIMESTAMPS"])], ""),
            "Expect only one trace level 'OFF' is specified"
        );
        assert_eq!(
            err(&[("trace_rate", &["1", "2"])], ""),
            "expect only 1 value for 'trace_rate'"
        );
        assert_eq!(
            err(&[("trace_rate", &["abc"])], ""),
            "Unable to parse 'trace_rate', got: abc"
        );
        assert_eq!(
            err(&[("log_frequency", &["x"])], ""),
            "Unable to parse 'log_frequency', got: x"
        );
        assert_eq!(
            err(&[("trace_count", &["-2"])], ""),
            "Unable to parse 'trace_count'. Expecting value >= -1, got: -2"
        );
    }
}
