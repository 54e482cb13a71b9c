//! The classification extension: replace an output tensor by its top `class_count`
//! entries as "value:index[:label]" strings, per batch row, as Triton does.

use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// Classifies `t`; `batched` says whether its first dim is the batch.
pub fn classify(
    t: &Tensor,
    class_count: usize,
    batched: bool,
    labels: Option<&[String]>,
) -> Result<Tensor, Status> {
    let values = as_f64(t)?;
    let rows = if batched {
        t.shape.first().copied().unwrap_or(1).max(0) as usize
    } else {
        1
    };
    let per_row = values.len().checked_div(rows).unwrap_or(0);
    let k = class_count.min(per_row);
    let mut out: Vec<String> = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let row = &values[r * per_row..(r + 1) * per_row];
        let mut idx: Vec<usize> = (0..row.len()).collect();
        // Highest first; equal values keep index order.
        idx.sort_by(|&a, &b| {
            row[b]
                .partial_cmp(&row[a])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for &i in idx.iter().take(k) {
            let value = if t.datatype.is_float() {
                format!("{:.6}", row[i])
            } else {
                format!("{}", row[i] as i128)
            };
            match labels.and_then(|l| l.get(i)) {
                Some(label) => out.push(format!("{value}:{i}:{label}")),
                None => out.push(format!("{value}:{i}")),
            }
        }
    }
    let shape = if batched {
        vec![rows as i64, k as i64]
    } else {
        vec![k as i64]
    };
    Ok(Tensor::from_strings(shape, &out))
}

fn as_f64(t: &Tensor) -> Result<Vec<f64>, Status> {
    let v = match t.datatype {
        DataType::Uint8 => t
            .values::<u8>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Uint16 => t
            .values::<u16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Uint32 => t
            .values::<u32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Uint64 => t
            .values::<u64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        DataType::Int8 => t
            .values::<i8>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Int16 => t
            .values::<i16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Int32 => t
            .values::<i32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Int64 => t
            .values::<i64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        DataType::Fp16 => t
            .values::<half::f16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Bf16 => t
            .values::<half::bf16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Fp32 => t
            .values::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Fp64 => t.values::<f64>(),
        DataType::Bool | DataType::Bytes => None,
    };
    v.ok_or_else(|| {
        Status::invalid_arg(format!(
            "class result not available for output due to unsupported type '{}'",
            t.datatype.wire_name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_per_row_like_triton() {
        let labels: Vec<String> = ["alpha", "bravo", "charlie", "delta"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = Tensor::from_values(vec![2, 4], &[0.1f32, 0.5, 0.3, 7.25, 1.0, 2.0, 3.0, 4.0]);
        let c = classify(&t, 3, true, Some(&labels)).unwrap();
        assert_eq!(c.shape, vec![2, 3]);
        let s: Vec<String> = c
            .strings()
            .unwrap()
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(
            s,
            [
                "7.250000:3:delta",
                "0.500000:1:bravo",
                "0.300000:2:charlie",
                "4.000000:3:delta",
                "3.000000:2:charlie",
                "2.000000:1:bravo"
            ]
        );
        let ints = Tensor::from_values(vec![3], &[5i32, 9, 1]);
        let c = classify(&ints, 5, false, None).unwrap();
        assert_eq!(c.shape, vec![3]);
        assert_eq!(c.strings().unwrap(), vec![&b"9:1"[..], b"5:0", b"1:2"]);
        assert!(classify(&Tensor::from_strings(vec![1], &["x"]), 1, false, None).is_err());
    }
}
