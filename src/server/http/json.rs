//! JSON for the HTTP frontend: request documents read into a shallow tree whose large
//! members (tensor `data`) stay raw text until their datatype is known, accessors that fail
//! with the texts of Triton's JSON wrapper (clients match on them), Triton's wording for
//! syntax errors, and a small writer for responses.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::status::Status;

pub const NOT_OBJECT: &str = "attempt to access JSON non-object as object";
pub const NO_MEMBERS: &str = "attempt to get members for non-object";
pub const NOT_ARRAY: &str = "attempt to access JSON non-array as array";
pub const NOT_STRING: &str = "attempt to access JSON non-string as string";
pub const NOT_BOOL: &str = "attempt to access JSON non-boolean as boolean";
pub const NOT_INT: &str = "attempt to access JSON non-signed-integer as signed-integer";
pub const NOT_UINT: &str = "attempt to access JSON non-unsigned-integer as unsigned-integer";
pub const NOT_NUMBER: &str = "attempt to access JSON non-number as double";

pub fn missing(key: &str) -> String {
    format!("attempt to access non-existing object member '{key}'")
}

/// Triton's "Unable to parse 'x': <why>" errors of malformed requests (code INTERNAL, as Triton).
pub fn unable(what: &str, why: impl fmt::Display) -> Status {
    Status::internal(format!("Unable to parse '{what}': {why}"))
}

/// A JSON value read only as deep as needed: members the policy names stay raw text.
#[derive(Debug)]
pub enum Node<'a> {
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
    Scalar(Value),
    Raw(&'a RawValue),
}

/// Which members stay raw: `raw(depth, key)` for a member `key` of an object at `depth`
/// (the document is depth 0).
#[derive(Clone, Copy)]
pub struct Policy {
    pub raw: fn(usize, &str) -> bool,
}

impl Policy {
    /// Infer requests: every `data` member stays raw.
    pub const INFER: Policy = Policy {
        raw: |_, k| k == "data",
    };
    /// Generate requests: top-level members are tensors, except `parameters` (whose members
    /// are) and `id`.
    pub const GENERATE: Policy = Policy {
        raw: |d, k| (d == 0 && k != "parameters" && k != "id") || d == 1,
    };
    #[cfg(test)]
    pub const NONE: Policy = Policy { raw: |_, _| false };
}

/// Parses a whole request document.
pub fn parse_document<'a>(buf: &'a [u8], policy: Policy) -> Result<Node<'a>, Status> {
    let mut de = serde_json::Deserializer::from_slice(buf);
    let node = NodeSeed { depth: 0, policy }
        .deserialize(&mut de)
        .map_err(|e| parse_error(buf, &e))?;
    de.end().map_err(|e| parse_error(buf, &e))?;
    Ok(node)
}

struct NodeSeed {
    depth: usize,
    policy: Policy,
}

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(NodeVisitor {
            depth: self.depth,
            policy: self.policy,
        })
    }
}

struct NodeVisitor {
    depth: usize,
    policy: Policy,
}

struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(Value::String(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Scalar(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element_seed(NodeSeed {
            depth: self.depth + 1,
            policy: self.policy,
        })? {
            items.push(n);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let node = if (self.policy.raw)(self.depth, &k) {
                Node::Raw(map.next_value::<&'de RawValue>()?)
            } else {
                map.next_value_seed(NodeSeed {
                    depth: self.depth + 1,
                    policy: self.policy,
                })?
            };
            members.push((k, node));
        }
        Ok(Node::Object(members))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The kind of a raw value, from its first character (raw values carry no leading space).
pub fn raw_kind(v: &RawValue) -> Kind {
    match v.get().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

impl<'a> Node<'a> {
    /// The first member named `key` (TritonJson's `Find`); `None` on non-objects.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn members(&self) -> Result<&[(Cow<'a, str>, Node<'a>)], &'static str> {
        match self {
            Node::Object(m) => Ok(m),
            _ => Err(NO_MEMBERS),
        }
    }

    pub fn as_array(&self) -> Result<&[Node<'a>], &'static str> {
        match self {
            Node::Array(a) => Ok(a),
            _ => Err(NOT_ARRAY),
        }
    }

    fn scalar(&self) -> Option<Value> {
        match self {
            Node::Scalar(v) => Some(v.clone()),
            Node::Raw(r) if !matches!(raw_kind(r), Kind::Array | Kind::Object) => {
                serde_json::from_str(r.get()).ok()
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Result<Cow<'_, str>, &'static str> {
        match self {
            Node::Scalar(Value::String(s)) => Ok(Cow::Borrowed(s)),
            Node::Raw(r) if raw_kind(r) == Kind::String => serde_json::from_str::<String>(r.get())
                .map(Cow::Owned)
                .map_err(|_| NOT_STRING),
            _ => Err(NOT_STRING),
        }
    }

    pub fn as_bool(&self) -> Result<bool, &'static str> {
        self.scalar().and_then(|v| v.as_bool()).ok_or(NOT_BOOL)
    }

    pub fn as_u64(&self) -> Result<u64, &'static str> {
        self.scalar().and_then(|v| v.as_u64()).ok_or(NOT_UINT)
    }

    #[cfg(test)]
    pub fn as_i64(&self) -> Result<i64, &'static str> {
        self.scalar().and_then(|v| v.as_i64()).ok_or(NOT_INT)
    }

    #[cfg(test)]
    pub fn as_f64(&self) -> Result<f64, &'static str> {
        self.scalar().and_then(|v| v.as_f64()).ok_or(NOT_NUMBER)
    }

    /// A request or response parameter value (string, integer, boolean or number).
    pub fn as_param(&self) -> Option<crate::request::ParamValue> {
        use crate::request::ParamValue;
        match self.scalar()? {
            Value::String(s) => Some(ParamValue::String(s)),
            Value::Bool(b) => Some(ParamValue::Bool(b)),
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => ParamValue::Int(i),
                None => ParamValue::Double(n.as_f64()?),
            }),
            _ => None,
        }
    }
}

/// Accessors over `serde_json::Value` for the small control bodies, with the same texts.
pub fn value_str(v: &Value) -> Result<&str, &'static str> {
    v.as_str().ok_or(NOT_STRING)
}
pub fn value_bool(v: &Value) -> Result<bool, &'static str> {
    v.as_bool().ok_or(NOT_BOOL)
}
pub fn value_u64(v: &Value) -> Result<u64, &'static str> {
    v.as_u64().ok_or(NOT_UINT)
}

/// Parses a small control body; empty means "no document" only where `allow_empty`.
pub fn parse_value(buf: &[u8], allow_empty: bool) -> Result<Option<Value>, Status> {
    if buf.is_empty() && allow_empty {
        return Ok(None);
    }
    serde_json::from_slice(buf)
        .map(Some)
        .map_err(|e| parse_error(buf, &e))
}

