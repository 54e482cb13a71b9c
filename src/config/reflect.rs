//! Gives the text-format tree its types: walks it against the message
//! descriptors of `model_config.proto`, so that every field of `ModelConfig`
//! works without code per field, and records where each field was written.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, Value as RValue,
};

use super::error::{ConfigError, ErrorKind, Pos, Suggestion, nearest};
use super::source_map::{SourceMap, field_path, index_path, scalar_key_path, string_key_path};
use super::textformat::{Field, Value, ValueKind};
use crate::proto::inference::ModelConfig;

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::DESCRIPTOR_SET).map_err(|e| e.to_string())
});

/// The descriptor of `inference.ModelConfig`.
pub(crate) fn model_config_descriptor() -> Result<MessageDescriptor, ConfigError> {
    let pool = POOL
        .as_ref()
        .map_err(|e| internal(format!("cannot decode the descriptor set: {e}")))?;
    pool.get_message_by_name("inference.ModelConfig")
        .ok_or_else(|| internal("inference.ModelConfig is not in the descriptor set"))
}

pub(crate) fn internal(message: impl Into<String>) -> ConfigError {
    ConfigError::new(ErrorKind::Internal(message.into()), "", None)
}

/// A message's name as users know it: `ModelInput`, `ModelSequenceBatching.Control`.
pub(crate) fn short_name(desc: &MessageDescriptor) -> &str {
    let full = desc.full_name();
    full.strip_prefix(desc.package_name())
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(full)
}

/// The dynamic message, turned into the typed `ModelConfig`.
pub(crate) fn to_model_config(msg: &DynamicMessage) -> Result<ModelConfig, ConfigError> {
    ModelConfig::decode(msg.encode_to_vec().as_slice())
        .map_err(|e| internal(format!("cannot decode the built message: {e}")))
}

/// Builds a `ModelConfig` from a parsed text-format tree.
pub fn build(fields: &[Field]) -> Result<(ModelConfig, SourceMap), ConfigError> {
    let desc = model_config_descriptor()?;
    let mut sm = SourceMap::default();
    let msg = build_message(&desc, fields, "", &mut sm)?;
    Ok((to_model_config(&msg)?, sm))
}

fn build_message(
    desc: &MessageDescriptor,
    fields: &[Field],
    path: &str,
    sm: &mut SourceMap,
) -> Result<DynamicMessage, ConfigError> {
    let mut msg = DynamicMessage::new(desc.clone());
    let mut seen: HashMap<u32, Pos> = HashMap::new();
    let mut oneofs: HashMap<String, (String, Pos)> = HashMap::new();
    for f in fields {
        let Some(fd) = desc.get_field_by_name(&f.name) else {
            return Err(unknown_field(desc, f, path));
        };
        let fpath = field_path(path, &f.name);
        sm.insert(&fpath, f.pos);
        if fd.is_map() {
            add_map_entries(&mut msg, &fd, f, &fpath, sm)?;
        } else if fd.is_list() {
            add_list_items(&mut msg, &fd, f, &fpath, sm)?;
        } else {
            if let Some(first) = seen.insert(fd.number(), f.pos) {
                let name = f.name.clone();
                return Err(ConfigError::new(
                    ErrorKind::DuplicateField { name, first },
                    path,
                    Some(f.pos),
                ));
            }
            if let Some(oneof) = fd.containing_oneof() {
                if let Some((other, other_pos)) = oneofs.get(oneof.name()) {
                    let kind = ErrorKind::OneofConflict {
                        name: f.name.clone(),
                        other: other.clone(),
                        other_pos: *other_pos,
                        oneof: oneof.name().to_string(),
                    };
                    return Err(ConfigError::new(kind, path, Some(f.pos)));
                }
                oneofs.insert(oneof.name().to_string(), (f.name.clone(), f.pos));
            }
            if let ValueKind::List(_) = f.value.kind {
                let msg = format!(
                    "field `{}` is not repeated, so it cannot take a list",
                    f.name
                );
                return Err(ConfigError::bad_value(&fpath, f.value.pos, msg));
            }
            let v = convert(&fd, &f.value, &fpath, sm)?;
            msg.set_field(&fd, v);
        }
    }
    Ok(msg)
}

fn unknown_field(desc: &MessageDescriptor, f: &Field, path: &str) -> ConfigError {
    unknown_field_error(desc, &f.name, path, Some(f.pos))
}

pub(crate) fn unknown_field_error(
    desc: &MessageDescriptor,
    name: &str,
    path: &str,
    pos: Option<Pos>,
) -> ConfigError {
    let names: Vec<String> = desc.fields().map(|fd| fd.name().to_string()).collect();
    let suggestion = Suggestion(nearest(name, names.iter().map(String::as_str)));
    let kind = ErrorKind::UnknownField {
        name: name.to_string(),
        message: short_name(desc).to_string(),
        suggestion,
    };
    ConfigError::new(kind, path, pos)
}

