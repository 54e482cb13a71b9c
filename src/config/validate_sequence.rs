//! The sequence batcher's rules: control inputs (`ValidateModelConfig` with
//! `GetBooleanSequenceControlProperties` / `GetTypedSequenceControlProperties`),
//! strategies, and the implicit-state checks Triton makes when it builds the
//! scheduler (`SequenceBatchScheduler::GenerateInitialStateData`).

use std::collections::HashSet;

use crate::proto::inference::model_sequence_batching::control::Kind as ControlKind;
use crate::proto::inference::model_sequence_batching::{Control, StrategyChoice};
use crate::proto::inference::{DataType, ModelConfig, ModelSequenceBatching};

use super::source_map::{field_path, index_path};
use super::validate::Errors;

const BOOLEAN_KINDS: [ControlKind; 3] = [
    ControlKind::ControlSequenceStart,
    ControlKind::ControlSequenceEnd,
    ControlKind::ControlSequenceReady,
];

const CORRID_TYPES: [DataType; 5] = [
    DataType::TypeUint64,
    DataType::TypeInt64,
    DataType::TypeUint32,
    DataType::TypeInt32,
    DataType::TypeString,
];

pub(crate) fn sequence_batching(cfg: &ModelConfig, sb: &ModelSequenceBatching, out: &mut Errors) {
    let name = &cfg.name;
    if cfg.response_cache.as_ref().is_some_and(|c| c.enable) {
        out.push(
            "response_cache.enable",
            format!(
                "Response Cache does not currently support model {name} with sequence batching scheduler. Please disable the response cache"
            ),
        );
    }
    controls(name, sb, out);
    match &sb.strategy_choice {
        Some(StrategyChoice::Oldest(oldest)) => {
            for (i, size) in oldest.preferred_batch_size.iter().enumerate() {
                let path = index_path("sequence_batching.oldest.preferred_batch_size", i);
                if *size <= 0 {
                    out.push(
                        path,
                        format!(
                            "sequence batching preferred batch size must be positive for {name}"
                        ),
                    );
                } else if *size > cfg.max_batch_size {
                    out.push(path, format!("sequence batching preferred batch size must be <= max batch size for {name}"));
                }
            }
        }
        Some(StrategyChoice::Direct(direct)) => {
            let u = direct.minimum_slot_utilization;
            if !(0.0..=1.0).contains(&u) {
                out.push(
                    "sequence_batching.direct.minimum_slot_utilization",
                    format!("sequence batching minimum slot utilization must be in range (0.0, 1.0] for {name}"),
                );
            }
        }
        None => {}
    }
    states(sb, out);
}

fn controls(name: &str, sb: &ModelSequenceBatching, out: &mut Errors) {
    let mut tensors = HashSet::new();
    for (i, ci) in sb.control_input.iter().enumerate() {
        let path = index_path("sequence_batching.control_input", i);
        if ci.name.is_empty() {
            out.push(
                field_path(&path, "name"),
                format!("sequence batching control tensor must have a name for {name}"),
            );
        } else if !tensors.insert(ci.name.as_str()) {
            out.push(
                field_path(&path, "name"),
                format!("sequence batching control tensor '{}' is specified for multiple control kinds for {name}", ci.name),
            );
        }
        for (j, c) in ci.control.iter().enumerate() {
            if ControlKind::try_from(c.kind).is_err() {
                let p = field_path(&index_path(&field_path(&path, "control"), j), "kind");
                out.push(
                    p,
                    format!(
                        "unknown sequence batching control kind {} for {name}",
                        c.kind
                    ),
                );
            }
        }
    }
    for kind in BOOLEAN_KINDS
        .into_iter()
        .chain([ControlKind::ControlSequenceCorrid])
    {
        let kind_name = kind.as_str_name();
        let mut seen = false;
        for (path, c) in controls_of(sb, kind) {
            if seen {
                out.push(
                    path,
                    format!("sequence batching specifies multiple {kind_name} tensors for {name}"),
                );
                continue;
            }
            seen = true;
            let counts = [
                c.int32_false_true.len(),
                c.fp32_false_true.len(),
                c.bool_false_true.len(),
            ];
            let given = counts.iter().filter(|n| **n > 0).count();
            if kind == ControlKind::ControlSequenceCorrid {
                if given > 0 {
                    out.push(
                        path,
                        format!("sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for {kind_name} for {name}"),
                    );
                } else if !CORRID_TYPES.iter().any(|t| *t as i32 == c.data_type) {
                    out.push(
                        field_path(&path, "data_type"),
                        format!("unexpected data type for control {kind_name} for {name}. Allowed data types are TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING"),
                    );
                }
            } else if given == 0 {
                out.push(
                    path,
                    format!("sequence batching must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for {kind_name} for {name}"),
                );
            } else if given > 1 {
                out.push(
                    path,
                    format!("sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and 'bool_false_true' for {kind_name} for {name}"),
                );
            } else {
                let fields = ["int32_false_true", "fp32_false_true", "bool_false_true"];
                for (field, n) in fields.iter().zip(counts) {
                    if n > 0 && n != 2 {
                        out.push(
                            field_path(&path, field),
                            format!("sequence batching control '{field}' must have exactly 2 entries for {kind_name} for {name}"),
                        );
                    }
                }
            }
        }
    }
}

