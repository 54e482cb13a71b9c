//! The model manager and schedulers driven directly, without a frontend: loading, version
//! swaps under load, dynamic batching, sequences, ensembles and decoupled responses.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use despina::backend::Registry;
use despina::repository::{ControlMode, LoadOverrides, ManagerConfig, ModelManager};
use despina::request::{CorrelationId, InferRequest, NamedTensor, ResponseItem, SequenceInfo};
use despina::tensor::Tensor;

fn manager(repo: &Path) -> Arc<ModelManager> {
    ModelManager::new(
        ManagerConfig {
            repositories: vec![repo.to_path_buf()],
            control_mode: ControlMode::Explicit,
            startup_models: vec![],
            auto_complete: true,
            gpu_count: 0,
            drain_timeout: Duration::from_secs(5),
            latency_summaries: false,
            response_cache: None,
            load_retries: 0,
            config_name: None,
            rate_limiter: None,
        },
        Registry::with_builtins(),
    )
}

fn write_model(repo: &Path, name: &str, config: &str, versions: &[i64]) {
    let dir = repo.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.pbtxt"), config).unwrap();
    for v in versions {
        std::fs::create_dir_all(dir.join(v.to_string())).unwrap();
    }
}

const VERSIONED: &str = r#"
name: "v"
backend: "add_version"
max_batch_size: 8
input { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] }
output { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] }
"#;

/// Sends one request and waits for its single answer, from a plain thread.
fn infer(
    m: &ModelManager,
    model: &str,
    version: Option<i64>,
    inputs: Vec<NamedTensor>,
) -> Result<(i64, Vec<NamedTensor>), String> {
    let mv = m.get(model, version).map_err(|e| e.message)?;
    let (req, mut stream) = InferRequest::new(String::new(), inputs);
    mv.submit(req).map_err(|e| e.message)?;
    let item: ResponseItem = stream
        .blocking_next_timeout(Duration::from_secs(10))
        .ok_or("no answer")?;
    match item.response {
        Some(Ok(r)) => Ok((mv.version, r.outputs)),
        Some(Err(e)) => Err(e.message),
        None => Err("empty answer".into()),
    }
}

fn int_input(name: &str, shape: Vec<i64>, v: &[i32]) -> NamedTensor {
    NamedTensor::new(name, Tensor::from_values(shape, v))
}

#[test]
fn swaps_versions_under_load_without_losing_requests() {
    let repo = tempfile::tempdir().unwrap();
    write_model(repo.path(), "v", VERSIONED, &[1]);
    let m = manager(repo.path());
    m.load("v", LoadOverrides::default()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (m, stop) = (m.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                let (version, out) =
                    infer(&m, "v", None, vec![int_input("INPUT0", vec![1, 1], &[100])])
                        .expect("every request succeeds");
                let value = out[0].tensor.values::<i32>().unwrap()[0];
                assert_eq!(
                    value as i64,
                    100 + version,
                    "answer computed by the version that accepted it"
                );
                seen.push(version);
                n += 1;
            }
            seen
        }));
    }
    for v in 2..=21 {
        std::fs::create_dir_all(repo.path().join("v").join(v.to_string())).unwrap();
        m.load("v", LoadOverrides::default()).unwrap();
        assert_eq!(m.versions("v"), vec![v], "latest policy serves one version");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut versions = std::collections::BTreeSet::new();
    for c in clients {
        let seen = c.join().unwrap();
        total += seen.len();
        versions.extend(seen);
    }
    println!(
        "{total} requests, all succeeded, answered by {} versions",
        versions.len()
    );
    assert!(
        versions.len() > 5,
        "traffic kept flowing across swaps: {versions:?}"
    );
}

