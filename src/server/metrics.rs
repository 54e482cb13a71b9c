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
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, Registry, TextEncoder};

use super::ServerState;
use crate::cache::ResponseCache;
use crate::stats::{self, DurationStat, FAILURE_REASONS, ModelStats, Summaries};

#[derive(Clone, Debug)]
pub struct MetricsOptions {
    pub interval: Duration,
    pub cpu: bool,
    /// GPU families through NVML, when a driver and a GPU are present.
    pub gpu: bool,
    /// The `nv_inference_*_duration_us` counters.
    pub counter_latencies: bool,
    /// The `nv_inference_*_summary_us` summaries (recorded only when the manager was told).
    pub summary_latencies: bool,
    pub summary_quantiles: Vec<f64>,
}

/// Triton's default `summary_quantiles`.
pub const DEFAULT_QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            interval: Duration::from_millis(2000),
            cpu: true,
            gpu: true,
            counter_latencies: true,
            summary_latencies: false,
            summary_quantiles: DEFAULT_QUANTILES.to_vec(),
        }
    }
}

impl MetricsOptions {
    /// Applies one `--metrics-config <setting>=<value>`, as Triton spells them.
    pub fn set(&mut self, flag: &str) -> Result<(), String> {
        let (key, value) = flag
            .split_once('=')
            .ok_or_else(|| format!("--metrics-config '{flag}': expected <setting>=<value>"))?;
        let boolean = || match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(format!(
                "--metrics-config {key}: '{value}' is not a boolean (true or false)"
            )),
        };
        match key.trim() {
            "counter_latencies" => self.counter_latencies = boolean()?,
            "summary_latencies" => self.summary_latencies = boolean()?,
            "summary_quantiles" => self.summary_quantiles = parse_quantiles(value)?,
            "histogram_latencies" => {
                if boolean()? {
                    tracing::warn!(
                        "--metrics-config histogram_latencies=true: despina does not publish latency histograms yet; use summary_latencies=true"
                    );
                }
            }
            other => {
                return Err(format!(
                    "--metrics-config: unknown setting '{other}' (known: counter_latencies, summary_latencies, summary_quantiles, histogram_latencies)"
                ));
            }
        }
        Ok(())
    }
}

/// `<quantile>:<error>,...`; the error is Triton's allowed rank error, accepted and checked
/// but not needed here: despina's quantiles are rank-exact within 1.6% of the value.
fn parse_quantiles(value: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (q, err) = item.split_once(':').unwrap_or((item, "0"));
        let parse = |x: &str| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
        };
        let (Some(q), Some(_)) = (parse(q), parse(err)) else {
            return Err(format!(
                "--metrics-config summary_quantiles: '{item}' is not <quantile>:<error> with both in [0, 1]"
            ));
        };
        out.push(q);
    }
    if out.is_empty() {
        return Err("--metrics-config summary_quantiles: no quantile given".into());
    }
    Ok(out)
}

