//! Input tensors built from the model metadata, the `--shape` flags and the input data
//! (zeros, random values or perf_analyzer's JSON data format). Everything ends up as
//! little-endian raw bytes; BYTES elements are a 4-byte little-endian length followed
//! by the bytes, as on the wire.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use super::error::PerfError;
use super::schedule::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Bf16,
    Fp32,
    Fp64,
    Bytes,
}

const DATATYPES: [(DataType, &str); 14] = [
    (DataType::Bool, "BOOL"),
    (DataType::Uint8, "UINT8"),
    (DataType::Uint16, "UINT16"),
    (DataType::Uint32, "UINT32"),
    (DataType::Uint64, "UINT64"),
    (DataType::Int8, "INT8"),
    (DataType::Int16, "INT16"),
    (DataType::Int32, "INT32"),
    (DataType::Int64, "INT64"),
    (DataType::Fp16, "FP16"),
    (DataType::Bf16, "BF16"),
    (DataType::Fp32, "FP32"),
    (DataType::Fp64, "FP64"),
    (DataType::Bytes, "BYTES"),
];

impl DataType {
    /// Reads a KServe v2 datatype name (`FP32`, `BYTES`, ...).
    pub fn parse(name: &str) -> Option<DataType> {
        DATATYPES.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
    }

    pub fn name(self) -> &'static str {
        DATATYPES
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("BYTES", |(_, n)| n)
    }

    /// Bytes per element; `None` for BYTES.
    pub fn size(self) -> Option<usize> {
        use DataType::*;
        match self {
            Bool | Uint8 | Int8 => Some(1),
            Uint16 | Int16 | Fp16 | Bf16 => Some(2),
            Uint32 | Int32 | Fp32 => Some(4),
            Uint64 | Int64 | Fp64 => Some(8),
            Bytes => None,
        }
    }
}

/// One model input, with the dims of a single batch element (no batch dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub datatype: DataType,
    /// -1 marks a variable dimension.
    pub dims: Vec<i64>,
}

/// Where input values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputData {
    Zero,
    Random,
    /// perf_analyzer's JSON input file.
    Json(std::path::PathBuf),
}

impl InputData {
    /// `zero`, `random`, or anything else as a path to a JSON file.
    pub fn parse(text: &str) -> InputData {
        match text {
            "zero" => InputData::Zero,
            "random" => InputData::Random,
            path => InputData::Json(path.into()),
        }
    }
}

/// One tensor of one batch element.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<i64>,
    pub raw: Vec<u8>,
}

/// One batch element: a tensor per input, in the order of the specs.
pub type Sample = Vec<Tensor>;

/// One input of one request, ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchTensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub raw: Bytes,
}

/// Parses `NAME:d1,d2,...` (the `--shape` flag).
pub fn parse_shape_flag(text: &str) -> Result<(String, Vec<i64>), PerfError> {
    let bad = || {
        PerfError::config(format!(
            "invalid --shape '{text}': expected NAME:d1,d2,... with positive dims"
        ))
    };
    let (name, dims) = text.rsplit_once(':').ok_or_else(bad)?;
    if name.is_empty() || dims.trim().is_empty() {
        return Err(bad());
    }
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

/// The dims of `spec` after the `--shape` flags: a given shape must keep the rank and
/// every fixed dimension, and must fill every variable one.
pub fn resolve_dims(
    spec: &InputSpec,
    shapes: &[(String, Vec<i64>)],
) -> Result<Vec<i64>, PerfError> {
    let Some((_, given)) = shapes.iter().rev().find(|(n, _)| *n == spec.name) else {
        if spec.dims.iter().any(|d| *d < 0) {
            return Err(PerfError::input(format!(
                "input '{}' has variable dims {:?}; give its shape with --shape {}:<dims>",
                spec.name, spec.dims, spec.name
            )));
        }
        return Ok(spec.dims.clone());
    };
    let fits = given.len() == spec.dims.len()
        && spec.dims.iter().zip(given).all(|(m, g)| *m < 0 || m == g);
    if !fits {
        return Err(PerfError::input(format!(
            "--shape {}:{} does not fit the model's dims {:?}",
            spec.name,
            join_dims(given),
            spec.dims
        )));
    }
    Ok(given.clone())
}

/// Checks that every `--shape` names an input of the model.
pub fn check_shape_names(
    specs: &[InputSpec],
    shapes: &[(String, Vec<i64>)],
) -> Result<(), PerfError> {
    for (name, _) in shapes {
        if !specs.iter().any(|s| s.name == *name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(PerfError::input(format!(
                "--shape names '{name}', which is not an input of the model (inputs: {known:?})"
            )));
        }
    }
    Ok(())
}

fn join_dims(d: &[i64]) -> String {
    d.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub fn element_count(shape: &[i64]) -> usize {
    shape.iter().map(|d| (*d).max(0) as usize).product()
}

/// Appends one BYTES element (length prefix, then the bytes).
pub fn push_bytes_element(out: &mut Vec<u8>, item: &[u8]) {
    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
    out.extend_from_slice(item);
}

/// Serialises BYTES elements as the binary tensor extension and gRPC raw contents want.
pub fn serialize_bytes<I, T>(items: I) -> Vec<u8>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for item in items {
        push_bytes_element(&mut out, item.as_ref());
    }
    out
}

/// Splits serialised BYTES back into elements.
pub fn deserialize_bytes(mut raw: &[u8]) -> Result<Vec<&[u8]>, PerfError> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(PerfError::input(
                "BYTES data ends inside a 4-byte length prefix",
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(PerfError::input(format!(
                "BYTES element of {len} bytes runs past the end of the data ({} left)",
                rest.len()
            )));
        }
        out.push(&rest[..len]);
        raw = &rest[len..];
    }
    Ok(out)
}