/// The items of a repeated field: `f: [a, b]` or one `f: a` occurrence.
fn items(value: &Value) -> Vec<&Value> {
    match &value.kind {
        ValueKind::List(items) => items.iter().collect(),
        _ => vec![value],
    }
}

fn add_list_items(
    msg: &mut DynamicMessage,
    fd: &FieldDescriptor,
    f: &Field,
    fpath: &str,
    sm: &mut SourceMap,
) -> Result<(), ConfigError> {
    for item in items(&f.value) {
        let index = msg.get_field(fd).as_list().map_or(0, <[RValue]>::len);
        let ipath = index_path(fpath, index);
        sm.insert(&ipath, item.pos);
        let v = convert(fd, item, &ipath, sm)?;
        if let RValue::List(list) = msg.get_field_mut(fd) {
            list.push(v);
        }
    }
    Ok(())
}

/// `m { key: K value: V }` entries; a later entry with the same key wins, as
/// in protobuf.
fn add_map_entries(
    msg: &mut DynamicMessage,
    fd: &FieldDescriptor,
    f: &Field,
    fpath: &str,
    sm: &mut SourceMap,
) -> Result<(), ConfigError> {
    let Kind::Message(entry) = fd.kind() else {
        return Err(internal(format!(
            "map field `{}` has no entry message",
            fd.name()
        )));
    };
    let key_fd = entry.map_entry_key_field();
    let value_fd = entry.map_entry_value_field();
    for item in items(&f.value) {
        let ValueKind::Message(entry_fields) = &item.kind else {
            let msg = format!(
                "field `{}` is a map: expected `{{ key: ... value: ... }}`, found {}",
                fd.name(),
                item.kind.describe()
            );
            return Err(ConfigError::bad_value(fpath, item.pos, msg));
        };
        let mut key: Option<&Field> = None;
        let mut value: Option<&Field> = None;
        for ef in entry_fields {
            let slot = match ef.name.as_str() {
                "key" => &mut key,
                "value" => &mut value,
                _ => return Err(unknown_field(&entry, ef, fpath)),
            };
            if let Some(first) = slot.replace(ef) {
                let kind = ErrorKind::DuplicateField {
                    name: ef.name.clone(),
                    first: first.pos,
                };
                return Err(ConfigError::new(kind, fpath, Some(ef.pos)));
            }
        }
        let key_value = match key {
            Some(k) => convert(&key_fd, &k.value, &field_path(fpath, "key"), sm)?,
            None => RValue::default_value_for_field(&key_fd),
        };
        let Some(map_key) = key_value.into_map_key() else {
            return Err(internal(format!(
                "map field `{}` has an invalid key type",
                fd.name()
            )));
        };
        let epath = match &map_key {
            MapKey::String(s) => string_key_path(fpath, s),
            MapKey::Bool(b) => scalar_key_path(fpath, b),
            MapKey::I32(v) => scalar_key_path(fpath, v),
            MapKey::I64(v) => scalar_key_path(fpath, v),
            MapKey::U32(v) => scalar_key_path(fpath, v),
            MapKey::U64(v) => scalar_key_path(fpath, v),
        };
        sm.insert(&epath, key.map_or(item.pos, |k| k.pos));
        let v = match value {
            Some(vf) => {
                if let ValueKind::List(_) = vf.value.kind {
                    let msg = "a map value cannot be a list".to_string();
                    return Err(ConfigError::bad_value(&epath, vf.value.pos, msg));
                }
                convert(&value_fd, &vf.value, &epath, sm)?
            }
            None => RValue::default_value_for_field(&value_fd),
        };
        if let RValue::Map(map) = msg.get_field_mut(fd) {
            map.insert(map_key, v);
        }
    }
    Ok(())
}

