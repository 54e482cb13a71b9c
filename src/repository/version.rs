//! A loaded model version: its config, its request view, its statistics and its scheduler;
//! plus creating one (instances, labels, warm-up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load;
use super::manager::ManagerConfig;
use crate::backend::{DeviceKind, InstanceSpec, Registry};
use crate::cache::ResponseCache;
use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::ModelRateLimiter;
use crate::proto::inference::model_instance_group::Kind as GroupKind;
use crate::proto::inference::model_warmup::input::InputDataType;
use crate::request::validate::{ModelIo, validate};
use crate::request::{InferRequest, NamedTensor};
use crate::scheduler::Scheduler;
use crate::scheduler::ensemble::Submit;
use crate::scheduler::instance::ModelFiles;
use crate::scheduler::rate_limit::{Limit, Needs, RateLimiter};
use crate::stats::ModelStats;
use crate::status::Status;
use crate::tensor::{DataType, Tensor, element_count};

/// A loaded, serving model version.
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub config: Arc<ModelConfig>,
    pub io: ModelIo,
    pub stats: Arc<ModelStats>,
    /// Identifies the config and files this version was loaded from.
    pub fingerprint: u64,
    /// The response cache, when the config enables it and the server has one.
    pub cache: Option<Arc<ResponseCache>>,
    pub(super) scheduler: Scheduler,
}

impl ModelVersion {
    pub fn is_decoupled(&self) -> bool {
        self.config.is_decoupled()
    }

    /// Validates and queues a request, or answers it from the response cache; the answers
    /// arrive on the request's stream.
    pub fn submit(&self, mut req: InferRequest) -> Result<(), Status> {
        validate(&self.io, &mut req)?;
        if let Some(cache) = &self.cache {
            let start = Instant::now();
            let key = ResponseCache::key(&self.name, self.version, self.fingerprint, &req);
            if let Some(response) = cache.get(key) {
                self.stats.cache_hit.add(start.elapsed());
                // As Triton: a hit counts as a success with no queue wait and no compute.
                self.stats.record_queue(Duration::ZERO, start);
                if let Some(t) = req.trace.clone() {
                    req.responder.attach_trace(t);
                }
                req.responder.attach_stats(self.stats.clone(), req.arrival);
                req.responder.respond(response);
                return Ok(());
            }
            let fill = cache.fill_on_final(key, self.stats.clone(), start.elapsed());
            req.responder.on_final(fill);
        }
        self.scheduler.enqueue(req)
    }

    /// Requests queued and not yet executing.
    pub fn queued(&self) -> usize {
        self.scheduler.queued()
    }

    /// Requests queued or executing.
    pub fn inflight(&self) -> u64 {
        self.stats.inflight()
    }

    /// Creates the version: reads labels, starts the instances (or the ensemble), warms up.
    pub(super) fn create(
        files: ModelFiles,
        registry: &Registry,
        options: &ManagerConfig,
        submit: Submit,
        fingerprint: u64,
    ) -> Result<ModelVersion, Status> {
        let cfg = files.config.clone();
        let mut io = ModelIo::from_config(&cfg).map_err(Status::invalid_arg)?;
        for out in &mut io.outputs {
            if let Some(o) = cfg
                .output
                .iter()
                .find(|o| o.name == out.name && !o.label_filename.is_empty())
            {
                let labels =
                    load::read_labels(&files.model_dir.join(&o.label_filename)).map_err(|e| {
                        Status::internal(format!(
                            "cannot read labels file '{}': {e}",
                            o.label_filename
                        ))
                    })?;
                out.labels = Some(Arc::new(labels));
            }
        }
        let stats = Arc::new(ModelStats::new(options.latency_summaries));
        let cache = match (
            cfg.response_cache.as_ref().is_some_and(|c| c.enable),
            &options.response_cache,
        ) {
            (true, Some(cache)) => Some(cache.clone()),
            (true, None) => {
                tracing::warn!(
                    model = %files.name, version = files.version,
                    "the config enables response_cache but the server has no cache (--cache-config local,size=<bytes>): not caching"
                );
                None
            }
            (false, _) => None,
        };
        let scheduler = if cfg.platform == "ensemble" || cfg.ensemble_scheduling().is_some() {
            Scheduler::ensemble(&cfg, submit, stats.clone())?
        } else {
            let backend = registry
                .resolve(&cfg.backend)
                .map_err(Status::unsupported)?;
            let specs = instance_specs(&cfg, options.gpu_count)?;
            let specs = rate_limits(&cfg, specs, options.rate_limiter.as_ref())?;
            Scheduler::start(backend, &files, specs, stats.clone()).map_err(Status::from)?
        };
        let version = ModelVersion {
            name: files.name.clone(),
            version: files.version,
            config: cfg,
            io,
            stats,
            fingerprint,
            cache,
            scheduler,
        };
        if let Err(e) = version.warm_up(&files) {
            version.scheduler.stop();
            return Err(e);
        }
        Ok(version)
    }

