//! Model lifecycle through the real server: live version swaps under load in poll and
//! explicit mode, fault isolation, unloading with queued requests, graceful shutdown.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, root};
use despina::proto::inference as pb;
use despina::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

async fn client(server: &TestServer) -> Client {
    GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap()
}

fn int_request(model: &str, version: &str, values: &[i32]) -> pb::ModelInferRequest {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    pb::ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "INPUT0".into(),
            datatype: "INT32".into(),
            shape: vec![1, values.len() as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    }
}

fn first_int(r: &pb::ModelInferResponse) -> i32 {
    i32::from_le_bytes(r.raw_output_contents[0][..4].try_into().unwrap())
}

const VERSIONED: &str = r#"
name: "swap"
backend: "add_version"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
"#;

/// Clients keep requests flowing while `swap(k)` makes version k serve, for k = 2..=21.
/// Every request must succeed, and the answering version must have been serving between
/// the request's start and its answer (the latest confirmed version at send time, or a
/// newer one that became serving meanwhile).
async fn swap_under_load<F, Fut>(server: &TestServer, swap: F)
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let serving = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (mut c, serving, stop) = (client(server).await, serving.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut versions) = (0u64, std::collections::BTreeSet::new());
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let low = serving.load(Ordering::SeqCst);
                let r = c
                    .model_infer(int_request("swap", "", &[100]))
                    .await
                    .expect("every request succeeds")
                    .into_inner();
                let v: i64 = r.model_version.parse().unwrap();
                let high = serving.load(Ordering::SeqCst) + 1;
                assert!(
                    v >= low && v <= high,
                    "answered by version {v}, serving window was {low}..={high}"
                );
                assert_eq!(
                    first_int(&r) as i64,
                    100 + v,
                    "computed by the version that answered"
                );
                ok += 1;
                versions.insert(v);
            }
            (ok, versions)
        }));
    }
    for k in 2..=21 {
        swap(k).await;
        serving.store(k, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut versions) = (0, std::collections::BTreeSet::new());
    for t in tasks {
        let (ok, v) = t.await.unwrap();
        total += ok;
        versions.extend(v);
    }
    println!(
        "{total} requests succeeded across 20 swaps; answers came from {} versions",
        versions.len()
    );
    assert!(
        versions.len() >= 10,
        "traffic kept flowing across the swaps: {versions:?}"
    );
}

