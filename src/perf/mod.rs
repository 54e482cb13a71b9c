//! `despina-perf`: a load generator for KServe v2 servers in the spirit of Triton's
//! perf_analyzer. It reads the model's metadata and config, builds every request body
//! once, drives a concurrency or request-rate sweep, and reports client latencies and
//! the server-side split read from the statistics extension.
//!
//! The binary (`src/bin/despina-perf.rs`) only parses flags and prints; [`run`] is the
//! library entry point, so tests can drive a real server with a [`PerfConfig`].

pub mod client;
pub mod cpu;
pub mod error;
pub mod inputs;
mod load;
pub mod range;
pub mod report;
pub mod schedule;
pub mod server_stats;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use client::{Protocol, Target, TensorFormat};
pub use error::PerfError;
pub use inputs::InputData;
pub use range::{ConcurrencyRange, RateRange};
pub use report::{LevelReport, Report};
pub use schedule::Distribution;

use client::{Client, ModelInfo};
use inputs::{
    SyntheticOptions, batch_requests, check_shape_names, parse_json_data, resolve_dims,
    synthetic_sample,
};
use load::{LevelContext, LevelLoad, run_level};

/// What to sweep.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    Concurrency(ConcurrencyRange),
    RequestRate {
        range: RateRange,
        distribution: Distribution,
    },
}

