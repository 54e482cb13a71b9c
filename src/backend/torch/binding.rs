//! Which `forward()` argument each config input feeds, and which returned tensor each
//! config output reads: Triton's PyTorch backend rules, checked once at load.
//!
//! Inputs: if every config input name is an argument name of `forward()`, names bind to
//! arguments; else if every name is `<name>__<index>`, the index is the argument position;
//! else inputs bind in config order. Outputs: `<name>__<index>` if every output follows it,
//! else config order. Sequence control inputs always use `<name>__<index>`. A `forward()`
//! taking one `Dict(str, Tensor)` gets every input in that dictionary, keyed by name.
//! `batch_input` targets bind like config inputs, after them in config order.

use super::schema::{ArgType, ForwardSchema};
use crate::backend::BackendError;
use crate::backend::ragged::{self, BatchInputPlan, ScatterPlan};
use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::DataType as ConfigType;
use crate::tensor::DataType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    ForwardArgument,
    NamedIndex,
    ConfigOrder,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputSlot {
    pub name: String,
    /// Position among `forward()`'s arguments (unused for dictionary input).
    pub index: usize,
    /// The config `dims` and `reshape.shape`, when the config reshapes this input.
    pub reshape: Option<(Vec<i64>, Vec<i64>)>,
    /// `allow_ragged_batch` on a batching model: fed as one 1-D concatenation.
    pub ragged: bool,
    /// Generated per batch (`batch_input`) instead of taken from the requests.
    pub batch_input: Option<BatchInputPlan>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSlot {
    pub name: String,
    /// Position in the tuple or list `forward()` returns.
    pub index: usize,
    pub datatype: DataType,
    /// The config `reshape.shape` and `dims`, when the config reshapes this output.
    pub reshape: Option<(Vec<i64>, Vec<i64>)>,
    /// Returned for every request (implicit state outputs).
    pub always: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub dict_input: bool,
    pub input_convention: Convention,
    pub output_convention: Convention,
    /// Config inputs, then sequence control inputs.
    pub inputs: Vec<InputSlot>,
    /// How many positional arguments `forward()` gets.
    pub arg_count: usize,
    pub outputs: Vec<OutputSlot>,
    /// Outputs scattered by a source input's shape (`batch_output`).
    pub scatters: Vec<ScatterPlan>,
}

/// The index of a `<name>__<index>` name: digits after the first `__`, as Triton reads it.
pub fn named_index(name: &str) -> Option<usize> {
    let (_, index) = name.split_once("__")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index.parse().ok()
}

fn type_name(t: i32) -> &'static str {
    ConfigType::try_from(t).map_or("TYPE_INVALID", |t| t.as_str_name())
}

/// The datatypes a TorchScript tensor can carry.
fn check_datatype(model: &str, kind: &str, name: &str, t: i32) -> Result<DataType, BackendError> {
    match DataType::from_config(t) {
        Some(DataType::Bytes) => Err(BackendError::Load(format!(
            "{kind} '{name}' of model '{model}' has datatype TYPE_STRING: the pytorch backend \
             supports numeric and BOOL tensors only"
        ))),
        Some(d) if super::convert::kind_of(d).is_some() => Ok(d),
        Some(d) => Err(BackendError::Load(format!(
            "unsupported datatype {} for {kind} '{name}' for model '{model}'",
            d.to_config().as_str_name()
        ))),
        None => Err(BackendError::Load(format!(
            "unsupported datatype {} for {kind} '{name}' for model '{model}'",
            type_name(t)
        ))),
    }
}

fn reshape_of(
    dims: &[i64],
    reshape: Option<&crate::proto::inference::ModelTensorReshape>,
) -> Option<(Vec<i64>, Vec<i64>)> {
    reshape.map(|r| (dims.to_vec(), r.shape.clone()))
}