/// The controls of one kind, with their paths, in config order.
fn controls_of(sb: &ModelSequenceBatching, kind: ControlKind) -> Vec<(String, &Control)> {
    let mut found = Vec::new();
    for (i, ci) in sb.control_input.iter().enumerate() {
        for (j, c) in ci.control.iter().enumerate() {
            if c.kind == kind as i32 {
                let path = index_path(
                    &field_path(&index_path("sequence_batching.control_input", i), "control"),
                    j,
                );
                found.push((path, c));
            }
        }
    }
    found
}

/// Implicit state: what Triton checks of `initial_state` at load.
fn states(sb: &ModelSequenceBatching, out: &mut Errors) {
    let mut with_initial = HashSet::new();
    for (i, state) in sb.state.iter().enumerate() {
        let path = index_path("sequence_batching.state", i);
        let input = &state.input_name;
        if state.initial_state.len() > 1 {
            out.push(
                field_path(&path, "initial_state"),
                format!(
                    "initial_state field for state input '{input}' must contain exactly one or zero element. Found '{}' elements",
                    state.initial_state.len()
                ),
            );
            continue;
        }
        let Some(init) = state.initial_state.first() else {
            continue;
        };
        let ipath = index_path(&field_path(&path, "initial_state"), 0);
        let problem = if init.data_type != state.data_type {
            Some((
                "data_type",
                format!(
                    "The data type used for 'initial_state' field of state '{input}' does not match the state data type"
                ),
            ))
        } else if init.name.is_empty() {
            Some((
                "name",
                format!(
                    "Field 'name' must be set when using initial_state for state input '{input}'"
                ),
            ))
        } else if !with_initial.insert(input.as_str()) {
            Some((
                "",
                format!("State input name '{input}' specified more than once"),
            ))
        } else if init.dims.len() != state.dims.len() {
            Some((
                "dims",
                format!(
                    "Number of dimensions in 'initial_state' doesn't match the size of 'state' dimensions for state input '{input}'. {} != {}",
                    init.dims.len(),
                    state.dims.len()
                ),
            ))
        } else if init.dims.contains(&-1) {
            Some((
                "dims",
                format!(
                    "'initial_state' field for state input name '{input}' contains variable dimensions"
                ),
            ))
        } else if let Some((a, b)) = init
            .dims
            .iter()
            .zip(&state.dims)
            .find(|(a, b)| **b != -1 && a != b)
        {
            Some((
                "dims",
                format!(
                    "'initial_state' dim for input name '{input}' doesn't match 'state' dim description. {a} != {b}"
                ),
            ))
        } else if init.state_data.is_none() {
            Some((
                "",
                format!("initial_state setting expects state'{input}' to have state_data set"),
            ))
        } else {
            None
        };
        if let Some((field, msg)) = problem {
            let p = if field.is_empty() {
                ipath
            } else {
                field_path(&ipath, field)
            };
            out.push(p, msg);
        }
    }
}
