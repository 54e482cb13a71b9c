//! The JSON form of a `ModelConfig` exactly as Triton serves it from
//! `/v2/models/<m>/config`.
//!
//! Triton prints the message with protobuf's JSON printer (original field
//! names, primitive, repeated and map fields always printed, unset message
//! fields and unset oneof members left out, enums as names, 64-bit integers
//! as strings), parses that with rapidjson, turns a fixed list of 64-bit
//! fields back into numbers (`ModelConfigToJson` in `model_config_utils.cc`)
//! and writes it out again. The fields it misses stay strings; [`NUMERIC_64`]
//! lists the ones it fixes.

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value as RValue,
};
use serde_json::{Map, Number, Value};

use super::reflect::model_config_descriptor;
use crate::proto::inference::ModelConfig;

/// The 64-bit fields Triton prints as JSON numbers, by schema path (map
/// values are `.value`). Every other 64-bit field is printed as a string,
/// as protobuf does: `sequence_batching.state.initial_state.dims` (Triton
/// looks for `initial_state` in the wrong object),
/// `optimization.cuda.graph_spec.input.value.dim`,
/// `optimization.cuda.graph_spec.graph_lower_bound.input.value.dim` and
/// `instance_group.secondary_devices.device_id`.
const NUMERIC_64: &[&str] = &[
    "input.dims",
    "input.reshape.shape",
    "output.dims",
    "output.reshape.shape",
    "version_policy.specific.versions",
    "dynamic_batching.max_queue_delay_microseconds",
    "dynamic_batching.priority_levels",
    "dynamic_batching.default_priority_level",
    "dynamic_batching.default_queue_policy.default_timeout_microseconds",
    "dynamic_batching.priority_queue_policy.value.default_timeout_microseconds",
    "sequence_batching.max_sequence_idle_microseconds",
    "sequence_batching.oldest.max_queue_delay_microseconds",
    "sequence_batching.direct.max_queue_delay_microseconds",
    "sequence_batching.state.dims",
    "ensemble_scheduling.step.model_version",
    "model_warmup.inputs.value.dims",
];

/// The config as Triton's `/v2/models/<m>/config` returns it. Map entries
/// are sorted by key (Triton's order is that of a hash map). Returns
/// `Value::Null` only if the embedded descriptors are unusable, which
/// cannot happen with a correct build.
pub fn to_json(cfg: &ModelConfig) -> Value {
    let Ok(desc) = model_config_descriptor() else {
        return Value::Null;
    };
    let mut msg = DynamicMessage::new(desc);
    if msg.transcode_from(cfg).is_err() {
        return Value::Null;
    }
    message_json(&msg, "")
}

/// Primitive fields added to `model_config.proto` after Triton 2.51 (the
/// reference): printed only when set, so that the JSON equals Triton 2.51's
/// for every config 2.51 accepts. (`model_metrics`, the other addition, is
/// a message and so is printed only when set anyway.)
const ADDED_AFTER_2_51: &[&str] = &["ensemble_scheduling.max_inflight_requests"];

/// Fields in declaration order, except that scalar oneof members come last:
/// protobuf's printer gives every other field a slot up front and appends
/// the scalar oneof members it meets in the data (seen with Triton 2.51:
/// `initial_state` prints `name` before `zero_data`).
fn message_json(msg: &DynamicMessage, schema: &str) -> Value {
    let mut out = Map::new();
    let desc = msg.descriptor();
    // `fields()` is by number; the descriptor proto keeps declaration order.
    let declared: Vec<FieldDescriptor> = desc
        .descriptor_proto()
        .field
        .iter()
        .filter_map(|f| desc.get_field_by_name(f.name()))
        .collect();
    let is_message = |fd: &FieldDescriptor| {
        matches!(fd.kind(), Kind::Message(_)) && !fd.is_list() && !fd.is_map()
    };
    let scalar_oneof = |fd: &FieldDescriptor| fd.containing_oneof().is_some() && !is_message(fd);
    let mut trailing: Vec<&FieldDescriptor> =
        declared.iter().filter(|fd| scalar_oneof(fd)).collect();
    trailing.sort_by_key(|fd| fd.number());
    let ordered = declared
        .iter()
        .filter(|fd| !scalar_oneof(fd))
        .chain(trailing);
    for fd in ordered {
        let path = if schema.is_empty() {
            fd.name().to_string()
        } else {
            format!("{schema}.{}", fd.name())
        };
        let only_if_set = fd.containing_oneof().is_some()
            || is_message(fd)
            || ADDED_AFTER_2_51.contains(&path.as_str());
        if only_if_set && !msg.has_field(fd) {
            continue;
        }
        let kind = fd.kind();
        let json = match &*msg.get_field(fd) {
            RValue::List(items) => {
                Value::Array(items.iter().map(|v| value_json(v, &kind, &path)).collect())
            }
            RValue::Map(map) => {
                let value_kind = match &kind {
                    Kind::Message(entry) => entry.map_entry_value_field().kind(),
                    other => other.clone(),
                };
                let value_path = format!("{path}.value");
                let mut entries: Vec<(&MapKey, &RValue)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let obj = entries
                    .into_iter()
                    .map(|(k, v)| (map_key_string(k), value_json(v, &value_kind, &value_path)))
                    .collect();
                Value::Object(obj)
            }
            v => value_json(v, &kind, &path),
        };
        out.insert(fd.name().to_string(), json);
    }
    Value::Object(out)
}

