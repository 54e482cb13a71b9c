//! Request parameters: Triton's reserved keys (sequence, priority, timeout, empty final
//! response) and the others, passed on to the model.

use std::collections::HashMap;

use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice as P;
use crate::request::{CorrelationId, ParamValue, Parameters, SequenceInfo};
use crate::status::Status;

/// Request parameters: Triton's reserved ones, and the rest passed on to the model.
#[derive(Default)]
pub(super) struct Controls {
    pub priority: u64,
    pub timeout_us: u64,
    pub sequence: Option<SequenceInfo>,
    pub empty_final: bool,
    pub custom: Parameters,
}

pub(super) fn controls(params: &HashMap<String, pb::InferParameter>) -> Result<Controls, Status> {
    let mut c = Controls::default();
    let (mut id, mut start, mut end, mut is_sequence) = (None, false, false, false);
    let wrong_type = |key: &str, expected: &str| {
        Status::invalid_arg(format!(
            "invalid value type for '{key}' parameter, expected {expected}."
        ))
    };
    for (key, p) in params {
        let value = p.parameter_choice.as_ref();
        match key.as_str() {
            "sequence_id" => {
                id = Some(match value {
                    // Triton reads signed ids as unsigned.
                    Some(P::Int64Param(v)) => CorrelationId::Int(*v as u64),
                    Some(P::StringParam(s)) => CorrelationId::Str(s.clone()),
                    _ => return Err(wrong_type(key, "int64_param or string_param")),
                });
                is_sequence = true;
            }
            "sequence_start" | "sequence_end" => {
                let Some(P::BoolParam(b)) = value else {
                    return Err(wrong_type(key, "bool_param"));
                };
                if key == "sequence_start" {
                    start = *b
                } else {
                    end = *b
                }
                is_sequence = true;
            }
            "priority" => {
                c.priority = match value {
                    Some(P::Int64Param(v)) => u64::try_from(*v).map_err(|_| {
                        Status::invalid_arg("invalid value for 'priority', expected value >= 0.")
                    })?,
                    Some(P::Uint64Param(v)) => *v,
                    _ => return Err(wrong_type(key, "int64_param or uint64_param")),
                }
            }
            "timeout" => {
                let Some(P::Int64Param(v)) = value else {
                    return Err(wrong_type(key, "int64_param"));
                };
                // Triton would read -1 as 2^64-1 microseconds; a clear refusal serves better.
                c.timeout_us = u64::try_from(*v).map_err(|_| {
                    Status::invalid_arg("invalid value for 'timeout', expected value >= 0.")
                })?;
            }
            "triton_enable_empty_final_response" => {
                let Some(P::BoolParam(b)) = value else {
                    return Err(wrong_type(key, "bool_param"));
                };
                c.empty_final = *b;
            }
            k if k.starts_with("triton_") => {
                return Err(Status::invalid_arg(
                    "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: triton_enable_empty_final_response",
                ));
            }
            _ => {
                let v = match value {
                    Some(P::BoolParam(b)) => ParamValue::Bool(*b),
                    Some(P::Int64Param(i)) => ParamValue::Int(*i),
                    Some(P::StringParam(s)) => ParamValue::String(s.clone()),
                    Some(P::DoubleParam(d)) => ParamValue::Double(*d),
                    _ => return Err(wrong_type(key, "int64_param, bool_param, or string_param")),
                };
                c.custom.0.push((key.clone(), v));
            }
        }
    }
    // The wire map has no order; give the model a stable one.
    c.custom.0.sort_by(|a, b| a.0.cmp(&b.0));
    if is_sequence {
        c.sequence = Some(SequenceInfo {
            id: id.unwrap_or(CorrelationId::Int(0)),
            start,
            end,
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(p: P) -> pb::InferParameter {
        pb::InferParameter {
            parameter_choice: Some(p),
        }
    }

    #[track_caller]
    fn control_err(key: &str, p: Option<P>) -> String {
        let params = HashMap::from([(
            key.to_string(),
            pb::InferParameter {
                parameter_choice: p,
            },
        )]);
        controls(&params).err().expect("an error").message
    }

    #[test]
    fn request_parameters() {
        let params = HashMap::from([
            (
                "sequence_id".to_string(),
                param(P::StringParam("abc".into())),
            ),
            ("sequence_start".to_string(), param(P::BoolParam(true))),
            ("priority".to_string(), param(P::Uint64Param(2))),
            ("timeout".to_string(), param(P::Int64Param(1500))),
            (
                "triton_enable_empty_final_response".to_string(),
                param(P::BoolParam(true)),
            ),
            ("zeta".to_string(), param(P::DoubleParam(1.5))),
            ("alpha".to_string(), param(P::StringParam("x".into()))),
        ]);
        let c = controls(&params).unwrap();
        assert_eq!(
            c.sequence,
            Some(SequenceInfo {
                id: CorrelationId::Str("abc".into()),
                start: true,
                end: false
            })
        );
        assert_eq!((c.priority, c.timeout_us, c.empty_final), (2, 1500, true));
        assert_eq!(
            c.custom.0,
            vec![
                ("alpha".to_string(), ParamValue::String("x".into())),
                ("zeta".to_string(), ParamValue::Double(1.5))
            ]
        );
        let c = controls(&HashMap::from([(
            "sequence_id".to_string(),
            param(P::Int64Param(-1)),
        )]))
        .unwrap();
        assert_eq!(c.sequence.unwrap().id, CorrelationId::Int(u64::MAX));
        assert!(controls(&HashMap::new()).unwrap().sequence.is_none());

        assert_eq!(
            control_err("priority", Some(P::Int64Param(-1))),
            "invalid value for 'priority', expected value >= 0."
        );
        assert_eq!(
            control_err("priority", Some(P::StringParam("1".into()))),
            "invalid value type for 'priority' parameter, expected int64_param or uint64_param."
        );
        assert_eq!(
            control_err("timeout", Some(P::Int64Param(-1))),
            "invalid value for 'timeout', expected value >= 0."
        );
        assert_eq!(
            control_err("timeout", Some(P::Uint64Param(5))),
            "invalid value type for 'timeout' parameter, expected int64_param."
        );
        assert_eq!(
            control_err("sequence_id", Some(P::BoolParam(true))),
            "invalid value type for 'sequence_id' parameter, expected int64_param or string_param."
        );
        assert_eq!(
            control_err("sequence_end", Some(P::Int64Param(1))),
            "invalid value type for 'sequence_end' parameter, expected bool_param."
        );
        assert_eq!(
            control_err("custom", Some(P::Uint64Param(1))),
            "invalid value type for 'custom' parameter, expected int64_param, bool_param, or string_param."
        );
        assert_eq!(
            control_err("custom", None),
            "invalid value type for 'custom' parameter, expected int64_param, bool_param, or string_param."
        );
        assert!(
            control_err("triton_x", Some(P::BoolParam(true)))
                .starts_with("parameter keys starting with 'triton_' are reserved")
        );
    }
}
