//! A JSON config (as clients pass it to Triton's repository load API in
//! `{"parameters":{"config":"<json>"}}`) into a `ModelConfig`.
//!
//! Follows protobuf's JSON parser as Triton configures it: unknown fields
//! are errors, enum names are matched case-insensitively, field names may be
//! the original or the lowerCamelCase JSON name, 64-bit integers may be
//! numbers or strings, `null` leaves a field unset.

use std::collections::HashMap;

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value as RValue,
};
use serde_json::Value;

use super::error::{ConfigError, ErrorKind, Pos};
use super::reflect::{
    internal, model_config_descriptor, short_name, to_model_config, unknown_enum_value,
    unknown_field_error,
};
use super::source_map::{field_path, index_path, scalar_key_path, string_key_path};
use crate::proto::inference::ModelConfig;

/// How deep JSON may nest before it is refused (serde_json stops at 128).
const MAX_DEPTH: usize = 100;

pub fn from_json(text: &str) -> Result<ModelConfig, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let pos = Pos::new(
            u32::try_from(e.line()).unwrap_or(u32::MAX),
            u32::try_from(e.column()).unwrap_or(u32::MAX),
        );
        ConfigError::syntax(pos, format!("invalid JSON: {e}"))
    })?;
    let desc = model_config_descriptor()?;
    let msg = message(&desc, &value, "", 0)?;
    to_model_config(&msg)
}

fn bad(path: &str, message: String) -> ConfigError {
    ConfigError::new(ErrorKind::BadValue(message), path, None)
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn message(
    desc: &MessageDescriptor,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<DynamicMessage, ConfigError> {
    if depth > MAX_DEPTH {
        return Err(ConfigError::new(ErrorKind::TooDeep(MAX_DEPTH), path, None));
    }
    let Value::Object(obj) = v else {
        return Err(bad(
            path,
            format!(
                "expected an object ({}), found {}",
                short_name(desc),
                describe(v)
            ),
        ));
    };
    let mut msg = DynamicMessage::new(desc.clone());
    let mut seen: HashMap<u32, &str> = HashMap::new();
    let mut oneofs: HashMap<String, String> = HashMap::new();
    for (name, value) in obj {
        let fd = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name))
            .ok_or_else(|| unknown_field_error(desc, name, path, None))?;
        if let Some(first) = seen.insert(fd.number(), name) {
            let msg = format!(
                "field `{}` is given twice (as `{first}` and `{name}`)",
                fd.name()
            );
            return Err(bad(path, msg));
        }
        if value.is_null() {
            continue;
        }
        let fpath = field_path(path, fd.name());
        if let Some(oneof) = fd.containing_oneof()
            && let Some(other) = oneofs.insert(oneof.name().to_string(), fd.name().to_string())
        {
            let msg = format!(
                "field `{}` conflicts with `{other}`: both belong to oneof `{}`",
                fd.name(),
                oneof.name()
            );
            return Err(bad(path, msg));
        }
        let v = if fd.is_map() {
            map(&fd, value, &fpath, depth)?
        } else if fd.is_list() {
            let Value::Array(items) = value else {
                return Err(bad(
                    &fpath,
                    format!("expected an array, found {}", describe(value)),
                ));
            };
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| single(&fd, &fd.kind(), item, &index_path(&fpath, i), depth))
                .collect::<Result<Vec<_>, _>>()?;
            RValue::List(items)
        } else {
            single(&fd, &fd.kind(), value, &fpath, depth)?
        };
        msg.set_field(&fd, v);
    }
    Ok(msg)
}

