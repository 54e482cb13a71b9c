//! Tensor data between JSON and little-endian bytes.
//!
//! Reading: a `data` member (kept raw by the request parser) is flattened by a visitor that
//! writes each element straight into the typed buffer, whatever the nesting (Triton accepts
//! any nesting and only checks the element count). Numbers follow Triton's rules: signed
//! types read any signed 64-bit integer and truncate, unsigned types read unsigned ones,
//! floats read any number. Writing: elements go straight from the tensor bytes to the JSON
//! text.

use std::fmt;

use bytes::{BufMut, Bytes};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::json::{self, NOT_BOOL, NOT_INT, NOT_NUMBER, NOT_STRING, NOT_UINT};
use crate::status::Status;
use crate::tensor::DataType;

const SHAPE_MISMATCH: &str = "Shape does not match true shape of 'data' field";

/// Reads a JSON `data` value of `expected` elements (BYTES: any count; the request validation
/// checks it) into Triton's byte form.
pub fn read(raw: &RawValue, dtype: DataType, expected: usize) -> Result<Bytes, Status> {
    if json::raw_kind(raw) != json::Kind::Array {
        return Err(json::unable("data", json::NOT_ARRAY));
    }
    read_value(raw, dtype, expected)
}

/// Like [`read`], but a lone scalar is one element (the generate extension's form).
pub fn read_value(raw: &RawValue, dtype: DataType, expected: usize) -> Result<Bytes, Status> {
    let text = raw.get();
    // Each element takes at least two characters ("1,"), which bounds what a lying shape costs.
    let bound = text.len() / 2 + 1;
    let cap = match dtype.size() {
        Some(size) => expected.min(bound) * size,
        None => text.len(),
    };
    let mut sink = Sink {
        dtype,
        buf: Vec::with_capacity(cap),
        count: 0,
        expected,
        err: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Flat { sink: &mut sink }.deserialize(&mut de);
    if let Err(e) = parsed {
        return Err(sink.err.take().unwrap_or_else(|| {
            let msg = e.to_string();
            json::unable("data", msg.split(" at line ").next().unwrap_or(&msg))
        }));
    }
    if dtype != DataType::Bytes && sink.count != expected {
        return Err(json::unable("data", SHAPE_MISMATCH));
    }
    Ok(Bytes::from(sink.buf))
}

struct Sink {
    dtype: DataType,
    buf: Vec<u8>,
    count: usize,
    expected: usize,
    err: Option<Status>,
}

enum Elem<'a> {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    S(&'a str),
    Other,
}