/// How synthetic (zero or random) data is made.
#[derive(Clone, Debug)]
pub struct SyntheticOptions {
    pub random: bool,
    /// Length of each generated BYTES element.
    pub string_length: usize,
    /// Every BYTES element is this string when given.
    pub string_data: Option<String>,
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One tensor of zeros or random values. Random integers are drawn from [0, 128) so
/// they fit every integer type and sums do not overflow; floats from [0, 1).
pub fn synthetic_tensor(
    dtype: DataType,
    shape: &[i64],
    opts: &SyntheticOptions,
    rng: &mut Rng,
) -> Tensor {
    let n = element_count(shape);
    let mut raw = Vec::with_capacity(n * dtype.size().unwrap_or(4 + opts.string_length));
    for _ in 0..n {
        if dtype == DataType::Bytes {
            let item: Vec<u8> = match &opts.string_data {
                Some(s) => s.as_bytes().to_vec(),
                None if opts.random => (0..opts.string_length)
                    .map(|_| ALPHANUMERIC[rng.below(ALPHANUMERIC.len() as u64) as usize])
                    .collect(),
                None => vec![b'0'; opts.string_length],
            };
            push_bytes_element(&mut raw, &item);
            continue;
        }
        let (int, float) = if opts.random {
            let i = if dtype == DataType::Bool {
                rng.below(2)
            } else {
                rng.below(128)
            };
            (i, rng.next_f64())
        } else {
            (0, 0.0)
        };
        push_number(&mut raw, dtype, Num::Int(int as i128), float);
    }
    Tensor {
        shape: shape.to_vec(),
        raw,
    }
}

/// A synthetic sample for every input; `dims` are the resolved dims per spec.
pub fn synthetic_sample(
    specs: &[InputSpec],
    dims: &[Vec<i64>],
    opts: &SyntheticOptions,
    seed: u64,
) -> Sample {
    let mut rng = Rng::new(seed);
    specs
        .iter()
        .zip(dims)
        .map(|(s, d)| synthetic_tensor(s.datatype, d, opts, &mut rng))
        .collect()
}

enum Num {
    Int(i128),
    Float(f64),
}

/// Appends one number; `float` is used by float types when `n` is an integer.
fn push_number(out: &mut Vec<u8>, dtype: DataType, n: Num, float: f64) {
    let (i, f) = match n {
        Num::Int(i) => (
            i,
            if matches!(
                dtype,
                DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64
            ) {
                float
            } else {
                i as f64
            },
        ),
        Num::Float(f) => (f as i128, f),
    };
    use DataType::*;
    match dtype {
        Bool | Uint8 => out.push(i as u8),
        Int8 => out.push(i as i8 as u8),
        Uint16 => out.extend_from_slice(&(i as u16).to_le_bytes()),
        Int16 => out.extend_from_slice(&(i as i16).to_le_bytes()),
        Uint32 => out.extend_from_slice(&(i as u32).to_le_bytes()),
        Int32 => out.extend_from_slice(&(i as i32).to_le_bytes()),
        Uint64 => out.extend_from_slice(&(i as u64).to_le_bytes()),
        Int64 => out.extend_from_slice(&(i as i64).to_le_bytes()),
        Fp16 => out.extend_from_slice(&half::f16::from_f64(f).to_le_bytes()),
        Bf16 => out.extend_from_slice(&half::bf16::from_f64(f).to_le_bytes()),
        Fp32 => out.extend_from_slice(&(f as f32).to_le_bytes()),
        Fp64 => out.extend_from_slice(&f.to_le_bytes()),
        Bytes => {}
    }
}

/// The integer range of an integer type, for range checks of JSON data.
fn int_range(dtype: DataType) -> Option<(i128, i128)> {
    use DataType::*;
    Some(match dtype {
        Bool => (0, 1),
        Uint8 => (0, u8::MAX as i128),
        Uint16 => (0, u16::MAX as i128),
        Uint32 => (0, u32::MAX as i128),
        Uint64 => (0, u64::MAX as i128),
        Int8 => (i8::MIN as i128, i8::MAX as i128),
        Int16 => (i16::MIN as i128, i16::MAX as i128),
        Int32 => (i32::MIN as i128, i32::MAX as i128),
        Int64 => (i64::MIN as i128, i64::MAX as i128),
        _ => return None,
    })
}

/// Appends the (possibly nested) JSON values of one tensor; returns the element count.
fn push_json(out: &mut Vec<u8>, dtype: DataType, v: &Value) -> Result<usize, String> {
    match v {
        Value::Array(items) => {
            let mut n = 0;
            for item in items {
                n += push_json(out, dtype, item)?;
            }
            Ok(n)
        }
        Value::String(s) if dtype == DataType::Bytes => {
            push_bytes_element(out, s.as_bytes());
            Ok(1)
        }
        Value::Number(n) if dtype == DataType::Bytes => {
            push_bytes_element(out, n.to_string().as_bytes());
            Ok(1)
        }
        Value::Bool(b) if dtype == DataType::Bool => {
            out.push(u8::from(*b));
            Ok(1)
        }
        Value::Number(n) => {
            if let Some((lo, hi)) = int_range(dtype) {
                let i = n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .ok_or_else(|| format!("{n} is not an integer, as {} needs", dtype.name()))?;
                if i < lo || i > hi {
                    return Err(format!("{n} is out of range for {}", dtype.name()));
                }
                push_number(out, dtype, Num::Int(i), 0.0);
            } else {
                let f = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
                push_number(out, dtype, Num::Float(f), f);
            }
            Ok(1)
        }
        other => Err(format!("{other} is not a valid {} value", dtype.name())),
    }
}

/// Reads one tensor of a data entry: a flat (or nested) array, `{"b64": ...}`, or
/// `{"content": ..., "shape": [...]}`.
fn json_tensor(
    spec: &InputSpec,
    default_shape: Option<&Vec<i64>>,
    v: &Value,
) -> Result<Tensor, String> {
    let (content, shape) = match v {
        Value::Object(o) if o.contains_key("content") => {
            let shape = match o.get("shape") {
                Some(s) => Some(
                    serde_json::from_value::<Vec<i64>>(s.clone())
                        .map_err(|_| format!("'shape' must be an array of integers, got {s}"))?,
                ),
                None => None,
            };
            (&o["content"], shape)
        }
        _ => (v, None),
    };
    let shape = match shape.or_else(|| default_shape.cloned()) {
        Some(s) if s.iter().all(|d| *d >= 0) => s,
        _ => {
            return Err(format!(
                "no full shape for dims {:?}: add a \"shape\" to the data or give --shape {}:<dims>",
                spec.dims, spec.name
            ));
        }
    };
    let want = element_count(&shape);
    let raw = match content {
        Value::Object(o) if o.contains_key("b64") => {
            let text = o["b64"].as_str().ok_or("'b64' must be a string")?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("invalid base64: {e}"))?;
            let got = match spec.datatype.size() {
                Some(size) if raw.len().is_multiple_of(size) => raw.len() / size,
                Some(size) => {
                    return Err(format!(
                        "{} bytes of base64 data is not a whole number of {size}-byte elements",
                        raw.len()
                    ));
                }
                None => deserialize_bytes(&raw).map_err(|e| e.to_string())?.len(),
            };
            if got != want {
                return Err(format!(
                    "holds {got} elements but shape {shape:?} needs {want}"
                ));
            }
            raw
        }
        _ => {
            let mut raw = Vec::new();
            let got = push_json(&mut raw, spec.datatype, content)?;
            if got != want {
                return Err(format!(
                    "holds {got} elements but shape {shape:?} needs {want}"
                ));
            }
            raw
        }
    };
    Ok(Tensor { shape, raw })
}