/// One value of field `fd` (for repeated fields, one item).
fn convert(
    fd: &FieldDescriptor,
    v: &Value,
    path: &str,
    sm: &mut SourceMap,
) -> Result<RValue, ConfigError> {
    let bad = |what: &str| {
        let msg = format!(
            "expected {what} for field `{}`, found {}",
            fd.name(),
            v.kind.describe()
        );
        ConfigError::bad_value(path, v.pos, msg)
    };
    let kind = fd.kind();
    match kind {
        Kind::Message(md) => match &v.kind {
            ValueKind::Message(fields) => {
                Ok(RValue::Message(build_message(&md, fields, path, sm)?))
            }
            _ => Err(bad(&format!("a message ({})", short_name(&md)))),
        },
        Kind::Enum(ed) => convert_enum(&ed, fd, v, path),
        Kind::Bool => match &v.kind {
            ValueKind::Ident {
                negative: false,
                name,
            } => match name.as_str() {
                "true" | "True" | "t" => Ok(RValue::Bool(true)),
                "false" | "False" | "f" => Ok(RValue::Bool(false)),
                _ => Err(bad("true or false")),
            },
            ValueKind::Int {
                negative: false,
                magnitude: 0,
            } => Ok(RValue::Bool(false)),
            ValueKind::Int {
                negative: false,
                magnitude: 1,
            } => Ok(RValue::Bool(true)),
            _ => Err(bad("true or false")),
        },
        Kind::String => match &v.kind {
            ValueKind::Str(bytes) => match String::from_utf8(bytes.clone()) {
                Ok(s) => Ok(RValue::String(s)),
                Err(_) => Err(ConfigError::bad_value(
                    path,
                    v.pos,
                    format!("string for field `{}` is not valid UTF-8", fd.name()),
                )),
            },
            _ => Err(bad("a string")),
        },
        Kind::Bytes => match &v.kind {
            ValueKind::Str(bytes) => Ok(RValue::Bytes(bytes.clone().into())),
            _ => Err(bad("a string")),
        },
        Kind::Float | Kind::Double => {
            let x = match &v.kind {
                ValueKind::Float(x) => *x,
                ValueKind::Int {
                    negative,
                    magnitude,
                } => {
                    let m = *magnitude as f64;
                    if *negative { -m } else { m }
                }
                ValueKind::Ident { negative, name } => {
                    let x = match name.to_ascii_lowercase().as_str() {
                        "inf" | "infinity" => f64::INFINITY,
                        "nan" => f64::NAN,
                        _ => return Err(bad("a number")),
                    };
                    if *negative { -x } else { x }
                }
                _ => return Err(bad("a number")),
            };
            Ok(if kind == Kind::Float {
                RValue::F32(x as f32)
            } else {
                RValue::F64(x)
            })
        }
        _ => convert_int(&kind, fd, v, path),
    }
}

fn convert_int(
    kind: &Kind,
    fd: &FieldDescriptor,
    v: &Value,
    path: &str,
) -> Result<RValue, ConfigError> {
    let ValueKind::Int {
        negative,
        magnitude,
    } = v.kind
    else {
        let msg = format!(
            "expected an integer for field `{}`, found {}",
            fd.name(),
            v.kind.describe()
        );
        return Err(ConfigError::bad_value(path, v.pos, msg));
    };
    let wide: i128 = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    let out_of_range = |ty: &str| {
        let msg = format!(
            "value {wide} is out of range for {ty} field `{}`",
            fd.name()
        );
        ConfigError::bad_value(path, v.pos, msg)
    };
    let value = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            RValue::I32(i32::try_from(wide).map_err(|_| out_of_range("int32"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            RValue::I64(i64::try_from(wide).map_err(|_| out_of_range("int64"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            RValue::U32(u32::try_from(wide).map_err(|_| out_of_range("uint32"))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            RValue::U64(u64::try_from(wide).map_err(|_| out_of_range("uint64"))?)
        }
        _ => {
            return Err(internal(format!(
                "field `{}` has an unexpected type",
                fd.name()
            )));
        }
    };
    Ok(value)
}

/// Enum values by name, or by number (proto3 enums are open, as in protobuf).
fn convert_enum(
    ed: &EnumDescriptor,
    fd: &FieldDescriptor,
    v: &Value,
    path: &str,
) -> Result<RValue, ConfigError> {
    match &v.kind {
        ValueKind::Ident {
            negative: false,
            name,
        } => match ed.get_value_by_name(name) {
            Some(ev) => Ok(RValue::EnumNumber(ev.number())),
            None => Err(unknown_enum_value(ed, name, path, Some(v.pos))),
        },
        ValueKind::Int {
            negative,
            magnitude,
        } => {
            let wide = if *negative {
                -i128::from(*magnitude)
            } else {
                i128::from(*magnitude)
            };
            match i32::try_from(wide) {
                Ok(n) => Ok(RValue::EnumNumber(n)),
                Err(_) => {
                    let msg = format!(
                        "value {wide} is out of range for enum field `{}`",
                        fd.name()
                    );
                    Err(ConfigError::bad_value(path, v.pos, msg))
                }
            }
        }
        _ => {
            let msg = format!(
                "expected a value of {} for field `{}`, found {}",
                ed.full_name(),
                fd.name(),
                v.kind.describe()
            );
            Err(ConfigError::bad_value(path, v.pos, msg))
        }
    }
}

pub(crate) fn unknown_enum_value(
    ed: &EnumDescriptor,
    name: &str,
    path: &str,
    pos: Option<Pos>,
) -> ConfigError {
    let names: Vec<String> = ed.values().map(|ev| ev.name().to_string()).collect();
    let suggestion = Suggestion(nearest(name, names.iter().map(String::as_str)));
    let kind = ErrorKind::UnknownEnumValue {
        value: name.to_string(),
        enum_name: ed.full_name().to_string(),
        suggestion,
    };
    ConfigError::new(kind, path, pos)
}