/// When a measurement window ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Window {
    /// After this long (perf_analyzer's time_windows).
    Time(Duration),
    /// After this many requests started and ended inside it (count_windows).
    Count(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub window: Window,
    /// The window opens once this many requests completed ...
    pub warmup_requests: u64,
    /// ... and this much time passed since the level started.
    pub warmup_time: Duration,
    /// Hard bound on one level (warm-up and window); the drain adds at most the request
    /// timeout.
    pub max_level_time: Duration,
    /// Hard bound on the requests one level sends.
    pub max_level_requests: u64,
    /// No new level starts after this much time.
    pub max_total_time: Duration,
    /// Statistics are also read this often inside the window (for the median queue
    /// delay); `None` reads them at the window's ends only.
    pub stats_interval: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct PerfConfig {
    pub target: Target,
    pub batch_size: usize,
    /// `--shape NAME:dims` values (dims without the batch dimension).
    pub shapes: Vec<(String, Vec<i64>)>,
    pub input_data: InputData,
    pub string_length: usize,
    pub string_data: Option<String>,
    pub tensor_format: TensorFormat,
    pub load: Load,
    pub measurement: Measurement,
    /// Stop the sweep after the first level whose average latency exceeds this.
    pub latency_threshold: Option<Duration>,
    /// gRPC channels the requests are spread over.
    pub grpc_channels: usize,
    /// Request-rate mode: requests in flight at most (later sends wait, and count as
    /// delayed).
    pub max_in_flight: usize,
    /// Runtime worker threads, for the report.
    pub client_threads: usize,
    pub seed: u64,
}

/// Runs the sweep and returns the report.
pub async fn run(config: &PerfConfig) -> Result<Report, PerfError> {
    run_with(config, &mut |_| {}).await
}

/// Like [`run`], calling `on_level` as each level finishes (for progress output).
pub async fn run_with(
    config: &PerfConfig,
    on_level: &mut dyn FnMut(&LevelReport),
) -> Result<Report, PerfError> {
    let levels = load_levels(config)?;
    let client = Client::connect(&config.target, config.grpc_channels).await?;
    let info = client.model_info().await?;
    check_model(config, &info)?;
    let prepared = build_requests(config, &client, &info)?;
    let request_body_bytes = prepared.body_bytes(0);

    let mut warnings = Vec::new();
    let stats = match client.stats().await {
        Ok(_) => true,
        Err(e) => {
            warnings.push(format!("no server-side split: {e}"));
            false
        }
    };
    let (mode, distribution) = match config.load {
        Load::Concurrency(_) => ("concurrency", None),
        Load::RequestRate { distribution, .. } => (
            "request_rate",
            Some(Report::distribution_name(distribution)),
        ),
    };
    let mut report = Report {
        model: config.target.model.clone(),
        version: config.target.version.clone(),
        protocol: config.target.protocol,
        url: config.target.host_port().to_string(),
        tensor_format: (config.target.protocol == Protocol::Http).then_some(config.tensor_format),
        batch_size: config.batch_size,
        max_batch_size: info.max_batch_size,
        dynamic_batching: info.dynamic_batching,
        mode,
        distribution,
        request_body_bytes,
        client_threads: config.client_threads,
        levels: Vec::new(),
        warnings: Vec::new(),
    };

    let ctx = LevelContext {
        client: Arc::new(client),
        prepared: Arc::new(prepared),
        measurement: &config.measurement,
        stats,
        batch_size: config.batch_size,
        lanes: config.grpc_channels.max(1),
        max_in_flight: config.max_in_flight,
        seed: config.seed,
    };
    let started = Instant::now();
    for (i, level) in levels.iter().enumerate() {
        if i > 0 && started.elapsed() >= config.measurement.max_total_time {
            warnings.push(format!(
                "stopped after {} of {} levels: --max-total-time of {} ms reached",
                i,
                levels.len(),
                config.measurement.max_total_time.as_millis()
            ));
            break;
        }
        let r = run_level(&ctx, *level, &mut warnings).await;
        on_level(&r);
        let all_failed = r.requests_ok == 0 && r.failed_total > 0;
        let over = config
            .latency_threshold
            .filter(|t| r.requests_ok > 0 && r.latency.avg_us > t.as_secs_f64() * 1e6);
        report.levels.push(r);
        if all_failed {
            warnings.push("stopped the sweep: every request of the last level failed".to_string());
            break;
        }
        if let Some(t) = over {
            if i + 1 < levels.len() {
                warnings.push(format!(
                    "stopped the sweep: average latency went over the threshold of {} ms",
                    t.as_millis()
                ));
            }
            break;
        }
    }
    report.warnings = warnings;
    Ok(report)
}

fn load_levels(config: &PerfConfig) -> Result<Vec<LevelLoad>, PerfError> {
    let open = match &config.load {
        Load::Concurrency(r) => r.is_open(),
        Load::RequestRate { range, .. } => range.is_open(),
    };
    if open && config.latency_threshold.is_none() {
        return Err(PerfError::config(
            "a range with end 0 needs --latency-threshold",
        ));
    }
    if config.batch_size == 0 {
        return Err(PerfError::config("batch size must be at least 1"));
    }
    if config.measurement.max_level_requests == 0 {
        return Err(PerfError::config("--max-level-requests must be at least 1"));
    }
    if let Window::Count(0) = config.measurement.window {
        return Err(PerfError::config(
            "--measurement-request-count must be at least 1",
        ));
    }
    Ok(match &config.load {
        Load::Concurrency(r) => r.levels().into_iter().map(LevelLoad::Concurrency).collect(),
        Load::RequestRate {
            range,
            distribution,
        } => range
            .levels()
            .into_iter()
            .map(|v| LevelLoad::Rate(v, *distribution))
            .collect(),
    })
}

fn check_model(config: &PerfConfig, info: &ModelInfo) -> Result<(), PerfError> {
    let model = &config.target.model;
    if info.sequence_batching {
        return Err(PerfError::config(format!(
            "model '{model}' uses the sequence batcher, which needs correlation ids; despina-perf does not send sequences"
        )));
    }
    if info.decoupled {
        return Err(PerfError::config(format!(
            "model '{model}' is decoupled and needs streaming, which despina-perf does not do"
        )));
    }
    if info.max_batch_size == 0 && config.batch_size > 1 {
        return Err(PerfError::config(format!(
            "batch size {} needs a model that batches, and '{model}' has max_batch_size 0",
            config.batch_size
        )));
    }
    if info.max_batch_size > 0 && config.batch_size as u64 > info.max_batch_size {
        return Err(PerfError::config(format!(
            "batch size {} is over the max_batch_size {} of '{model}'",
            config.batch_size, info.max_batch_size
        )));
    }
    if info.inputs.is_empty() {
        return Err(PerfError::input(format!(
            "model '{model}' lists no inputs in its metadata"
        )));
    }
    Ok(())
}

fn build_requests(
    config: &PerfConfig,
    client: &Client,
    info: &ModelInfo,
) -> Result<client::Prepared, PerfError> {
    check_shape_names(&info.inputs, &config.shapes)?;
    let samples = match &config.input_data {
        InputData::Json(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| PerfError::Io {
                path: path.clone(),
                source,
            })?;
            // Inputs may stay variable here: the data can carry its own shapes.
            let dims: Vec<Option<Vec<i64>>> = info
                .inputs
                .iter()
                .map(|s| resolve_dims(s, &config.shapes).ok())
                .collect();
            parse_json_data(&text, &info.inputs, &dims)?
        }
        source => {
            let dims = info
                .inputs
                .iter()
                .map(|s| resolve_dims(s, &config.shapes))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = SyntheticOptions {
                random: *source == InputData::Random,
                string_length: config.string_length,
                string_data: config.string_data.clone(),
            };
            vec![synthetic_sample(&info.inputs, &dims, &opts, config.seed)]
        }
    };
    let requests = batch_requests(
        &info.inputs,
        &samples,
        config.batch_size,
        info.max_batch_size > 0,
    )?;
    client.prepare(&requests, &info.outputs, config.tensor_format)
}