/// Parses perf_analyzer's JSON input data: `{"data": [ {INPUT: values, ...}, ... ]}`.
/// Streams (arrays of entries, for sequence models) are flattened in order.
/// `dims` are the resolved dims per spec, or `None` where an input stays variable.
pub fn parse_json_data(
    text: &str,
    specs: &[InputSpec],
    dims: &[Option<Vec<i64>>],
) -> Result<Vec<Sample>, PerfError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| PerfError::input(format!("input data is not valid JSON: {e}")))?;
    let Some(data) = root.get("data").and_then(Value::as_array) else {
        return Err(PerfError::input(
            "input data needs a top-level \"data\" array",
        ));
    };
    let mut entries = Vec::new();
    for item in data {
        match item {
            Value::Array(stream) => entries.extend(stream.iter()),
            other => entries.push(other),
        }
    }
    if entries.is_empty() {
        return Err(PerfError::input("input data has an empty \"data\" array"));
    }
    let mut samples = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Some(obj) = entry.as_object() else {
            return Err(PerfError::input(format!("data entry {i} is not an object")));
        };
        let mut sample = Vec::with_capacity(specs.len());
        for (spec, d) in specs.iter().zip(dims) {
            let v = obj.get(&spec.name).ok_or_else(|| {
                PerfError::input(format!(
                    "data entry {i} has no value for input '{}'",
                    spec.name
                ))
            })?;
            let t = json_tensor(spec, d.as_ref(), v).map_err(|e| {
                PerfError::input(format!("data entry {i}, input '{}': {e}", spec.name))
            })?;
            sample.push(t);
        }
        samples.push(sample);
    }
    Ok(samples)
}

