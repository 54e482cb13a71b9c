//! Typed tensor contents (`InferTensorContents`) as tensor bytes, by Triton's rules.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::inference as pb;
use crate::status::Status;
use crate::tensor::{DataType, serialize_bytes};

/// Converts typed contents to little-endian tensor bytes. Triton looks at the fields in this
/// order, each allowed only for its own data types and only one per tensor.
pub(super) fn typed(
    c: pb::InferTensorContents,
    declared: Option<DataType>,
    name: &str,
    model: &str,
) -> Result<Bytes, Status> {
    use DataType as D;
    let mut out: Option<Bytes> = None;
    let claim = |out: &Option<Bytes>, field: &str, fits: bool| {
        if out.is_some() {
            return Err(Status::invalid_arg(format!(
                "unexpected explicit tensor data for input tensor '{name}' for model '{model}', binary data was already supplied."
            )));
        }
        if !fits {
            return Err(Status::invalid_arg(format!(
                "unexpected explicit tensor data for input tensor '{name}' for model '{model}' of type '{field}', expected datatype '{}'",
                declared.map_or("<invalid>", DataType::wire_name)
            )));
        }
        Ok(())
    };
    if !c.bool_contents.is_empty() {
        claim(&out, "BOOL", declared == Some(D::Bool))?;
        out = Some(pack(&c.bool_contents, 1, |b, v| b.put_u8(u8::from(*v))));
    }
    if !c.int_contents.is_empty() {
        claim(
            &out,
            "INT32",
            matches!(declared, Some(D::Int8 | D::Int16 | D::Int32)),
        )?;
        // Narrow types keep the low bits, as Triton's casts do.
        out = Some(match declared {
            Some(D::Int8) => pack(&c.int_contents, 1, |b, v| b.put_i8(*v as i8)),
            Some(D::Int16) => pack(&c.int_contents, 2, |b, v| b.put_i16_le(*v as i16)),
            _ => pack(&c.int_contents, 4, |b, v| b.put_i32_le(*v)),
        });
    }
    if !c.int64_contents.is_empty() {
        claim(&out, "INT64", declared == Some(D::Int64))?;
        out = Some(pack(&c.int64_contents, 8, |b, v| b.put_i64_le(*v)));
    }
    if !c.uint_contents.is_empty() {
        claim(
            &out,
            "UINT32",
            matches!(declared, Some(D::Uint8 | D::Uint16 | D::Uint32)),
        )?;
        out = Some(match declared {
            Some(D::Uint8) => pack(&c.uint_contents, 1, |b, v| b.put_u8(*v as u8)),
            Some(D::Uint16) => pack(&c.uint_contents, 2, |b, v| b.put_u16_le(*v as u16)),
            _ => pack(&c.uint_contents, 4, |b, v| b.put_u32_le(*v)),
        });
    }
    if !c.uint64_contents.is_empty() {
        claim(&out, "UINT64", declared == Some(D::Uint64))?;
        out = Some(pack(&c.uint64_contents, 8, |b, v| b.put_u64_le(*v)));
    }
    if !c.fp32_contents.is_empty() {
        claim(&out, "FP32", declared == Some(D::Fp32))?;
        out = Some(pack(&c.fp32_contents, 4, |b, v| b.put_f32_le(*v)));
    }
    if !c.fp64_contents.is_empty() {
        claim(&out, "FP64", declared == Some(D::Fp64))?;
        out = Some(pack(&c.fp64_contents, 8, |b, v| b.put_f64_le(*v)));
    }
    if !c.bytes_contents.is_empty() {
        claim(&out, "BYTES", declared == Some(D::Bytes))?;
        out = Some(serialize_bytes(&c.bytes_contents));
    }
    Ok(out.unwrap_or_default())
}

