//! Scheduling through the real server: queue size limits, queue timeouts (REJECT and
//! DELAY), priority levels, preserve_ordering, and the failure metrics they produce.
//! The `fault` test backend sleeps INPUT0[0] ms per execution, which makes queues build.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::TestServer;
use despina::proto::inference as pb;
use despina::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

fn model(repo: &Path, name: &str, instances: u32, max_batch: u32, dynamic: &str) {
    let dir = repo.join(name);
    std::fs::create_dir_all(dir.join("1")).unwrap();
    let config = format!(
        r#"name: "{name}"
backend: "fault"
max_batch_size: {max_batch}
input [ {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
dynamic_batching {{ {dynamic} }}
"#
    );
    std::fs::write(dir.join("config.pbtxt"), config).unwrap();
}

use pb::infer_parameter::ParameterChoice as P;

/// A request of one INT32 `input` holding `value`, with `params`.
fn int32_request(
    model: &str,
    input: &str,
    value: i32,
    params: Vec<(&str, P)>,
) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: input.into(),
            datatype: "INT32".into(),
            shape: vec![1, 1],
            ..Default::default()
        }],
        raw_input_contents: vec![value.to_le_bytes().to_vec().into()],
        parameters: params
            .into_iter()
            .map(|(k, v)| {
                let p = pb::InferParameter {
                    parameter_choice: Some(v),
                };
                (k.to_string(), p)
            })
            .collect(),
        ..Default::default()
    }
}

/// A request to the `fault` backend sleeping `ms`, with integer `params`.
fn request(model: &str, ms: i32, params: &[(&str, i64)]) -> pb::ModelInferRequest {
    let params = params
        .iter()
        .map(|(k, v)| (*k, P::Int64Param(*v)))
        .collect();
    int32_request(model, "INPUT0", ms, params)
}

