//! despina-perf against a real despina on tests/models, over HTTP (binary and JSON) and gRPC.

mod common;

use std::time::Duration;

use common::{TestServer, test_models};
use despina::perf::{
    InputData, Load, Measurement, PerfConfig, Protocol, Report, Target, TensorFormat, Window,
};

fn config(protocol: Protocol, url: &str, model: &str, concurrency: &str) -> PerfConfig {
    PerfConfig {
        target: Target {
            protocol,
            url: url.to_string(),
            model: model.to_string(),
            version: String::new(),
            request_timeout: Duration::from_secs(5),
        },
        batch_size: 1,
        shapes: vec![("INPUT0".to_string(), vec![16])],
        input_data: InputData::Random,
        string_length: 8,
        string_data: None,
        tensor_format: TensorFormat::Binary,
        load: Load::Concurrency(
            despina::perf::range::parse_concurrency_range(concurrency).unwrap(),
        ),
        measurement: Measurement {
            window: Window::Time(Duration::from_millis(500)),
            warmup_requests: 5,
            warmup_time: Duration::from_millis(100),
            max_level_time: Duration::from_secs(10),
            max_level_requests: 50_000,
            max_total_time: Duration::from_secs(30),
            stats_interval: Some(Duration::from_millis(100)),
        },
        latency_threshold: None,
        grpc_channels: 2,
        max_in_flight: 64,
        client_threads: 2,
        seed: 1,
    }
}

#[track_caller]
fn check_consistent(r: &Report) {
    assert_eq!(r.failed_total(), 0, "{}", despina::perf::report::table(r));
    for l in &r.levels {
        assert!(l.requests_ok > 0, "{l:?}");
        let s = l.server.as_ref().expect("server statistics");
        // The statistics are read just outside the window, so the server may count a few
        // requests more than the client; never fewer than the client's window minus those
        // in flight at its ends.
        let conc = l.concurrency.unwrap_or(1);
        assert!(
            s.success_count + conc >= l.requests_ok,
            "server {} < client {}",
            s.success_count,
            l.requests_ok
        );
        assert!(s.execution_count > 0 && s.avg_batch_size >= 1.0, "{s:?}");
        assert!(
            l.latency.p50_us > 0.0 && l.latency.p50_us <= l.latency.p99_us,
            "{:?}",
            l.latency
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn sweeps_despina_over_http_and_grpc() {
    let server = TestServer::start(&test_models(), &[]);
    for (protocol, url, format) in [
        (Protocol::Http, server.http.clone(), TensorFormat::Binary),
        (Protocol::Http, server.http.clone(), TensorFormat::Json),
        (Protocol::Grpc, server.grpc.clone(), TensorFormat::Binary),
    ] {
        let mut cfg = config(protocol, &url, "simple", "1:4:3");
        cfg.shapes.clear();
        cfg.tensor_format = format;
        let r = despina::perf::run(&cfg).await.expect("run");
        assert_eq!(
            r.levels.iter().map(|l| l.concurrency).collect::<Vec<_>>(),
            vec![Some(1), Some(4)]
        );
        assert_eq!(r.max_batch_size, 8);
        check_consistent(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn dynamic_batching_shows_in_the_server_split() {
    let server = TestServer::start(&test_models(), &[]);
    // identity_fp32: preferred batch sizes 4 and 8, 20 ms queue delay.
    let r = despina::perf::run(&config(Protocol::Http, &server.http, "identity_fp32", "8"))
        .await
        .expect("run");
    assert!(r.dynamic_batching);
    check_consistent(&r);
    let s = r.levels[0].server.as_ref().unwrap();
    assert!(s.avg_batch_size > 1.5, "average batch {}", s.avg_batch_size);
    assert!(s.queue_us > 0.0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn failing_requests_are_counted() {
    let server = TestServer::start(&test_models(), &[]);
    // simple_string adds decimal numbers; random letters make every request fail.
    let mut cfg = config(Protocol::Http, &server.http, "simple_string", "2");
    cfg.shapes.clear();
    let r = despina::perf::run(&cfg).await.expect("run");
    let l = &r.levels[0];
    assert_eq!(l.requests_ok, 0);
    assert!(
        l.requests_failed > 0 && l.failed_total >= l.requests_failed,
        "{l:?}"
    );
    assert!(
        l.errors
            .first()
            .is_some_and(|e| e.message.contains("non-integer string input")),
        "{:?}",
        l.errors
    );
}
