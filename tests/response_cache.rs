//! The response cache through the real server: `--cache-config local,size=N` plus
//! `response_cache { enable: true }` answers repeated requests without executing the model,
//! keeps answers apart by requested outputs, and reports hits and misses in the statistics
//! and the metrics.

mod common;

use std::path::Path;

use common::TestServer;
use despina::proto::inference as pb;
use despina::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

/// `add_sub` (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1) over [4] INT32 tensors.
fn model(repo: &Path, name: &str, cache: bool) {
    let dir = repo.join(name);
    std::fs::create_dir_all(dir.join("1")).unwrap();
    let config = format!(
        r#"name: "{name}"
backend: "add_sub"
max_batch_size: 8
input [ {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] }}, {{ name: "INPUT1" data_type: TYPE_INT32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] }}, {{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 4 ] }} ]
response_cache {{ enable: {cache} }}
"#
    );
    std::fs::write(dir.join("config.pbtxt"), config).unwrap();
}

fn tensor(name: &str) -> pb::model_infer_request::InferInputTensor {
    pb::model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: "INT32".into(),
        shape: vec![1, 4],
        ..Default::default()
    }
}

fn raw(v: [i32; 4]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Infers `a` and `b` on `model`, asking for `outputs` (all when empty); answers each
/// output's name and values.
async fn infer(
    c: &mut Client,
    model: &str,
    a: [i32; 4],
    b: [i32; 4],
    outputs: &[&str],
) -> Vec<(String, Vec<i32>)> {
    let req = pb::ModelInferRequest {
        model_name: model.into(),
        id: "req".into(),
        inputs: vec![tensor("INPUT0"), tensor("INPUT1")],
        outputs: outputs
            .iter()
            .map(|o| pb::model_infer_request::InferRequestedOutputTensor {
                name: o.to_string(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: vec![raw(a).into(), raw(b).into()],
        ..Default::default()
    };
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.id, "req");
    r.outputs
        .iter()
        .zip(&r.raw_output_contents)
        .map(|(o, data)| {
            let values = data
                .chunks(4)
                .map(|x| i32::from_le_bytes(x.try_into().unwrap()))
                .collect();
            (o.name.clone(), values)
        })
        .collect()
}

/// (success, execution_count, cache hits, cache misses) of version 1 of `model`.
async fn counts(c: &mut Client, model: &str) -> (u64, u64, u64, u64) {
    let s = c
        .model_statistics(pb::ModelStatisticsRequest {
            name: model.into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let m = &s.model_stats[0];
    let i = m.inference_stats.as_ref().unwrap();
    let n = |d: &Option<pb::StatisticDuration>| d.as_ref().map_or(0, |d| d.count);
    (
        n(&i.success),
        m.execution_count,
        n(&i.cache_hit),
        n(&i.cache_miss),
    )
}

fn scrape(server: &TestServer) -> String {
    common::http_text(&server.metrics, "GET", "/metrics")
}

fn value(body: &str, line_start: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_are_answered_from_the_cache() {
    let repo = tempfile::tempdir().unwrap();
    model(repo.path(), "cached", true);
    model(repo.path(), "plain", false);
    let server = TestServer::start(repo.path(), &["--cache-config", "local,size=1048576"]);
    let mut c = Client::connect(server.grpc_url()).await.unwrap();
    let (a, b) = ([1, 2, 3, 4], [10, 20, 30, 40]);
    let both = vec![
        ("OUTPUT0".to_string(), vec![11, 22, 33, 44]),
        ("OUTPUT1".to_string(), vec![-9, -18, -27, -36]),
    ];
    for _ in 0..3 {
        assert_eq!(infer(&mut c, "cached", a, b, &[]).await, both);
    }
    assert_eq!(counts(&mut c, "cached").await, (3, 1, 2, 1));
    // Other data, or other requested outputs, are other answers (Triton would answer the
    // second of these with the first one's outputs).
    assert_eq!(
        infer(&mut c, "cached", a, a, &[]).await[0].1,
        vec![2, 4, 6, 8]
    );
    assert_eq!(infer(&mut c, "cached", a, b, &["OUTPUT1"]).await, both[1..]);
    assert_eq!(infer(&mut c, "cached", a, b, &["OUTPUT0"]).await, both[..1]);
    assert_eq!(infer(&mut c, "cached", a, b, &["OUTPUT0"]).await, both[..1]);
    assert_eq!(counts(&mut c, "cached").await, (7, 4, 3, 4));
    // A model that does not opt in executes every time.
    for _ in 0..2 {
        assert_eq!(infer(&mut c, "plain", a, b, &[]).await, both);
    }
    assert_eq!(counts(&mut c, "plain").await, (2, 2, 0, 0));

    let body = scrape(&server);
    let cached = "{model=\"cached\",version=\"1\"}";
    assert_eq!(
        value(&body, &format!("nv_cache_num_hits_per_model{cached}")),
        3.0
    );
    assert_eq!(
        value(&body, &format!("nv_cache_num_misses_per_model{cached}")),
        4.0
    );
    assert_eq!(
        value(&body, &format!("nv_inference_request_success{cached}")),
        7.0
    );
    assert_eq!(
        value(&body, &format!("nv_inference_exec_count{cached}")),
        4.0
    );
    assert!(!body.contains("nv_cache_num_hits_per_model{model=\"plain\""));
    assert_eq!(value(&body, "nv_cache_num_entries "), 4.0);
    assert_eq!(value(&body, "nv_cache_num_lookups "), 7.0);
    assert_eq!(value(&body, "nv_cache_num_evictions "), 0.0);
    let util = value(&body, "nv_cache_util ");
    assert!(util > 0.0 && util < 0.01, "{util}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_opts_in_without_a_server_cache_just_executes() {
    let repo = tempfile::tempdir().unwrap();
    model(repo.path(), "cached", true);
    let server = TestServer::start(repo.path(), &[]);
    let mut c = Client::connect(server.grpc_url()).await.unwrap();
    for _ in 0..2 {
        infer(&mut c, "cached", [1; 4], [2; 4], &[]).await;
    }
    assert_eq!(counts(&mut c, "cached").await, (2, 2, 0, 0));
    assert!(server.log_text().contains("the server has no cache"));
    assert!(!scrape(&server).contains("nv_cache_"));
}

#[test]
fn bad_cache_flags_stop_the_start_with_a_clear_error() {
    let repo = tempfile::tempdir().unwrap();
    for (flag, says) in [
        (
            "redis,host=localhost",
            "despina has only the 'local' response cache, not 'redis'",
        ),
        ("local,size=1GB", "size must be a number of bytes"),
    ] {
        let stderr = common::refused_start(repo.path(), &["--cache-config", flag]);
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_that_opts_in_is_cached_at_the_top() {
    let repo = tempfile::tempdir().unwrap();
    for name in ["simple", "ensemble_simple"] {
        let (src, dst) = (common::test_models().join(name), repo.path().join(name));
        std::fs::create_dir_all(dst.join("1")).unwrap();
        let mut cfg = std::fs::read_to_string(src.join("config.pbtxt")).unwrap();
        if name == "ensemble_simple" {
            cfg.push_str("response_cache { enable: true }\n");
        }
        std::fs::write(dst.join("config.pbtxt"), cfg).unwrap();
    }
    let server = TestServer::start(repo.path(), &["--cache-config", "local,size=1048576"]);
    let mut c = Client::connect(server.grpc_url()).await.unwrap();
    let tensor16 = |name: &str| pb::model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: "INT32".into(),
        shape: vec![1, 16],
        ..Default::default()
    };
    let data: Vec<u8> = (0..16i32).flat_map(|v| v.to_le_bytes()).collect();
    for _ in 0..3 {
        let req = pb::ModelInferRequest {
            model_name: "ensemble_simple".into(),
            inputs: vec![tensor16("INPUT0"), tensor16("INPUT1")],
            raw_input_contents: vec![data.clone().into(), data.clone().into()],
            ..Default::default()
        };
        let r = c.model_infer(req).await.unwrap().into_inner();
        assert_eq!(r.outputs.len(), 2);
    }
    let (success, _, hits, misses) = counts(&mut c, "ensemble_simple").await;
    assert_eq!((success, hits, misses), (3, 2, 1));
    // The composing model ran only for the miss (the ensemble has two steps on it).
    let (_, executions, _, _) = counts(&mut c, "simple").await;
    assert_eq!(executions, 2);
}