/// Sends a request on its own task; answers (value or error message) with the time it took.
fn send(
    c: &Client,
    model: &str,
    ms: i32,
    params: &[(&str, i64)],
) -> tokio::task::JoinHandle<(Result<i32, String>, Instant)> {
    let (mut c, req) = (c.clone(), request(model, ms, params));
    tokio::spawn(async move {
        let r = c.model_infer(req).await;
        let out = r
            .map(|r| {
                i32::from_le_bytes(
                    r.into_inner().raw_output_contents[0][..4]
                        .try_into()
                        .unwrap(),
                )
            })
            .map_err(|e| format!("{:?}: {}", e.code(), e.message()));
        (out, Instant::now())
    })
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

fn metric(server: &TestServer, name: &str, labels: &str) -> f64 {
    let body = common::http_text(&server.metrics, "GET", "/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_limits_timeouts_priorities_and_ordering() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    model(
        r,
        "bounded",
        1,
        1,
        "default_queue_policy { max_queue_size: 2 }",
    );
    model(
        r,
        "expiring",
        1,
        1,
        "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 100000 allow_timeout_override: true }",
    );
    model(
        r,
        "delaying",
        1,
        1,
        "default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 50000 }",
    );
    model(
        r,
        "prioritised",
        1,
        1,
        "priority_levels: 2 default_priority_level: 2",
    );
    model(r, "ordered", 2, 1, "preserve_ordering: true");
    model(r, "unordered", 2, 1, "");
    let server = TestServer::start(r, &[]);
    let c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();

    // A full queue refuses at once with UNAVAILABLE, counted as REJECTED.
    let busy = send(&c, "bounded", 400, &[]);
    settle().await;
    let queued: Vec<_> = (0..2).map(|i| send(&c, "bounded", i, &[])).collect();
    settle().await;
    let refused: Vec<_> = (0..2).map(|i| send(&c, "bounded", 10 + i, &[])).collect();
    for f in refused {
        assert_eq!(
            f.await.unwrap().0,
            Err("Unavailable: Exceeds maximum queue size".to_string())
        );
    }
    assert_eq!(busy.await.unwrap().0, Ok(400));
    for (i, f) in queued.into_iter().enumerate() {
        assert_eq!(
            f.await.unwrap().0,
            Ok(i as i32),
            "queued requests were served"
        );
    }
    assert_eq!(
        metric(
            &server,
            "nv_inference_request_failure",
            r#"model="bounded",reason="REJECTED""#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &server,
            "nv_inference_request_success",
            r#"model="bounded""#
        ),
        3.0
    );

    // REJECT: a request still queued when its timeout passes is refused; one whose
    // (allowed) override is longer waits and is served.
    let busy = send(&c, "expiring", 400, &[]);
    settle().await;
    let expires = send(&c, "expiring", 1, &[]);
    let patient = send(&c, "expiring", 2, &[("timeout", 2_000_000)]);
    assert_eq!(
        expires.await.unwrap().0,
        Err("Unavailable: Request timeout expired".to_string())
    );
    assert_eq!(patient.await.unwrap().0, Ok(2));
    assert_eq!(busy.await.unwrap().0, Ok(400));

    // DELAY: a timed-out request is not refused, it is served after the others.
    let busy = send(&c, "delaying", 200, &[]);
    settle().await;
    let late = send(&c, "delaying", 1, &[]);
    assert_eq!(late.await.unwrap().0, Ok(1));
    assert_eq!(busy.await.unwrap().0, Ok(200));

    // Priority 1 jumps ahead of the default level 2; an unknown level is refused.
    let busy = send(&c, "prioritised", 300, &[]);
    settle().await;
    let low = send(&c, "prioritised", 50, &[]);
    settle().await;
    let high = send(&c, "prioritised", 50, &[("priority", 1)]);
    let (low, high) = (low.await.unwrap(), high.await.unwrap());
    assert_eq!((&low.0, &high.0), (&Ok(50), &Ok(50)));
    assert!(
        high.1 < low.1,
        "the priority-1 request, sent later, finished first"
    );
    let err = send(&c, "prioritised", 1, &[("priority", 3)])
        .await
        .unwrap()
        .0
        .unwrap_err();
    assert!(err.contains("priority level 3 is out of range"), "{err}");
    assert_eq!(busy.await.unwrap().0, Ok(300));

    // preserve_ordering: with two instances a fast request sent after a slow one still
    // answers after it; without it, it answers first.
    // The slow request has ~540 ms left when the fast one is sent: held back behind it,
    // the fast one takes most of that; on its own it takes a few milliseconds.
    for (name, ordered) in [("ordered", true), ("unordered", false)] {
        let slow = send(&c, name, 600, &[]);
        settle().await;
        let sent = Instant::now();
        let fast = send(&c, name, 1, &[]);
        let (slow, fast) = (slow.await.unwrap(), fast.await.unwrap());
        assert_eq!((slow.0, fast.0), (Ok(600), Ok(1)));
        let waited = fast.1 - sent;
        assert_eq!(
            waited > Duration::from_millis(300),
            ordered,
            "{name}: the fast request took {waited:?}"
        );
    }
}

/// The value of the one sample line that starts with `prefix` and holds every label given.
fn sample(body: &str, prefix: &str, labels: &[&str]) -> Option<String> {
    body.lines()
        .find(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_summaries_give_windowed_quantiles() {
    let repo = tempfile::tempdir().unwrap();
    model(repo.path(), "lat", 1, 4, "");
    model(repo.path(), "idle", 1, 4, "");
    let server = TestServer::start(
        repo.path(),
        &[
            "--metrics-config",
            "summary_latencies=true",
            "--metrics-config",
            "summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001",
            "--metrics-config",
            "counter_latencies=false",
        ],
    );
    let c = Client::connect(server.grpc_url()).await.unwrap();
    // Nine 20 ms executions and one of 100 ms, one at a time.
    for ms in [20, 20, 20, 100, 20, 20, 20, 20, 20, 20] {
        assert_eq!(send(&c, "lat", ms, &[]).await.unwrap().0, Ok(ms));
    }
    settle().await;
    let body = common::http_text(&server.metrics, "GET", "/metrics");
    let lat = ["model=\"lat\"", "version=\"1\""];
    let q = |family: &str, q: &str| -> f64 {
        let labels = [lat[0], lat[1], &format!("quantile=\"{q}\"")];
        sample(&body, &format!("{family}{{"), &labels)
            .unwrap_or_else(|| panic!("no {family} {q} in\n{body}"))
            .parse()
            .unwrap()
    };
    let infer = "nv_inference_compute_infer_summary_us";
    // Rank-exact: the median and p90 are 20 ms sleeps, p99 is the 100 ms one (each within
    // the 1/64 bucket width, plus however late the sleeper woke).
    for p in ["0.5", "0.9"] {
        let v = q(infer, p);
        assert!((19_600.0..60_000.0).contains(&v), "{infer} {p} = {v}");
    }
    let p99 = q(infer, "0.99");
    assert!((98_000.0..300_000.0).contains(&p99), "{infer} 0.99 = {p99}");
    assert!(q("nv_inference_request_summary_us", "0.5") >= q(infer, "0.5") * 0.98);
    assert!(q("nv_inference_queue_summary_us", "0.99") < 20_000.0);
    let count = sample(&body, &format!("{infer}_count{{"), &lat).unwrap();
    let success = sample(&body, "nv_inference_request_success{", &lat).unwrap();
    assert_eq!((count.as_str(), success.as_str()), ("10", "10"));
    let sum: f64 = sample(&body, &format!("{infer}_sum{{"), &lat)
        .unwrap()
        .parse()
        .unwrap();
    assert!((280_000.0..1_000_000.0).contains(&sum), "sum {sum}");
    // Only the quantiles asked for; an unused model has an empty window; Triton's HELP text.
    assert!(!body.contains("quantile=\"0.95\""), "{body}");
    assert_eq!(
        sample(
            &body,
            "nv_inference_request_summary_us{",
            &["model=\"idle\"", "quantile=\"0.5\""]
        )
        .as_deref(),
        Some("NaN")
    );
    assert!(body.contains("# HELP nv_inference_request_summary_us Summary of inference request duration in microseconds (includes cached requests)\n# TYPE nv_inference_request_summary_us summary\n"));
    // counter_latencies=false drops the cumulative duration counters, not the counts.
    assert!(!body.contains("nv_inference_request_duration_us"), "{body}");
    assert!(body.contains("nv_inference_exec_count{"));
}

#[test]
fn bad_metrics_config_stops_the_start_with_a_clear_error() {
    let repo = tempfile::tempdir().unwrap();
    for (flag, says) in [
        (
            "summary_quantiles=1.5:0.01",
            "'1.5:0.01' is not <quantile>:<error> with both in [0, 1]",
        ),
        ("summary_latencies=maybe", "'maybe' is not a boolean"),
        ("summary_latency=true", "unknown setting 'summary_latency'"),
    ] {
        let stderr = common::refused_start(repo.path(), &["--metrics-config", flag]);
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}

/// Two models on the `fault` backend whose instances need one unit of the global resource
/// "R" to execute.
fn rate_limited_models(repo: &Path) {
    for name in ["first", "second"] {
        model(repo, name, 1, 4, "");
        let cfg = repo.join(name).join("config.pbtxt");
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "instance_group [ { count: 1 kind: KIND_CPU } ]",
            "instance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: \"R\" global: true count: 1 } ] } } ]",
        );
        std::fs::write(cfg, text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_lets_one_model_at_a_time_hold_a_resource() {
    let repo = tempfile::tempdir().unwrap();
    rate_limited_models(repo.path());
    let server = TestServer::start(repo.path(), &["--rate-limit=execution_count"]);
    let c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    // Each sleeps 300 ms; with one unit of R they cannot run at the same time.
    let (a, b) = (send(&c, "first", 300, &[]), send(&c, "second", 300, &[]));
    let ((ra, ta), (rb, tb)) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((ra, rb), (Ok(300), Ok(300)));
    let gap = if ta > tb { ta - tb } else { tb - ta };
    assert!(
        gap >= Duration::from_millis(250),
        "both ran at once: {gap:?} apart"
    );
}

#[test]
fn a_resource_count_below_an_instances_need_fails_its_load() {
    let repo = tempfile::tempdir().unwrap();
    rate_limited_models(repo.path());
    let server = TestServer::start(
        repo.path(),
        &[
            "--rate-limit=execution_count",
            "--rate-limit-resource=R:0",
            "--exit-on-error=false",
        ],
    );
    let index = common::http_text(&server.http, "POST", "/v2/repository/index");
    assert!(
        index.contains("resource count for 'R' is limited to 0"),
        "{index}"
    );
}

/// A START request for sequence `id` on the `sequence` backend's running-sum model.
fn sequence_start(model: &str, id: i64, value: i32) -> pb::ModelInferRequest {
    let params = vec![
        ("sequence_id", P::Int64Param(id)),
        ("sequence_start", P::BoolParam(true)),
    ];
    int32_request(model, "INPUT", value, params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_strategy_waits_its_queue_delay_for_other_sequences() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("acc");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::write(
        dir.join("config.pbtxt"),
        r#"backend: "sequence"
max_batch_size: 4
sequence_batching {
  oldest { max_candidate_sequences: 8 preferred_batch_size: [ 3 ] max_queue_delay_microseconds: 400000 }
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
}
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
"#,
    )
    .unwrap();
    let server = TestServer::start(repo.path(), &[]);
    let c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    // Three sequences start 50 ms apart: the first waits for the other two.
    let mut tasks = Vec::new();
    for id in 1..=3i64 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * (id as u64 - 1))).await;
            let r = c
                .model_infer(sequence_start("acc", id, id as i32 * 10))
                .await;
            let out = r.unwrap().into_inner().raw_output_contents[0].clone();
            i32::from_le_bytes(out[..4].try_into().unwrap())
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(got, vec![10, 20, 30]);
    let mut c = c;
    let stats = c
        .model_statistics(pb::ModelStatisticsRequest {
            name: "acc".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let m = &stats.model_stats[0];
    assert_eq!((m.inference_count, m.execution_count), (3, 1));
}