#[test]
fn failed_new_version_keeps_the_old_one() {
    let repo = tempfile::tempdir().unwrap();
    write_model(repo.path(), "v", VERSIONED, &[1]);
    let m = manager(repo.path());
    m.load("v", LoadOverrides::default()).unwrap();
    // Version 2 with a config the backend refuses (BYTES is not numeric).
    std::fs::create_dir_all(repo.path().join("v/2")).unwrap();
    std::fs::write(
        repo.path().join("v/config.pbtxt"),
        VERSIONED.replace("TYPE_INT32", "TYPE_STRING"),
    )
    .unwrap();
    let err = m.load("v", LoadOverrides::default()).unwrap_err();
    assert!(
        err.message.contains("must be TYPE_INT32"),
        "{}",
        err.message
    );
    let (version, out) = infer(&m, "v", None, vec![int_input("INPUT0", vec![1, 1], &[1])]).unwrap();
    assert_eq!(
        (version, out[0].tensor.values::<i32>().unwrap()),
        (1, vec![2])
    );
    let index = m.index(false);
    let v2 = index.iter().find(|e| e.version == Some(2)).unwrap();
    assert_eq!(v2.state.unwrap().as_str(), "UNAVAILABLE");
    assert!(v2.reason.contains("TYPE_INT32"), "{}", v2.reason);
}

