//! One loaded TorchScript module, executing batches on its instance thread.

use tch::{CModule, Device, IValue};

use super::binding::{Binding, resolve_reshape};
use super::convert::{self, kind_name, torch_message};
use super::params::Params;
use crate::backend::{BackendError, ExecTimer, Instance, Rows, ragged, split_rows};
use crate::request::{InferRequest, InferResponse, NamedTensor};
use crate::status::Status;
use crate::tensor::Tensor;

pub struct TorchInstance {
    module: CModule,
    binding: Binding,
    params: Params,
    device: Device,
    batched: bool,
}

impl TorchInstance {
    pub fn new(
        module: CModule,
        binding: Binding,
        params: Params,
        device: Device,
        batched: bool,
    ) -> Self {
        TorchInstance {
            module,
            binding,
            params,
            device,
            batched,
        }
    }

    /// Runs `group` as one forward() call and answers each request with its rows.
    fn run(
        &self,
        group: &[InferRequest],
        mut timer: Option<&mut ExecTimer>,
    ) -> Result<Vec<InferResponse>, BackendError> {
        let args = self.inputs(group)?;
        if let Some(t) = &mut timer {
            t.input_done();
        }
        let out = self.forward(args)?;
        if let Some(t) = &mut timer {
            t.infer_done();
        }
        self.outputs(group, out)
    }

    /// forward()'s arguments, in position order (or one dictionary).
    fn inputs(&self, group: &[InferRequest]) -> Result<Vec<IValue>, BackendError> {
        let mut slots: Vec<Option<IValue>> = (0..self.binding.arg_count).map(|_| None).collect();
        let mut dict = Vec::new();
        let invalid = |s: Status| BackendError::Invalid(s.message);
        for slot in &self.binding.inputs {
            let mut t = if let Some(plan) = &slot.batch_input {
                let t = ragged::batch_input(plan, group, self.batched).map_err(invalid)?;
                convert::to_torch(&slot.name, &t)?
            } else if slot.ragged {
                let t = ragged::concat_flat(group, &slot.name).map_err(invalid)?;
                convert::to_torch(&slot.name, &t)?
            } else {
                convert::gather(group, &slot.name, self.batched)?
            };
            if let Some((dims, reshape)) = &slot.reshape {
                let size = t.size();
                let skip = usize::from(self.batched);
                let mut shape: Vec<i64> = size.iter().take(skip).copied().collect();
                shape.extend(resolve_reshape(
                    &size[skip.min(size.len())..],
                    dims,
                    reshape,
                ));
                t = t.f_reshape(shape.as_slice()).map_err(|e| {
                    BackendError::Invalid(format!(
                        "input '{}' of shape {size:?} cannot take the config's reshape {reshape:?}: {}",
                        slot.name,
                        torch_message(&e)
                    ))
                })?;
            }
            if self.device != Device::Cpu {
                t = t
                    .f_to_device(self.device)
                    .map_err(|e| BackendError::Internal(torch_message(&e)))?;
            }
            if self.binding.dict_input {
                dict.push((IValue::String(slot.name.clone()), IValue::Tensor(t)));
            } else if let Some(s) = slots.get_mut(slot.index) {
                *s = Some(IValue::Tensor(t));
            }
        }
        if self.binding.dict_input {
            return Ok(vec![IValue::GenericDict(dict)]);
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    BackendError::Internal(format!("forward() argument {i} has no input"))
                })
            })
            .collect()
    }

    fn forward(&self, args: Vec<IValue>) -> Result<Vec<tch::Tensor>, BackendError> {
        let failure =
            |msg: String| BackendError::Internal(format!("PyTorch execute failure: {msg}"));
        let p = &self.params;
        tch::jit::f_set_graph_executor_optimize(p.optimized_execution)
            .map_err(|e| failure(torch_message(&e)))?;
        if let Some(b) = p.jit_profiling {
            tch::jit::f_set_profiling_mode(b).map_err(|e| failure(torch_message(&e)))?;
        }
        if let Some(b) = p.tensor_fuser {
            tch::jit::f_set_tensor_expr_fuser_enabled(b).map_err(|e| failure(torch_message(&e)))?;
        }
        if self.device != Device::Cpu {
            tch::Cuda::set_user_enabled_cudnn(p.cudnn);
        }
        let out = tch::no_grad(|| self.module.forward_is(&args))
            .map_err(|e| failure(torch_message(&e)))?;
        drop(args);
        flatten(out).map_err(failure)
    }

    /// Splits the returned tensors into each request's response.
    fn outputs(
        &self,
        group: &[InferRequest],
        out: Vec<tch::Tensor>,
    ) -> Result<Vec<InferResponse>, BackendError> {
        let rows = Rows::of(group);
        let mut responses: Vec<InferResponse> =
            group.iter().map(|_| InferResponse::default()).collect();
        for slot in &self.binding.outputs {
            if !slot.always && !group.iter().any(|r| r.wants(&slot.name)) {
                continue;
            }
            let t = out.get(slot.index).ok_or_else(|| {
                BackendError::Internal(format!(
                    "output '{}' reads result {} of forward(), which returned {} tensor(s)",
                    slot.name,
                    slot.index,
                    out.len()
                ))
            })?;
            let kind = t
                .f_kind()
                .map_err(|e| BackendError::Internal(torch_message(&e)))?;
            if convert::datatype_of(kind) != Some(slot.datatype) {
                return Err(BackendError::Invalid(format!(
                    "configuration expects datatype {} for output '{}', model provides {}",
                    slot.datatype.to_config().as_str_name(),
                    slot.name,
                    kind_name(kind)
                )));
            }
            if t.dim() == 0 {
                return Err(BackendError::Invalid(format!(
                    "output '{}' is a scalar which is not supported",
                    slot.name
                )));
            }
            let mut tensor = convert::extract(t)
                .map_err(|m| BackendError::Internal(format!("output '{}': {m}", slot.name)))?;
            let scatter = self.binding.scatters.iter().find(|s| s.output == slot.name);
            if let Some((reshape, dims)) = slot.reshape.as_ref().filter(|_| scatter.is_none()) {
                tensor = self.report_shape(tensor, &slot.name, reshape, dims)?;
            }
            let internal = |s: Status| {
                BackendError::Internal(format!("output '{}': {}", slot.name, s.message))
            };
            let parts = if let Some(plan) = scatter {
                let shapes = ragged::scatter_shapes(plan, group, self.batched).map_err(internal)?;
                ragged::scatter(&tensor, &shapes).map_err(internal)?
            } else if self.batched {
                split_rows(&tensor, &rows).map_err(|s| {
                    BackendError::Internal(format!("output '{}': {}", slot.name, s.message))
                })?
            } else {
                vec![tensor]
            };
            for ((resp, req), part) in responses.iter_mut().zip(group).zip(parts) {
                if slot.always || req.wants(&slot.name) {
                    resp.outputs.push(NamedTensor::new(slot.name.clone(), part));
                }
            }
        }
        Ok(responses)
    }

    /// The shape clients see for an output the config reshapes: `dims`, with the model's
    /// variable sizes filled in.
    fn report_shape(
        &self,
        mut t: Tensor,
        name: &str,
        reshape: &[i64],
        dims: &[i64],
    ) -> Result<Tensor, BackendError> {
        let skip = usize::from(self.batched).min(t.shape.len());
        let mut shape = t.shape[..skip].to_vec();
        shape.extend(resolve_reshape(&t.shape[skip..], reshape, dims));
        if shape.iter().any(|&d| d < 0)
            || crate::tensor::element_count(&shape) != Some(t.element_count())
        {
            return Err(BackendError::Internal(format!(
                "output '{name}' of shape {:?} does not fit the config's dims {dims:?}",
                t.shape
            )));
        }
        t.shape = shape;
        Ok(t)
    }
}