/// "failed to parse the request JSON buffer: <reason> at <offset>", in RapidJSON's words,
/// which is what Triton answers (with code INTERNAL) for a body that is not JSON.
pub fn parse_error(buf: &[u8], e: &serde_json::Error) -> Status {
    // JSON text is UTF-8 (RFC 8259); Triton passes other bytes through into BYTES elements and
    // echoes them into JSON no client can parse, so they are refused here.
    if let Err(u) = std::str::from_utf8(buf) {
        return Status::invalid_arg(format!(
            "failed to parse the request JSON buffer: the request is not valid UTF-8 (at byte {}); send BYTES that are not UTF-8 with the binary tensor data extension",
            u.valid_up_to()
        ));
    }
    let offset = byte_offset(buf, e.line(), e.column());
    let text = e.to_string();
    let before = buf[..offset.min(buf.len())]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    let reason: Cow<str> = if buf.iter().all(u8::is_ascii_whitespace) {
        "The document is empty.".into()
    } else if text.starts_with("EOF while parsing a string") {
        "Missing a closing quotation mark in string.".into()
    } else if text.starts_with("EOF while parsing a list") {
        match before {
            Some(b'[' | b',') => "Invalid value.".into(),
            _ => "Missing a comma or ']' after an array element.".into(),
        }
    } else if text.starts_with("EOF while parsing an object") {
        match before {
            Some(b'{' | b',') => "Missing a name for object member.".into(),
            Some(b':') => "Invalid value.".into(),
            Some(b'"') if after_key(&buf[..offset.min(buf.len())]) => {
                "Missing a colon after a name of object member.".into()
            }
            _ => "Missing a comma or '}' after an object member.".into(),
        }
    } else if text.starts_with("EOF while parsing")
        || text.starts_with("expected value")
        || text.starts_with("expected ident")
        || text.starts_with("invalid number")
    {
        "Invalid value.".into()
    } else if text.starts_with("trailing characters") || text.starts_with("trailing comma") {
        "The document root must not be followed by other values.".into()
    } else if text.starts_with("key must be a string") {
        "Missing a name for object member.".into()
    } else if text.starts_with("expected `:`") {
        "Missing a colon after a name of object member.".into()
    } else if text.starts_with("expected `,` or `}`") {
        "Missing a comma or '}' after an object member.".into()
    } else if text.starts_with("expected `,` or `]`") {
        "Missing a comma or ']' after an array element.".into()
    } else if text.starts_with("invalid escape") || text.starts_with("invalid unicode code point") {
        "Invalid escape character in string.".into()
    } else if text.starts_with("number out of range") {
        "Number too big to be stored in double.".into()
    } else if text.starts_with("control character") {
        "Invalid encoding in string.".into()
    } else {
        // Not a RapidJSON error (e.g. invalid UTF-8, nesting too deep): serde_json's words.
        Cow::Owned(text.split(" at line ").next().unwrap_or(&text).to_string())
    };
    Status::internal(format!(
        "failed to parse the request JSON buffer: {reason} at {offset}"
    ))
}

/// Whether the text ends with an object key (a string right after `{` or `,`).
fn after_key(text: &[u8]) -> bool {
    let t = text.trim_ascii_end();
    let Some(body) = t.strip_suffix(b"\"") else {
        return false;
    };
    let mut i = body.len();
    while i > 0 {
        i -= 1;
        if body[i] == b'"' && (i == 0 || body[i - 1] != b'\\') {
            let lead = body[..i].trim_ascii_end();
            return matches!(lead.last(), Some(b'{' | b','));
        }
    }
    false
}

/// serde_json reports 1-based line and column; RapidJSON reports a byte offset.
fn byte_offset(buf: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut start = 0;
    for _ in 1..line {
        match buf[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
    }
    let at = start + column;
    // At the end of the input RapidJSON points past the last byte; elsewhere at the byte.
    if at >= buf.len() {
        buf.len()
    } else {
        at.saturating_sub(1)
    }
}

// ---------------------------------------------------------------- writing

/// Writes `s` as a JSON string, escaping as RapidJSON does. Bytes that are not UTF-8 are
/// written as they are (callers only pass UTF-8 unless they mean otherwise).
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    use serde_json::ser::Formatter;
    let _ = serde_json::ser::CompactFormatter.write_i64(out, v);
}

pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    use serde_json::ser::Formatter;
    let _ = serde_json::ser::CompactFormatter.write_u64(out, v);
}

/// Doubles as RapidJSON writes them: shortest round-trip form, `NaN` and `Infinity` for the
/// values JSON cannot hold (Triton writes them; Python's JSON reads them).
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    use serde_json::ser::Formatter;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        let start = out.len();
        let _ = serde_json::ser::CompactFormatter.write_f64(out, v);
        // RapidJSON writes exponents without a plus sign (1e21, not 1e+21).
        if let Some(p) = out[start..].iter().position(|&b| b == b'+') {
            out.remove(start + p);
        }
    }
}

