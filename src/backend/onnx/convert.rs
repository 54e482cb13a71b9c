//! Tensors in and out of ONNX Runtime: datatype mapping, input values made over the
//! request's bytes, and output values read back into despina tensors.
//!
//! The `ort` crate's safe constructors are typed (`TensorRef<f32>` ...) and its string
//! helpers insist on UTF-8 without NULs, while despina tensors are untyped little-endian
//! bytes and BYTES elements are arbitrary. So this module makes values through the C API
//! (`ort::api()`); every unsafe block is here.

use std::ffi::{c_char, c_void};
use std::ptr::{self, NonNull};

use bytes::{BufMut, Bytes, BytesMut};
use ort::AsPointer;
use ort::memory::{Allocator, MemoryInfo};
use ort::sys as ffi;
use ort::value::{DynTensorValueType, DynValue, TensorElementType, ValueType};

use crate::tensor::{DataType, Tensor, element_count, parse_bytes};

/// The ONNX element type carrying despina datatype `dt`.
pub fn onnx_type(dt: DataType) -> TensorElementType {
    match dt {
        DataType::Bool => TensorElementType::Bool,
        DataType::Uint8 => TensorElementType::Uint8,
        DataType::Uint16 => TensorElementType::Uint16,
        DataType::Uint32 => TensorElementType::Uint32,
        DataType::Uint64 => TensorElementType::Uint64,
        DataType::Int8 => TensorElementType::Int8,
        DataType::Int16 => TensorElementType::Int16,
        DataType::Int32 => TensorElementType::Int32,
        DataType::Int64 => TensorElementType::Int64,
        DataType::Fp16 => TensorElementType::Float16,
        DataType::Bf16 => TensorElementType::Bfloat16,
        DataType::Fp32 => TensorElementType::Float32,
        DataType::Fp64 => TensorElementType::Float64,
        DataType::Bytes => TensorElementType::String,
    }
}

/// The despina datatype of an ONNX element type; `None` for types the protocol cannot
/// carry (complex, float8, 4-bit and 2-bit types), which Triton reports as TYPE_INVALID.
pub fn despina_type(t: TensorElementType) -> Option<DataType> {
    Some(match t {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Triton's name for the ONNX type in config terms: "TYPE_FP32", or "TYPE_INVALID".
pub fn config_type_name(t: Option<DataType>) -> &'static str {
    match t {
        Some(dt) => dt.to_config().as_str_name(),
        None => "TYPE_INVALID",
    }
}

/// Turns an `OrtStatus` into a message; takes ownership of the status.
fn check(status: ffi::OrtStatusPtr) -> Result<(), String> {
    // SAFETY: `status` was just returned by an OrtApi call and is not used again.
    unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())
}

/// An ONNX Runtime input value and the memory it reads.
///
/// Fixed-size tensors are made over the request's bytes when they are aligned for the
/// element type (always so for batches that `BatchInputs::concat` assembled), and over an
/// aligned copy otherwise. The value is declared first so it is dropped before its memory.
pub struct InputValue {
    value: DynValue,
    _memory: Memory,
}

#[allow(dead_code)] // the fields only keep memory alive
enum Memory {
    Shared(Bytes),
    Copied(Vec<u64>),
    /// String tensors own their elements inside ONNX Runtime.
    Owned,
}

impl InputValue {
    pub fn value(&self) -> &DynValue {
        &self.value
    }

    /// Makes the ONNX Runtime value of `t`, seen by the model with shape `shape` (the same
    /// element count as `t.shape`). `t` must already have been checked against the shape.
    pub fn new(t: &Tensor, shape: &[i64]) -> Result<InputValue, String> {
        let count = element_count(shape).ok_or_else(|| format!("invalid shape {shape:?}"))?;
        match t.datatype.size() {
            Some(size) => fixed(t, shape, count, size),
            None => strings(t, shape, count),
        }
    }
}

fn fixed(t: &Tensor, shape: &[i64], count: usize, size: usize) -> Result<InputValue, String> {
    let len = count
        .checked_mul(size)
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if t.data.len() != len {
        return Err(format!(
            "tensor of shape {:?} needs {len} bytes of {} data, got {}",
            t.shape,
            t.datatype.wire_name(),
            t.data.len()
        ));
    }
    let aligned = t.data.as_ptr().align_offset(size) == 0;
    let (data, memory) = if aligned && len > 0 {
        (t.data.as_ptr().cast_mut(), Memory::Shared(t.data.clone()))
    } else {
        // Also taken for empty tensors, so ONNX Runtime never sees a dangling pointer.
        let mut copy = vec![0u64; len.div_ceil(8).max(1)];
        // SAFETY: `copy` holds at least `len` bytes and does not overlap `t.data`.
        unsafe { ptr::copy_nonoverlapping(t.data.as_ptr(), copy.as_mut_ptr().cast::<u8>(), len) };
        (copy.as_mut_ptr().cast::<u8>(), Memory::Copied(copy))
    };
    let info = MemoryInfo::default();
    let mut out: *mut ffi::OrtValue = ptr::null_mut();
    // SAFETY: `data` points to `len` readable bytes that `memory` keeps alive and unmoved
    // (heap storage) for as long as the value, which is dropped first. ONNX Runtime only
    // reads input tensors, so the `*mut` is never written through.
    check(unsafe {
        (ort::api().CreateTensorWithDataAsOrtValue)(
            info.ptr(),
            data.cast::<c_void>(),
            len,
            shape.as_ptr(),
            shape.len(),
            onnx_type(t.datatype).into(),
            &mut out,
        )
    })?;
    let value = wrap(out)?;
    Ok(InputValue {
        value,
        _memory: memory,
    })
}

fn strings(t: &Tensor, shape: &[i64], count: usize) -> Result<InputValue, String> {
    let items = parse_bytes(&t.data).ok_or("malformed BYTES tensor")?;
    if items.len() != count {
        return Err(format!(
            "BYTES tensor of shape {:?} has {} elements, expected {count}",
            t.shape,
            items.len()
        ));
    }
    let mut allocator = Allocator::default();
    let mut out: *mut ffi::OrtValue = ptr::null_mut();
    // SAFETY: the default allocator outlives the call; `shape` is a valid slice.
    check(unsafe {
        (ort::api().CreateTensorAsOrtValue)(
            allocator.ptr_mut(),
            shape.as_ptr(),
            shape.len(),
            TensorElementType::String.into(),
            &mut out,
        )
    })?;
    let value = wrap(out)?;
    for (i, s) in items.iter().enumerate() {
        let mut buf: *mut c_char = ptr::null_mut();
        // SAFETY: `value` is a string tensor of `count` elements and `i < count`; the
        // returned buffer holds `s.len()` writable bytes, and elements may hold any bytes.
        check(unsafe {
            (ort::api().GetResizedStringTensorElementBuffer)(
                value.ptr().cast_mut(),
                i,
                s.len(),
                &mut buf,
            )
        })?;
        if !s.is_empty() {
            // SAFETY: see above; `buf` is non-null for a non-empty element.
            unsafe { ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len()) };
        }
    }
    Ok(InputValue {
        value,
        _memory: Memory::Owned,
    })
}

