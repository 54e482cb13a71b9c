//! What an ONNX model declares (its inputs and outputs), checked against the model
//! config the way Triton's onnxruntime backend checks it, and used to auto-complete a
//! config that leaves them out.
//!
//! Everything but [`Signature::of`] is pure, so the rules are tested without a runtime.
//! Error texts reuse Triton's (`onnxruntime.cc` `ValidateInputs`/`ValidateOutputs`,
//! `onnxruntime_utils.cc` `CompareDimsSupported`, `backend_common.cc` `CheckAllowedModel*`).

use std::collections::BTreeSet;

use ort::session::Session;
use ort::value::ValueType;

use super::convert::{config_type_name, despina_type};
use crate::backend::BackendError;
use crate::backend::ragged::{self, BatchInputPlan, ScatterPlan};
use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::model_config::SchedulingChoice;
use crate::proto::inference::{
    DataType as ConfigType, ModelDynamicBatching, ModelInput, ModelOutput, ModelTensorReshape,
};
use crate::tensor::{DataType, element_count};

/// Triton's `--backend-config=onnxruntime,default-max-batch-size` default.
pub const DEFAULT_MAX_BATCH_SIZE: i32 = 4;

/// One model input, output or overridable initializer.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    /// `None` for element types the protocol cannot carry.
    pub dtype: Option<DataType>,
    /// -1 for dynamic dimensions.
    pub dims: Vec<i64>,
}

impl IoInfo {
    pub fn new(name: &str, dtype: Option<DataType>, dims: &[i64]) -> Self {
        IoInfo {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signature {
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    /// Overridable initializers: requests may feed them like inputs.
    pub initializers: Vec<IoInfo>,
}

impl Signature {
    /// Reads a session's inputs, outputs and overridable initializers. Like Triton, any
    /// of them that is not a tensor (a sequence or a map) makes the model unloadable.
    pub fn of(session: &Session) -> Result<Signature, BackendError> {
        let info = |name: &str, ty: &ValueType| match ty {
            ValueType::Tensor { ty, shape, .. } => Ok(IoInfo::new(name, despina_type(*ty), shape)),
            other => Err(BackendError::Unsupported(format!(
                "Unsupported ONNX Type '{}' for I/O '{name}', expected 'ONNX_TYPE_TENSOR'",
                onnx_kind(other)
            ))),
        };
        let inputs = session
            .inputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect::<Result<_, _>>()?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect::<Result<_, _>>()?;
        let initializers = session
            .overridable_initializers()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect::<Result<_, _>>()?;
        Ok(Signature {
            inputs,
            outputs,
            initializers,
        })
    }
}

fn onnx_kind(t: &ValueType) -> &'static str {
    match t {
        ValueType::Tensor { .. } => "ONNX_TYPE_TENSOR",
        ValueType::Sequence(_) => "ONNX_TYPE_SEQUENCE",
        ValueType::Map { .. } => "ONNX_TYPE_MAP",
        ValueType::Optional(_) => "ONNX_TYPE_OPTIONAL",
    }
}

/// Maps a tensor's non-batch dims between the config's view and the model's, for
/// `reshape` and for scalar model tensors (which the config writes as dims `[1]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reshape {
    pub from: Vec<i64>,
    pub to: Vec<i64>,
}

impl Reshape {
    /// Maps `shape`, whose first `prefix` dims are the batch dim, from `from` to `to`.
    /// Variable dims of `to` take the variable dims of `from` in order, or, when `to` has
    /// a single one, whatever the element count leaves.
    pub fn apply(&self, shape: &[i64], prefix: usize) -> Result<Vec<i64>, String> {
        let bad = || {
            format!(
                "cannot reshape {shape:?} from {:?} to {:?}",
                self.from, self.to
            )
        };
        let rest = shape.get(prefix..).ok_or_else(bad)?;
        let count = element_count(rest).ok_or_else(bad)?;
        let mut wild: Vec<i64> = if rest.len() == self.from.len() {
            rest.iter()
                .zip(&self.from)
                .filter(|(_, f)| **f < 0)
                .map(|(r, _)| *r)
                .collect()
        } else {
            Vec::new()
        };
        let holes = self.to.iter().filter(|d| **d < 0).count();
        if holes > 0 && wild.len() != holes {
            if holes != 1 {
                return Err(bad());
            }
            let known = element_count(&self.to.iter().map(|&d| d.max(1)).collect::<Vec<_>>())
                .filter(|&k| k > 0 && count % k == 0)
                .ok_or_else(bad)?;
            wild = vec![(count / known) as i64];
        }
        let mut wild = wild.into_iter();
        let mut out = shape[..prefix].to_vec();
        for &d in &self.to {
            out.push(if d < 0 {
                wild.next().ok_or_else(bad)?
            } else {
                d
            });
        }
        if element_count(&out[prefix..]) != Some(count) {
            return Err(bad());
        }
        Ok(out)
    }
}

/// A model input the instance feeds from the requests.
#[derive(Clone, Debug, PartialEq)]
pub struct InputPlan {
    pub name: String,
    /// The datatype the config promises; `None` for inputs the config does not list
    /// (sequence control inputs, added by the sequence batcher).
    pub dtype: Option<DataType>,
    /// Fed only when the requests carry it (optional inputs, overridable initializers).
    pub optional: bool,
    pub reshape: Option<Reshape>,
    /// `allow_ragged_batch` on a batching model: fed as one 1-D concatenation.
    pub ragged: bool,
}

/// A config output the instance returns.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputPlan {
    pub name: String,
    pub dtype: DataType,
    pub reshape: Option<Reshape>,
    /// Computed and returned for every request (implicit state outputs, which the
    /// sequence batcher takes back out of the answer).
    pub always: bool,
}

