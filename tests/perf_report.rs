//! despina-perf report writing (table, CSV, JSON) and the library entry point's
//! refusals before any load is sent.

use std::time::Duration;

use despina::perf::report::{ClientCpu, ErrorCount, LevelReport, Report, csv, json, table};
use despina::perf::server_stats::ServerSplit;
use despina::perf::stats::LatencySummary;
use despina::perf::{
    ConcurrencyRange, InputData, Load, Measurement, PerfConfig, PerfError, Protocol, Target,
    TensorFormat, Window,
};
use serde_json::Value;

fn level(c: u64, server: bool) -> LevelReport {
    LevelReport {
        concurrency: Some(c),
        window_ms: 1000.0,
        requests_ok: 100 * c,
        requests_failed: c - 1,
        requests_total: 120 * c,
        failed_total: c - 1,
        throughput_infer_per_s: 250.5 * c as f64,
        throughput_req_per_s: 125.25 * c as f64,
        latency: LatencySummary {
            count: 100 * c,
            avg_us: 1000.4,
            min_us: 500.0,
            max_us: 3000.0,
            p50_us: 900.0,
            p90_us: 1500.0,
            p95_us: 1800.0,
            p99_us: 2500.6,
            std_us: 10.0,
        },
        server: server.then(|| ServerSplit {
            success_count: 100 * c,
            fail_count: 0,
            inference_count: 200 * c,
            execution_count: 40 * c,
            avg_batch_size: 5.0,
            request_us: 800.0,
            queue_us: 300.0,
            compute_input_us: 10.0,
            compute_infer_us: 400.0,
            compute_output_us: 20.0,
            queue_us_median_of_intervals: Some(280.0),
            queue_intervals: 4,
        }),
        client_cpu: ClientCpu {
            cpu_ms: 50.0,
            percent_of_one_core: 5.0,
            us_per_request: 41.25,
        },
        errors: if c > 1 {
            vec![ErrorCount {
                message: "HTTP 503: busy".into(),
                count: c - 1,
            }]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

fn report(levels: Vec<LevelReport>) -> Report {
    Report {
        model: "m".into(),
        version: String::new(),
        protocol: Protocol::Http,
        url: "127.0.0.1:8000".into(),
        tensor_format: Some(TensorFormat::Binary),
        batch_size: 2,
        max_batch_size: 8,
        dynamic_batching: true,
        mode: "concurrency",
        distribution: None,
        request_body_bytes: 300,
        client_threads: 2,
        levels,
        warnings: vec!["no server-side split: x".into()],
    }
}

#[test]
fn csv_has_perf_analyzer_columns_and_values() {
    let text = csv(&report(vec![level(1, true), level(4, false)]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
         Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,\
         Avg latency,request/response,response wait,Failed Requests,Server Execution Count,Server Inference Count,\
         Server Avg Batch Size,Server Queue Median Of Intervals,Client CPU us/request"
    );
    // network = avg 1000.4 - (300 + 10 + 400 + 20) = 270
    assert_eq!(
        lines[1],
        "1,250.5,0,270,300,10,400,20,0,900,1500,1800,2501,1000,0,1000,0,40,200,5,280,41.2"
    );
    // no server statistics: the server columns stay empty
    assert_eq!(
        lines[2],
        "4,1002,0,,,,,,0,900,1500,1800,2501,1000,0,1000,3,,,,,41.2"
    );
    assert_eq!(lines.len(), 3);
    let cols = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == cols));
}

#[test]
fn csv_of_a_rate_sweep_starts_with_request_rate() {
    let mut l = level(1, true);
    l.concurrency = None;
    l.request_rate = Some(150.5);
    let mut r = report(vec![l]);
    r.mode = "request_rate";
    let text = csv(&r);
    assert!(
        text.starts_with("Request Rate,Inferences/Second,"),
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().starts_with("150.5,250.5,"),
        "{text}"
    );
}

#[test]
fn json_report_carries_everything() {
    let v: Value = serde_json::from_str(&json(&report(vec![level(2, true)]))).unwrap();
    assert_eq!(v["model"], "m");
    assert_eq!(v["protocol"], "http");
    assert_eq!(v["tensor_format"], "binary");
    assert_eq!(v["mode"], "concurrency");
    assert_eq!(v["batch_size"], 2);
    let l = &v["levels"][0];
    assert_eq!(l["concurrency"], 2);
    assert_eq!(l["request_rate"], Value::Null);
    assert_eq!(l["requests_ok"], 200);
    assert_eq!(l["requests_failed"], 1);
    assert_eq!(l["throughput_infer_per_s"], 501.0);
    assert_eq!(l["latency"]["p99_us"], 2500.6);
    assert_eq!(l["server"]["avg_batch_size"], 5.0);
    assert_eq!(l["server"]["queue_us_median_of_intervals"], 280.0);
    assert_eq!(l["client_cpu"]["us_per_request"], 41.25);
    assert_eq!(l["errors"][0]["message"], "HTTP 503: busy");
    assert_eq!(v["warnings"][0], "no server-side split: x");
}

#[test]
fn table_lists_levels_errors_and_warnings() {
    let r = report(vec![level(1, true), level(3, false)]);
    let t = table(&r);
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[0].starts_with("model 'm' over HTTP (binary) at 127.0.0.1:8000 | batch size 2"),
        "{t}"
    );
    assert!(
        lines[1]
            .split_whitespace()
            .take(4)
            .eq(["conc", "infer/s", "ok", "fail"]),
        "{t}"
    );
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&row[..5], &["1", "250.5", "100", "0", "|"]);
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    // no server statistics: dashes in the server columns
    assert_eq!(
        &row[..16],
        &[
            "3", "751.5", "300", "2", "|", "1000", "900", "1500", "1800", "2501", "|", "-", "-",
            "-", "-", "-"
        ]
    );
    assert!(t.contains("level 3: 2 failed: HTTP 503: busy"), "{t}");
    assert!(t.contains("warning: no server-side split: x"), "{t}");
    assert_eq!(r.failed_total(), 2);
}