fn wrap(out: *mut ffi::OrtValue) -> Result<DynValue, String> {
    let ptr = NonNull::new(out).ok_or("ONNX Runtime returned no tensor")?;
    // SAFETY: `ptr` is a tensor value we own; the default allocator is the one string
    // tensors were made with, and is only kept as a handle by fixed-size ones.
    Ok(unsafe { DynValue::from_ptr(ptr, Some(&Allocator::default())) })
}

/// Reads an output value into a despina tensor of the same shape (one copy).
pub fn read_output(value: &DynValue) -> Result<Tensor, String> {
    let (ty, shape) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
        other => return Err(format!("output is not a tensor but {other}")),
    };
    let dt = despina_type(ty).ok_or_else(|| format!("output has unsupported type {ty}"))?;
    let tensor = value
        .view()
        .downcast::<DynTensorValueType>()
        .map_err(|e| e.to_string())?;
    if !tensor.memory_info().is_cpu_accessible() {
        return Err("output is not in CPU memory".into());
    }
    let count = element_count(&shape).ok_or_else(|| format!("invalid output shape {shape:?}"))?;
    let data = match dt.size() {
        Some(size) => {
            let len = count * size;
            if len == 0 {
                Bytes::new()
            } else {
                let src = tensor.data_ptr().cast::<u8>();
                if src.is_null() {
                    return Err("output tensor has no data".into());
                }
                // SAFETY: a CPU tensor of `count` elements of `size` bytes owns `len` bytes
                // at `src`, alive while `value` is borrowed.
                Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(src, len) })
            }
        }
        None => read_strings(value, count)?,
    };
    Ok(Tensor::new(dt, shape, data))
}

/// Serializes a string tensor in Triton's length-prefixed BYTES form.
fn read_strings(value: &DynValue, count: usize) -> Result<Bytes, String> {
    let mut total = 0usize;
    // SAFETY: `value` is a string tensor; `total` is a valid out pointer.
    check(unsafe { (ort::api().GetStringTensorDataLength)(value.ptr(), &mut total) })?;
    let mut content = vec![0u8; total.max(1)];
    let mut offsets = vec![0usize; count.max(1)];
    if count > 0 {
        // SAFETY: the buffers hold `total` bytes and `count` offsets, as ONNX Runtime
        // requires for a string tensor of `count` elements and `total` content bytes.
        check(unsafe {
            (ort::api().GetStringTensorContent)(
                value.ptr(),
                content.as_mut_ptr().cast::<c_void>(),
                total,
                offsets.as_mut_ptr(),
                count,
            )
        })?;
    }
    let mut out = BytesMut::with_capacity(4 * count + total);
    for i in 0..count {
        let start = offsets[i];
        let end = if i + 1 < count { offsets[i + 1] } else { total };
        let s = content
            .get(start..end)
            .ok_or("ONNX Runtime returned malformed string offsets")?;
        let len = u32::try_from(s.len()).map_err(|_| "string element longer than 4 GiB")?;
        out.put_u32_le(len);
        out.put_slice(s);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_type_maps_both_ways() {
        for dt in DataType::ALL {
            assert_eq!(despina_type(onnx_type(dt)), Some(dt), "{dt:?}");
        }
        assert_eq!(despina_type(TensorElementType::Complex64), None);
        assert_eq!(despina_type(TensorElementType::Float8E4M3FN), None);
        assert_eq!(config_type_name(Some(DataType::Bytes)), "TYPE_STRING");
        assert_eq!(config_type_name(Some(DataType::Fp32)), "TYPE_FP32");
        assert_eq!(config_type_name(None), "TYPE_INVALID");
    }
}