fn pack<T>(values: &[T], size: usize, put: impl Fn(&mut BytesMut, &T)) -> Bytes {
    let mut buf = BytesMut::with_capacity(values.len() * size);
    for v in values {
        put(&mut buf, v);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(f: impl FnOnce(&mut pb::InferTensorContents)) -> pb::InferTensorContents {
        let mut c = pb::InferTensorContents::default();
        f(&mut c);
        c
    }

    #[track_caller]
    fn ok(c: pb::InferTensorContents, dt: DataType) -> Vec<u8> {
        typed(c, Some(dt), "IN", "m").unwrap().to_vec()
    }

    #[track_caller]
    fn err(c: pb::InferTensorContents, dt: Option<DataType>) -> String {
        typed(c, dt, "IN", "m").unwrap_err().message
    }

    #[test]
    fn typed_contents_pack_little_endian() {
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![1, -2]), DataType::Int32),
            [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![300, -1]), DataType::Int8),
            [44, 0xff]
        );
        assert_eq!(
            ok(contents(|c| c.int_contents = vec![258]), DataType::Int16),
            [2, 1]
        );
        assert_eq!(
            ok(contents(|c| c.uint_contents = vec![258]), DataType::Uint8),
            [2]
        );
        assert_eq!(
            ok(contents(|c| c.uint_contents = vec![258]), DataType::Uint16),
            [2, 1]
        );
        assert_eq!(
            ok(contents(|c| c.uint64_contents = vec![1]), DataType::Uint64),
            [1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            ok(contents(|c| c.int64_contents = vec![-1]), DataType::Int64),
            [0xff; 8]
        );
        assert_eq!(
            ok(
                contents(|c| c.bool_contents = vec![true, false]),
                DataType::Bool
            ),
            [1, 0]
        );
        assert_eq!(
            ok(contents(|c| c.fp32_contents = vec![1.0]), DataType::Fp32),
            1.0f32.to_le_bytes()
        );
        assert_eq!(
            ok(contents(|c| c.fp64_contents = vec![-2.5]), DataType::Fp64),
            (-2.5f64).to_le_bytes()
        );
        assert_eq!(
            ok(
                contents(|c| c.bytes_contents = vec![b"ab".to_vec(), vec![]]),
                DataType::Bytes
            ),
            b"\x02\0\0\0ab\0\0\0\0"
        );
        assert_eq!(ok(pb::InferTensorContents::default(), DataType::Fp32), b"");
    }

    #[test]
    fn typed_contents_triton_messages() {
        let pre = "unexpected explicit tensor data for input tensor 'IN' for model 'm'";
        assert_eq!(
            err(
                contents(|c| c.fp32_contents = vec![1.0]),
                Some(DataType::Int32)
            ),
            format!("{pre} of type 'FP32', expected datatype 'INT32'")
        );
        assert_eq!(
            err(
                contents(|c| c.fp32_contents = vec![1.0]),
                Some(DataType::Fp16)
            ),
            format!("{pre} of type 'FP32', expected datatype 'FP16'")
        );
        assert_eq!(
            err(contents(|c| c.int_contents = vec![1]), None),
            format!("{pre} of type 'INT32', expected datatype '<invalid>'")
        );
        assert_eq!(
            err(
                contents(|c| c.int_contents = vec![1]),
                Some(DataType::Bytes)
            ),
            format!("{pre} of type 'INT32', expected datatype 'BYTES'")
        );
        assert_eq!(
            err(
                contents(|c| c.uint_contents = vec![1]),
                Some(DataType::Int32)
            ),
            format!("{pre} of type 'UINT32', expected datatype 'INT32'")
        );
        assert_eq!(
            err(
                contents(|c| c.bool_contents = vec![true]),
                Some(DataType::Uint8)
            ),
            format!("{pre} of type 'BOOL', expected datatype 'UINT8'")
        );
        assert_eq!(
            err(
                contents(|c| {
                    c.int_contents = vec![1];
                    c.fp32_contents = vec![1.0];
                }),
                Some(DataType::Int32)
            ),
            format!("{pre}, binary data was already supplied.")
        );
    }
}