fn map_key_string(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn value_json(v: &RValue, kind: &Kind, path: &str) -> Value {
    let numeric = NUMERIC_64.contains(&path);
    match v {
        RValue::Bool(b) => Value::Bool(*b),
        RValue::I32(x) => Value::from(*x),
        RValue::U32(x) => Value::from(*x),
        RValue::I64(x) if numeric => Value::from(*x),
        RValue::U64(x) if numeric => Value::from(*x),
        RValue::I64(x) => Value::String(x.to_string()),
        RValue::U64(x) => Value::String(x.to_string()),
        RValue::F32(x) => real_json(f64::from(*x), if round_trips_f32(*x, 6) { 6 } else { 9 }),
        RValue::F64(x) => real_json(*x, if round_trips_f64(*x, 15) { 15 } else { 17 }),
        RValue::String(s) => Value::String(s.clone()),
        RValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        RValue::EnumNumber(n) => match kind {
            Kind::Enum(ed) => match ed.get_value(*n) {
                Some(ev) => Value::String(ev.name().to_string()),
                None => Value::from(*n),
            },
            _ => Value::from(*n),
        },
        RValue::Message(m) => message_json(m, path),
        RValue::List(items) => {
            Value::Array(items.iter().map(|i| value_json(i, kind, path)).collect())
        }
        RValue::Map(_) => Value::Null,
    }
}

fn round_trips_f32(x: f32, digits: usize) -> bool {
    format!("{:.*e}", digits - 1, x).parse::<f32>() == Ok(x)
}

fn round_trips_f64(x: f64, digits: usize) -> bool {
    format!("{:.*e}", digits - 1, x).parse::<f64>() == Ok(x)
}

/// A float as protobuf prints it with `%.<digits>g` and rapidjson then reads
/// it back: an integer when `%g` gives no point or exponent, else a double.
fn real_json(x: f64, digits: usize) -> Value {
    if x.is_nan() {
        return Value::String("NaN".to_string());
    }
    if x.is_infinite() {
        let s = if x > 0.0 { "Infinity" } else { "-Infinity" };
        return Value::String(s.to_string());
    }
    let text = format!("{:.*e}", digits - 1, x);
    let exp: i32 = text
        .rsplit('e')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let rounded: f64 = text.parse().unwrap_or(x);
    let plain = exp >= -4 && exp < digits as i32;
    if plain && rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        return Value::from(rounded as i64);
    }
    Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_f32(x: f32, expect: &str) {
        let got = serde_json::to_string(&real_json(
            f64::from(x),
            if round_trips_f32(x, 6) { 6 } else { 9 },
        ));
        assert_eq!(got.ok().as_deref(), Some(expect), "value {x}");
    }

    #[test]
    fn floats_print_like_protobuf_then_rapidjson() {
        check_f32(0.0, "0");
        check_f32(-0.0, "0");
        check_f32(1.0, "1");
        check_f32(-3.0, "-3");
        check_f32(0.5, "0.5");
        check_f32(0.1, "0.1");
        check_f32(1000.0, "1000");
        check_f32(999999.0, "999999");
        check_f32(1.0e6, "1000000.0");
        check_f32(16777217.0, "16777216");
        check_f32(1.0e30, "1e+30");
        check_f32(0.0001, "0.0001");
        check_f32(0.00001, "0.00001");
        check_f32(0.3333333, "0.333333313");
        check_f32(f32::NAN, "\"NaN\"");
        check_f32(f32::INFINITY, "\"Infinity\"");
        check_f32(f32::NEG_INFINITY, "\"-Infinity\"");
    }

    #[test]
    fn doubles() {
        let d = |x: f64| {
            serde_json::to_string(&real_json(x, if round_trips_f64(x, 15) { 15 } else { 17 })).ok()
        };
        assert_eq!(d(0.1).as_deref(), Some("0.1"));
        assert_eq!(d(2.5).as_deref(), Some("2.5"));
        assert_eq!(d(100.0).as_deref(), Some("100"));
        assert_eq!(d(1.0e15).as_deref(), Some("1000000000000000.0"));
        assert_eq!(d(0.1 + 0.2).as_deref(), Some("0.30000000000000004"));
    }
}
