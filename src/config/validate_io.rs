//! `ValidateModelIOConfig`: inputs, outputs, batch inputs and batch outputs.

use std::collections::HashSet;

use crate::proto::inference::batch_input::Kind as BatchInputKind;
use crate::proto::inference::batch_output::Kind as BatchOutputKind;
use crate::proto::inference::model_input::Format;
use crate::proto::inference::{DataType, ModelConfig, ModelTensorReshape};

use super::normalize::names::TENSORRT_PLAN_PLATFORM;
use super::source_map::{field_path, index_path};
use super::validate::Errors;

const WILDCARD_DIM: i64 = -1;

/// What inputs and outputs share.
struct Io<'a> {
    name: &'a str,
    data_type: i32,
    dims: &'a [i64],
    reshape: Option<&'a ModelTensorReshape>,
    is_shape_tensor: bool,
    is_non_linear_format_io: bool,
}

pub(crate) fn model_io(cfg: &ModelConfig, out: &mut Errors) {
    let suffix = format!(" for {}", cfg.name);
    let mut seen = HashSet::new();
    for (i, input) in cfg.input.iter().enumerate() {
        let path = index_path("input", i);
        let io = Io {
            name: &input.name,
            data_type: input.data_type,
            dims: &input.dims,
            reshape: input.reshape.as_ref(),
            is_shape_tensor: input.is_shape_tensor,
            is_non_linear_format_io: input.is_non_linear_format_io,
        };
        duplicate(&mut seen, &input.name, "input", &path, &suffix, out);
        let Some((p, msg)) =
            io_shape(&io, cfg.max_batch_size, "model input ", &path).or_else(|| {
                let nhwc =
                    input.format == Format::Nhwc as i32 || input.format == Format::Nchw as i32;
                if nhwc && input.dims.len() != 3 {
                    return Some((
                        field_path(&path, "dims"),
                        "model input NHWC/NCHW require 3 dims".to_string(),
                    ));
                }
                if Format::try_from(input.format).is_err() {
                    return Some((
                        field_path(&path, "format"),
                        format!(
                            "model input '{}' has unknown format {}",
                            input.name, input.format
                        ),
                    ));
                }
                io_platform(&io, &cfg.platform, "input", &path)
            })
        else {
            continue;
        };
        out.push(p, msg + &suffix);
    }
    let mut seen = HashSet::new();
    for (i, output) in cfg.output.iter().enumerate() {
        let path = index_path("output", i);
        let io = Io {
            name: &output.name,
            data_type: output.data_type,
            dims: &output.dims,
            reshape: output.reshape.as_ref(),
            is_shape_tensor: output.is_shape_tensor,
            is_non_linear_format_io: output.is_non_linear_format_io,
        };
        duplicate(&mut seen, &output.name, "output", &path, &suffix, out);
        if let Some((p, msg)) = io_shape(&io, cfg.max_batch_size, "model output ", &path)
            .or_else(|| io_platform(&io, &cfg.platform, "output", &path))
        {
            out.push(p, msg + &suffix);
        }
    }
    batch_io(cfg, &suffix, out);
}

/// Two inputs (or two outputs) of one name: Triton keeps one silently;
/// despina refuses the config.
fn duplicate<'a>(
    seen: &mut HashSet<&'a str>,
    name: &'a str,
    what: &str,
    path: &str,
    suffix: &str,
    out: &mut Errors,
) {
    if !name.is_empty() && !seen.insert(name) {
        out.push(
            field_path(path, "name"),
            format!("model {what} '{name}' is specified more than once{suffix}"),
        );
    }
}

/// `ValidateIOShape`: the first problem of one input or output.
fn io_shape(
    io: &Io<'_>,
    max_batch_size: i32,
    prefix: &str,
    path: &str,
) -> Option<(String, String)> {
    if io.name.is_empty() {
        return Some((
            field_path(path, "name"),
            format!("{prefix}must specify 'name'"),
        ));
    }
    let prefix = format!("{prefix}'{}' ", io.name);
    if io.data_type == DataType::TypeInvalid as i32 {
        return Some((
            field_path(path, "data_type"),
            format!("{prefix}must specify 'data_type'"),
        ));
    }
    if DataType::try_from(io.data_type).is_err() {
        return Some((
            field_path(path, "data_type"),
            format!("{prefix}has unknown data type {}", io.data_type),
        ));
    }
    if io.dims.is_empty() {
        return Some((
            field_path(path, "dims"),
            format!("{prefix}must specify 'dims'"),
        ));
    }
    if let Some(r) = io.reshape
        && r.shape.is_empty()
        && max_batch_size == 0
    {
        return Some((
            field_path(path, "reshape"),
            format!(
                "{prefix}cannot have empty reshape for non-batching model as scalar tensors are not supported"
            ),
        ));
    }
    let dims_path = field_path(path, "dims");
    if let Some(j) = io.dims.iter().position(|d| *d < 1 && *d != WILDCARD_DIM) {
        return Some((
            index_path(&dims_path, j),
            format!(
                "{prefix}dimension must be integer >= 1, or -1 to indicate a variable-size dimension"
            ),
        ));
    }
    let reshape = io.reshape?;
    let shape_path = field_path(&field_path(path, "reshape"), "shape");
    if let Some(j) = reshape
        .shape
        .iter()
        .position(|d| *d < 1 && *d != WILDCARD_DIM)
    {
        return Some((
            index_path(&shape_path, j),
            format!(
                "{prefix}reshape dimensions must be integer >= 1, or -1 to indicate a variable-size dimension"
            ),
        ));
    }
    let dims_size = element_count(io.dims);
    let reshape_size = element_count(&reshape.shape);
    // An empty reshape (a scalar) needs dims with exactly one element.
    if dims_size != reshape_size && (reshape_size != 0 || dims_size != 1) {
        return Some((
            shape_path,
            format!("{prefix}has different size for dims and reshape"),
        ));
    }
    // With variable-size dims, each run between wildcards must match.
    if dims_size == -1 {
        let a = runs(io.dims);
        let b = runs(&reshape.shape);
        if a.len() != b.len() {
            return Some((
                shape_path,
                format!(
                    "{prefix}has different number of variable-size dimensions for dims and reshape"
                ),
            ));
        }
        if a != b {
            return Some((
                shape_path,
                format!("{prefix}has different size for dims and reshape"),
            ));
        }
    }
    None
}

