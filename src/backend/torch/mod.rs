//! `pytorch`: TorchScript models (`model.pt`, `platform: "pytorch_libtorch"`) run by
//! libtorch through tch, following Triton's PyTorch backend: its input and output naming
//! rules, its parameters, its load and execution errors.
//!
//! Each instance loads its own copy of the module on its own thread. CPU and KIND_MODEL
//! instances never touch CUDA; KIND_GPU instances need a libtorch that sees CUDA, which
//! the CPU-only install does not provide (tch then reports no device).

mod binding;
mod convert;
mod instance;
mod params;
mod schema;

use std::path::PathBuf;
use std::sync::Once;

use tch::{CModule, Device, IValue};

use super::{Backend, BackendError, DeviceKind, Instance, InstanceSpec, ModelContext};
use convert::torch_message;

pub use binding::{Binding, Convention, named_index};
pub use params::{DEFAULT_INTRA_OP_THREADS, Params};
pub use schema::{ArgType, Argument, ForwardSchema, parse_declaration};

/// The model file Triton's PyTorch backend looks for when the config names none.
pub const DEFAULT_MODEL_FILENAME: &str = "model.pt";

pub struct TorchBackend;

impl Backend for TorchBackend {
    fn name(&self) -> &'static str {
        "pytorch"
    }

    fn instantiate(
        &self,
        model: &ModelContext,
        spec: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, BackendError> {
        let cfg = model.config;
        let params = Params::from_config(cfg).map_err(BackendError::Load)?;
        let path = model_path(model);
        if !path.is_file() {
            return Err(BackendError::Load(format!(
                "unable to find '{}' for model instance '{}'",
                path.display(),
                spec.name
            )));
        }
        let device = device_for(model.name, spec)?;
        apply_thread_counts(&params);

        let mut module = match spec.kind {
            // Triton keeps the devices saved in the module for KIND_MODEL.
            DeviceKind::Model => CModule::load(&path),
            _ => CModule::load_on_device(&path, device),
        }
        .map_err(|e| load_error(model.name, &path, &e))?;
        module
            .f_set_eval()
            .map_err(|e| load_error(model.name, &path, &e))?;

        let schema = forward_schema(&module);
        if schema.is_none() {
            tracing::warn!(
                model = model.name,
                "cannot read forward()'s arguments; binding inputs by <name>__<index> or config order"
            );
        }
        let binding = binding::bind(model.name, cfg, schema.as_ref())?;
        for (key, why) in &params.ignored {
            tracing::warn!(model = model.name, "parameter {key} has no effect: {why}");
        }
        tracing::info!(
            model = model.name,
            instance = %spec.name,
            ?device,
            intra_op_threads = tch::get_num_threads(),
            optimized_execution = params.optimized_execution,
            inputs = ?binding.input_convention,
            outputs = ?binding.output_convention,
            "TorchScript instance ready"
        );
        Ok(Box::new(instance::TorchInstance::new(
            module,
            binding,
            params,
            device,
            cfg.max_batch_size > 0,
        )))
    }
}

fn model_path(model: &ModelContext) -> PathBuf {
    if model.config.default_model_filename.is_empty() {
        model.version_dir.join(DEFAULT_MODEL_FILENAME)
    } else {
        model.model_file()
    }
}

/// The device inputs go to: CUDA only for KIND_GPU, and only when libtorch sees it.
fn device_for(model: &str, spec: &InstanceSpec) -> Result<Device, BackendError> {
    if spec.kind != DeviceKind::Gpu {
        return Ok(Device::Cpu);
    }
    let ordinal = usize::try_from(spec.device).map_err(|_| {
        BackendError::Load(format!(
            "model '{model}': instance '{}' is KIND_GPU without a GPU id",
            spec.name
        ))
    })?;
    if !tch::Cuda::is_available() {
        return Err(BackendError::Load(format!(
            "unable to load model '{model}' on GPU {ordinal}: libtorch sees no CUDA device \
             (despina links libtorch's CPU library only); use KIND_CPU for this model"
        )));
    }
    let count = tch::Cuda::device_count();
    if ordinal as i64 >= count {
        return Err(BackendError::Load(format!(
            "unable to load model '{model}' on GPU {ordinal}: libtorch sees {count} CUDA device(s)"
        )));
    }
    Ok(Device::Cuda(ordinal))
}

/// Intra-op threads belong to the calling (instance) thread; the inter-op pool is global
/// and can be sized once, before first use, so the first model to ask sets it (as in Triton).
fn apply_thread_counts(params: &Params) {
    if let Some(n) = params.intra_op_threads {
        // libtorch sets a thread's count from its last process-wide value the first time
        // the thread asks for it; ask first, so that this setting is not overwritten later.
        tch::get_num_threads();
        tch::set_num_threads(n);
    }
    if let Some(n) = params.inter_op_threads {
        static INTER_OP: Once = Once::new();
        INTER_OP.call_once(|| {
            // libtorch refuses once the pool has started; tch turns that into a panic.
            let set = std::panic::catch_unwind(|| tch::set_num_interop_threads(n));
            if set.is_err() {
                tracing::warn!(
                    "INTER_OP_THREAD_COUNT {n} not applied: libtorch's inter-op pool already started"
                );
            }
        });
    }
}

fn load_error(model: &str, path: &std::path::Path, e: &tch::TchError) -> BackendError {
    let msg = torch_message(e);
    let hint = if msg.contains("PytorchStreamReader") {
        " (the file is not a TorchScript archive written by torch.jit.save, or it is truncated)"
    } else {
        ""
    };
    BackendError::Load(format!(
        "failed to load model '{model}' from '{}': {msg}{hint}",
        path.display()
    ))
}

/// Reads `forward()`'s arguments from the error libtorch raises, before running any model
/// code, when it gets more arguments than it declares (see `schema`).
fn forward_schema(module: &CModule) -> Option<ForwardSchema> {
    let probe: Vec<IValue> = (0..schema::PROBE_ARGS).map(|_| IValue::None).collect();
    match module.forward_is(&probe) {
        Err(e) => parse_declaration(&torch_message(&e)),
        Ok(_) => None,
    }
}