fn config(url: String) -> PerfConfig {
    PerfConfig {
        target: Target {
            protocol: Protocol::Http,
            url,
            model: "simple".into(),
            version: String::new(),
            request_timeout: Duration::from_secs(2),
        },
        batch_size: 1,
        shapes: vec![],
        input_data: InputData::Zero,
        string_length: 8,
        string_data: None,
        tensor_format: TensorFormat::Binary,
        load: Load::Concurrency(ConcurrencyRange::single(1)),
        measurement: Measurement {
            window: Window::Time(Duration::from_millis(100)),
            warmup_requests: 0,
            warmup_time: Duration::ZERO,
            max_level_time: Duration::from_secs(5),
            max_level_requests: 1000,
            max_total_time: Duration::from_secs(10),
            stats_interval: None,
        },
        latency_threshold: None,
        grpc_channels: 1,
        max_in_flight: 4,
        client_threads: 1,
        seed: 1,
    }
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

#[tokio::test]
async fn run_reports_a_refused_connection() {
    for protocol in [Protocol::Http, Protocol::Grpc] {
        let mut cfg = config(closed_port());
        cfg.target.protocol = protocol;
        match despina::perf::run(&cfg).await {
            Err(PerfError::Connect { url, reason }) => {
                assert!(url.starts_with("http://127.0.0.1:"), "{url}");
                assert!(
                    reason.contains("Connection refused"),
                    "{protocol:?}: {reason}"
                );
            }
            other => panic!(
                "{protocol:?}: expected a connect error, got {:?}",
                other.map(|r| r.levels.len())
            ),
        }
    }
}

#[tokio::test]
async fn run_refuses_bad_sweeps_before_connecting() {
    let mut cfg = config(closed_port());
    cfg.load = Load::Concurrency(ConcurrencyRange {
        start: 1,
        end: 0,
        step: 1,
    });
    let e = despina::perf::run(&cfg).await.err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("a range with end 0 needs --latency-threshold")
    );
    let mut cfg = config(closed_port());
    cfg.measurement.window = Window::Count(0);
    let e = despina::perf::run(&cfg).await.err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("--measurement-request-count must be at least 1")
    );
}