impl Sink {
    fn push(&mut self, e: Elem) -> Result<(), ()> {
        if self.dtype != DataType::Bytes {
            if self.count >= self.expected {
                return self.fail(json::unable("data", SHAPE_MISMATCH));
            }
            self.count += 1;
        }
        let b = &mut self.buf;
        macro_rules! signed {
            ($t:ty) => {
                match e {
                    Elem::I(v) => b.put_slice(&(v as $t).to_le_bytes()),
                    Elem::U(v) if v <= i64::MAX as u64 => b.put_slice(&(v as $t).to_le_bytes()),
                    _ => return self.fail(json::unable("data", NOT_INT)),
                }
            };
        }
        macro_rules! unsigned {
            ($t:ty) => {
                match e {
                    Elem::U(v) => b.put_slice(&(v as $t).to_le_bytes()),
                    _ => return self.fail(json::unable("data", NOT_UINT)),
                }
            };
        }
        macro_rules! float {
            ($conv:expr) => {
                match e {
                    Elem::U(v) => b.put_slice(&$conv(v as f64)),
                    Elem::I(v) => b.put_slice(&$conv(v as f64)),
                    Elem::F(v) => b.put_slice(&$conv(v)),
                    _ => return self.fail(json::unable("data", NOT_NUMBER)),
                }
            };
        }
        match self.dtype {
            DataType::Bool => match e {
                Elem::B(v) => b.put_u8(u8::from(v)),
                _ => return self.fail(json::unable("data", NOT_BOOL)),
            },
            DataType::Uint8 => unsigned!(u8),
            DataType::Uint16 => unsigned!(u16),
            DataType::Uint32 => unsigned!(u32),
            DataType::Uint64 => unsigned!(u64),
            DataType::Int8 => signed!(i8),
            DataType::Int16 => signed!(i16),
            DataType::Int32 => signed!(i32),
            DataType::Int64 => signed!(i64),
            DataType::Fp16 => float!(|v: f64| half::f16::from_f64(v).to_le_bytes()),
            DataType::Bf16 => float!(|v: f64| half::bf16::from_f64(v).to_le_bytes()),
            DataType::Fp32 => float!(|v: f64| (v as f32).to_le_bytes()),
            DataType::Fp64 => float!(|v: f64| v.to_le_bytes()),
            DataType::Bytes => match e {
                Elem::S(s) => {
                    let Ok(len) = u32::try_from(s.len()) else {
                        return self
                            .fail(Status::invalid_arg("a BYTES element is longer than 4 GiB"));
                    };
                    b.put_u32_le(len);
                    b.put_slice(s.as_bytes());
                }
                _ => {
                    return self.fail(Status::internal(format!(
                        "Unable to parse JSON bytes array: {NOT_STRING}"
                    )));
                }
            },
        }
        Ok(())
    }

    fn fail(&mut self, s: Status) -> Result<(), ()> {
        self.err = Some(s);
        Err(())
    }
}

struct Flat<'s> {
    sink: &'s mut Sink,
}

impl<'de> DeserializeSeed<'de> for Flat<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Flat<'_> {
    fn elem<E: de::Error>(self, e: Elem) -> Result<(), E> {
        self.sink.push(e).map_err(|()| E::custom("invalid element"))
    }
}

