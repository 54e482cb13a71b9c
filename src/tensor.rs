//! Tensors as they travel through despina: a datatype, a shape and little-endian bytes.
//!
//! BYTES tensors keep Triton's serialized form (each element a 4-byte little-endian length
//! followed by its bytes), which is what both the HTTP binary extension and gRPC raw
//! contents carry, so the frontends never re-encode them.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::inference::DataType as ConfigType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    Fp32,
    Fp64,
    Bytes,
    Bf16,
}

impl DataType {
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
        DataType::Bf16,
    ];

    /// The KServe v2 name: "FP32", "BYTES", ...
    pub fn wire_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
            DataType::Bf16 => "BF16",
        }
    }

    pub fn from_wire(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.wire_name() == name)
    }

    pub fn from_config(t: i32) -> Option<DataType> {
        Some(match ConfigType::try_from(t).ok()? {
            ConfigType::TypeBool => DataType::Bool,
            ConfigType::TypeUint8 => DataType::Uint8,
            ConfigType::TypeUint16 => DataType::Uint16,
            ConfigType::TypeUint32 => DataType::Uint32,
            ConfigType::TypeUint64 => DataType::Uint64,
            ConfigType::TypeInt8 => DataType::Int8,
            ConfigType::TypeInt16 => DataType::Int16,
            ConfigType::TypeInt32 => DataType::Int32,
            ConfigType::TypeInt64 => DataType::Int64,
            ConfigType::TypeFp16 => DataType::Fp16,
            ConfigType::TypeFp32 => DataType::Fp32,
            ConfigType::TypeFp64 => DataType::Fp64,
            ConfigType::TypeString => DataType::Bytes,
            ConfigType::TypeBf16 => DataType::Bf16,
            ConfigType::TypeInvalid => return None,
        })
    }

    pub fn to_config(self) -> ConfigType {
        match self {
            DataType::Bool => ConfigType::TypeBool,
            DataType::Uint8 => ConfigType::TypeUint8,
            DataType::Uint16 => ConfigType::TypeUint16,
            DataType::Uint32 => ConfigType::TypeUint32,
            DataType::Uint64 => ConfigType::TypeUint64,
            DataType::Int8 => ConfigType::TypeInt8,
            DataType::Int16 => ConfigType::TypeInt16,
            DataType::Int32 => ConfigType::TypeInt32,
            DataType::Int64 => ConfigType::TypeInt64,
            DataType::Fp16 => ConfigType::TypeFp16,
            DataType::Fp32 => ConfigType::TypeFp32,
            DataType::Fp64 => ConfigType::TypeFp64,
            DataType::Bytes => ConfigType::TypeString,
            DataType::Bf16 => ConfigType::TypeBf16,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64
        )
    }

    /// Bytes per element; `None` for BYTES, whose elements vary in size.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }
}

/// Number of elements of a shape; `None` if a dim is negative or the product overflows.
pub fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).ok()?;
        acc.checked_mul(d)
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub data: Bytes,
}

impl Tensor {
    pub fn new(datatype: DataType, shape: Vec<i64>, data: Bytes) -> Self {
        Tensor {
            datatype,
            shape,
            data,
        }
    }

    pub fn element_count(&self) -> usize {
        element_count(&self.shape).unwrap_or(0)
    }

    /// Builds a fixed-size tensor from plain values.
    pub fn from_values<T: Element>(shape: Vec<i64>, values: &[T]) -> Self {
        let mut buf = BytesMut::with_capacity(std::mem::size_of_val(values));
        for v in values {
            v.put(&mut buf);
        }
        Tensor::new(T::DATATYPE, shape, buf.freeze())
    }

    /// Builds a BYTES tensor from its elements.
    pub fn from_strings<S: AsRef<[u8]>>(shape: Vec<i64>, items: &[S]) -> Self {
        Tensor::new(DataType::Bytes, shape, serialize_bytes(items))
    }

    /// Reads the elements of a fixed-size tensor of type `T`.
    pub fn values<T: Element>(&self) -> Option<Vec<T>> {
        if self.datatype != T::DATATYPE {
            return None;
        }
        let size = std::mem::size_of::<T>();
        if !self.data.len().is_multiple_of(size) {
            return None;
        }
        Some(self.data.chunks_exact(size).map(T::get).collect())
    }