pub fn bind(
    model: &str,
    cfg: &ModelConfig,
    schema: Option<&ForwardSchema>,
) -> Result<Binding, BackendError> {
    if cfg.input.is_empty() {
        return Err(BackendError::Load(
            "model configuration must contain at least one input, none were specified".into(),
        ));
    }
    if cfg.output.is_empty() {
        return Err(BackendError::Load(
            "model configuration must contain at least one output, none were specified".into(),
        ));
    }
    let batch_inputs = ragged::batch_inputs(cfg).map_err(BackendError::Load)?;
    let controls: Vec<&str> = match cfg.sequence_batching() {
        Some(seq) => seq.control_input.iter().map(|c| c.name.as_str()).collect(),
        None => Vec::new(),
    };
    let states = cfg
        .sequence_batching()
        .map(|s| s.state.as_slice())
        .unwrap_or_default();
    for i in &cfg.input {
        check_datatype(model, "input", &i.name, i.data_type)?;
    }
    let wanted = cfg.input.len() + controls.len() + batch_inputs.len() + states.len();

    let dict_input = match schema {
        Some(s) if s.args.len() == 1 && s.args[0].ty == ArgType::TensorDict => true,
        Some(s) => {
            if let Some(a) = s.args.iter().find(|a| a.ty != ArgType::Tensor) {
                let ty = match &a.ty {
                    ArgType::Other(t) => t.as_str(),
                    _ => "Dict(str, Tensor)",
                };
                return Err(BackendError::Load(format!(
                    "An input of type '{ty}' was detected in the model. Only a single input of \
                     type Dict(str, Tensor) or input(s) of type Tensor are supported"
                )));
            }
            if s.args.len() != wanted {
                return Err(BackendError::Load(format!(
                    "unable to load model '{model}', configuration expects {wanted} inputs, model provides {}",
                    s.args.len()
                )));
            }
            false
        }
        None => false,
    };

    let arg_names: Vec<&str> = schema
        .map(|s| s.args.iter().map(|a| a.name.as_str()).collect())
        .unwrap_or_default();
    // Config inputs and batch input targets, in the order config order binds them.
    let names: Vec<&str> = cfg
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(batch_inputs.iter().map(|b| b.target.as_str()))
        .chain(states.iter().map(|s| s.input_name.as_str()))
        .collect();
    let input_convention = if !arg_names.is_empty() && names.iter().all(|n| arg_names.contains(n)) {
        Convention::ForwardArgument
    } else if names.iter().all(|n| named_index(n).is_some()) {
        Convention::NamedIndex
    } else {
        Convention::ConfigOrder
    };
    if input_convention == Convention::ConfigOrder && !dict_input {
        tracing::warn!(
            model,
            "inputs are neither forward() argument names nor follow the <name>__<index> \
             naming convention; binding them in config order"
        );
    }

    let position = |pos: usize, name: &str| match input_convention {
        Convention::ForwardArgument => arg_names.iter().position(|a| *a == name).unwrap_or(pos),
        Convention::NamedIndex => named_index(name).unwrap_or(pos),
        Convention::ConfigOrder => pos,
    };
    let mut inputs = Vec::with_capacity(wanted);
    for (pos, i) in cfg.input.iter().enumerate() {
        let ragged = i.allow_ragged_batch && cfg.max_batch_size > 0;
        inputs.push(InputSlot {
            name: i.name.clone(),
            index: position(pos, &i.name),
            reshape: if ragged {
                None
            } else {
                reshape_of(&i.dims, i.reshape.as_ref())
            },
            ragged,
            batch_input: None,
        });
    }
    let after_inputs = cfg.input.len() + batch_inputs.len();
    for (k, b) in batch_inputs.into_iter().enumerate() {
        inputs.push(InputSlot {
            name: b.target.clone(),
            index: position(cfg.input.len() + k, &b.target),
            reshape: None,
            ragged: false,
            batch_input: Some(b),
        });
    }
    for (k, st) in states.iter().enumerate() {
        check_datatype(model, "input", &st.input_name, st.data_type)?;
        inputs.push(InputSlot {
            name: st.input_name.clone(),
            index: position(after_inputs + k, &st.input_name),
            reshape: None,
            ragged: false,
            batch_input: None,
        });
    }
    for name in controls {
        let index = named_index(name).ok_or_else(|| {
            BackendError::Load(format!(
                "input '{name}' does not follow <name>__<index> naming convention"
            ))
        })?;
        inputs.push(InputSlot {
            name: name.to_string(),
            index,
            reshape: None,
            ragged: false,
            batch_input: None,
        });
    }
    if !dict_input {
        check_positions(
            model,
            "input",
            inputs.iter().map(|i| (&i.name, i.index)),
            wanted,
        )?;
    }

    let output_convention = if cfg.output.iter().all(|o| named_index(&o.name).is_some()) {
        Convention::NamedIndex
    } else {
        tracing::warn!(
            model,
            "outputs do not follow the <name>__<index> naming convention; binding them in config order"
        );
        Convention::ConfigOrder
    };
    let mut outputs = Vec::with_capacity(cfg.output.len());
    for (pos, o) in cfg.output.iter().enumerate() {
        let datatype = check_datatype(model, "output", &o.name, o.data_type)?;
        let index = match output_convention {
            Convention::NamedIndex => named_index(&o.name).unwrap_or(pos),
            _ => pos,
        };
        outputs.push(OutputSlot {
            name: o.name.clone(),
            index,
            datatype,
            reshape: o
                .reshape
                .as_ref()
                .map(|r| (r.shape.clone(), o.dims.clone())),
            always: false,
        });
    }
    // Implicit state outputs: computed for every request (the sequence batcher takes them
    // back out of the answer), after the config outputs in config order.
    for (k, st) in states.iter().enumerate() {
        let datatype = check_datatype(model, "output", &st.output_name, st.data_type)?;
        match outputs.iter_mut().find(|o| o.name == st.output_name) {
            Some(listed) => listed.always = true,
            None => {
                let index = match output_convention {
                    Convention::NamedIndex => named_index(&st.output_name),
                    _ => None,
                }
                .unwrap_or(cfg.output.len() + k);
                outputs.push(OutputSlot {
                    name: st.output_name.clone(),
                    index,
                    datatype,
                    reshape: None,
                    always: true,
                });
            }
        }
    }

    Ok(Binding {
        dict_input,
        input_convention,
        output_convention,
        inputs,
        arg_count: if dict_input { 1 } else { wanted },
        outputs,
        scatters: ragged::scatters(cfg),
    })
}