impl<'de> Visitor<'de> for Flat<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("tensor data")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let sink = self.sink;
        while seq.next_element_seed(Flat { sink: &mut *sink })?.is_some() {}
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.elem(Elem::U(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.elem(Elem::I(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.elem(Elem::F(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.elem(Elem::B(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.elem(Elem::S(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.elem(Elem::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.elem(Elem::Other)
    }
}

// ---------------------------------------------------------------- writing

/// Appends the elements of `data` (Triton's byte form of `dtype`) as a JSON array.
/// Fails on a BYTES element that is not UTF-8 (callers send such tensors as binary).
pub fn write(out: &mut Vec<u8>, dtype: DataType, data: &[u8]) -> Result<(), NotUtf8> {
    out.push(b'[');
    let start = out.len();
    macro_rules! each {
        ($t:ty, $w:expr) => {{
            for c in data.chunks_exact(std::mem::size_of::<$t>()) {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(c);
                $w(&mut *out, <$t>::from_le_bytes(a));
                out.push(b',');
            }
        }};
    }
    match dtype {
        DataType::Bool => {
            for &b in data {
                out.extend_from_slice(if b != 0 { b"true," } else { b"false," });
            }
        }
        DataType::Uint8 => each!(u8, |o, v: u8| json::write_u64(o, v.into())),
        DataType::Uint16 => each!(u16, |o, v: u16| json::write_u64(o, v.into())),
        DataType::Uint32 => each!(u32, |o, v: u32| json::write_u64(o, v.into())),
        DataType::Uint64 => each!(u64, |o, v: u64| json::write_u64(o, v)),
        DataType::Int8 => each!(i8, |o, v: i8| json::write_i64(o, v.into())),
        DataType::Int16 => each!(i16, |o, v: i16| json::write_i64(o, v.into())),
        DataType::Int32 => each!(i32, |o, v: i32| json::write_i64(o, v.into())),
        DataType::Int64 => each!(i64, |o, v: i64| json::write_i64(o, v)),
        DataType::Fp16 => each!(half::f16, |o, v: half::f16| json::write_f64(o, v.into())),
        DataType::Bf16 => each!(half::bf16, |o, v: half::bf16| json::write_f64(o, v.into())),
        DataType::Fp32 => each!(f32, |o, v: f32| json::write_f64(o, v.into())),
        DataType::Fp64 => each!(f64, |o, v: f64| json::write_f64(o, v)),
        DataType::Bytes => {
            for s in BytesElements(data) {
                if std::str::from_utf8(s).is_err() {
                    return Err(NotUtf8);
                }
                json::escape_into(out, s);
                out.push(b',');
            }
        }
    }
    if out.len() > start {
        out.pop();
    }
    out.push(b']');
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub struct NotUtf8;

/// Whether every element of a BYTES tensor is UTF-8 (and so can be written as JSON).
pub fn bytes_are_utf8(data: &[u8]) -> bool {
    BytesElements(data).all(|s| std::str::from_utf8(s).is_ok())
}

/// The elements of Triton's length-prefixed BYTES form; stops at a malformed tail.
pub struct BytesElements<'a>(pub &'a [u8]);

impl<'a> Iterator for BytesElements<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let d = self.0;
        let len = u32::from_le_bytes(d.get(..4)?.try_into().ok()?) as usize;
        let item = d.get(4..4 + len)?;
        self.0 = &d[4 + len..];
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[track_caller]
    fn ok(text: &str, dtype: DataType, n: usize) -> Bytes {
        read(&raw(text), dtype, n).unwrap()
    }

    #[track_caller]
    fn err(text: &str, dtype: DataType, n: usize, want: &str) {
        assert_eq!(
            read(&raw(text), dtype, n).unwrap_err().message,
            want,
            "{text}"
        );
    }

    #[test]
    fn every_datatype_reads_like_triton() {
        assert_eq!(
            ok("[true,false]", DataType::Bool, 2),
            Bytes::from_static(&[1, 0])
        );
        assert_eq!(
            ok("[[1],[255],[256]]", DataType::Uint8, 3),
            Bytes::from_static(&[1, 255, 0])
        );
        assert_eq!(
            ok("[200,-1]", DataType::Int8, 2),
            Bytes::from_static(&[200, 255])
        );
        assert_eq!(
            ok("[2147483648]", DataType::Int32, 1),
            Tensor::from_values(vec![1], &[i32::MIN]).data
        );
        assert_eq!(
            ok("[1,-2]", DataType::Int64, 2),
            Tensor::from_values(vec![2], &[1i64, -2]).data
        );
        assert_eq!(
            ok("[65535,65536]", DataType::Uint16, 2),
            Tensor::from_values(vec![2], &[65535u16, 0]).data
        );
        assert_eq!(
            ok("[18446744073709551615]", DataType::Uint64, 1),
            Tensor::from_values(vec![1], &[u64::MAX]).data
        );
        assert_eq!(
            ok("[4294967295]", DataType::Uint32, 1),
            Tensor::from_values(vec![1], &[u32::MAX]).data
        );
        assert_eq!(
            ok("[-3]", DataType::Int16, 1),
            Tensor::from_values(vec![1], &[-3i16]).data
        );
        assert_eq!(
            ok("[1, 0.5, -2]", DataType::Fp32, 3),
            Tensor::from_values(vec![3], &[1.0f32, 0.5, -2.0]).data
        );
        assert_eq!(
            ok("[0.1]", DataType::Fp64, 1),
            Tensor::from_values(vec![1], &[0.1f64]).data
        );
        let h = half::f16::from_f64(1.5);
        assert_eq!(
            ok("[1.5]", DataType::Fp16, 1),
            Tensor::from_values(vec![1], &[h]).data
        );
        let bf = half::bf16::from_f64(-2.0);
        assert_eq!(
            ok("[-2]", DataType::Bf16, 1),
            Tensor::from_values(vec![1], &[bf]).data
        );
        assert_eq!(
            ok(r#"["a","","\u00e9\n"]"#, DataType::Bytes, 3),
            Tensor::from_strings(vec![3], &["a", "", "\u{e9}\n"]).data
        );
        // Zero-length inner arrays add nothing; BYTES counts are left to validation.
        assert_eq!(
            ok(r#"[["a"],[]]"#, DataType::Bytes, 9),
            Tensor::from_strings(vec![1], &["a"]).data
        );
    }

    #[test]
    fn type_and_count_errors_like_triton() {
        err(
            "[1,2]",
            DataType::Int32,
            3,
            "Unable to parse 'data': Shape does not match true shape of 'data' field",
        );
        err(
            "[1,2,3]",
            DataType::Int32,
            2,
            "Unable to parse 'data': Shape does not match true shape of 'data' field",
        );
        err(
            "[1,[]]",
            DataType::Fp32,
            2,
            "Unable to parse 'data': Shape does not match true shape of 'data' field",
        );
        err(
            "\"AAAA\"",
            DataType::Int32,
            1,
            "Unable to parse 'data': attempt to access JSON non-array as array",
        );
        err(
            "[0.5]",
            DataType::Int32,
            1,
            "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer",
        );
        err(
            "[true]",
            DataType::Int32,
            1,
            "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer",
        );
        err(
            "[null]",
            DataType::Int32,
            1,
            "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer",
        );
        err(
            "[18446744073709551615]",
            DataType::Int64,
            1,
            "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer",
        );
        err(
            "[-1]",
            DataType::Uint8,
            1,
            "Unable to parse 'data': attempt to access JSON non-unsigned-integer as unsigned-integer",
        );
        err(
            "[\"1.0\"]",
            DataType::Fp32,
            1,
            "Unable to parse 'data': attempt to access JSON non-number as double",
        );
        err(
            "[1,{\"a\":1}]",
            DataType::Fp32,
            2,
            "Unable to parse 'data': attempt to access JSON non-number as double",
        );
        err(
            "[1]",
            DataType::Bool,
            1,
            "Unable to parse 'data': attempt to access JSON non-boolean as boolean",
        );
        err(
            "[1,2]",
            DataType::Bytes,
            2,
            "Unable to parse JSON bytes array: attempt to access JSON non-string as string",
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(
            read(&raw(&deep), DataType::Int32, 1)
                .unwrap_err()
                .message
                .starts_with("Unable to parse 'data': recursion limit")
        );
    }

    #[test]
    fn writes_every_datatype() {
        let w = |t: Tensor| {
            let mut out = Vec::new();
            write(&mut out, t.datatype, &t.data).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            w(Tensor::from_values(vec![2], &[true, false])),
            "[true,false]"
        );
        assert_eq!(
            w(Tensor::from_values(vec![2], &[-128i8, 127])),
            "[-128,127]"
        );
        assert_eq!(
            w(Tensor::from_values(vec![1], &[u64::MAX])),
            "[18446744073709551615]"
        );
        assert_eq!(
            w(Tensor::from_values(vec![3], &[0.1f32, 2.0, f32::NAN])),
            "[0.10000000149011612,2.0,NaN]"
        );
        assert_eq!(
            w(Tensor::from_values(vec![1], &[half::f16::from_f64(0.5)])),
            "[0.5]"
        );
        assert_eq!(w(Tensor::from_values::<i32>(vec![0], &[])), "[]");
        assert_eq!(
            w(Tensor::from_strings(vec![2], &["a\"", "\u{0}x"])),
            r#"["a\"","\u0000x"]"#
        );
        let mut out = Vec::new();
        assert_eq!(
            write(
                &mut out,
                DataType::Bytes,
                &Tensor::from_strings(vec![1], &[b"\xff"]).data
            ),
            Err(NotUtf8)
        );
    }
}