/// How an instance maps requests onto the session, once the config has been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `max_batch_size > 0`: tensors carry the batch dim and requests are run together.
    pub batching: bool,
    pub inputs: Vec<InputPlan>,
    pub outputs: Vec<OutputPlan>,
    /// Inputs generated per batch (`batch_input`).
    pub batch_inputs: Vec<BatchInputPlan>,
    /// Outputs scattered by a source input's shape (`batch_output`).
    pub scatters: Vec<ScatterPlan>,
}

fn load_err(msg: String) -> BackendError {
    BackendError::Load(msg)
}

fn shape_str(dims: &[i64]) -> String {
    let inner: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", inner.join(","))
}

fn allowed(names: impl Iterator<Item = String>) -> String {
    names
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Triton's `CompareDimsSupported`: the model's dims against the config's (`dims`, or the
/// reshape), with the batch dim in front when `max_batch_size > 0`. Outputs compare
/// exactly; inputs let a model's dynamic dim take any configured size.
fn compare_dims(
    model: &str,
    tensor: &str,
    model_shape: &[i64],
    dims: &[i64],
    max_batch_size: i32,
    exact: bool,
) -> Result<(), BackendError> {
    let matches = |full: &[i64]| {
        model_shape.len() == full.len()
            && model_shape
                .iter()
                .zip(full)
                .all(|(&m, &c)| (!exact && m == -1) || m == c)
    };
    if max_batch_size > 0 {
        if model_shape.first() != Some(&-1) {
            return Err(load_err(format!(
                "model '{model}', tensor '{tensor}': for the model to support batching the shape should have at least 1 dimension and the first dimension must be -1; but shape expected by the model is {}",
                shape_str(model_shape)
            )));
        }
        let mut full = vec![-1];
        full.extend_from_slice(dims);
        if !matches(&full) {
            return Err(load_err(format!(
                "model '{model}', tensor '{tensor}': the model expects {} dimensions (shape {}) but the model configuration specifies {} dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape {})",
                model_shape.len(),
                shape_str(model_shape),
                full.len(),
                shape_str(&full)
            )));
        }
    } else if !matches(dims) {
        return Err(load_err(format!(
            "model '{model}', tensor '{tensor}': the model expects {} dimensions (shape {}) but the model configuration specifies {} dimensions (shape {})",
            model_shape.len(),
            shape_str(model_shape),
            dims.len(),
            shape_str(dims)
        )));
    }
    Ok(())
}

fn scalar_dims_ok(model: &str, tensor: &str, dims: &[i64]) -> Result<(), BackendError> {
    if dims.iter().any(|&d| d != 1) {
        return Err(load_err(format!(
            "unable to load model '{model}', scalar tensor '{tensor}', should only provide 1 in the model configuration when the model doesn't support batching. Model configuration provided: {}",
            shape_str(dims)
        )));
    }
    Ok(())
}

/// The dims the model sees for a config tensor: its reshape if it has one, else its dims.
fn model_side_dims(dims: &[i64], reshape: &Option<ModelTensorReshape>) -> Vec<i64> {
    match reshape {
        Some(r) => r.shape.clone(),
        None => dims.to_vec(),
    }
}

/// Checks `cfg` against the model's signature as Triton does when it creates an
/// instance, and returns the plan the instance runs by.
pub fn validate(model: &str, cfg: &ModelConfig, sig: &Signature) -> Result<Plan, BackendError> {
    unsupported_features(cfg)?;
    let mbs = cfg.max_batch_size;
    let controls: Vec<&str> = cfg
        .sequence_batching()
        .map(|s| s.control_input.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();

    let batch_inputs = ragged::batch_inputs(cfg).map_err(load_err)?;
    let states = cfg
        .sequence_batching()
        .map(|s| s.state.as_slice())
        .unwrap_or_default();
    let expected = cfg.input.iter().filter(|i| !i.optional).count()
        + controls.len()
        + batch_inputs.len()
        + states.len();
    if sig.inputs.len() != expected {
        let configured: BTreeSet<&str> = cfg
            .input
            .iter()
            .map(|i| i.name.as_str())
            .chain(controls.iter().copied())
            .chain(batch_inputs.iter().map(|b| b.target.as_str()))
            .chain(states.iter().map(|s| s.input_name.as_str()))
            .collect();
        let missing: Vec<&str> = sig
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !configured.contains(n))
            .collect();
        let mut msg = format!(
            "unable to load model '{model}', configuration expects {expected} inputs, model provides {}",
            sig.inputs.len()
        );
        if !missing.is_empty() {
            msg.push_str(&format!(
                " (model inputs missing from the configuration: {})",
                missing.join(", ")
            ));
        }
        return Err(load_err(msg));
    }

    let mut inputs = Vec::with_capacity(sig.inputs.len());
    for io in &cfg.input {
        inputs.push(check_input(model, mbs, io, sig)?);
    }
    for c in &controls {
        if !inputs.iter().any(|i: &InputPlan| i.name == *c) {
            let found = sig.inputs.iter().any(|i| i.name == *c);
            if !found {
                return Err(load_err(format!(
                    "unable to load model '{model}', sequence control input '{c}' is not an input of the model, allowed inputs are: {}",
                    allowed(sig.inputs.iter().map(|i| i.name.clone()))
                )));
            }
            inputs.push(InputPlan {
                name: c.to_string(),
                dtype: None,
                optional: false,
                reshape: None,
                ragged: false,
            });
        }
    }
    for b in &batch_inputs {
        check_batch_input(model, b, sig)?;
    }
    let mut state_outputs = Vec::new();
    for st in states {
        let (input, output) = check_state(model, st, sig)?;
        inputs.push(input);
        state_outputs.push(output);
    }

    let scatters = ragged::scatters(cfg);
    let mut outputs: Vec<OutputPlan> = cfg
        .output
        .iter()
        .map(|io| {
            let scattered = scatters.iter().any(|s| s.output == io.name);
            check_output(model, mbs, io, sig, scattered)
        })
        .collect::<Result<_, _>>()?;
    for st in state_outputs {
        match outputs.iter_mut().find(|o| o.name == st.name) {
            Some(listed) => listed.always = true,
            None => outputs.push(st),
        }
    }
    Ok(Plan {
        batching: mbs > 0,
        inputs,
        outputs,
        batch_inputs,
        scatters,
    })
}

fn unsupported_features(cfg: &ModelConfig) -> Result<(), BackendError> {
    let no = |what: &str| {
        Err(BackendError::Unsupported(format!(
            "{what} is not supported by the onnxruntime backend of this server"
        )))
    };
    if let Some(i) = cfg.input.iter().find(|i| i.is_shape_tensor) {
        return no(&format!(
            "shape tensors (input '{}' is_shape_tensor)",
            i.name
        ));
    }
    if let Some(o) = cfg.output.iter().find(|o| o.is_shape_tensor) {
        return no(&format!(
            "shape tensors (output '{}' is_shape_tensor)",
            o.name
        ));
    }
    Ok(())
}

fn check_input(
    model: &str,
    mbs: i32,
    io: &ModelInput,
    sig: &Signature,
) -> Result<InputPlan, BackendError> {
    if io.optional && mbs != 0 {
        return Err(load_err(format!(
            "unable to load model '{model}', optional input '{}' is not supported for models that support batching",
            io.name
        )));
    }
    let (info, initializer) = match sig.inputs.iter().find(|i| i.name == io.name) {
        Some(i) => (i, false),
        None => match sig.initializers.iter().find(|i| i.name == io.name) {
            Some(i) => (i, true),
            None => {
                return Err(load_err(format!(
                    "unexpected inference input '{}', allowed inputs are: {}",
                    io.name,
                    allowed(
                        sig.inputs
                            .iter()
                            .chain(&sig.initializers)
                            .map(|i| i.name.clone())
                    )
                )));
            }
        },
    };
    let dtype = check_dtype(model, "input", &io.name, io.data_type, info)?;
    if io.allow_ragged_batch && mbs > 0 {
        // The batch arrives as one concatenation of every request's elements.
        if info.dims.len() != 1 {
            return Err(load_err(format!(
                "unable to load model '{model}', ragged input '{}' must be 1-dimensional in the model (the requests' elements are concatenated), model provides shape {}",
                io.name,
                shape_str(&info.dims)
            )));
        }
        return Ok(InputPlan {
            name: io.name.clone(),
            dtype: Some(dtype),
            optional: false,
            reshape: None,
            ragged: true,
        });
    }
    let dims = model_side_dims(&io.dims, &io.reshape);
    let reshape = check_shape(model, mbs, &io.name, info, &dims, false)?;
    let reshape = match (&io.reshape, reshape) {
        (Some(r), _) => Some(Reshape {
            from: io.dims.clone(),
            to: r.shape.clone(),
        }),
        (None, scalar) => scalar.map(|_| Reshape {
            from: io.dims.clone(),
            to: Vec::new(),
        }),
    };
    Ok(InputPlan {
        name: io.name.clone(),
        dtype: Some(dtype),
        optional: io.optional || initializer,
        reshape,
        ragged: false,
    })
}

/// A `batch_input` target must be a model input of the batch input's data type.
fn check_batch_input(model: &str, b: &BatchInputPlan, sig: &Signature) -> Result<(), BackendError> {
    let info = sig.inputs.iter().find(|i| i.name == b.target).ok_or_else(|| {
        load_err(format!(
            "unable to load model '{model}', batch input '{}' is not an input of the model, allowed inputs are: {}",
            b.target,
            allowed(sig.inputs.iter().map(|i| i.name.clone()))
        ))
    })?;
    if info.dtype != Some(b.dtype) {
        return Err(load_err(format!(
            "unable to load model '{model}', configuration expects datatype {} for batch input '{}', model provides {}",
            b.dtype.wire_name(),
            b.target,
            config_type_name(info.dtype)
        )));
    }
    Ok(())
}

fn check_output(
    model: &str,
    mbs: i32,
    io: &ModelOutput,
    sig: &Signature,
    scattered: bool,
) -> Result<OutputPlan, BackendError> {
    let info = sig
        .outputs
        .iter()
        .find(|o| o.name == io.name)
        .ok_or_else(|| {
            load_err(format!(
                "unexpected inference output '{}', allowed outputs are: {}",
                io.name,
                allowed(sig.outputs.iter().map(|o| o.name.clone()))
            ))
        })?;
    let dtype = check_dtype(model, "output", &io.name, io.data_type, info)?;
    if scattered {
        // One flat concatenation, split by the source input's shapes (`batch_output`).
        return Ok(OutputPlan {
            name: io.name.clone(),
            dtype,
            reshape: None,
            always: false,
        });
    }
    let dims = model_side_dims(&io.dims, &io.reshape);
    let scalar = check_shape(model, mbs, &io.name, info, &dims, true)?;
    let reshape = match (&io.reshape, scalar) {
        (Some(r), _) => Some(Reshape {
            from: r.shape.clone(),
            to: io.dims.clone(),
        }),
        (None, scalar) => scalar.map(|_| Reshape {
            from: Vec::new(),
            to: io.dims.clone(),
        }),
    };
    Ok(OutputPlan {
        name: io.name.clone(),
        dtype,
        reshape,
        always: false,
    })
}

/// An implicit state's input and output must be model tensors of the state's data type.
fn check_state(
    model: &str,
    st: &crate::proto::inference::model_sequence_batching::State,
    sig: &Signature,
) -> Result<(InputPlan, OutputPlan), BackendError> {
    let find = |list: &[IoInfo], name: &str, kind: &str| {
        list.iter().find(|i| i.name == name).cloned().ok_or_else(|| {
            load_err(format!(
                "unable to load model '{model}', state {kind} '{name}' is not an {kind} of the model, allowed {kind}s are: {}",
                allowed(list.iter().map(|i| i.name.clone()))
            ))
        })
    };
    let input = find(&sig.inputs, &st.input_name, "input")?;
    let output = find(&sig.outputs, &st.output_name, "output")?;
    let dtype = check_dtype(model, "input", &st.input_name, st.data_type, &input)?;
    check_dtype(model, "output", &st.output_name, st.data_type, &output)?;
    Ok((
        InputPlan {
            name: st.input_name.clone(),
            dtype: Some(dtype),
            optional: false,
            reshape: None,
            ragged: false,
        },
        OutputPlan {
            name: st.output_name.clone(),
            dtype,
            reshape: None,
            always: true,
        },
    ))
}

fn check_dtype(
    model: &str,
    kind: &str,
    name: &str,
    config_type: i32,
    info: &IoInfo,
) -> Result<DataType, BackendError> {
    let config_name = ConfigType::try_from(config_type)
        .map(|t| t.as_str_name())
        .unwrap_or("TYPE_INVALID");
    let want = DataType::from_config(config_type).ok_or_else(|| {
        BackendError::Internal(format!(
            "unsupported datatype {config_name} for {kind} '{name}' for model '{model}'"
        ))
    })?;
    if info.dtype != Some(want) {
        return Err(load_err(format!(
            "unable to load model '{model}', configuration expects datatype {config_name} for {kind} '{name}', model provides {}",
            config_type_name(info.dtype)
        )));
    }
    Ok(want)
}

/// Checks the dims; `Some(())` when the model tensor is a scalar, which needs mapping.
fn check_shape(
    model: &str,
    mbs: i32,
    name: &str,
    info: &IoInfo,
    dims: &[i64],
    exact: bool,
) -> Result<Option<()>, BackendError> {
    if info.dims.is_empty() {
        scalar_dims_ok(model, name, dims)?;
        Ok(Some(()))
    } else {
        compare_dims(model, name, &info.dims, dims, mbs, exact)?;
        Ok(None)
    }
}

/// Triton's auto-complete for ONNX models: when the config lists no inputs or no
/// outputs, fill them (and `max_batch_size`, and `dynamic_batching` for a batching model
/// with no scheduler) from the model. What the config does say is kept.
pub fn auto_complete(
    model: &str,
    cfg: &mut ModelConfig,
    sig: &Signature,
    default_max_batch_size: i32,
) -> Result<(), BackendError> {
    if needs_io(cfg) {
        complete_max_batch(model, cfg, sig, default_max_batch_size)?;
        let mbs = cfg.max_batch_size;
        if cfg.input.is_empty() && cfg.batch_input.is_empty() {
            cfg.input = sig
                .inputs
                .iter()
                .map(|i| {
                    let (dims, reshape) = complete_dims(&i.dims, mbs);
                    ModelInput {
                        name: i.name.clone(),
                        data_type: config_type(i.dtype),
                        dims,
                        reshape,
                        ..Default::default()
                    }
                })
                .collect();
        }
        if cfg.output.is_empty() {
            cfg.output = sig
                .outputs
                .iter()
                .map(|o| {
                    let (dims, reshape) = complete_dims(&o.dims, mbs);
                    ModelOutput {
                        name: o.name.clone(),
                        data_type: config_type(o.dtype),
                        dims,
                        reshape,
                        ..Default::default()
                    }
                })
                .collect();
        }
    }
    Ok(())
}

/// Whether auto-complete has inputs or outputs to fill (Triton skips it otherwise).
pub fn needs_io(cfg: &ModelConfig) -> bool {
    (cfg.input.len() + cfg.batch_input.len()) == 0 || cfg.output.is_empty()
}

fn config_type(t: Option<DataType>) -> i32 {
    t.map_or(ConfigType::TypeInvalid, DataType::to_config) as i32
}

fn complete_dims(model_dims: &[i64], mbs: i32) -> (Vec<i64>, Option<ModelTensorReshape>) {
    let skip = usize::from(mbs > 0).min(model_dims.len());
    let dims = model_dims[skip..].to_vec();
    if dims.is_empty() {
        // Triton's rule: a scalar becomes dims [1], with an empty reshape when batching.
        let reshape = (mbs > 0).then(|| ModelTensorReshape { shape: Vec::new() });
        (vec![1], reshape)
    } else {
        (dims, None)
    }
}

fn complete_max_batch(
    model: &str,
    cfg: &mut ModelConfig,
    sig: &Signature,
    default_max_batch_size: i32,
) -> Result<(), BackendError> {
    let can_batch = sig
        .inputs
        .iter()
        .chain(&sig.outputs)
        .all(|io| io.dims.first() == Some(&-1));
    if can_batch {
        if cfg.max_batch_size == 0 {
            cfg.max_batch_size = default_max_batch_size.max(0);
            tracing::warn!(
                "autofilled max_batch_size to {} for model '{model}' since batching is supported but no max_batch_size is specified in model configuration. Must specify max_batch_size to utilize autofill with a larger max batch size",
                cfg.max_batch_size
            );
        }
        if cfg.max_batch_size > 1 && cfg.scheduling_choice.is_none() {
            cfg.scheduling_choice = Some(SchedulingChoice::DynamicBatching(
                ModelDynamicBatching::default(),
            ));
        }
    } else if cfg.max_batch_size != 0 {
        return Err(load_err(format!(
            "autofill failed for model '{model}': model does not support batching while non-zero max_batch_size is specified"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::ModelSequenceBatching;
    use crate::proto::inference::model_sequence_batching::ControlInput;

    fn simple_sig() -> Signature {
        Signature {
            inputs: vec![
                IoInfo::new("INPUT0", Some(DataType::Int32), &[-1, 16]),
                IoInfo::new("INPUT1", Some(DataType::Int32), &[-1, 16]),
            ],
            outputs: vec![
                IoInfo::new("OUTPUT0", Some(DataType::Int32), &[-1, 16]),
                IoInfo::new("OUTPUT1", Some(DataType::Int32), &[-1, 16]),
            ],
            initializers: vec![],
        }
    }

    fn input(name: &str, t: ConfigType, dims: &[i64]) -> ModelInput {
        ModelInput {
            name: name.into(),
            data_type: t as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn output(name: &str, t: ConfigType, dims: &[i64]) -> ModelOutput {
        ModelOutput {
            name: name.into(),
            data_type: t as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn simple_cfg() -> ModelConfig {
        ModelConfig {
            name: "simple".into(),
            max_batch_size: 8,
            input: vec![
                input("INPUT0", ConfigType::TypeInt32, &[16]),
                input("INPUT1", ConfigType::TypeInt32, &[16]),
            ],
            output: vec![
                output("OUTPUT0", ConfigType::TypeInt32, &[16]),
                output("OUTPUT1", ConfigType::TypeInt32, &[16]),
            ],
            ..Default::default()
        }
    }

    #[track_caller]
    fn check_err(cfg: ModelConfig, sig: &Signature, want: &str) {
        let e = validate("m", &cfg, sig).unwrap_err().to_string();
        assert_eq!(e, want);
    }

    #[test]
    fn accepts_matching_config() {
        let plan = validate("simple", &simple_cfg(), &simple_sig()).unwrap();
        assert!(plan.batching);
        assert_eq!(plan.inputs.len(), 2);
        assert_eq!(plan.inputs[1].dtype, Some(DataType::Int32));
        assert_eq!(plan.outputs[0].name, "OUTPUT0");
        assert!(
            plan.inputs
                .iter()
                .all(|i| i.reshape.is_none() && !i.optional)
        );
    }

    #[test]
    fn triton_messages() {
        let sig = simple_sig();
        let mut c = simple_cfg();
        c.input[0].data_type = ConfigType::TypeFp32 as i32;
        check_err(
            c,
            &sig,
            "unable to load model 'm', configuration expects datatype TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32",
        );
        let mut c = simple_cfg();
        c.input[0].dims = vec![8];
        check_err(
            c,
            &sig,
            "model 'm', tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the model configuration specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape [-1,8])",
        );
        let mut c = simple_cfg();
        c.input[0].name = "INPUT9".into();
        check_err(
            c,
            &sig,
            "unexpected inference input 'INPUT9', allowed inputs are: INPUT0, INPUT1",
        );
        let mut c = simple_cfg();
        c.output[1].name = "OUT".into();
        check_err(
            c,
            &sig,
            "unexpected inference output 'OUT', allowed outputs are: OUTPUT0, OUTPUT1",
        );
        let mut c = simple_cfg();
        c.output[1].data_type = ConfigType::TypeInt64 as i32;
        check_err(
            c,
            &sig,
            "unable to load model 'm', configuration expects datatype TYPE_INT64 for output 'OUTPUT1', model provides TYPE_INT32",
        );
        let mut c = simple_cfg();
        c.input.pop();
        check_err(
            c,
            &sig,
            "unable to load model 'm', configuration expects 1 inputs, model provides 2 (model inputs missing from the configuration: INPUT1)",
        );
        let mut c = simple_cfg();
        c.max_batch_size = 0;
        check_err(
            c,
            &sig,
            "model 'm', tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the model configuration specifies 1 dimensions (shape [16])",
        );
        let mut c = simple_cfg();
        c.input[1].optional = true;
        check_err(
            c,
            &sig,
            "unable to load model 'm', configuration expects 1 inputs, model provides 2",
        );
    }

    #[test]
    fn outputs_compare_exactly_and_inputs_do_not() {
        let sig = Signature {
            inputs: vec![IoInfo::new("X", Some(DataType::Fp32), &[-1, -1])],
            outputs: vec![IoInfo::new("Y", Some(DataType::Fp32), &[-1, -1])],
            initializers: vec![],
        };
        let cfg = |i: &[i64], o: &[i64]| ModelConfig {
            max_batch_size: 4,
            input: vec![input("X", ConfigType::TypeFp32, i)],
            output: vec![output("Y", ConfigType::TypeFp32, o)],
            ..Default::default()
        };
        assert!(validate("m", &cfg(&[7], &[-1]), &sig).is_ok());
        assert!(validate("m", &cfg(&[7], &[7]), &sig).is_err());
        let e = validate("m", &cfg(&[7], &[3]), &sig)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tensor 'Y'") && e.contains("[-1,3]"), "{e}");
    }

    #[test]
    fn batching_needs_a_dynamic_first_dim() {
        let sig = Signature {
            inputs: vec![IoInfo::new("X", Some(DataType::Fp32), &[3, 4])],
            outputs: vec![IoInfo::new("Y", Some(DataType::Fp32), &[4, 3])],
            initializers: vec![],
        };
        let cfg = ModelConfig {
            max_batch_size: 2,
            input: vec![input("X", ConfigType::TypeFp32, &[4])],
            output: vec![output("Y", ConfigType::TypeFp32, &[3])],
            ..Default::default()
        };
        check_err(
            cfg,
            &sig,
            "model 'm', tensor 'X': for the model to support batching the shape should have at least 1 dimension and the first dimension must be -1; but shape expected by the model is [3,4]",
        );
    }

    #[test]
    fn sequence_controls_count_as_inputs() {
        let mut sig = simple_sig();
        sig.inputs
            .push(IoInfo::new("START", Some(DataType::Int32), &[-1, 1]));
        let mut c = simple_cfg();
        c.scheduling_choice = Some(SchedulingChoice::SequenceBatching(ModelSequenceBatching {
            control_input: vec![ControlInput {
                name: "START".into(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        let plan = validate("m", &c, &sig).unwrap();
        assert_eq!(plan.inputs.len(), 3);
        assert_eq!(plan.inputs[2].name, "START");
        assert_eq!(plan.inputs[2].dtype, None);
        let mut c2 = simple_cfg();
        c2.scheduling_choice = c.scheduling_choice.clone();
        if let Some(SchedulingChoice::SequenceBatching(s)) = &mut c2.scheduling_choice {
            s.control_input[0].name = "END".into();
        }
        let e = validate("m", &c2, &sig).unwrap_err().to_string();
        assert!(e.contains("START"), "{e}");
    }

    #[test]
    fn unsupported_features_are_refused() {
        let mut c = simple_cfg();
        c.input[0].is_shape_tensor = true;
        let e = validate("m", &c, &simple_sig()).unwrap_err();
        assert!(matches!(e, BackendError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("is_shape_tensor"));
    }

    #[test]
    fn implicit_state_tensors_are_model_inputs_and_outputs() {
        use crate::proto::inference::ModelSequenceBatching;
        use crate::proto::inference::model_sequence_batching::State;
        let mut c = simple_cfg();
        c.scheduling_choice = Some(SchedulingChoice::SequenceBatching(ModelSequenceBatching {
            state: vec![State {
                input_name: "IN_STATE".into(),
                output_name: "OUT_STATE".into(),
                data_type: ConfigType::TypeInt32 as i32,
                dims: vec![16],
                ..Default::default()
            }],
            ..Default::default()
        }));
        let mut sig = simple_sig();
        let e = validate("m", &c, &sig).unwrap_err().to_string();
        assert!(
            e.contains("configuration expects 3 inputs, model provides 2"),
            "{e}"
        );
        sig.inputs
            .push(IoInfo::new("IN_STATE", Some(DataType::Int32), &[-1, 16]));
        let e = validate("m", &c, &sig).unwrap_err().to_string();
        assert!(
            e.contains("state output 'OUT_STATE' is not an output of the model"),
            "{e}"
        );
        sig.outputs
            .push(IoInfo::new("OUT_STATE", Some(DataType::Fp32), &[-1, 16]));
        let e = validate("m", &c, &sig).unwrap_err().to_string();
        assert!(
            e.contains("datatype TYPE_INT32 for output 'OUT_STATE'"),
            "{e}"
        );
        sig.outputs[2].dtype = Some(DataType::Int32);
        let plan = validate("m", &c, &sig).unwrap();
        assert_eq!(plan.inputs[2].name, "IN_STATE");
        let state = plan.outputs.iter().find(|o| o.name == "OUT_STATE").unwrap();
        assert!(state.always);
        assert!(!plan.outputs[0].always);
    }

    #[test]
    fn ragged_inputs_and_batch_inputs_are_checked_against_the_model() {
        use crate::proto::inference::{BatchInput, batch_input::Kind};
        let mut c = simple_cfg();
        c.input[0].allow_ragged_batch = true;
        let e = validate("m", &c, &simple_sig()).unwrap_err().to_string();
        assert!(
            e.contains("ragged input 'INPUT0' must be 1-dimensional"),
            "{e}"
        );

        let mut sig = simple_sig();
        sig.inputs[0].dims = vec![-1];
        let plan = validate("m", &c, &sig).unwrap();
        assert!(plan.inputs[0].ragged && !plan.inputs[1].ragged);
        c.batch_input.push(BatchInput {
            kind: Kind::BatchElementCount as i32,
            target_name: vec!["COUNT".into()],
            data_type: ConfigType::TypeInt32 as i32,
            source_input: vec!["INPUT0".into()],
        });
        let e = validate("m", &c, &sig).unwrap_err().to_string();
        assert!(
            e.contains("configuration expects 3 inputs, model provides 2"),
            "{e}"
        );
        sig.inputs
            .push(IoInfo::new("COUNT", Some(DataType::Fp32), &[-1]));
        let e = validate("m", &c, &sig).unwrap_err().to_string();
        assert!(
            e.contains("expects datatype INT32 for batch input 'COUNT'"),
            "{e}"
        );
        sig.inputs[2].dtype = Some(DataType::Int32);
        let plan = validate("m", &c, &sig).unwrap();
        assert_eq!(plan.batch_inputs[0].target, "COUNT");
    }

    #[test]
    fn scalars_and_reshapes() {
        let sig = Signature {
            inputs: vec![IoInfo::new("X", Some(DataType::Fp32), &[])],
            outputs: vec![IoInfo::new("Y", Some(DataType::Fp32), &[-1])],
            initializers: vec![],
        };
        let cfg = ModelConfig {
            max_batch_size: 0,
            input: vec![input("X", ConfigType::TypeFp32, &[1])],
            output: vec![output("Y", ConfigType::TypeFp32, &[-1])],
            ..Default::default()
        };
        let plan = validate("m", &cfg, &sig).unwrap();
        let r = plan.inputs[0].reshape.as_ref().unwrap();
        assert_eq!(r.apply(&[1], 0).unwrap(), Vec::<i64>::new());
        assert!(plan.outputs[0].reshape.is_none());
        let mut bad = cfg.clone();
        bad.input[0].dims = vec![2];
        assert!(
            validate("m", &bad, &sig)
                .unwrap_err()
                .to_string()
                .contains("scalar tensor 'X'")
        );

        let r = Reshape {
            from: vec![],
            to: vec![1],
        };
        assert_eq!(r.apply(&[5], 1).unwrap(), vec![5, 1]);
        let r = Reshape {
            from: vec![2, -1],
            to: vec![-1, 2],
        };
        assert_eq!(r.apply(&[3, 2, 4], 1).unwrap(), vec![3, 4, 2]);
        let r = Reshape {
            from: vec![6],
            to: vec![-1, 3],
        };
        assert_eq!(r.apply(&[6], 0).unwrap(), vec![2, 3]);
        assert!(r.apply(&[5], 0).is_err());
    }

    #[test]
    fn auto_complete_batching_model() {
        let sig = Signature {
            inputs: vec![
                IoInfo::new("INPUT0", Some(DataType::Fp32), &[-1, 4]),
                IoInfo::new("INPUT1", Some(DataType::Int64), &[-1, 4]),
            ],
            outputs: vec![
                IoInfo::new("OUTPUT0", Some(DataType::Fp32), &[-1, 4]),
                IoInfo::new("OUTPUT1", Some(DataType::Int64), &[-1]),
            ],
            initializers: vec![],
        };
        let mut cfg = ModelConfig {
            name: "ac".into(),
            ..Default::default()
        };
        auto_complete("ac", &mut cfg, &sig, DEFAULT_MAX_BATCH_SIZE).unwrap();
        assert_eq!(cfg.max_batch_size, 4);
        assert!(cfg.dynamic_batching().is_some());
        assert_eq!(cfg.input[1].name, "INPUT1");
        assert_eq!(cfg.input[1].data_type, ConfigType::TypeInt64 as i32);
        assert_eq!(cfg.input[1].dims, vec![4]);
        assert_eq!(cfg.output[1].dims, vec![1]);
        assert_eq!(
            cfg.output[1].reshape,
            Some(ModelTensorReshape { shape: vec![] })
        );
        // The completed config passes validation.
        let plan = validate("ac", &cfg, &sig).unwrap();
        assert_eq!(plan.outputs[1].reshape.as_ref().unwrap().to, vec![1]);
    }

    #[test]
    fn auto_complete_keeps_what_the_user_said() {
        let sig = simple_sig();
        let mut cfg = simple_cfg();
        cfg.output.clear();
        cfg.max_batch_size = 2;
        auto_complete("m", &mut cfg, &sig, DEFAULT_MAX_BATCH_SIZE).unwrap();
        assert_eq!(cfg.max_batch_size, 2);
        assert_eq!(cfg.input, simple_cfg().input);
        assert_eq!(cfg.output.len(), 2);
        assert!(cfg.dynamic_batching().is_some());

        // Both given: nothing to do, not even max_batch_size.
        let mut cfg = simple_cfg();
        cfg.max_batch_size = 0;
        auto_complete("m", &mut cfg, &sig, DEFAULT_MAX_BATCH_SIZE).unwrap();
        assert_eq!(cfg.max_batch_size, 0);
        assert!(cfg.scheduling_choice.is_none());
    }

    #[test]
    fn auto_complete_fixed_shape_model() {
        let sig = Signature {
            inputs: vec![IoInfo::new("INPUT0", Some(DataType::Fp32), &[3, 4])],
            outputs: vec![IoInfo::new("OUTPUT0", Some(DataType::Fp32), &[4, 3])],
            initializers: vec![],
        };
        let mut cfg = ModelConfig::default();
        auto_complete("nb", &mut cfg, &sig, DEFAULT_MAX_BATCH_SIZE).unwrap();
        assert_eq!(cfg.max_batch_size, 0);
        assert!(cfg.scheduling_choice.is_none());
        assert_eq!(cfg.input[0].dims, vec![3, 4]);
        assert_eq!(cfg.output[0].dims, vec![4, 3]);

        let mut cfg = ModelConfig {
            max_batch_size: 8,
            ..Default::default()
        };
        let e = auto_complete("nb", &mut cfg, &sig, DEFAULT_MAX_BATCH_SIZE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "autofill failed for model 'nb': model does not support batching while non-zero max_batch_size is specified"
        );
    }
}