async fn wait_serving(c: &mut Client, model: &str, version: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = c
            .model_metadata(pb::ModelMetadataRequest {
                name: model.into(),
                version: String::new(),
            })
            .await;
        if md.is_ok_and(|m| m.into_inner().versions == vec![version.to_string()]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} of {model} never became the only one serving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_swap_model(repo: &Path) {
    std::fs::create_dir_all(repo.join("swap/1")).unwrap();
    std::fs::write(repo.join("swap/config.pbtxt"), VERSIONED).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_versions_in_poll_mode_without_losing_requests() {
    let repo = tempfile::tempdir().unwrap();
    write_swap_model(repo.path());
    let server = TestServer::start(
        repo.path(),
        &[
            "--model-control-mode",
            "poll",
            "--repository-poll-secs",
            "0.1",
        ],
    );
    let watcher = std::sync::Mutex::new(client(&server).await);
    swap_under_load(&server, |k| {
        std::fs::create_dir_all(repo.path().join(format!("swap/{k}"))).unwrap();
        let mut c = watcher.lock().unwrap().clone();
        async move { wait_serving(&mut c, "swap", k).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_versions_in_explicit_mode_without_losing_requests() {
    let repo = tempfile::tempdir().unwrap();
    write_swap_model(repo.path());
    let server = TestServer::start(
        repo.path(),
        &["--model-control-mode", "explicit", "--load-model", "swap"],
    );
    let c = client(&server).await;
    swap_under_load(&server, |k| {
        std::fs::create_dir_all(repo.path().join(format!("swap/{k}"))).unwrap();
        let mut c = c.clone();
        async move {
            let req = pb::RepositoryModelLoadRequest {
                model_name: "swap".into(),
                ..Default::default()
            };
            c.repository_model_load(req).await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_new_version_keeps_the_old_one_serving() {
    let repo = tempfile::tempdir().unwrap();
    write_swap_model(repo.path());
    let server = TestServer::start(
        repo.path(),
        &["--model-control-mode", "explicit", "--load-model", "swap"],
    );
    let mut c = client(&server).await;
    std::fs::create_dir_all(repo.path().join("swap/2")).unwrap();
    std::fs::write(
        repo.path().join("swap/config.pbtxt"),
        VERSIONED.replace("TYPE_INT32", "TYPE_BOOL"),
    )
    .unwrap();
    let err = c
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "swap".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("version 2 is at UNAVAILABLE state"),
        "{}",
        err.message()
    );
    let r = c
        .model_infer(int_request("swap", "", &[1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.model_version.as_str(), first_int(&r)), ("1", 2));
}

fn fault_repo() -> std::path::PathBuf {
    root().join("tests/models_fault")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_instance_fails_only_its_batch() {
    let server = TestServer::start(&fault_repo(), &[]);
    let c = client(&server).await;
    // Slow requests keep running while an instance crashes. Two of them: whatever instances
    // they occupy, the crashing request waits alone for a free one and runs in a batch of its own.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = c.clone();
        slow.push(tokio::spawn(async move {
            c.model_infer(int_request("fault", "", &[300])).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = c
        .clone()
        .model_infer(int_request("fault", "", &[-1]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    assert!(
        err.message()
            .contains("model instance crashed while executing the request"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .contains("a request asked this instance to crash"),
        "{}",
        err.message()
    );
    for s in slow {
        let r = s
            .await
            .unwrap()
            .expect("requests on the other instance are unaffected")
            .into_inner();
        assert_eq!(first_int(&r), 300);
    }
    // The crashed instance was recreated: both instances serve again, and so does the other model.
    for i in 0..6 {
        let r = c
            .clone()
            .model_infer(int_request("fault", "", &[i]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first_int(&r), i);
    }
    let mut simple = int_request("simple", "", &[1; 16]);
    simple
        .inputs
        .push(pb::model_infer_request::InferInputTensor {
            name: "INPUT1".into(),
            ..simple.inputs[0].clone()
        });
    simple.inputs[0].shape = vec![1, 16];
    simple.inputs[1].shape = vec![1, 16];
    simple
        .raw_input_contents
        .push(simple.raw_input_contents[0].clone());
    assert!(c.clone().model_infer(simple).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unload_lets_queued_requests_finish() {
    let server = TestServer::start(
        &fault_repo(),
        &["--model-control-mode", "explicit", "--load-model", "fault"],
    );
    let c = client(&server).await;
    let mut queued = Vec::new();
    for i in 0..8 {
        let mut c = c.clone();
        queued.push(tokio::spawn(async move {
            c.model_infer(int_request("fault", "", &[200 + i])).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.clone()
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "fault".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (i, q) in queued.into_iter().enumerate() {
        let r = q
            .await
            .unwrap()
            .expect("accepted before the unload, so it completes")
            .into_inner();
        assert_eq!(first_int(&r), 200 + i as i32);
    }
    let err = c
        .clone()
        .model_infer(int_request("fault", "", &[1]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let mut server = TestServer::start(&fault_repo(), &["--exit-timeout-secs", "20"]);
    let c = client(&server).await;
    let mut inflight = Vec::new();
    for i in 0..6 {
        let mut c = c.clone();
        inflight.push(tokio::spawn(async move {
            c.model_infer(int_request("fault", "", &[700 + i])).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(30));
        (s, server)
    });
    for (i, f) in inflight.into_iter().enumerate() {
        let r = f
            .await
            .unwrap()
            .expect("accepted before SIGTERM, so it completes")
            .into_inner();
        assert_eq!(first_int(&r), 700 + i as i32);
    }
    let (status, server) = status.await.unwrap();
    let status = status.expect("exited within the timeout");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn wait_unloaded(c: &mut Client, model: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let idx = c
            .repository_index(pb::RepositoryIndexRequest::default())
            .await
            .unwrap()
            .into_inner();
        if idx
            .models
            .iter()
            .any(|m| m.name == model && m.state == "UNAVAILABLE" && m.reason == "unloaded")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{model} never finished unloading"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloading_frees_the_model_memory() {
    let model_file = root().join("model_repository/all_minilm_l6_v2/1/model.onnx");
    if !model_file.exists() {
        panic!(
            "{} is missing: run scripts/setup.sh (it generates the MiniLM model)",
            model_file.display()
        );
    }
    let server = TestServer::start(
        &root().join("model_repository"),
        &["--model-control-mode", "explicit"],
    );
    let mut c = client(&server).await;
    let start = rss_kib(server.pid());
    let mut after_unload = Vec::new();
    for _ in 0..4 {
        c.repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "all_minilm_l6_v2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let ids: Vec<u8> = (0..4 * 32)
            .flat_map(|i: i64| (101 + i % 50).to_le_bytes())
            .collect();
        let ones: Vec<u8> = (0..4 * 32).flat_map(|_| 1i64.to_le_bytes()).collect();
        let zeros = vec![0u8; 4 * 32 * 8];
        let input = |n: &str| pb::model_infer_request::InferInputTensor {
            name: n.into(),
            datatype: "INT64".into(),
            shape: vec![4, 32],
            ..Default::default()
        };
        let req = pb::ModelInferRequest {
            model_name: "all_minilm_l6_v2".into(),
            inputs: vec![
                input("input_ids"),
                input("attention_mask"),
                input("token_type_ids"),
            ],
            raw_input_contents: vec![ids.into(), ones.into(), zeros.into()],
            ..Default::default()
        };
        c.model_infer(req).await.unwrap();
        let loaded = rss_kib(server.pid());
        c.repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "all_minilm_l6_v2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        wait_unloaded(&mut c, "all_minilm_l6_v2").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let unloaded = rss_kib(server.pid());
        println!("RSS: start {start} KiB, loaded {loaded} KiB, unloaded {unloaded} KiB");
        assert!(
            loaded > unloaded + 60 * 1024,
            "unloading the 90 MB model gave back at least 60 MiB"
        );
        after_unload.push(unloaded);
    }
    let (lo, hi) = (
        *after_unload.iter().min().unwrap(),
        *after_unload.iter().max().unwrap(),
    );
    assert!(
        hi - lo < 24 * 1024,
        "no growth across load/unload cycles: {after_unload:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_runs_before_a_version_serves() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("warm");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::create_dir_all(dir.join("warmup")).unwrap();
    // Warm-up data is a file of raw INT32s: 5 (sleep 5 ms) is fine, -1 crashes the instance.
    std::fs::write(dir.join("warmup/ok.bin"), 5i32.to_le_bytes()).unwrap();
    std::fs::write(dir.join("warmup/crash.bin"), (-1i32).to_le_bytes()).unwrap();
    let config = |file: &str| {
        format!(
            r#"name: "warm"
backend: "fault"
max_batch_size: 4
input [ {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] }} ]
model_warmup [ {{ name: "sample" batch_size: 1 count: 3 inputs {{ key: "INPUT0" value: {{ data_type: TYPE_INT32 dims: [ 1 ] input_data_file: "{file}" }} }} }} ]
"#
        )
    };
    std::fs::write(dir.join("config.pbtxt"), config("ok.bin")).unwrap();
    let server = TestServer::start(
        repo.path(),
        &["--model-control-mode", "explicit", "--load-model", "warm"],
    );
    let mut c = client(&server).await;
    // Warm-up ran three executions, and they are not counted as client traffic.
    let stats = c
        .model_statistics(pb::ModelStatisticsRequest {
            name: "warm".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.model_stats[0].execution_count, 0);
    let r = c
        .model_infer(int_request("warm", "", &[7]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_int(&r), 7);

    // A version 2 whose warm-up crashes never serves; version 1 keeps answering.
    std::fs::create_dir_all(dir.join("2")).unwrap();
    std::fs::write(dir.join("config.pbtxt"), config("crash.bin")).unwrap();
    let err = c
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "warm".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("warmup 'sample' failed"),
        "{}",
        err.message()
    );
    let r = c
        .model_infer(int_request("warm", "", &[8]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.model_version.as_str(), first_int(&r)), ("1", 8));
}