/// Triton's `GetElementCount`: -1 with a wildcard, 0 for no dims.
fn element_count(dims: &[i64]) -> i64 {
    if dims.contains(&WILDCARD_DIM) {
        return -1;
    }
    dims.iter().copied().reduce(i64::wrapping_mul).unwrap_or(0)
}

/// Element counts of the runs of fixed dims between wildcards.
fn runs(dims: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cnt: i64 = 1;
    for d in dims {
        if *d == WILDCARD_DIM {
            out.push(cnt);
            cnt = 1;
        } else {
            cnt = cnt.wrapping_mul(*d);
        }
    }
    out.push(cnt);
    out
}

/// Shape tensors and non-linear formats, which only TensorRT supports.
fn io_platform(io: &Io<'_>, platform: &str, what: &str, path: &str) -> Option<(String, String)> {
    if platform != TENSORRT_PLAN_PLATFORM && io.is_shape_tensor {
        return Some((
            field_path(path, "is_shape_tensor"),
            "shape tensors are only supported for TensorRT platform".to_string(),
        ));
    }
    if io.is_non_linear_format_io {
        if platform != TENSORRT_PLAN_PLATFORM {
            return Some((
                field_path(path, "is_non_linear_format_io"),
                "Non-linear IO format is only supported for the TensorRT platform".to_string(),
            ));
        }
        if io.dims.len() != 3 {
            return Some((
                field_path(path, "dims"),
                format!("Non-linear IO format {what} requires 3 dims"),
            ));
        }
    }
    None
}

/// `ValidateBatchIO`.
fn batch_io(cfg: &ModelConfig, suffix: &str, out: &mut Errors) {
    let inputs: HashSet<&str> = cfg.input.iter().map(|i| i.name.as_str()).collect();
    let outputs: HashSet<&str> = cfg.output.iter().map(|o| o.name.as_str()).collect();
    for (i, b) in cfg.batch_input.iter().enumerate() {
        let path = index_path("batch_input", i);
        match BatchInputKind::try_from(b.kind) {
            Ok(kind) if b.source_input.len() != 1 => out.push(
                field_path(&path, "source_input"),
                format!(
                    "batch input kind '{}' expects 1 source input, got {}{suffix}",
                    kind.as_str_name(),
                    b.source_input.len()
                ),
            ),
            Ok(_) => {}
            Err(_) => out.push(
                field_path(&path, "kind"),
                format!("unknown batch input kind '{}'{suffix}", b.kind),
            ),
        }
        if b.data_type != DataType::TypeInt32 as i32 && b.data_type != DataType::TypeFp32 as i32 {
            out.push(
                field_path(&path, "data_type"),
                format!("batch input data type must be TYPE_INT32 or TYPE_FP32{suffix}"),
            );
        }
        for (j, s) in b.source_input.iter().enumerate() {
            if !inputs.contains(s.as_str()) {
                let p = index_path(&field_path(&path, "source_input"), j);
                out.push(p, format!("unknown source input name '{s}'{suffix}"));
            }
        }
    }
    for (i, b) in cfg.batch_output.iter().enumerate() {
        let path = index_path("batch_output", i);
        match BatchOutputKind::try_from(b.kind) {
            Ok(kind) if b.source_input.len() != 1 => out.push(
                field_path(&path, "source_input"),
                format!(
                    "batch output kind '{}' expects 1 source input, got {}{suffix}",
                    kind.as_str_name(),
                    b.source_input.len()
                ),
            ),
            Ok(_) => {}
            Err(_) => out.push(
                field_path(&path, "kind"),
                format!("unknown batch output kind '{}'{suffix}", b.kind),
            ),
        }
        for (j, s) in b.source_input.iter().enumerate() {
            if !inputs.contains(s.as_str()) {
                let p = index_path(&field_path(&path, "source_input"), j);
                out.push(p, format!("unknown source input name '{s}'{suffix}"));
            }
        }
        let mut targets = HashSet::new();
        for (j, t) in b.target_name.iter().enumerate() {
            let p = index_path(&field_path(&path, "target_name"), j);
            if !outputs.contains(t.as_str()) {
                out.push(p, format!("unknown target output name '{t}'{suffix}"));
            } else if !targets.insert(t.as_str()) {
                out.push(
                    p,
                    format!("target output name '{t}' can only be specified once{suffix}"),
                );
            }
        }
    }
}
