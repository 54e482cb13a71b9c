//! Golden inputs and outputs (tests/data/goldens, format in its README.md), shared by the
//! backend tests: reading them, and comparing a tensor against one within its tolerance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use despina::backend::{Rows, split_rows};
use despina::request::{InferResponse, NamedTensor};
use despina::tensor::{DataType, Element, Tensor};
use serde_json::Value;

pub struct Golden {
    pub file: PathBuf,
    pub model: String,
    pub repository: String,
    pub case: String,
    pub abs: f64,
    pub rel: f64,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Vec<NamedTensor>,
    /// (case, first row, end row): this case equals those rows of another case.
    pub same_as_row: Option<(String, usize, usize)>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn values<T: Element>(shape: Vec<i64>, data: &[Value], conv: impl Fn(&Value) -> T) -> Tensor {
    Tensor::from_values(shape, &data.iter().map(conv).collect::<Vec<_>>())
}

/// A KServe v2 JSON tensor (Triton datatype names, flat `data`) as a tensor.
pub fn tensor_from_json(t: &Value) -> NamedTensor {
    let name = t["name"].as_str().unwrap();
    let dt = DataType::from_wire(t["datatype"].as_str().unwrap()).unwrap();
    let shape: Vec<i64> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    let data = t["data"].as_array().unwrap();
    let f = |v: &Value| v.as_f64().unwrap();
    let tensor = match dt {
        DataType::Bool => values(shape, data, |v| v.as_bool().unwrap()),
        DataType::Uint8 => values(shape, data, |v| v.as_u64().unwrap() as u8),
        DataType::Uint16 => values(shape, data, |v| v.as_u64().unwrap() as u16),
        DataType::Uint32 => values(shape, data, |v| v.as_u64().unwrap() as u32),
        DataType::Uint64 => values(shape, data, |v| v.as_u64().unwrap()),
        DataType::Int8 => values(shape, data, |v| v.as_i64().unwrap() as i8),
        DataType::Int16 => values(shape, data, |v| v.as_i64().unwrap() as i16),
        DataType::Int32 => values(shape, data, |v| v.as_i64().unwrap() as i32),
        DataType::Int64 => values(shape, data, |v| v.as_i64().unwrap()),
        DataType::Fp16 => values(shape, data, |v| half::f16::from_f64(f(v))),
        DataType::Bf16 => values(shape, data, |v| half::bf16::from_f64(f(v))),
        DataType::Fp32 => values(shape, data, |v| f(v) as f32),
        DataType::Fp64 => values(shape, data, f),
        DataType::Bytes => Tensor::from_strings(
            shape,
            &data.iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>(),
        ),
    };
    NamedTensor::new(name, tensor)
}

/// Reads one golden; `None` for JSON files of the folder that are not cases (references).
pub fn load(file: &Path) -> Option<Golden> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v.get("inputs")?;
    let same_as_row = v.get("same_as_row").map(|s| {
        let case = s["case"].as_str().unwrap().to_string();
        match s.get("rows") {
            Some(r) => (
                case,
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            ),
            None => {
                let row = s["row"].as_u64().unwrap() as usize;
                (case, row, row + 1)
            }
        }
    });
    let tensors = |key: &str| {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor_from_json)
            .collect()
    };
    Some(Golden {
        file: file.to_path_buf(),
        model: v["model"].as_str().unwrap().to_string(),
        repository: v["repository"].as_str().unwrap().to_string(),
        case: v["case"].as_str().unwrap().to_string(),
        abs: v["tolerance"]["abs"].as_f64().unwrap(),
        rel: v["tolerance"]["rel"].as_f64().unwrap(),
        inputs: tensors("inputs"),
        outputs: tensors("outputs"),
        same_as_row,
    })
}

fn cases_in(dir: &Path) -> Vec<Golden> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().filter_map(|f| load(f)).collect()
}

/// Every golden case, model by model.
pub fn all() -> Vec<Golden> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/goldens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    models.sort();
    models.iter().flat_map(|m| cases_in(m)).collect()
}

/// The golden cases of one model.
pub fn of(model: &str) -> Vec<Golden> {
    let cases = cases_in(&root().join("tests/data/goldens").join(model));
    assert!(!cases.is_empty(), "no goldens for {model}");
    cases
}

fn as_f64(t: &Tensor) -> Option<Vec<f64>> {
    Some(match t.datatype {
        DataType::Fp16 => t
            .values::<half::f16>()?
            .iter()
            .map(|v| v.to_f64())
            .collect(),
        DataType::Bf16 => t
            .values::<half::bf16>()?
            .iter()
            .map(|v| v.to_f64())
            .collect(),
        DataType::Fp32 => t.values::<f32>()?.iter().map(|&v| v as f64).collect(),
        DataType::Fp64 => t.values::<f64>()?,
        _ => return None,
    })
}

/// Same datatype and shape, and elementwise within `abs + rel * |want|` for floats; bit for
/// bit when the tolerance is 0 and for every other type.
pub fn compare(got: &Tensor, want: &Tensor, abs: f64, rel: f64) -> Result<(), String> {
    if got.datatype != want.datatype || got.shape != want.shape {
        return Err(format!(
            "got {} {:?}, want {} {:?}",
            got.datatype.wire_name(),
            got.shape,
            want.datatype.wire_name(),
            want.shape
        ));
    }
    if abs == 0.0 && rel == 0.0 || !want.datatype.is_float() {
        return if got.data == want.data {
            Ok(())
        } else {
            Err("data differs (bit for bit comparison)".into())
        };
    }
    let (g, w) = (as_f64(got).unwrap(), as_f64(want).unwrap());
    for (i, (g, w)) in g.iter().zip(&w).enumerate() {
        if !((g.is_nan() && w.is_nan()) || (g - w).abs() <= abs + rel * w.abs()) {
            return Err(format!(
                "element {i}: got {g}, want {w} (abs {abs}, rel {rel})"
            ));
        }
    }
    Ok(())
}

/// Rows `from..to` of a batched tensor.
pub fn rows(t: &Tensor, from: usize, to: usize) -> Tensor {
    let n = t.shape[0] as usize;
    split_rows(t, &Rows(vec![from, to - from, n - to])).unwrap()[1].clone()
}

/// Every expected output is present and matches.
pub fn check_response(
    got: &InferResponse,
    want: &[NamedTensor],
    abs: f64,
    rel: f64,
) -> Result<(), String> {
    if got.outputs.len() != want.len() {
        return Err(format!(
            "{} outputs, want {}",
            got.outputs.len(),
            want.len()
        ));
    }
    for w in want {
        let g = got
            .output(&w.name)
            .ok_or_else(|| format!("output '{}' missing", w.name))?;
        compare(g, &w.tensor, abs, rel).map_err(|e| format!("output '{}': {e}", w.name))?;
    }
    Ok(())
}
