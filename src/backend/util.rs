//! Batch helpers for backends: gather one input across the requests of a batch into a
//! single tensor, and split a batched output back into per-request tensors.

use bytes::BytesMut;

use crate::request::InferRequest;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// How many rows (first-dim entries) each request of a batch holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows(pub Vec<usize>);

impl Rows {
    pub fn of(batch: &[InferRequest]) -> Rows {
        Rows(batch.iter().map(|r| r.batch_size).collect())
    }
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

/// Gathers batched inputs.
pub struct BatchInputs;

impl BatchInputs {
    /// Concatenates input `name` of every request along the first dimension. A single
    /// request's tensor is returned as is, without copying.
    pub fn concat(batch: &[InferRequest], name: &str) -> Result<Tensor, Status> {
        let mut tensors = batch.iter().map(|r| {
            r.input(name).ok_or_else(|| {
                Status::invalid_arg(format!(
                    "input '{name}' is missing from a request in the batch"
                ))
            })
        });
        let first = match tensors.next() {
            Some(t) => t?,
            None => return Err(Status::internal("empty batch")),
        };
        if batch.len() == 1 {
            return Ok(first.clone());
        }
        let mut shape = first.shape.clone();
        let mut len = first.data.len();
        let rest: Vec<&Tensor> = tensors.collect::<Result<_, _>>()?;
        for t in &rest {
            if t.datatype != first.datatype
                || t.shape.get(1..) != first.shape.get(1..)
                || t.shape.is_empty()
            {
                return Err(Status::invalid_arg(format!(
                    "input '{name}' has shape {:?} in one request and {:?} in another of the same batch",
                    first.shape, t.shape
                )));
            }
            shape[0] += t.shape[0];
            len += t.data.len();
        }
        let mut buf = BytesMut::with_capacity(len);
        buf.extend_from_slice(&first.data);
        for t in rest {
            buf.extend_from_slice(&t.data);
        }
        Ok(Tensor::new(first.datatype, shape, buf.freeze()))
    }
}

/// Splits a batched tensor into one tensor per request, by rows. Fixed-size data is
/// sliced without copying.
pub fn split_rows(t: &Tensor, rows: &Rows) -> Result<Vec<Tensor>, Status> {
    if rows.0.len() == 1 {
        return Ok(vec![t.clone()]);
    }
    let total = rows.total();
    if t.shape.first().copied() != Some(total as i64) {
        return Err(Status::internal(format!(
            "batched output has shape {:?}, expected first dimension {total}",
            t.shape
        )));
    }
    let shapes: Vec<Vec<i64>> = rows
        .0
        .iter()
        .map(|&n| {
            let mut shape = t.shape.clone();
            shape[0] = n as i64;
            shape
        })
        .collect();
    split_elements(t, &shapes)
}

/// Splits `t` into consecutive parts of the given shapes, slicing without copying. The
/// shapes' element counts must add up to `t`'s.
pub(super) fn split_elements(t: &Tensor, shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, Status> {
    let counts: Vec<usize> = shapes
        .iter()
        .map(|s| s.iter().map(|&d| d.max(0) as usize).product())
        .collect();
    let mut out = Vec::with_capacity(shapes.len());
    match t.datatype.size() {
        Some(size) => {
            let mut off = 0;
            for (shape, n) in shapes.iter().zip(&counts) {
                let len = n * size;
                if off + len > t.data.len() {
                    return Err(Status::internal(
                        "output holds fewer bytes than its shape needs",
                    ));
                }
                let data = t.data.slice(off..off + len);
                out.push(Tensor::new(t.datatype, shape.clone(), data));
                off += len;
            }
        }
        None => {
            debug_assert_eq!(t.datatype, DataType::Bytes);
            let bounds = element_bounds(&t.data)
                .filter(|b| b.len() >= counts.iter().sum::<usize>())
                .ok_or_else(|| Status::internal("BYTES output is malformed"))?;
            let mut elem = 0;
            for (shape, n) in shapes.iter().zip(&counts) {
                let start = if elem == 0 { 0 } else { bounds[elem - 1] };
                elem += n;
                let end = if elem == 0 { 0 } else { bounds[elem - 1] };
                out.push(Tensor::new(
                    t.datatype,
                    shape.clone(),
                    t.data.slice(start..end),
                ));
            }
        }
    }
    Ok(out)
}

/// End offsets of each element of a serialized BYTES buffer.
pub(super) fn element_bounds(mut data: &[u8]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut off = 0;
    while !data.is_empty() {
        let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
        data = data.get(4 + len..)?;
        off += 4 + len;
        out.push(off);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::NamedTensor;

    fn req(rows: i64, vals: &[i32]) -> InferRequest {
        let t = Tensor::from_values(vec![rows, 2], vals);
        let (mut r, _s) = InferRequest::new(String::new(), vec![NamedTensor::new("X", t)]);
        r.batch_size = rows as usize;
        std::mem::forget(_s);
        r
    }

    #[test]
    fn concat_and_split_round_trip() {
        let batch = vec![req(1, &[1, 2]), req(2, &[3, 4, 5, 6])];
        let t = BatchInputs::concat(&batch, "X").unwrap();
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(t.values::<i32>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let parts = split_rows(&t, &Rows::of(&batch)).unwrap();
        assert_eq!(parts[0].values::<i32>().unwrap(), vec![1, 2]);
        assert_eq!(parts[1].shape, vec![2, 2]);
        assert_eq!(parts[1].values::<i32>().unwrap(), vec![3, 4, 5, 6]);
        assert!(BatchInputs::concat(&batch, "Y").is_err());
    }

    #[test]
    fn split_bytes_rows() {
        let t = Tensor::from_strings(vec![3, 1], &["a", "bc", ""]);
        let parts = split_rows(&t, &Rows(vec![2, 1])).unwrap();
        assert_eq!(parts[0].strings().unwrap(), vec![&b"a"[..], b"bc"]);
        assert_eq!(parts[1].strings().unwrap(), vec![&b""[..]]);
        assert!(split_rows(&t, &Rows(vec![2, 2])).is_err());
    }
}
