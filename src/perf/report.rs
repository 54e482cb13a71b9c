//! The result of a run and its three forms: a table for people, a CSV with
//! perf_analyzer's column names, and JSON with everything.

use std::fmt::Write as _;

use serde::Serialize;

use super::client::{Protocol, TensorFormat};
use super::schedule::Distribution;
use super::server_stats::ServerSplit;
use super::stats::LatencySummary;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub model: String,
    pub version: String,
    pub protocol: Protocol,
    pub url: String,
    /// Set for HTTP only.
    pub tensor_format: Option<TensorFormat>,
    pub batch_size: usize,
    pub max_batch_size: u64,
    pub dynamic_batching: bool,
    /// "concurrency" or "request_rate".
    pub mode: &'static str,
    /// Set in request-rate mode: "constant" or "poisson".
    pub distribution: Option<&'static str>,
    /// Size of one request as sent (HTTP body or encoded gRPC message).
    pub request_body_bytes: usize,
    /// Runtime worker threads of the client.
    pub client_threads: usize,
    pub levels: Vec<LevelReport>,
    /// Things that went wrong without stopping the run (e.g. no statistics extension).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn distribution_name(d: Distribution) -> &'static str {
        match d {
            Distribution::Constant => "constant",
            Distribution::Poisson => "poisson",
        }
    }

    /// Requests that failed anywhere in the run (warm-up included).
    pub fn failed_total(&self) -> u64 {
        self.levels.iter().map(|l| l.failed_total).sum()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClientCpu {
    /// User + system CPU time of the whole client process during the window.
    pub cpu_ms: f64,
    /// That time over the window's wall time (100 = one core busy).
    pub percent_of_one_core: f64,
    /// CPU microseconds per completed request.
    pub us_per_request: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LevelReport {
    pub concurrency: Option<u64>,
    pub request_rate: Option<f64>,
    pub window_ms: f64,
    /// The window ended early on --max-level-time or --max-level-requests.
    pub truncated: bool,
    /// Requests that started and ended inside the window.
    pub requests_ok: u64,
    pub requests_failed: u64,
    /// Every request of the level, warm-up and drain included.
    pub requests_total: u64,
    pub failed_total: u64,
    /// Successful inferences per second (requests times batch size).
    pub throughput_infer_per_s: f64,
    pub throughput_req_per_s: f64,
    pub latency: LatencySummary,
    pub server: Option<ServerSplit>,
    pub client_cpu: ClientCpu,
    /// Request-rate mode: requests sent per second in the window.
    pub send_rate: Option<f64>,
    /// Request-rate mode: requests sent 2 ms or more after their scheduled time.
    pub delayed_requests: Option<u64>,
    /// The most requests in flight at once.
    pub max_in_flight: u64,
    pub errors: Vec<ErrorCount>,
}

impl LevelReport {
    /// The load of the level as text: "8" or "150.5".
    pub fn load_text(&self) -> String {
        match (self.concurrency, self.request_rate) {
            (Some(c), _) => c.to_string(),
            (None, Some(r)) => trim_float(r),
            _ => String::new(),
        }
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn us(x: f64) -> String {
    format!("{:.0}", x.max(0.0))
}

/// A plain-text table, one line per level, then the error texts seen.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model '{}'{} over {} at {} | batch size {} | max_batch_size {} | dynamic batching {} | {} B per request",
        r.model,
        if r.version.is_empty() {
            String::new()
        } else {
            format!(" version {}", r.version)
        },
        match r.protocol {
            Protocol::Http => format!(
                "HTTP ({})",
                if r.tensor_format == Some(TensorFormat::Json) {
                    "JSON"
                } else {
                    "binary"
                }
            ),
            Protocol::Grpc => "gRPC".to_string(),
        },
        r.url,
        r.batch_size,
        r.max_batch_size,
        if r.dynamic_batching { "on" } else { "off" },
        r.request_body_bytes,
    );
    let load = if r.mode == "concurrency" {
        "conc"
    } else {
        "rate/s"
    };
    let _ = writeln!(
        out,
        "{load:>7} {:>10} {:>7} {:>5} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} | {:>5} {:>7}",
        "infer/s",
        "ok",
        "fail",
        "avg_us",
        "p50_us",
        "p90_us",
        "p95_us",
        "p99_us",
        "queue_us",
        "q_med",
        "in_us",
        "infer",
        "out_us",
        "execs",
        "batch",
        "cpu%",
        "cpu_us/r"
    );
    for l in &r.levels {
        let (q, qm, ci, cf, co, ex, ab) = match &l.server {
            Some(s) => (
                us(s.queue_us),
                s.queue_us_median_of_intervals.map_or("-".to_string(), us),
                us(s.compute_input_us),
                us(s.compute_infer_us),
                us(s.compute_output_us),
                s.execution_count.to_string(),
                format!("{:.2}", s.avg_batch_size),
            ),
            None => {
                let d = || "-".to_string();
                (d(), d(), d(), d(), d(), d(), d())
            }
        };
        let _ = writeln!(
            out,
            "{:>7} {:>10.1} {:>7} {:>5} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} | {:>5.0} {:>7.1}{}",
            l.load_text(),
            l.throughput_infer_per_s,
            l.requests_ok,
            l.requests_failed,
            us(l.latency.avg_us),
            us(l.latency.p50_us),
            us(l.latency.p90_us),
            us(l.latency.p95_us),
            us(l.latency.p99_us),
            q,
            qm,
            ci,
            cf,
            co,
            ex,
            ab,
            l.client_cpu.percent_of_one_core,
            l.client_cpu.us_per_request,
            if l.truncated {
                "  (window cut short)"
            } else {
                ""
            },
        );
    }
    for l in &r.levels {
        if let (Some(rate), Some(delayed)) = (l.send_rate, l.delayed_requests) {
            let _ = writeln!(
                out,
                "rate {}: sent {:.1}/s, {} requests 2 ms or more late, at most {} in flight",
                l.load_text(),
                rate,
                delayed,
                l.max_in_flight
            );
        }
        for e in &l.errors {
            let _ = writeln!(
                out,
                "level {}: {} failed: {}",
                l.load_text(),
                e.count,
                e.message
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// perf_analyzer's latency-report columns (with its verbose ones), then ours.
pub const CSV_COLUMNS: [&str; 16] = [
    "Inferences/Second",
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
    "Avg latency",
    "request/response",
    "response wait",
    "Failed Requests",
];

/// Columns only despina-perf writes, after perf_analyzer's.
pub const CSV_EXTRA_COLUMNS: [&str; 5] = [
    "Server Execution Count",
    "Server Inference Count",
    "Server Avg Batch Size",
    "Server Queue Median Of Intervals",
    "Client CPU us/request",
];

/// The latency report (`-f`): one row per level in run order, times in whole
/// microseconds. Request bodies are built before the run, so "Client Send" and
/// "Client Recv" are 0 and the whole exchange counts as "response wait". Server
/// columns are empty when the statistics could not be read.
pub fn csv(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(if r.mode == "concurrency" {
        "Concurrency"
    } else {
        "Request Rate"
    });
    for c in CSV_COLUMNS.iter().chain(CSV_EXTRA_COLUMNS.iter()) {
        out.push(',');
        out.push_str(c);
    }
    out.push('\n');
    for l in &r.levels {
        let avg = l.latency.avg_us;
        let server = l.server.as_ref();
        let opt = |f: &dyn Fn(&ServerSplit) -> String| server.map_or(String::new(), f);
        let network = opt(&|s| {
            us(avg - (s.queue_us + s.compute_input_us + s.compute_infer_us + s.compute_output_us))
        });
        let fields = [
            l.load_text(),
            trim_float(l.throughput_infer_per_s),
            "0".into(),
            network,
            opt(&|s| us(s.queue_us)),
            opt(&|s| us(s.compute_input_us)),
            opt(&|s| us(s.compute_infer_us)),
            opt(&|s| us(s.compute_output_us)),
            "0".into(),
            us(l.latency.p50_us),
            us(l.latency.p90_us),
            us(l.latency.p95_us),
            us(l.latency.p99_us),
            us(avg),
            "0".into(),
            us(avg),
            l.requests_failed.to_string(),
            opt(&|s| s.execution_count.to_string()),
            opt(&|s| s.inference_count.to_string()),
            opt(&|s| trim_float(s.avg_batch_size)),
            opt(&|s| s.queue_us_median_of_intervals.map_or(String::new(), us)),
            format!("{:.1}", l.client_cpu.us_per_request),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

pub fn json(r: &Report) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