/// Every argument position 0..count must be fed exactly once.
fn check_positions<'a>(
    model: &str,
    kind: &str,
    slots: impl Iterator<Item = (&'a String, usize)>,
    count: usize,
) -> Result<(), BackendError> {
    let mut seen: Vec<Option<&String>> = vec![None; count];
    for (name, index) in slots {
        match seen.get_mut(index) {
            None => {
                return Err(BackendError::Load(format!(
                    "model '{model}': {kind} '{name}' maps to forward() argument {index}, \
                     but there are only {count} arguments"
                )));
            }
            Some(Some(other)) => {
                return Err(BackendError::Load(format!(
                    "model '{model}': {kind}s '{other}' and '{name}' both map to forward() argument {index}"
                )));
            }
            Some(slot) => *slot = Some(name),
        }
    }
    Ok(())
}

/// Resolves a target shape whose `-1` entries are the source's variable dims, in order:
/// the sizes found at the `-1` positions of `from` fill the `-1` positions of `to`. A `-1`
/// left over is inferred by libtorch from the element count.
pub fn resolve_reshape(actual: &[i64], from: &[i64], to: &[i64]) -> Vec<i64> {
    let mut variable = from
        .iter()
        .zip(actual)
        .filter(|(d, _)| **d < 0)
        .map(|(_, a)| *a);
    to.iter()
        .map(|&d| {
            if d < 0 {
                variable.next().unwrap_or(-1)
            } else {
                d
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::torch::schema::Argument;
    use crate::proto::inference::model_sequence_batching::{Control, ControlInput};
    use crate::proto::inference::{
        ModelInput, ModelOutput, ModelSequenceBatching, ModelTensorReshape,
        model_config::SchedulingChoice,
    };

    fn cfg(inputs: &[(&str, ConfigType)], outputs: &[(&str, ConfigType)]) -> ModelConfig {
        ModelConfig {
            input: inputs
                .iter()
                .map(|(n, t)| ModelInput {
                    name: n.to_string(),
                    data_type: *t as i32,
                    dims: vec![4],
                    ..Default::default()
                })
                .collect(),
            output: outputs
                .iter()
                .map(|(n, t)| ModelOutput {
                    name: n.to_string(),
                    data_type: *t as i32,
                    dims: vec![4],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn schema(args: &[(&str, ArgType)]) -> ForwardSchema {
        ForwardSchema {
            args: args
                .iter()
                .map(|(n, t)| Argument {
                    name: n.to_string(),
                    ty: t.clone(),
                })
                .collect(),
        }
    }

    fn tensors(names: &[&str]) -> ForwardSchema {
        schema(
            &names
                .iter()
                .map(|n| (*n, ArgType::Tensor))
                .collect::<Vec<_>>(),
        )
    }

    fn indices(b: &Binding) -> Vec<(&str, usize)> {
        b.inputs
            .iter()
            .map(|i| (i.name.as_str(), i.index))
            .collect()
    }

    fn out_indices(b: &Binding) -> Vec<(&str, usize)> {
        b.outputs
            .iter()
            .map(|o| (o.name.as_str(), o.index))
            .collect()
    }

    use ConfigType::{TypeFp32 as F, TypeInt64 as I};

    #[test]
    fn named_indices() {
        assert_eq!(named_index("INPUT__0"), Some(0));
        assert_eq!(named_index("x__12"), Some(12));
        assert_eq!(named_index("a__b__1"), None);
        assert_eq!(named_index("INPUT0"), None);
        assert_eq!(named_index("INPUT__"), None);
        assert_eq!(named_index("INPUT__-1"), None);
    }

    #[test]
    fn forward_argument_names_win() {
        // Config order differs from forward()'s: names decide.
        let c = cfg(&[("b", F), ("a", F)], &[("OUTPUT__1", F), ("OUTPUT__0", F)]);
        let b = bind("m", &c, Some(&tensors(&["a", "b"]))).unwrap();
        assert_eq!(b.input_convention, Convention::ForwardArgument);
        assert_eq!(indices(&b), vec![("b", 1), ("a", 0)]);
        assert_eq!(b.output_convention, Convention::NamedIndex);
        assert_eq!(out_indices(&b), vec![("OUTPUT__1", 1), ("OUTPUT__0", 0)]);
        // Argument names take precedence over the indices in the names.
        let c = cfg(&[("x__1", F), ("x__0", F)], &[("y", F)]);
        let b = bind("m", &c, Some(&tensors(&["x__1", "x__0"]))).unwrap();
        assert_eq!(indices(&b), vec![("x__1", 0), ("x__0", 1)]);
    }

    #[test]
    fn named_index_then_config_order() {
        let c = cfg(
            &[("IN__1", F), ("IN__0", I)],
            &[("OUT", F), ("OTHER__0", F)],
        );
        let b = bind("m", &c, Some(&tensors(&["x", "y"]))).unwrap();
        assert_eq!(b.input_convention, Convention::NamedIndex);
        assert_eq!(indices(&b), vec![("IN__1", 1), ("IN__0", 0)]);
        assert_eq!(b.output_convention, Convention::ConfigOrder);
        assert_eq!(out_indices(&b), vec![("OUT", 0), ("OTHER__0", 1)]);

        let c = cfg(&[("b", F), ("IN__0", F)], &[("OUTPUT__0", F)]);
        let b = bind("m", &c, Some(&tensors(&["x", "y"]))).unwrap();
        assert_eq!(b.input_convention, Convention::ConfigOrder);
        assert_eq!(indices(&b), vec![("b", 0), ("IN__0", 1)]);

        // Without a schema: index names, else config order.
        let c = cfg(&[("IN__1", F), ("IN__0", F)], &[("OUTPUT__0", F)]);
        assert_eq!(
            indices(&bind("m", &c, None).unwrap()),
            vec![("IN__1", 1), ("IN__0", 0)]
        );
    }

    #[test]
    fn dictionary_input() {
        let c = cfg(&[("zeta", F), ("alpha", I)], &[("OUTPUT__0", F)]);
        let b = bind("m", &c, Some(&schema(&[("d", ArgType::TensorDict)]))).unwrap();
        assert!(b.dict_input);
        assert_eq!(b.arg_count, 1);
        assert_eq!(b.inputs.len(), 2);
    }

    #[track_caller]
    fn load_err(c: &ModelConfig, s: Option<&ForwardSchema>, want: &str) {
        match bind("m", c, s) {
            Err(e) => assert!(e.to_string().contains(want), "{e} does not contain {want}"),
            Ok(b) => panic!("bound {b:?}, expected an error containing {want}"),
        }
    }

    #[test]
    fn refusals() {
        let two = cfg(&[("INPUT__0", F), ("INPUT__1", F)], &[("OUTPUT__0", F)]);
        load_err(
            &two,
            Some(&tensors(&["a", "b", "c"])),
            "unable to load model 'm', configuration expects 2 inputs, model provides 3",
        );
        load_err(
            &two,
            Some(&schema(&[
                ("a", ArgType::Tensor),
                ("k", ArgType::Other("int".into())),
            ])),
            "An input of type 'int' was detected in the model",
        );
        load_err(
            &cfg(&[("INPUT__0", F), ("INPUT__5", F)], &[("OUTPUT__0", F)]),
            None,
            "input 'INPUT__5' maps to forward() argument 5, but there are only 2 arguments",
        );
        load_err(
            &cfg(&[("A__0", F), ("B__0", F)], &[("OUTPUT__0", F)]),
            None,
            "inputs 'A__0' and 'B__0' both map to forward() argument 0",
        );
        load_err(
            &cfg(&[("INPUT__0", ConfigType::TypeString)], &[("OUTPUT__0", F)]),
            None,
            "input 'INPUT__0' of model 'm' has datatype TYPE_STRING",
        );
        load_err(
            &cfg(&[("INPUT__0", ConfigType::TypeUint16)], &[("OUTPUT__0", F)]),
            None,
            "unsupported datatype TYPE_UINT16 for input 'INPUT__0' for model 'm'",
        );
        load_err(
            &cfg(&[("INPUT__0", F)], &[("OUTPUT__0", ConfigType::TypeUint64)]),
            None,
            "unsupported datatype TYPE_UINT64 for output 'OUTPUT__0' for model 'm'",
        );
        load_err(
            &cfg(&[], &[("OUTPUT__0", F)]),
            None,
            "model configuration must contain at least one input",
        );
        load_err(
            &cfg(&[("INPUT__0", F)], &[]),
            None,
            "model configuration must contain at least one output",
        );
    }

    fn with_controls(mut c: ModelConfig, names: &[&str]) -> ModelConfig {
        c.scheduling_choice = Some(SchedulingChoice::SequenceBatching(ModelSequenceBatching {
            control_input: names
                .iter()
                .map(|n| ControlInput {
                    name: n.to_string(),
                    control: vec![Control::default()],
                })
                .collect(),
            ..Default::default()
        }));
        c
    }

    #[test]
    fn sequence_controls() {
        let c = with_controls(
            cfg(&[("INPUT__0", F)], &[("OUTPUT__0", F)]),
            &["START__1", "READY__2"],
        );
        let b = bind("m", &c, Some(&tensors(&["x", "start", "ready"]))).unwrap();
        assert_eq!(
            indices(&b),
            vec![("INPUT__0", 0), ("START__1", 1), ("READY__2", 2)]
        );
        assert_eq!(b.arg_count, 3);
        let c = with_controls(cfg(&[("INPUT__0", F)], &[("OUTPUT__0", F)]), &["START"]);
        load_err(
            &c,
            None,
            "input 'START' does not follow <name>__<index> naming convention",
        );
        load_err(
            &with_controls(cfg(&[("INPUT__0", F)], &[("OUTPUT__0", F)]), &["START__1"]),
            Some(&tensors(&["x"])),
            "configuration expects 2 inputs, model provides 1",
        );
    }

    #[test]
    fn reshapes() {
        let mut c = cfg(&[("INPUT__0", F)], &[("OUTPUT__0", F)]);
        c.input[0].reshape = Some(ModelTensorReshape { shape: vec![2, 2] });
        c.output[0].reshape = Some(ModelTensorReshape { shape: vec![1, 4] });
        let b = bind("m", &c, None).unwrap();
        assert_eq!(b.inputs[0].reshape, Some((vec![4], vec![2, 2])));
        assert_eq!(b.outputs[0].reshape, Some((vec![1, 4], vec![4])));

        assert_eq!(resolve_reshape(&[4], &[4], &[2, 2]), vec![2, 2]);
        assert_eq!(
            resolve_reshape(&[3, 8], &[-1, 8], &[-1, 2, 4]),
            vec![3, 2, 4]
        );
        assert_eq!(
            resolve_reshape(&[3, 5], &[-1, -1], &[-1, 1, -1]),
            vec![3, 1, 5]
        );
        assert_eq!(resolve_reshape(&[6], &[6], &[-1, 3]), vec![-1, 3]);
    }
}
