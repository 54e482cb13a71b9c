//! Moving tensors between despina's little-endian bytes and libtorch.
//!
//! Inputs are gathered straight into tensors that libtorch allocates and owns: one copy
//! per input whatever the batch size, and nothing a model does with its inputs (in-place
//! ops, keeping them in its state) can reach the request's buffers. Outputs are copied once
//! into `Bytes`, which the batch then shares, row slice by row slice.

use bytes::Bytes;
use tch::{Device, Kind};

use crate::backend::BackendError;
use crate::request::InferRequest;
use crate::tensor::{DataType, Tensor, element_count};

/// The libtorch element type of a despina datatype; `None` where libtorch has none.
pub fn kind_of(d: DataType) -> Option<Kind> {
    Some(match d {
        DataType::Bool => Kind::Bool,
        DataType::Uint8 => Kind::Uint8,
        DataType::Int8 => Kind::Int8,
        DataType::Int16 => Kind::Int16,
        DataType::Int32 => Kind::Int,
        DataType::Int64 => Kind::Int64,
        DataType::Fp16 => Kind::Half,
        DataType::Bf16 => Kind::BFloat16,
        DataType::Fp32 => Kind::Float,
        DataType::Fp64 => Kind::Double,
        DataType::Uint16 | DataType::Uint32 | DataType::Uint64 | DataType::Bytes => return None,
    })
}

pub fn datatype_of(k: Kind) -> Option<DataType> {
    Some(match k {
        Kind::Bool => DataType::Bool,
        Kind::Uint8 => DataType::Uint8,
        Kind::Int8 => DataType::Int8,
        Kind::Int16 => DataType::Int16,
        Kind::Int => DataType::Int32,
        Kind::Int64 => DataType::Int64,
        Kind::Half => DataType::Fp16,
        Kind::BFloat16 => DataType::Bf16,
        Kind::Float => DataType::Fp32,
        Kind::Double => DataType::Fp64,
        _ => return None,
    })
}

/// The config name of a libtorch element type, for messages (`TYPE_FP32`).
pub fn kind_name(k: Kind) -> String {
    match datatype_of(k) {
        Some(d) => d.to_config().as_str_name().to_string(),
        None => format!("{k:?}"),
    }
}

/// Libtorch's message without the C++ backtrace it appends.
pub fn torch_message(e: &tch::TchError) -> String {
    let text = match e {
        tch::TchError::Torch(m) => m.clone(),
        other => other.to_string(),
    };
    let head = match text.find("\nException raised from") {
        Some(i) => &text[..i],
        None => &text,
    };
    head.trim().to_string()
}

/// Input `name` of every request of `batch`, concatenated along the first dimension into
/// one CPU tensor (`batched`), or the single request's tensor as it is.
pub fn gather(
    batch: &[InferRequest],
    name: &str,
    batched: bool,
) -> Result<tch::Tensor, BackendError> {
    let parts = batch
        .iter()
        .map(|r| {
            r.input(name).ok_or_else(|| {
                BackendError::Invalid(format!("input '{name}' is missing from the request"))
            })
        })
        .collect::<Result<Vec<&Tensor>, _>>()?;
    let Some(first) = parts.first() else {
        return Err(BackendError::Internal("empty batch".into()));
    };
    let kind = kind_of(first.datatype).ok_or_else(|| {
        BackendError::Invalid(format!(
            "input '{name}' has datatype {}, which the pytorch backend does not support",
            first.datatype.wire_name()
        ))
    })?;
    let mut shape = first.shape.clone();
    if parts.len() > 1 {
        if !batched || shape.is_empty() {
            return Err(BackendError::Internal(format!(
                "input '{name}': requests of a model that does not batch were batched"
            )));
        }
        for t in &parts[1..] {
            if t.datatype != first.datatype || t.shape.get(1..) != first.shape.get(1..) {
                return Err(BackendError::Invalid(format!(
                    "input '{name}' has shape {:?} in one request and {:?} in another of the same batch",
                    first.shape, t.shape
                )));
            }
            shape[0] += t.shape[0];
        }
    }
    copy_in(name, kind, &shape, &parts)
}

/// One CPU tensor of `shape` holding the bytes of `parts` one after the other.
fn copy_in(
    name: &str,
    kind: Kind,
    shape: &[i64],
    parts: &[&Tensor],
) -> Result<tch::Tensor, BackendError> {
    let elem = kind.elt_size_in_bytes();
    let mut total = 0usize;
    for t in parts {
        let want = element_count(&t.shape).and_then(|n| n.checked_mul(elem));
        if want != Some(t.data.len()) {
            return Err(BackendError::Invalid(format!(
                "input '{name}' holds {} bytes, which does not match its shape {:?}",
                t.data.len(),
                t.shape
            )));
        }
        total += t.data.len();
    }
    let tensor = tch::Tensor::f_empty(shape, (kind, Device::Cpu))
        .map_err(|e| BackendError::Internal(torch_message(&e)))?;
    if total > 0 {
        if tensor.numel() * elem != total || !tensor.is_contiguous() {
            return Err(BackendError::Internal(format!(
                "input '{name}': libtorch allocated an unexpected tensor"
            )));
        }
        // SAFETY: a fresh contiguous CPU tensor of `total` bytes that nothing else references.
        let dst = unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut u8, total) };
        let mut off = 0;
        for t in parts {
            dst[off..off + t.data.len()].copy_from_slice(&t.data);
            off += t.data.len();
        }
    }
    Ok(tensor)
}