pub fn write_param(out: &mut Vec<u8>, v: &crate::request::ParamValue) {
    use crate::request::ParamValue;
    match v {
        ParamValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        ParamValue::Int(i) => write_i64(out, *i),
        ParamValue::Uint(u) => write_u64(out, *u),
        ParamValue::Double(d) => write_f64(out, *d),
        ParamValue::String(s) => escape_into(out, s.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn syntax(body: &str, want: &str) {
        let e = parse_document(body.as_bytes(), Policy::INFER).unwrap_err();
        assert_eq!(
            e.message,
            format!("failed to parse the request JSON buffer: {want}"),
            "{body:?}"
        );
        assert_eq!(e.code, crate::status::Code::Internal);
    }

    #[test]
    fn rapidjson_wording() {
        // The first four are answers recorded from Triton 2.51.
        syntax("{\"inputs\": [", "Invalid value. at 12");
        syntax("{not json", "Missing a name for object member. at 1");
        syntax("[1,", "Invalid value. at 3");
        syntax(
            "{\"inputs\":[{\"name\":\"",
            "Missing a closing quotation mark in string. at 20",
        );
        syntax(
            "{\"a\":1} xyz",
            "The document root must not be followed by other values. at 8",
        );
        syntax("", "The document is empty. at 0");
        syntax("  ", "The document is empty. at 2");
        syntax(
            "{\"a\" 1}",
            "Missing a colon after a name of object member. at 5",
        );
        syntax(
            "{\"a\":1 \"b\":2}",
            "Missing a comma or '}' after an object member. at 7",
        );
        syntax(
            "[1 2]",
            "Missing a comma or ']' after an array element. at 3",
        );
        syntax(
            "[1,2",
            "Missing a comma or ']' after an array element. at 4",
        );
        syntax(
            "{\"a\"",
            "Missing a colon after a name of object member. at 4",
        );
        syntax("{\"a\":", "Invalid value. at 5");
        syntax(
            "{\"a\":1",
            "Missing a comma or '}' after an object member. at 6",
        );
        syntax("{\n\"a\":x}", "Invalid value. at 6");
    }

    #[test]
    fn shallow_tree_keeps_data_raw() {
        let doc = br#"{"id":"x","inputs":[{"name":"A","shape":[2],"data":[[1],[2]]}],"inputs":5}"#;
        let n = parse_document(doc, Policy::INFER).unwrap();
        assert_eq!(n.get("id").unwrap().as_str().unwrap(), "x");
        let inputs = n.get("inputs").unwrap().as_array().unwrap();
        let data = inputs[0].get("data").unwrap();
        assert!(matches!(data, Node::Raw(r) if r.get() == "[[1],[2]]"));
        assert_eq!(
            inputs[0].get("shape").unwrap().as_array().unwrap()[1 - 1].as_u64(),
            Ok(2)
        );
        assert_eq!(inputs[0].get("name").unwrap().as_i64(), Err(NOT_INT));
        let top = parse_document(b"[1,2]", Policy::INFER).unwrap();
        assert!(top.get("inputs").is_none());
        assert_eq!(top.members().unwrap_err(), NO_MEMBERS);
    }

    #[test]
    fn numbers_follow_rapidjson_types() {
        let n = parse_document(
            br#"{"a":-1,"b":1.5,"c":18446744073709551615,"d":"s","e":true}"#,
            Policy::NONE,
        )
        .unwrap();
        assert_eq!(n.get("a").unwrap().as_u64(), Err(NOT_UINT));
        assert_eq!(n.get("a").unwrap().as_i64(), Ok(-1));
        assert_eq!(n.get("b").unwrap().as_i64(), Err(NOT_INT));
        assert_eq!(n.get("b").unwrap().as_f64(), Ok(1.5));
        assert_eq!(n.get("c").unwrap().as_i64(), Err(NOT_INT));
        assert_eq!(n.get("c").unwrap().as_u64(), Ok(u64::MAX));
        assert_eq!(n.get("d").unwrap().as_f64(), Err(NOT_NUMBER));
        assert_eq!(n.get("e").unwrap().as_bool(), Ok(true));
        assert_eq!(n.get("e").unwrap().as_str().unwrap_err(), NOT_STRING);
    }

    #[test]
    fn writer() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\"\\\n\t\x00\x1f\x08\x0c/\xc3\xa9");
        assert_eq!(out, b"\"a\\\"\\\\\\n\\t\\u0000\\u001f\\b\\f/\xc3\xa9\"");
        let mut out = Vec::new();
        for v in [
            0.1f32 as f64,
            2.0,
            -4.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e21,
        ] {
            write_f64(&mut out, v);
            out.push(b',');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0.10000000149011612,2.0,-4.0,NaN,Infinity,-Infinity,1e21,"
        );
    }
}
