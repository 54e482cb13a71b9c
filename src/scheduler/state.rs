//! Implicit sequence state (`sequence_batching.state`): the server keeps each sequence's
//! state between its requests. A request gets the state as an extra input (the previous
//! request's output state, or the initial state on START) and its output state is taken
//! from the answer before the client sees it, unless the client asked for it.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::BackendError;
use crate::proto::inference::ModelSequenceBatching;
use crate::proto::inference::model_sequence_batching::initial_state::StateData;
use crate::request::{FinalHook, InferRequest, InferResponse, NamedTensor};
use crate::tensor::{DataType, Tensor, element_count};

/// One state of the config.
#[derive(Debug)]
pub struct StateSpec {
    pub input: String,
    pub output: String,
    /// The state before the first request, without the batch dim.
    initial: Tensor,
}

/// The states of `seq`, with their initial values: `initial_state` when given (zeros or
/// `<model_dir>/initial_state/<data_file>`), else zeros, variable dims taken as 1 (Triton
/// leaves that first state uninitialized).
pub fn specs(
    seq: &ModelSequenceBatching,
    model_dir: &Path,
) -> Result<Vec<StateSpec>, BackendError> {
    let mut out = Vec::with_capacity(seq.state.len());
    for s in &seq.state {
        let dtype = DataType::from_config(s.data_type).ok_or_else(|| {
            BackendError::Load(format!("state '{}' has no usable data_type", s.input_name))
        })?;
        let init = s.initial_state.first();
        let dims: Vec<i64> = match init {
            Some(i) => i.dims.clone(),
            None => s.dims.iter().map(|&d| if d < 0 { 1 } else { d }).collect(),
        };
        let count = element_count(&dims).ok_or_else(|| {
            BackendError::Load(format!(
                "state '{}' has invalid dims {dims:?}",
                s.input_name
            ))
        })?;
        // BYTES elements are a 4-byte length each; zero bytes make empty strings.
        let bytes = count * dtype.size().unwrap_or(4);
        let data = match init.and_then(|i| i.state_data.as_ref()) {
            Some(StateData::DataFile(file)) => {
                let path = model_dir.join("initial_state").join(file);
                let data = std::fs::read(&path).map_err(|e| {
                    BackendError::Load(format!(
                        "cannot read the initial state of '{}' from '{}': {e}",
                        s.input_name,
                        path.display()
                    ))
                })?;
                if dtype.size().is_some() && data.len() != bytes {
                    return Err(BackendError::Load(format!(
                        "initial state file '{}' holds {} bytes; state '{}' of dims {dims:?} needs {bytes}",
                        path.display(),
                        data.len(),
                        s.input_name
                    )));
                }
                data
            }
            _ => vec![0u8; bytes],
        };
        out.push(StateSpec {
            input: s.input_name.clone(),
            output: s.output_name.clone(),
            initial: Tensor::new(dtype, dims, data.into()),
        });
    }
    Ok(out)
}

/// One sequence's state values, shared by its requests.
#[derive(Debug)]
pub struct SequenceStates {
    specs: Arc<[StateSpec]>,
    values: Mutex<Vec<Option<Tensor>>>,
}

impl SequenceStates {
    pub fn new(specs: Arc<[StateSpec]>) -> Arc<Self> {
        let values = Mutex::new(vec![None; specs.len()]);
        Arc::new(SequenceStates { specs, values })
    }

    /// Adds each state input to `req`: the last output state, else the initial state.
    pub fn feed(&self, req: &mut InferRequest, batching: bool) {
        let values = self.values.lock();
        for (spec, value) in self.specs.iter().zip(values.iter()) {
            let t = match value {
                Some(t) => t.clone(),
                None => {
                    let mut t = spec.initial.clone();
                    if batching {
                        t.shape.insert(0, 1);
                    }
                    t
                }
            };
            req.inputs.push(NamedTensor::new(spec.input.clone(), t));
        }
    }