impl Instance for TorchInstance {
    fn execute(&mut self, mut batch: Vec<InferRequest>, timer: &mut ExecTimer) {
        // One forward() for the whole batch when it can be one tensor per input; requests
        // of a model that does not batch, or of unequal shapes, run one by one.
        let together = self.batched && batch.len() > 1 && uniform(&batch, &self.binding);
        if together || batch.len() == 1 {
            let answers = self.run(&batch, Some(timer));
            answer(&mut batch, answers);
        } else {
            for req in batch.iter_mut() {
                let answers = self.run(std::slice::from_ref(req), None);
                answer(std::slice::from_mut(req), answers);
            }
        }
    }
}

/// Whether every request has the same datatype for each input, and the same non-batch
/// shape unless the input is ragged.
fn uniform(batch: &[InferRequest], binding: &Binding) -> bool {
    let Some(first) = batch.first() else {
        return true;
    };
    let ragged = |name: &str| binding.inputs.iter().any(|s| s.ragged && s.name == name);
    batch[1..].iter().all(|r| {
        r.inputs.len() == first.inputs.len()
            && first.inputs.iter().all(|a| {
                r.input(&a.name).is_some_and(|b| {
                    b.datatype == a.tensor.datatype
                        && (ragged(&a.name) || b.shape.get(1..) == a.tensor.shape.get(1..))
                })
            })
    })
}

fn answer(group: &mut [InferRequest], answers: Result<Vec<InferResponse>, BackendError>) {
    match answers {
        Ok(responses) => {
            for (req, resp) in group.iter_mut().zip(responses) {
                req.responder.respond(resp);
            }
        }
        Err(e) => {
            let status = Status::from(e);
            for req in group.iter_mut() {
                req.responder.fail(status.clone());
            }
        }
    }
}

/// The tensors forward() returned: one tensor, or a tuple or list of them.
fn flatten(out: IValue) -> Result<Vec<tch::Tensor>, String> {
    let items = match out {
        IValue::Tensor(t) => return Ok(vec![t]),
        IValue::TensorList(ts) => return Ok(ts),
        IValue::Tuple(items) | IValue::GenericList(items) => items,
        other => {
            return Err(format!(
                "output must be of type Tensor, or a tuple or list of Tensors, received {}",
                ivalue_kind(&other)
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            IValue::Tensor(t) => Ok(t),
            other => Err(format!(
                "output at index {i} must be of type Tensor, received {}",
                ivalue_kind(&other)
            )),
        })
        .collect()
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "Tensor",
        IValue::Double(_) => "float",
        IValue::Int(_) => "int",
        IValue::Bool(_) => "bool",
        IValue::Tuple(_) => "Tuple",
        IValue::IntList(_) => "List[int]",
        IValue::DoubleList(_) => "List[float]",
        IValue::BoolList(_) => "List[bool]",
        IValue::String(_) => "str",
        IValue::StringList(_) => "List[str]",
        IValue::TensorList(_) => "List[Tensor]",
        IValue::GenericList(_) => "List",
        IValue::GenericDict(_) => "Dict",
        IValue::Object(_) => "Object",
        IValue::Device(_) => "Device",
        _ => "an unsupported value",
    }
}