pub fn router(state: Arc<ServerState>, opts: &MetricsOptions) -> anyhow::Result<Router> {
    let registry = Registry::new();
    registry.register(Box::new(InferenceCollector::new(state.clone(), opts)?))?;
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

/// Per-model counts, before the failure family: (name, help, read).
const COUNTS: [(&str, &str, Read); 3] = [
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
];

/// Cumulative latency counters (`counter_latencies`).
const LATENCY_COUNTERS: [(&str, &str, Read); 5] = [
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

type ReadSummary = fn(&Summaries) -> &stats::Summary;

/// Windowed latency summaries (`summary_latencies`). The compute HELP texts are Triton's,
/// "Cumulative" included.
const SUMMARIES: [(&str, &str, ReadSummary); 5] = [
    (
        "nv_inference_request_summary_us",
        "Summary of inference request duration in microseconds (includes cached requests)",
        |s| &s.request,
    ),
    (
        "nv_inference_queue_summary_us",
        "Summary of inference queuing duration in microseconds (includes cached requests)",
        |s| &s.queue,
    ),
    (
        "nv_inference_compute_input_summary_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
        |s| &s.compute_input,
    ),
    (
        "nv_inference_compute_infer_summary_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
        |s| &s.compute_infer,
    ),
    (
        "nv_inference_compute_output_summary_us",
        "Cumulative inference compute output duration in microseconds (does not include cached requests)",
        |s| &s.compute_output,
    ),
];

/// Response cache families of the models that use the cache.
const CACHE_COUNTERS: [(&str, &str, Read); 4] = [
    (
        "nv_cache_num_hits_per_model",
        "Number of cache hits per model",
        |s| s.cache_hit.count() as f64,
    ),
    (
        "nv_cache_hit_duration_per_model",
        "Total cache hit duration per model, in microseconds",
        |s| us(&s.cache_hit),
    ),
    (
        "nv_cache_num_misses_per_model",
        "Number of cache misses per model",
        |s| s.cache_miss.count() as f64,
    ),
    (
        "nv_cache_miss_duration_per_model",
        "Total cache miss (insert+lookup) duration per model, in microseconds",
        |s| us(&s.cache_miss),
    ),
];

type ReadCache = fn(&ResponseCache) -> f64;

fn load_us(a: &std::sync::atomic::AtomicU64) -> f64 {
    (a.load(std::sync::atomic::Ordering::Relaxed) / 1000) as f64
}

fn load(a: &std::sync::atomic::AtomicU64) -> f64 {
    a.load(std::sync::atomic::Ordering::Relaxed) as f64
}

/// The server-wide cache gauges, as Triton's local cache reports them.
const CACHE_GAUGES: [(&str, &str, ReadCache); 8] = [
    ("nv_cache_util", "Cache utilization [0.0 - 1.0]", |c| {
        c.usage().1 as f64 / c.capacity().max(1) as f64
    }),
    (
        "nv_cache_num_entries",
        "Number of responses stored in response cache",
        |c| c.usage().0 as f64,
    ),
    (
        "nv_cache_num_hits",
        "Number of cache hits in response cache",
        |c| load(&c.counters.hits),
    ),
    (
        "nv_cache_num_misses",
        "Number of cache misses in response cache",
        |c| load(&c.counters.misses),
    ),
    (
        "nv_cache_num_lookups",
        "Number of cache lookups in response cache",
        |c| load(&c.counters.lookups),
    ),
    (
        "nv_cache_num_evictions",
        "Number of cache evictions in response cache",
        |c| load(&c.counters.evictions),
    ),
    (
        "nv_cache_lookup_duration",
        "Total cache lookup duration (hit and miss), in microseconds",
        |c| load_us(&c.counters.lookup_ns),
    ),
    (
        "nv_cache_insertion_duration",
        "Total cache insertion duration, in microseconds",
        |c| load_us(&c.counters.insert_ns),
    ),
];

const FAILURE: (&str, &str) = (
    "nv_inference_request_failure",
    "Number of failed inference requests, all batch sizes",
);
const PENDING: (&str, &str) = (
    "nv_inference_pending_request_count",
    "Instantaneous number of pending requests awaiting execution per-model.",
);

struct InferenceCollector {
    state: Arc<ServerState>,
    counter_latencies: bool,
    /// Empty when summaries are off.
    quantiles: Vec<f64>,
    descs: Vec<Desc>,
}

impl InferenceCollector {
    fn new(state: Arc<ServerState>, opts: &MetricsOptions) -> anyhow::Result<Self> {
        let quantiles = if opts.summary_latencies {
            opts.summary_quantiles.clone()
        } else {
            Vec::new()
        };
        let mut descs = Vec::new();
        let mut describe = |(name, help): (&str, &str), labels: &[&str]| {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            Desc::new(name.into(), help.into(), labels, Default::default()).map(|d| descs.push(d))
        };
        let mv = ["model", "version"];
        for (name, help, _) in COUNTS {
            describe((name, help), &mv)?;
        }
        describe(FAILURE, &["model", "reason", "version"])?;
        if opts.counter_latencies {
            for (name, help, _) in LATENCY_COUNTERS {
                describe((name, help), &mv)?;
            }
        }
        describe(PENDING, &mv)?;
        let cache = state.manager.response_cache().is_some();
        if cache {
            for (name, help, _) in CACHE_COUNTERS {
                describe((name, help), &mv)?;
            }
            for (name, help, _) in CACHE_GAUGES {
                describe((name, help), &[])?;
            }
        }
        if !quantiles.is_empty() {
            for (name, help, _) in SUMMARIES {
                describe((name, help), &mv)?;
            }
        }
        Ok(InferenceCollector {
            state,
            counter_latencies: opts.counter_latencies,
            quantiles,
            descs,
        })
    }
}

fn summary(l: Vec<LabelPair>, s: &stats::Summary, qs: &[f64], values: &[f64]) -> Metric {
    let mut sm = Summary::default();
    sm.set_sample_count(s.count());
    sm.set_sample_sum(s.sum() as f64);
    sm.set_quantile(
        qs.iter()
            .zip(values)
            .map(|(q, v)| {
                let mut quantile = Quantile::default();
                quantile.set_quantile(*q);
                quantile.set_value(*v);
                quantile
            })
            .collect(),
    );
    let mut m = Metric::from_label(l);
    m.set_summary(sm);
    m
}

impl Collector for InferenceCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let versions = self.state.manager.serving();
        let ver: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
        let mv = |i: usize| labels(&[("model", &versions[i].name), ("version", &ver[i])]);
        let counters = |(name, help, read): &(&str, &str, Read)| {
            let metrics = (0..versions.len())
                .map(|i| counter(mv(i), read(&versions[i].stats)))
                .collect();
            family(name, help, MetricType::COUNTER, metrics)
        };
        let mut out = vec![counters(&COUNTS[0])];
        let mut failures = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            for reason in FAILURE_REASONS {
                failures.push(counter(
                    labels(&[("model", &v.name), ("reason", reason), ("version", &ver[i])]),
                    v.stats.failures(reason) as f64,
                ));
            }
        }
        out.push(family(FAILURE.0, FAILURE.1, MetricType::COUNTER, failures));
        out.extend(COUNTS[1..].iter().map(counters));
        if self.counter_latencies {
            out.extend(LATENCY_COUNTERS.iter().map(counters));
        }
        let pending = (0..versions.len())
            .map(|i| gauge(mv(i), versions[i].stats.pending() as f64))
            .collect();
        out.push(family(PENDING.0, PENDING.1, MetricType::GAUGE, pending));
        if let Some(cache) = self.state.manager.response_cache() {
            let cached: Vec<usize> = (0..versions.len())
                .filter(|&i| versions[i].cache.is_some())
                .collect();
            for (name, help, read) in CACHE_COUNTERS {
                let metrics = cached
                    .iter()
                    .map(|&i| counter(mv(i), read(&versions[i].stats)))
                    .collect();
                out.push(family(name, help, MetricType::COUNTER, metrics));
            }
            for (name, help, read) in CACHE_GAUGES {
                let metrics = vec![gauge(vec![], read(cache))];
                out.push(family(name, help, MetricType::GAUGE, metrics));
            }
        }
        if !self.quantiles.is_empty() {
            let now = std::time::Instant::now();
            for (name, help, read) in SUMMARIES {
                let metrics = (0..versions.len())
                    .filter_map(|i| {
                        let s = read(versions[i].stats.summaries()?);
                        let values = s.quantiles(&self.quantiles, now);
                        Some(summary(mv(i), s, &self.quantiles, &values))
                    })
                    .collect();
                out.push(family(name, help, MetricType::SUMMARY, metrics));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_config_settings() {
        let mut o = MetricsOptions::default();
        assert!(o.counter_latencies && !o.summary_latencies);
        assert_eq!(o.summary_quantiles, DEFAULT_QUANTILES);
        o.set("summary_latencies=true").unwrap();
        o.set("counter_latencies=False").unwrap();
        o.set("summary_quantiles=0.5:0.05, 0.99:0.001,0.75")
            .unwrap();
        o.set("histogram_latencies=false").unwrap();
        assert!(o.summary_latencies && !o.counter_latencies);
        assert_eq!(o.summary_quantiles, vec![0.5, 0.99, 0.75]);
        for bad in [
            "summary_latencies",
            "summary_quantiles=",
            "summary_quantiles=0.5:2",
            "x=1",
        ] {
            assert!(o.set(bad).is_err(), "{bad}");
        }
        assert_eq!(o.summary_quantiles, vec![0.5, 0.99, 0.75]);
    }
}