/// Builds the inputs of every distinct request: request `k` batches samples
/// `k*b .. k*b+b` (mod the sample count), as perf_analyzer walks its data.
/// Without batching (`max_batch_size` 0) the batch size must be 1 and no batch
/// dimension is added.
pub fn batch_requests(
    specs: &[InputSpec],
    samples: &[Sample],
    batch_size: usize,
    batching: bool,
) -> Result<Vec<Vec<BatchTensor>>, PerfError> {
    if samples.is_empty() {
        return Err(PerfError::input("no input data"));
    }
    if batch_size == 0 {
        return Err(PerfError::config("batch size must be at least 1"));
    }
    if !batching && batch_size != 1 {
        return Err(PerfError::config(format!(
            "batch size {batch_size} needs a model that batches, and this one has max_batch_size 0"
        )));
    }
    let n = samples.len();
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let mut request = Vec::with_capacity(specs.len());
        for (j, spec) in specs.iter().enumerate() {
            let first = &samples[(k * batch_size) % n][j];
            let mut raw = Vec::with_capacity(first.raw.len() * batch_size);
            for i in 0..batch_size {
                let t = &samples[(k * batch_size + i) % n][j];
                if t.shape != first.shape {
                    return Err(PerfError::input(format!(
                        "input '{}': entries batched together have different shapes {:?} and {:?}",
                        spec.name, first.shape, t.shape
                    )));
                }
                raw.extend_from_slice(&t.raw);
            }
            let mut shape = Vec::with_capacity(first.shape.len() + 1);
            if batching {
                shape.push(batch_size as i64);
            }
            shape.extend_from_slice(&first.shape);
            request.push(BatchTensor {
                name: spec.name.clone(),
                datatype: spec.datatype,
                shape,
                raw: Bytes::from(raw),
            });
        }
        out.push(request);
    }
    Ok(out)
}

/// Decodes raw little-endian data into JSON values, for JSON-format HTTP requests.
pub fn raw_to_json(dtype: DataType, raw: &[u8]) -> Result<Vec<Value>, PerfError> {
    use DataType::*;
    if dtype == Bytes {
        return deserialize_bytes(raw)?
            .into_iter()
            .map(|b| {
                std::str::from_utf8(b)
                    .map(|s| Value::String(s.to_string()))
                    .map_err(|_| PerfError::input("a BYTES element is not UTF-8, so it cannot go in a JSON request; use binary tensors"))
            })
            .collect();
    }
    let size = dtype.size().unwrap_or(1);
    if !raw.len().is_multiple_of(size) {
        return Err(PerfError::input(format!(
            "{} bytes are not a whole number of {} elements",
            raw.len(),
            dtype.name()
        )));
    }
    let values = raw
        .chunks_exact(size)
        .map(|c| {
            let arr = |n: usize| -> [u8; 8] {
                let mut a = [0u8; 8];
                a[..n].copy_from_slice(&c[..n]);
                a
            };
            let a = arr(size);
            match dtype {
                Bool => Value::Bool(c[0] != 0),
                Uint8 => Value::from(c[0]),
                Int8 => Value::from(c[0] as i8),
                Uint16 => Value::from(u16::from_le_bytes([a[0], a[1]])),
                Int16 => Value::from(i16::from_le_bytes([a[0], a[1]])),
                Uint32 => Value::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
                Int32 => Value::from(i32::from_le_bytes([a[0], a[1], a[2], a[3]])),
                Uint64 => Value::from(u64::from_le_bytes(a)),
                Int64 => Value::from(i64::from_le_bytes(a)),
                Fp16 => Value::from(half::f16::from_le_bytes([a[0], a[1]]).to_f64()),
                Bf16 => Value::from(half::bf16::from_le_bytes([a[0], a[1]]).to_f64()),
                Fp32 => Value::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64),
                Fp64 => Value::from(f64::from_le_bytes(a)),
                Bytes => Value::Null,
            }
        })
        .collect();
    Ok(values)
}