/// A tensor built here (a ragged concatenation, a batch input) as a libtorch tensor.
pub fn to_torch(name: &str, t: &Tensor) -> Result<tch::Tensor, BackendError> {
    let kind = kind_of(t.datatype).ok_or_else(|| {
        BackendError::Invalid(format!(
            "input '{name}' has datatype {}, which the pytorch backend does not support",
            t.datatype.wire_name()
        ))
    })?;
    copy_in(name, kind, &t.shape, &[t])
}

/// Copies a tensor the model returned into despina's form.
pub fn extract(t: &tch::Tensor) -> Result<Tensor, String> {
    if !t.defined() {
        return Err("the model returned an undefined tensor".into());
    }
    if t.is_sparse() || t.is_mkldnn() {
        return Err(
            "the model returned a sparse or mkldnn tensor; only dense tensors are supported".into(),
        );
    }
    let kind = t.f_kind().map_err(|e| torch_message(&e))?;
    let datatype = datatype_of(kind).ok_or_else(|| {
        format!("the model returned a tensor of type {kind:?}, which has no Triton datatype")
    })?;
    let cpu = if t.device() == Device::Cpu {
        t.f_contiguous()
    } else {
        t.f_to_device(Device::Cpu).and_then(|c| c.f_contiguous())
    }
    .map_err(|e| torch_message(&e))?;
    let shape = cpu.size();
    let bytes = element_count(&shape).unwrap_or(0) * kind.elt_size_in_bytes();
    let data = if bytes == 0 {
        Bytes::new()
    } else {
        // SAFETY: `cpu` is a dense, contiguous CPU tensor of `bytes` bytes, alive here.
        let src = unsafe { std::slice::from_raw_parts(cpu.data_ptr() as *const u8, bytes) };
        Bytes::copy_from_slice(src)
    };
    Ok(Tensor::new(datatype, shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::NamedTensor;

    fn req(name: &str, t: Tensor) -> InferRequest {
        let (mut r, s) = InferRequest::new(String::new(), vec![NamedTensor::new(name, t)]);
        r.batch_size = 1;
        // Nobody reads the answers here.
        std::mem::forget(s);
        r
    }

    #[test]
    fn kinds_round_trip() {
        for d in DataType::ALL {
            match kind_of(d) {
                Some(k) => {
                    assert_eq!(datatype_of(k), Some(d));
                    assert_eq!(Some(k.elt_size_in_bytes()), d.size());
                }
                None => assert!(matches!(
                    d,
                    DataType::Uint16 | DataType::Uint32 | DataType::Uint64 | DataType::Bytes
                )),
            }
        }
        assert_eq!(kind_name(Kind::Float), "TYPE_FP32");
    }

    #[test]
    fn gather_and_extract() {
        let a = req("X", Tensor::from_values(vec![1, 3], &[1i64, -2, 3]));
        let b = req(
            "X",
            Tensor::from_values(vec![2, 3], &[4i64, 5, 6, 7, 8, i64::MIN]),
        );
        let batch = vec![a, b];
        let t = gather(&batch, "X", true).unwrap();
        assert_eq!(t.size(), vec![3, 3]);
        let back = extract(&t).unwrap();
        assert_eq!(back.shape, vec![3, 3]);
        assert_eq!(
            back.values::<i64>().unwrap(),
            vec![1, -2, 3, 4, 5, 6, 7, 8, i64::MIN]
        );
        // A transposed (non-contiguous) result comes back in row-major order.
        let tr = extract(&t.f_transpose(0, 1).unwrap()).unwrap();
        assert_eq!(
            tr.values::<i64>().unwrap(),
            vec![1, 4, 7, -2, 5, 8, 3, 6, i64::MIN]
        );

        let half = [half::f16::from_f32(1.5), half::f16::from_f32(-0.0)];
        let h = gather(&[req("H", Tensor::from_values(vec![2], &half))], "H", false).unwrap();
        assert_eq!(h.kind(), Kind::Half);
        assert_eq!(
            extract(&h).unwrap().values::<half::f16>().unwrap(),
            half.to_vec()
        );

        let empty = gather(
            &[req("E", Tensor::from_values::<f32>(vec![0, 4], &[]))],
            "E",
            true,
        )
        .unwrap();
        assert_eq!(extract(&empty).unwrap().shape, vec![0, 4]);
    }

    #[test]
    fn gather_refusals() {
        let short = Tensor::new(DataType::Fp32, vec![2], Bytes::from_static(&[0; 4]));
        assert!(gather(&[req("X", short)], "X", false).is_err());
        let mixed = vec![
            req("X", Tensor::from_values(vec![1, 2], &[1f32, 2.0])),
            req("X", Tensor::from_values(vec![1, 3], &[1f32, 2.0, 3.0])),
        ];
        let e = gather(&mixed, "X", true).unwrap_err().to_string();
        assert!(
            e.contains("has shape [1, 2] in one request and [1, 3]"),
            "{e}"
        );
        assert!(gather(&mixed, "Y", true).is_err());
        let u16s = Tensor::from_values(vec![1], &[7u16]);
        assert!(gather(&[req("U", u16s)], "U", false).is_err());
    }
}
