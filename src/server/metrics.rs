//! Prometheus metrics on the metrics port, with Triton's family names, labels and HELP
//! strings so existing dashboards and alerts work unchanged.
//!
//! Inference families are read from each model version's statistics at scrape time (a
//! custom collector), so serving pays nothing beyond the statistics' atomic adds. CPU
//! figures are sampled every `--metrics-interval-ms`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

use super::ServerState;
use crate::stats::{DurationStat, FAILURE_REASONS, ModelStats};

#[derive(Clone, Debug)]
pub struct MetricsOptions {
    pub interval: Duration,
    pub cpu: bool,
    /// GPU families through NVML, when a driver and a GPU are present.
    pub gpu: bool,
}

pub fn router(state: Arc<ServerState>, opts: &MetricsOptions) -> anyhow::Result<Router> {
    let registry = Registry::new();
    registry.register(Box::new(InferenceCollector::new(state.clone())?))?;
    if opts.gpu {
        match super::gpu_metrics::GpuCollector::new() {
            Some(gpu) => registry.register(Box::new(gpu))?,
            None => tracing::info!("no GPU found through NVML: GPU metrics are off"),
        }
    }
    if opts.cpu {
        let cpu = Arc::new(CpuCollector::default());
        registry.register(Box::new(CpuHandle::new(cpu.clone())?))?;
        let interval = opts.interval.max(Duration::from_millis(10));
        let stop = state.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => cpu.sample(),
                }
            }
        });
    }
    Ok(Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(registry)))
}

async fn scrape(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(l: Vec<LabelPair>, v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(l);
    m.set_counter(c);
    m
}

fn gauge(l: Vec<LabelPair>, v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(l);
    m.set_gauge(g);
    m
}

type Read = fn(&ModelStats) -> f64;

fn us(d: &DurationStat) -> f64 {
    (d.ns() / 1000) as f64
}

/// The per-model families: (name, help, read).
const COUNTERS: [(&str, &str, Read); 8] = [
    (
        "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes",
        |s| s.success.count() as f64,
    ),
    (
        "nv_inference_count",
        "Number of inferences performed (does not include cached requests)",
        |s| s.inference_count.load(std::sync::atomic::Ordering::Relaxed) as f64,
    ),
    (
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
        |s| s.execution_count.load(std::sync::atomic::Ordering::Relaxed) as f64,
    ),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
        |s| us(&s.success) + us(&s.fail),
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
        |s| us(&s.queue),
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
        |s| us(&s.compute_input),
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
        |s| us(&s.compute_infer),
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached requests)",
        |s| us(&s.compute_output),
    ),
];

struct InferenceCollector {
    state: Arc<ServerState>,
    descs: Vec<Desc>,
}

impl InferenceCollector {
    fn new(state: Arc<ServerState>) -> anyhow::Result<Self> {
        let mut descs = Vec::new();
        let mv = || vec!["model".to_string(), "version".to_string()];
        for (name, help, _) in COUNTERS {
            descs.push(Desc::new(
                name.into(),
                help.into(),
                mv(),
                Default::default(),
            )?);
        }
        descs.push(Desc::new(
            "nv_inference_request_failure".into(),
            "Number of failed inference requests, all batch sizes".into(),
            vec!["model".into(), "reason".into(), "version".into()],
            Default::default(),
        )?);
        descs.push(Desc::new(
            "nv_inference_pending_request_count".into(),
            "Instantaneous number of pending requests awaiting execution per-model.".into(),
            mv(),
            Default::default(),
        )?);
        Ok(InferenceCollector { state, descs })
    }
}

impl Collector for InferenceCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let versions = self.state.manager.serving();
        let mut out = Vec::new();
        let key = |v: &crate::repository::ModelVersion| (v.name.clone(), v.version.to_string());
        let (name, help, read) = COUNTERS[0];
        out.push(family(
            name,
            help,
            MetricType::COUNTER,
            versions
                .iter()
                .map(|v| {
                    let (m, ver) = key(v);
                    counter(labels(&[("model", &m), ("version", &ver)]), read(&v.stats))
                })
                .collect(),
        ));
        let mut failures = Vec::new();
        for v in &versions {
            let (m, ver) = key(v);
            for reason in FAILURE_REASONS {
                failures.push(counter(
                    labels(&[("model", &m), ("reason", reason), ("version", &ver)]),
                    v.stats.failures(reason) as f64,
                ));
            }
        }
        out.push(family(
            "nv_inference_request_failure",
            "Number of failed inference requests, all batch sizes",
            MetricType::COUNTER,
            failures,
        ));
        for (name, help, read) in &COUNTERS[1..] {
            out.push(family(
                name,
                help,
                MetricType::COUNTER,
                versions
                    .iter()
                    .map(|v| {
                        let (m, ver) = key(v);
                        counter(labels(&[("model", &m), ("version", &ver)]), read(&v.stats))
                    })
                    .collect(),
            ));
        }
        out.push(family(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model.",
            MetricType::GAUGE,
            versions
                .iter()
                .map(|v| {
                    let (m, ver) = key(v);
                    gauge(
                        labels(&[("model", &m), ("version", &ver)]),
                        v.stats.pending() as f64,
                    )
                })
                .collect(),
        ));
        out
    }
}

/// CPU utilisation from /proc/stat deltas and memory from /proc/meminfo.
#[derive(Default)]
struct CpuCollector {
    last: Mutex<Option<(u64, u64)>>,
    util: Mutex<f64>,
}

impl CpuCollector {
    fn sample(&self) {
        let Some((busy, total)) = read_proc_stat() else {
            return;
        };
        let mut last = self.last.lock();
        if let Some((b0, t0)) = *last
            && total > t0
        {
            *self.util.lock() = (busy.saturating_sub(b0)) as f64 / (total - t0) as f64;
        }
        *last = Some((busy, total));
    }
}

struct CpuHandle(Arc<CpuCollector>, Vec<Desc>);

impl CpuHandle {
    fn new(cpu: Arc<CpuCollector>) -> anyhow::Result<Self> {
        let d = |n: &str, h: &str| Desc::new(n.into(), h.into(), vec![], Default::default());
        let descs = vec![
            d("nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]")?,
            d(
                "nv_cpu_memory_total_bytes",
                "CPU total memory (RAM), in bytes",
            )?,
            d(
                "nv_cpu_memory_used_bytes",
                "CPU used memory (RAM), in bytes",
            )?,
        ];
        Ok(CpuHandle(cpu, descs))
    }
}

impl Collector for CpuHandle {
    fn desc(&self) -> Vec<&Desc> {
        self.1.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = vec![family(
            "nv_cpu_utilization",
            "CPU utilization rate [0.0 - 1.0]",
            MetricType::GAUGE,
            vec![gauge(vec![], *self.0.util.lock())],
        )];
        if let Some((total, available)) = read_meminfo() {
            out.push(family(
                "nv_cpu_memory_total_bytes",
                "CPU total memory (RAM), in bytes",
                MetricType::GAUGE,
                vec![gauge(vec![], total as f64)],
            ));
            out.push(family(
                "nv_cpu_memory_used_bytes",
                "CPU used memory (RAM), in bytes",
                MetricType::GAUGE,
                vec![gauge(vec![], total.saturating_sub(available) as f64)],
            ));
        }
        out
    }
}

/// (busy, total) jiffies over all CPUs.
fn read_proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// (MemTotal, MemAvailable) in bytes.
fn read_meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}