    /// Splits a BYTES tensor into its elements.
    pub fn strings(&self) -> Option<Vec<&[u8]>> {
        if self.datatype != DataType::Bytes {
            return None;
        }
        parse_bytes(&self.data)
    }
}

/// Plain element types with a fixed little-endian encoding.
pub trait Element: Copy {
    const DATATYPE: DataType;
    fn put(&self, buf: &mut BytesMut);
    fn get(chunk: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $dt:expr) => {
        impl Element for $t {
            const DATATYPE: DataType = $dt;
            fn put(&self, buf: &mut BytesMut) {
                buf.put_slice(&self.to_le_bytes());
            }
            fn get(chunk: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(chunk);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

element!(u8, DataType::Uint8);
element!(u16, DataType::Uint16);
element!(u32, DataType::Uint32);
element!(u64, DataType::Uint64);
element!(i8, DataType::Int8);
element!(i16, DataType::Int16);
element!(i32, DataType::Int32);
element!(i64, DataType::Int64);
element!(f32, DataType::Fp32);
element!(f64, DataType::Fp64);
element!(half::f16, DataType::Fp16);
element!(half::bf16, DataType::Bf16);

impl Element for bool {
    const DATATYPE: DataType = DataType::Bool;
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(*self));
    }
    fn get(chunk: &[u8]) -> Self {
        chunk[0] != 0
    }
}

/// Serializes BYTES elements in Triton's length-prefixed form.
pub fn serialize_bytes<S: AsRef<[u8]>>(items: &[S]) -> Bytes {
    let total: usize = items.iter().map(|s| 4 + s.as_ref().len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    for s in items {
        let s = s.as_ref();
        buf.put_u32_le(s.len() as u32);
        buf.put_slice(s);
    }
    buf.freeze()
}

/// Parses Triton's length-prefixed BYTES form; `None` if it is malformed.
pub fn parse_bytes(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        data = &data[4..];
        if data.len() < len {
            return None;
        }
        out.push(&data[..len]);
        data = &data[len..];
    }
    Some(out)
}

/// Counts the elements of a serialized BYTES buffer; `None` if it is malformed.
pub fn count_bytes_elements(mut data: &[u8]) -> Option<usize> {
    let mut n = 0;
    while !data.is_empty() {
        if data.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        data = data.get(4 + len..)?;
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_wire(d.wire_name()), Some(d));
            assert_eq!(DataType::from_config(d.to_config() as i32), Some(d));
        }
        assert_eq!(DataType::from_wire("FLOAT"), None);
        assert_eq!(DataType::from_config(0), None);
    }

    #[test]
    fn values_round_trip() {
        let t = Tensor::from_values(vec![2, 2], &[1i32, -2, 3, i32::MAX]);
        assert_eq!(t.data.len(), 16);
        assert_eq!(t.values::<i32>().unwrap(), vec![1, -2, 3, i32::MAX]);
        assert_eq!(t.values::<u32>(), None);
        let b = Tensor::from_values(vec![3], &[true, false, true]);
        assert_eq!(&b.data[..], &[1, 0, 1]);
    }

    #[test]
    fn bytes_form() {
        let t = Tensor::from_strings(vec![3], &["ab", "", "\u{e9}"]);
        assert_eq!(&t.data[..], b"\x02\0\0\0ab\0\0\0\0\x02\0\0\0\xc3\xa9");
        assert_eq!(
            t.strings().unwrap(),
            vec![&b"ab"[..], b"", "\u{e9}".as_bytes()]
        );
        assert_eq!(count_bytes_elements(&t.data), Some(3));
        assert_eq!(parse_bytes(b"\x05\0\0\0ab"), None);
        assert_eq!(count_bytes_elements(b"\x01\0"), None);
    }

    #[test]
    fn element_counts() {
        assert_eq!(element_count(&[2, 3, 4]), Some(24));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[2, -1]), None);
        assert_eq!(element_count(&[i64::MAX, i64::MAX]), None);
    }
}