    /// Runs the config's `model_warmup` samples and waits for their answers. Warm-up
    /// requests are not counted in the statistics (they are reset afterwards).
    fn warm_up(&self, files: &ModelFiles) -> Result<(), Status> {
        for sample in &self.config.model_warmup {
            let rows = sample.batch_size.max(1) as i64;
            for _ in 0..sample.count.max(1) {
                let mut inputs = Vec::with_capacity(sample.inputs.len());
                for (name, input) in &sample.inputs {
                    let dt = DataType::from_config(input.data_type).ok_or_else(|| {
                        Status::invalid_arg(format!(
                            "warmup '{}': input '{name}' has no data_type",
                            sample.name
                        ))
                    })?;
                    let mut shape = input.dims.clone();
                    if self.io.max_batch_size > 0 {
                        shape.insert(0, rows);
                    }
                    let count = element_count(&shape).ok_or_else(|| {
                        Status::invalid_arg(format!(
                            "warmup '{}': input '{name}' has invalid dims",
                            sample.name
                        ))
                    })?;
                    let data =
                        warmup_data(files, &sample.name, name, dt, count, &input.input_data_type)?;
                    inputs.push(NamedTensor::new(name.clone(), Tensor::new(dt, shape, data)));
                }
                let (mut req, mut stream) =
                    InferRequest::new(format!("warmup:{}", sample.name), inputs);
                // Straight to the scheduler: a cached answer would warm nothing up.
                validate(&self.io, &mut req)
                    .and_then(|()| self.scheduler.enqueue(req))
                    .map_err(|e| {
                        Status::internal(format!("warmup '{}' failed: {}", sample.name, e.message))
                    })?;
                loop {
                    let item = stream
                        .blocking_next_timeout(Duration::from_secs(600))
                        .ok_or_else(|| {
                            Status::internal(format!("warmup '{}' got no answer", sample.name))
                        })?;
                    if let Some(Err(e)) = item.response {
                        return Err(Status::internal(format!(
                            "warmup '{}' failed: {}",
                            sample.name, e.message
                        )));
                    }
                    if item.last {
                        break;
                    }
                }
            }
        }
        if !self.config.model_warmup.is_empty() {
            self.stats.reset();
        }
        Ok(())
    }
}