    /// Keeps each output state of `response` for the next request; takes out of the answer
    /// those in `strip` (the ones the client did not ask for).
    pub fn capture(&self, response: &mut InferResponse, strip: &[bool]) {
        let mut values = self.values.lock();
        for ((spec, value), &strip) in self.specs.iter().zip(values.iter_mut()).zip(strip) {
            let Some(i) = response.outputs.iter().position(|o| o.name == spec.output) else {
                continue;
            };
            *value = Some(if strip {
                response.outputs.remove(i).tensor
            } else {
                response.outputs[i].tensor.clone()
            });
        }
    }

    /// The hook that keeps the output states of a request's final answer.
    pub fn capture_on_final(self: &Arc<Self>, strip: Vec<bool>) -> FinalHook {
        let states = self.clone();
        Box::new(move |answer| {
            if let Some(response) = answer {
                states.capture(response, &strip);
            }
        })
    }

    /// For each state, whether its output is taken out of the answer to `req`: always,
    /// unless the config lists it as an output and the request asks for it.
    pub fn strip_for(&self, req: &InferRequest, listed: &[String]) -> Vec<bool> {
        self.specs
            .iter()
            .map(|s| !(listed.contains(&s.output) && req.wants(&s.output)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::DataType as ConfigType;
    use crate::proto::inference::model_sequence_batching::{InitialState, State};

    fn seq(init: Option<StateData>) -> ModelSequenceBatching {
        ModelSequenceBatching {
            state: vec![State {
                input_name: "IN_STATE".into(),
                output_name: "OUT_STATE".into(),
                data_type: ConfigType::TypeInt32 as i32,
                dims: vec![-1],
                initial_state: init
                    .map(|d| InitialState {
                        data_type: ConfigType::TypeInt32 as i32,
                        dims: vec![2],
                        state_data: Some(d),
                        name: "init".into(),
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn ints(t: &Tensor) -> Vec<i32> {
        t.values::<i32>().unwrap()
    }

    #[test]
    fn initial_states() {
        let dir = tempfile::tempdir().unwrap();
        let s = specs(&seq(None), dir.path()).unwrap();
        assert_eq!(
            (s[0].initial.shape.clone(), ints(&s[0].initial)),
            (vec![1], vec![0])
        );
        let s = specs(&seq(Some(StateData::ZeroData(true))), dir.path()).unwrap();
        assert_eq!(ints(&s[0].initial), vec![0, 0]);
        std::fs::create_dir(dir.path().join("initial_state")).unwrap();
        let data: Vec<u8> = [7i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("initial_state/f"), data).unwrap();
        let s = specs(&seq(Some(StateData::DataFile("f".into()))), dir.path()).unwrap();
        assert_eq!(ints(&s[0].initial), vec![7, 9]);
        std::fs::write(dir.path().join("initial_state/short"), [1u8; 3]).unwrap();
        let e = specs(&seq(Some(StateData::DataFile("short".into()))), dir.path()).unwrap_err();
        assert!(e.to_string().contains("holds 3 bytes"), "{e}");
        let e = specs(&seq(Some(StateData::DataFile("none".into()))), dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("cannot read the initial state"),
            "{e}"
        );
    }

    #[test]
    fn feeds_the_last_output_state_and_strips_it_from_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let specs: Arc<[StateSpec]> = specs(&seq(None), dir.path()).unwrap().into();
        let states = SequenceStates::new(specs);
        let (mut req, _rx) = InferRequest::new("r".into(), vec![]);
        states.feed(&mut req, true);
        assert_eq!(req.input("IN_STATE").unwrap().shape, vec![1, 1]);
        let out = Tensor::from_values(vec![1, 1], &[5i32]);
        let mut resp = InferResponse::new(vec![
            NamedTensor::new("OUTPUT", out.clone()),
            NamedTensor::new("OUT_STATE", out.clone()),
        ]);
        let strip = states.strip_for(&req, &["OUTPUT".to_string()]);
        assert_eq!(strip, vec![true]);
        states.capture(&mut resp, &strip);
        assert_eq!(resp.outputs.len(), 1);
        let (mut next, _rx) = InferRequest::new("r".into(), vec![]);
        states.feed(&mut next, true);
        assert_eq!(next.input("IN_STATE"), Some(&out));
        // Listed as an output and asked for (all outputs): the client sees it too.
        assert_eq!(
            states.strip_for(&next, &["OUT_STATE".to_string()]),
            vec![false]
        );
    }
}