fn map(fd: &FieldDescriptor, v: &Value, path: &str, depth: usize) -> Result<RValue, ConfigError> {
    let Kind::Message(entry) = fd.kind() else {
        return Err(internal(format!(
            "map field `{}` has no entry message",
            fd.name()
        )));
    };
    let Value::Object(obj) = v else {
        return Err(bad(
            path,
            format!("expected an object, found {}", describe(v)),
        ));
    };
    let key_fd = entry.map_entry_key_field();
    let value_fd = entry.map_entry_value_field();
    let mut out = HashMap::new();
    for (k, item) in obj {
        let (key, epath) = match key_fd.kind() {
            Kind::String => (MapKey::String(k.clone()), string_key_path(path, k)),
            Kind::Bool => match k.as_str() {
                "true" => (MapKey::Bool(true), scalar_key_path(path, true)),
                "false" => (MapKey::Bool(false), scalar_key_path(path, false)),
                _ => {
                    return Err(bad(
                        path,
                        format!("invalid map key {k:?}: expected true or false"),
                    ));
                }
            },
            kind => {
                let n: i128 = k.parse().map_err(|_| {
                    bad(path, format!("invalid map key {k:?}: expected an integer"))
                })?;
                let key = int_value(&kind, n)
                    .ok_or_else(|| bad(path, format!("map key {k} is out of range")))?;
                let key = key.into_map_key().ok_or_else(|| {
                    internal(format!("map field `{}` has an invalid key type", fd.name()))
                })?;
                (key, scalar_key_path(path, n))
            }
        };
        if item.is_null() {
            return Err(bad(&epath, "a map value cannot be null".to_string()));
        }
        out.insert(
            key,
            single(&value_fd, &value_fd.kind(), item, &epath, depth)?,
        );
    }
    Ok(RValue::Map(out))
}

/// One value (a list item, a map value or a singular field).
fn single(
    fd: &FieldDescriptor,
    kind: &Kind,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<RValue, ConfigError> {
    let mismatch = |what: &str| {
        bad(
            path,
            format!(
                "expected {what} for field `{}`, found {}",
                fd.name(),
                describe(v)
            ),
        )
    };
    match kind {
        Kind::Message(md) => Ok(RValue::Message(message(md, v, path, depth + 1)?)),
        Kind::Enum(ed) => match v {
            Value::String(s) => {
                let ev = ed
                    .get_value_by_name(s)
                    .or_else(|| ed.get_value_by_name(&s.to_ascii_uppercase()));
                ev.map(|ev| RValue::EnumNumber(ev.number()))
                    .ok_or_else(|| unknown_enum_value(ed, s, path, None))
            }
            Value::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(RValue::EnumNumber)
                .ok_or_else(|| mismatch(&format!("a value of {}", ed.full_name()))),
            _ => Err(mismatch(&format!("a value of {}", ed.full_name()))),
        },
        Kind::Bool => v
            .as_bool()
            .map(RValue::Bool)
            .ok_or_else(|| mismatch("true or false")),
        Kind::String => v
            .as_str()
            .map(|s| RValue::String(s.to_string()))
            .ok_or_else(|| mismatch("a string")),
        Kind::Bytes => {
            let s = v.as_str().ok_or_else(|| mismatch("a base64 string"))?;
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(s).ok())
                .map(|b| RValue::Bytes(b.into()))
                .ok_or_else(|| mismatch("a base64 string"))
        }
        Kind::Float | Kind::Double => {
            let x = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => match s.as_str() {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    s => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                },
                _ => None,
            };
            let x = x.ok_or_else(|| mismatch("a number"))?;
            if *kind == Kind::Float {
                if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                    return Err(bad(
                        path,
                        format!("value {x} is out of range for float field `{}`", fd.name()),
                    ));
                }
                Ok(RValue::F32(x as f32))
            } else {
                Ok(RValue::F64(x))
            }
        }
        kind => {
            let n = integer(v).ok_or_else(|| mismatch("an integer"))?;
            int_value(kind, n).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "value {n} is out of range for {} field `{}`",
                        int_type_name(kind),
                        fd.name()
                    ),
                )
            })
        }
    }
}

/// An integer given as a JSON number (integral) or a string.
fn integer(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 1.8e19).then_some(f as i128)
            }
        }
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    }
}

fn int_value(kind: &Kind, n: i128) -> Option<RValue> {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => i32::try_from(n).ok().map(RValue::I32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => i64::try_from(n).ok().map(RValue::I64),
        Kind::Uint32 | Kind::Fixed32 => u32::try_from(n).ok().map(RValue::U32),
        Kind::Uint64 | Kind::Fixed64 => u64::try_from(n).ok().map(RValue::U64),
        _ => None,
    }
}

fn int_type_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "int32",
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => "int64",
        Kind::Uint32 | Kind::Fixed32 => "uint32",
        _ => "uint64",
    }
}