fn warmup_data(
    files: &ModelFiles,
    sample: &str,
    input: &str,
    dt: DataType,
    count: usize,
    kind: &Option<InputDataType>,
) -> Result<bytes::Bytes, Status> {
    let fixed = |fill: &dyn Fn(usize) -> u8| -> bytes::Bytes {
        let size = dt.size().unwrap_or(1);
        (0..count * size).map(fill).collect::<Vec<u8>>().into()
    };
    Ok(match kind {
        Some(InputDataType::InputDataFile(f)) => {
            let path = files.model_dir.join("warmup").join(f);
            let data = std::fs::read(&path).map_err(|e| {
                Status::invalid_arg(format!(
                    "warmup '{sample}': cannot read '{}' for input '{input}': {e}",
                    path.display()
                ))
            })?;
            if let Some(size) = dt.size()
                && data.len() != count * size
            {
                return Err(Status::invalid_arg(format!(
                    "warmup '{sample}': '{}' holds {} bytes, input '{input}' needs {}",
                    path.display(),
                    data.len(),
                    count * size
                )));
            }
            data.into()
        }
        // Random bytes would make invalid floats and strings; a cheap deterministic pattern
        // exercises the same kernels.
        Some(InputDataType::RandomData(true)) if dt != DataType::Bytes => {
            fixed(&|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        }
        _ if dt == DataType::Bytes => crate::tensor::serialize_bytes(&vec![b"".as_slice(); count]),
        _ => fixed(&|_| 0),
    })
}

/// Expands `instance_group` into one spec per instance.
/// Ties each instance to the rate limiter by its group's `rate_limiter`, when the server
/// limits (`--rate-limit=execution_count`).
fn rate_limits(
    cfg: &ModelConfig,
    specs: Vec<(InstanceSpec, Option<ModelRateLimiter>)>,
    limiter: Option<&Arc<RateLimiter>>,
) -> Result<Vec<(InstanceSpec, Option<Limit>)>, Status> {
    specs
        .into_iter()
        .map(|(spec, rl)| {
            let limit = match (limiter, rl) {
                (Some(limiter), Some(rl)) => {
                    let needs = Needs::from_config(&rl, spec.device);
                    limiter.register(&needs).map_err(|e| {
                        Status::invalid_arg(format!(
                            "instance {} of model {}: {e}",
                            spec.name, cfg.name
                        ))
                    })?;
                    Some(Limit {
                        limiter: limiter.clone(),
                        needs,
                    })
                }
                _ => None,
            };
            Ok((spec, limit))
        })
        .collect()
}

/// The instances of `cfg`'s groups, each with its group's rate limiter settings.
pub fn instance_specs(
    cfg: &ModelConfig,
    gpu_count: usize,
) -> Result<Vec<(InstanceSpec, Option<ModelRateLimiter>)>, Status> {
    let mut specs = Vec::new();
    let groups = if cfg.instance_group.is_empty() {
        vec![crate::proto::inference::ModelInstanceGroup {
            count: 1,
            ..Default::default()
        }]
    } else {
        cfg.instance_group.clone()
    };
    for (gi, g) in groups.iter().enumerate() {
        let count = g.count.max(1) as usize;
        let group = if g.name.is_empty() {
            format!("{}_{gi}", cfg.name)
        } else {
            g.name.clone()
        };
        let kind = match GroupKind::try_from(g.kind).unwrap_or(GroupKind::Auto) {
            GroupKind::Gpu => DeviceKind::Gpu,
            GroupKind::Model => DeviceKind::Model,
            GroupKind::Auto if gpu_count > 0 => DeviceKind::Gpu,
            _ => DeviceKind::Cpu,
        };
        let devices: Vec<i32> = match kind {
            DeviceKind::Gpu if !g.gpus.is_empty() => g.gpus.clone(),
            DeviceKind::Gpu => (0..gpu_count as i32).collect(),
            _ => vec![-1],
        };
        if kind == DeviceKind::Gpu && (devices.is_empty() || gpu_count == 0) {
            return Err(Status::invalid_arg(format!(
                "instance group {group} of model {} has kind KIND_GPU but no GPUs are available",
                cfg.name
            )));
        }
        for device in devices {
            for i in 0..count {
                specs.push((
                    InstanceSpec {
                        name: format!("{group}_{i}"),
                        kind,
                        device,
                    },
                    g.rate_limiter.clone(),
                ));
            }
        }
    }
    Ok(specs)
}