#[test]
fn unloaded_version_drains_then_disappears() {
    let repo = tempfile::tempdir().unwrap();
    write_model(repo.path(), "v", VERSIONED, &[1]);
    let m = manager(repo.path());
    m.load("v", LoadOverrides::default()).unwrap();
    m.unload("v", false).unwrap();
    let err = infer(&m, "v", None, vec![int_input("INPUT0", vec![1, 1], &[1])]).unwrap_err();
    assert_eq!(
        err,
        "Request for unknown model: 'v' has no available versions"
    );
    for _ in 0..200 {
        if m.index(false).iter().any(|e| e.reason == "unloaded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let index = m.index(false);
    assert_eq!(index[0].state.unwrap().as_str(), "UNAVAILABLE");
    assert_eq!(index[0].reason, "unloaded");
    assert!(
        m.all_ready(),
        "a model unloaded on purpose does not make the server unready"
    );
}

#[test]
fn dynamic_batcher_forms_preferred_batches() {
    let repo = tempfile::tempdir().unwrap();
    write_model(
        repo.path(),
        "batched",
        r#"
name: "batched"
backend: "identity"
max_batch_size: 8
input { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }
output { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 2000000 }
"#,
        &[1],
    );
    let m = manager(repo.path());
    m.load("batched", LoadOverrides::default()).unwrap();
    let mv = m.get("batched", None).unwrap();
    let mut streams = Vec::new();
    for i in 0..8 {
        let (req, s) = InferRequest::new(
            i.to_string(),
            vec![NamedTensor::new(
                "INPUT0",
                Tensor::from_values(vec![1, 2], &[i as f32, 1.0]),
            )],
        );
        mv.submit(req).unwrap();
        streams.push(s);
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let r = s
            .blocking_next_timeout(Duration::from_secs(10))
            .unwrap()
            .response
            .unwrap()
            .unwrap();
        assert_eq!(
            r.outputs[0].tensor.values::<f32>().unwrap(),
            vec![i as f32, 1.0],
            "each request gets its own rows back"
        );
    }
    let stats = mv.stats.batch_stats();
    assert_eq!(
        stats
            .iter()
            .map(|(size, b)| (*size, b.compute_infer.count()))
            .collect::<Vec<_>>(),
        vec![(8, 1)]
    );
    assert_eq!(mv.stats.execution_count.load(Ordering::Relaxed), 1);
    assert_eq!(mv.stats.inference_count.load(Ordering::Relaxed), 8);
}

#[test]
fn sequences_ensembles_and_decoupled() {
    let m = manager(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models"));
    for model in ["sequence_accumulate", "ensemble_simple", "square_int32"] {
        m.load(model, LoadOverrides::default())
            .unwrap_or_else(|e| panic!("{model}: {}", e.message));
    }
    // The ensemble loaded its composing model.
    assert_eq!(m.versions("simple"), vec![1]);

    let seq = |id: u64, start: bool, end: bool, v: i32| {
        let mv = m.get("sequence_accumulate", None).unwrap();
        let (mut req, mut s) =
            InferRequest::new(String::new(), vec![int_input("INPUT", vec![1, 1], &[v])]);
        req.sequence = Some(SequenceInfo {
            id: CorrelationId::Int(id),
            start,
            end,
        });
        mv.submit(req).map_err(|e| e.message)?;
        match s
            .blocking_next_timeout(Duration::from_secs(5))
            .unwrap()
            .response
            .unwrap()
        {
            Ok(r) => Ok(r.outputs[0].tensor.values::<i32>().unwrap()[0]),
            Err(e) => Err(e.message),
        }
    };
    assert_eq!(seq(7, true, false, 5), Ok(5));
    assert_eq!(seq(8, true, false, 100), Ok(100));
    assert_eq!(seq(7, false, false, 6), Ok(11));
    assert_eq!(seq(7, false, true, 1), Ok(12));
    assert_eq!(seq(8, false, true, 1), Ok(101));
    assert_eq!(
        seq(7, false, false, 1),
        Err("inference request for sequence 7 to model 'sequence_accumulate' must specify the START flag on the first request of the sequence".into())
    );

    let a: Vec<i32> = (0..16).collect();
    let b: Vec<i32> = (0..16).map(|x| x * 10).collect();
    let (_, out) = infer(
        &m,
        "ensemble_simple",
        None,
        vec![
            int_input("INPUT0", vec![1, 16], &a),
            int_input("INPUT1", vec![1, 16], &b),
        ],
    )
    .unwrap();
    let get = |n: &str| {
        out.iter()
            .find(|t| t.name == n)
            .unwrap()
            .tensor
            .values::<i32>()
            .unwrap()
    };
    assert_eq!(get("OUTPUT0"), a.iter().map(|x| 2 * x).collect::<Vec<_>>());
    assert_eq!(get("OUTPUT1"), b.iter().map(|x| 2 * x).collect::<Vec<_>>());

    let mv = m.get("square_int32", None).unwrap();
    let (req, mut s) = InferRequest::new(String::new(), vec![int_input("IN", vec![1], &[3])]);
    mv.submit(req).unwrap();
    let mut values = Vec::new();
    loop {
        let item = s.blocking_next_timeout(Duration::from_secs(5)).unwrap();
        if let Some(r) = item.response {
            values.push(r.unwrap().outputs[0].tensor.values::<i32>().unwrap()[0]);
        }
        if item.last {
            break;
        }
    }
    assert_eq!(values, vec![3, 3, 3]);
}

#[test]
fn ragged_inputs_are_batched_together() {
    let repo = tempfile::tempdir().unwrap();
    write_model(
        repo.path(),
        "ragged",
        r#"
name: "ragged"
backend: "identity"
max_batch_size: 8
input { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true }
output { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }
dynamic_batching { preferred_batch_size: [ 3 ] max_queue_delay_microseconds: 2000000 }
"#,
        &[1],
    );
    let m = manager(repo.path());
    m.load("ragged", LoadOverrides::default()).unwrap();
    let mv = m.get("ragged", None).unwrap();
    let mut streams = Vec::new();
    for len in [1usize, 4, 2] {
        let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let (req, s) = InferRequest::new(
            String::new(),
            vec![NamedTensor::new(
                "INPUT0",
                Tensor::from_values(vec![1, len as i64], &values),
            )],
        );
        mv.submit(req).unwrap();
        streams.push((values, s));
    }
    for (values, s) in &mut streams {
        let r = s
            .blocking_next_timeout(Duration::from_secs(10))
            .unwrap()
            .response
            .unwrap()
            .unwrap();
        assert_eq!(&r.outputs[0].tensor.values::<f32>().unwrap(), values);
    }
    let sizes: Vec<u64> = mv.stats.batch_stats().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        sizes,
        vec![3],
        "three requests of different lengths ran as one batch"
    );
}
