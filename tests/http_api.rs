//! The HTTP frontend's non-inference endpoints against the real binary: health, metadata,
//! configuration, readiness, statistics, the model repository, shared memory, trace and log
//! settings, unknown paths and wrong methods. Expected answers are Triton 2.51's (status,
//! body and content type), recorded from the reference server.

mod common;
mod http_support;

use std::time::{Duration, Instant};

use common::{TestServer, test_models};
use http_support::*;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const PLAIN: &str = "text/plain";

fn server() -> TestServer {
    TestServer::start(&test_models(), &[])
}

fn explicit() -> TestServer {
    TestServer::start(
        &test_models(),
        &["--model-control-mode", "explicit", "--load-model", "*"],
    )
}

#[test]
fn health_and_server_metadata() {
    let s = server();
    for path in ["/v2/health/live", "/v2/health/ready"] {
        let r = get(&s.http, path);
        r.expect(200, PLAIN);
        assert!(r.body.is_empty());
    }
    let r = get(&s.http, "/v2");
    r.expect(200, JSON);
    let m = r.json();
    assert_eq!(m["name"], "despina");
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    let ext: Vec<&str> = m["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for e in [
        "classification",
        "model_repository",
        "system_shared_memory",
        "binary_tensor_data",
        "statistics",
        "trace",
        "logging",
    ] {
        assert!(ext.contains(&e), "{e} missing from {ext:?}");
    }
    assert!(r.text().starts_with(r#"{"name":"despina","version":"#));
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let s = server();
    for path in [
        "/v2/nope",
        "/",
        "/v1/models/simple",
        "/v2/models/simple/",
        "/v2/models/simple/versions/x/ready",
        "/v2/models/simple/versions/-1/ready",
        "/v2/models/simple/versions/1/trace/setting",
        "/v2/repository/models/simple/reload",
    ] {
        let r = get(&s.http, path);
        r.expect(404, PLAIN);
        assert_eq!(r.error(), "Not Found", "{path}");
    }
    for (method, path, ct) in [
        ("POST", "/v2/health/live", PLAIN),
        ("PUT", "/v2/health/ready", PLAIN),
        ("GET", "/v2/models/simple/infer", PLAIN),
        ("POST", "/v2/models/simple/ready", PLAIN),
        ("DELETE", "/v2/models/simple", JSON),
        ("POST", "/v2/models/simple", JSON),
        ("POST", "/v2", JSON),
        ("GET", "/v2/repository/index", JSON),
        ("GET", "/v2/repository/models/simple/load", JSON),
        ("GET", "/v2/models/simple/generate", JSON),
        ("POST", "/v2/models/simple/config", JSON),
        ("POST", "/v2/models/stats", JSON),
        ("DELETE", "/v2/logging", JSON),
        ("PUT", "/v2/trace/setting", JSON),
        ("POST", "/v2/systemsharedmemory/status", JSON),
        ("GET", "/v2/systemsharedmemory/region/r/register", JSON),
        ("GET", "/v2/cudasharedmemory/unregister", JSON),
    ] {
        let r = request(&s.http, method, path, &[], b"");
        r.expect(405, ct);
        assert_eq!(r.error(), "Method Not Allowed", "{method} {path}");
    }
}

#[test]
fn model_readiness() {
    let s = server();
    for path in [
        "/v2/models/simple/ready",
        "/v2/models/simple/versions/1/ready",
        "/v2/models/versioned/versions/2/ready",
    ] {
        get(&s.http, path).expect(200, PLAIN);
    }
    for path in [
        "/v2/models/nope/ready",
        "/v2/models/simple/versions/2/ready",
        "/v2/models/versioned/versions/3/ready",
        "/v2/models/simple/versions/0/ready",
    ] {
        let r = get(&s.http, path);
        r.expect(400, PLAIN);
        assert_eq!(r.error(), "Model version not ready", "{path}");
    }
    let r = get(
        &s.http,
        "/v2/models/simple/versions/99999999999999999999/ready",
    );
    r.expect(400, PLAIN);
    assert_eq!(
        r.error(),
        "failed to get model version from specified version string '99999999999999999999' (details: stol), version should be an integral value > 0"
    );
}

#[test]
fn model_metadata_and_config() {
    let s = server();
    let r = get(&s.http, "/v2/models/simple");
    r.expect(200, JSON);
    assert_eq!(
        r.text(),
        concat!(
            r#"{"name":"simple","versions":["1"],"platform":"add_sub","inputs":[{"name":"INPUT0","datatype":"INT32","shape":[-1,16]},"#,
            r#"{"name":"INPUT1","datatype":"INT32","shape":[-1,16]}],"outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[-1,16]},"#,
            r#"{"name":"OUTPUT1","datatype":"INT32","shape":[-1,16]}]}"#
        )
    );
    assert_eq!(
        get(&s.http, "/v2/models/versioned").json()["versions"],
        json!(["1", "2"])
    );
    // A versioned request describes that version only, as Triton does.
    assert_eq!(
        get(&s.http, "/v2/models/versioned/versions/2").json()["versions"],
        json!(["2"])
    );
    assert_eq!(
        get(&s.http, "/v2/models/square_int32").json()["inputs"],
        json!([{"name": "IN", "datatype": "INT32", "shape": [1]}])
    );
    for (path, msg) in [
        (
            "/v2/models/nope",
            "Request for unknown model: 'nope' is not found",
        ),
        (
            "/v2/models/simple/versions/7",
            "Request for unknown model: 'simple' version 7 is not found",
        ),
        (
            "/v2/models/simple/versions/0",
            "Request for unknown model: 'simple' version 0 is not found",
        ),
        (
            "/v2/models/versioned/versions/3",
            "Request for unknown model: 'versioned' version 3 is not found",
        ),
        (
            "/v2/models/nope/config",
            "Request for unknown model: 'nope' is not found",
        ),
        (
            "/v2/models/versioned/versions/3/config",
            "Request for unknown model: 'versioned' version 3 is not found",
        ),
    ] {
        let r = get(&s.http, path);
        r.expect(404, JSON);
        assert_eq!(r.error(), msg);
    }
    let r = get(&s.http, "/v2/models/simple/config");
    r.expect(200, JSON);
    let c = r.json();
    assert_eq!(c["name"], "simple");
    assert_eq!(c["max_batch_size"], 8);
    assert_eq!(c["input"][0]["name"], "INPUT0");
    assert_eq!(c["input"][0]["data_type"], "TYPE_INT32");
    assert_eq!(c["input"][0]["dims"], json!([16]));
    assert_eq!(c["output"][1]["name"], "OUTPUT1");
    assert_eq!(
        get(&s.http, "/v2/models/versioned/versions/1/config").json()["name"],
        "versioned"
    );
}

fn stats_of(s: &TestServer, path: &str) -> Value {
    let r = get(&s.http, path);
    r.expect(200, JSON);
    r.json()["model_stats"][0].clone()
}

#[test]
fn statistics_count_exactly_the_requests_sent() {
    let s = server();
    let before = stats_of(&s, "/v2/models/simple/stats");
    assert_eq!(before["name"], "simple");
    assert_eq!(before["version"], "1");
    for k in ["last_inference", "inference_count", "execution_count"] {
        assert_eq!(before[k], 0, "{k}");
    }
    assert_eq!(
        before["inference_stats"]["success"],
        json!({"count": 0, "ns": 0})
    );
    assert_eq!(before["batch_stats"], json!([]));
    assert_eq!(before["memory_usage"], json!([]));
    assert_eq!(before["response_stats"], json!({}));

    for _ in 0..3 {
        post_json(&s.http, "/v2/models/simple/infer", &simple_request()).expect(200, JSON);
    }
    let mut batch2 = simple_request();
    for i in 0..2 {
        let data: Vec<Value> = batch2["inputs"][i]["data"]
            .as_array()
            .unwrap()
            .iter()
            .chain(batch2["inputs"][i]["data"].as_array().unwrap())
            .cloned()
            .collect();
        batch2["inputs"][i]["data"] = json!(data);
        batch2["inputs"][i]["shape"] = json!([2, 16]);
    }
    post_json(&s.http, "/v2/models/simple/infer", &batch2).expect(200, JSON);
    // A request refused by validation never reaches the model and is not counted.
    post_json(&s.http, "/v2/models/simple/infer", &json!({"inputs": []})).expect(400, JSON);

    let after = stats_of(&s, "/v2/models/simple/versions/1/stats");
    assert_eq!(after["inference_count"], 5);
    assert_eq!(after["execution_count"], 4);
    assert_eq!(after["inference_stats"]["success"]["count"], 4);
    assert_eq!(after["inference_stats"]["fail"]["count"], 0);
    assert_eq!(after["inference_stats"]["compute_infer"]["count"], 4);
    assert!(after["last_inference"].as_u64().unwrap() > 0);
    let batches = after["batch_stats"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        (
            batches[0]["batch_size"].as_u64(),
            batches[0]["compute_infer"]["count"].as_u64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(
        (
            batches[1]["batch_size"].as_u64(),
            batches[1]["compute_infer"]["count"].as_u64()
        ),
        (Some(2), Some(1))
    );
    // Triton's field order.
    let text = get(&s.http, "/v2/models/simple/stats").text();
    let order = [
        "\"name\"",
        "\"version\"",
        "\"last_inference\"",
        "\"inference_count\"",
        "\"execution_count\"",
        "\"inference_stats\"",
        "\"response_stats\"",
        "\"batch_stats\"",
        "\"memory_usage\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");

    let all = get(&s.http, "/v2/models/stats").json();
    let names: Vec<&str> = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in ["add_sub", "simple", "square_int32", "versioned"] {
        assert!(names.contains(&m), "{m} in {names:?}");
    }
    assert_eq!(
        get(&s.http, "/v2/models/versioned/stats").json()["model_stats"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = get(&s.http, "/v2/models/nope/stats");
    r.expect(400, JSON);
    assert_eq!(r.error(), "requested model 'nope' is not available");
    let r = get(&s.http, "/v2/models/versioned/versions/3/stats");
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "requested model version is not available for model 'versioned'"
    );
}

fn index(s: &TestServer, body: &[u8]) -> Vec<Value> {
    let r = post(&s.http, "/v2/repository/index", body);
    r.expect(200, JSON);
    r.json().as_array().unwrap().clone()
}

fn entry(idx: &[Value], name: &str) -> Vec<Value> {
    idx.iter().filter(|e| e["name"] == name).cloned().collect()
}

/// Waits (bounded) until the index shows `name` in `state`.
fn wait_state(s: &TestServer, name: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = entry(&index(s, b""), name);
        if e.first().is_some_and(|e| e["state"] == state) {
            return e[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {state}: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn repository_index_and_control_round_trip() {
    let s = explicit();
    let idx = index(&s, b"");
    assert_eq!(
        entry(&idx, "simple"),
        vec![json!({"name": "simple", "version": "1", "state": "READY"})]
    );
    assert_eq!(entry(&idx, "versioned").len(), 2);
    assert_eq!(index(&s, br#"{"ready":true}"#).len(), idx.len());
    assert_eq!(index(&s, b"{}").len(), idx.len());
    assert!(index(&s, b"[1]").len() == idx.len());

    let r = post(&s.http, "/v2/repository/models/simple_int8/unload", b"");
    r.expect(200, JSON);
    assert!(r.body.is_empty());
    get(&s.http, "/v2/models/simple_int8/ready").expect(400, PLAIN);
    let e = wait_state(&s, "simple_int8", "UNAVAILABLE");
    assert_eq!(
        e,
        json!({"name": "simple_int8", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"})
    );
    assert!(entry(&index(&s, br#"{"ready": true}"#), "simple_int8").is_empty());
    let r = post_json(
        &s.http,
        "/v2/models/simple_int8/infer",
        &json!({"inputs": []}),
    );
    r.expect(404, PLAIN);
    assert_eq!(
        r.error(),
        "Request for unknown model: 'simple_int8' has no available versions"
    );

    post(&s.http, "/v2/repository/models/simple_int8/load", b"").expect(200, JSON);
    get(&s.http, "/v2/models/simple_int8/ready").expect(200, PLAIN);
    assert_eq!(entry(&index(&s, b""), "simple_int8")[0]["state"], "READY");
    let body = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT8", "shape": [1, 16], "data": vec![3; 16]},
        {"name": "INPUT1", "datatype": "INT8", "shape": [1, 16], "data": vec![1; 16]},
    ]});
    assert_eq!(
        post_json(&s.http, "/v2/models/simple_int8/infer", &body).json()["outputs"][0]["data"],
        json!(vec![4; 16])
    );

    // unload_dependents is accepted; unknown models unload without error, as in Triton.
    post_json(
        &s.http,
        "/v2/repository/models/simple_int8/unload",
        &json!({"parameters": {"unload_dependents": true}}),
    )
    .expect(200, JSON);
    post(&s.http, "/v2/repository/models/does_not_exist/unload", b"").expect(200, JSON);
    wait_state(&s, "simple_int8", "UNAVAILABLE");
    post(&s.http, "/v2/repository/models/simple_int8/load", b"").expect(200, JSON);

    for (path, body, status, msg) in [
        (
            "/v2/repository/models/does_not_exist/load",
            &b""[..],
            500,
            "failed to load 'does_not_exist', failed to poll from model repository",
        ),
        (
            "/v2/repository/index",
            b"{not json",
            500,
            "failed to parse the request JSON buffer: Missing a name for object member. at 1",
        ),
        (
            "/v2/repository/index",
            br#"{"ready":1}"#,
            500,
            "attempt to access JSON non-boolean as boolean",
        ),
        (
            "/v2/repository/models/simple/load",
            b"{oops",
            500,
            "failed to parse the request JSON buffer: Missing a name for object member. at 1",
        ),
        (
            "/v2/repository/models/simple/load",
            br#"{"parameters":{"config":{"name":"x"}}}"#,
            500,
            "attempt to access JSON non-string as string",
        ),
        (
            "/v2/repository/models/simple/load",
            br#"{"parameters":[1]}"#,
            500,
            "attempt to get members for non-object",
        ),
        (
            "/v2/repository/models/simple/unload",
            br#"{"parameters":{"unload_dependents":"x"}}"#,
            500,
            "Unable to parse 'unload_dependents': attempt to access JSON non-boolean as boolean",
        ),
        (
            "/v2/repository/other/models/simple/load",
            b"",
            501,
            "'repository_name' specification is not supported",
        ),
        (
            "/v2/repository/models/simple/load",
            br#"{"parameters":{"foo":"bar"}}"#,
            400,
            "failed to load 'simple': unexpected parameter 'foo': only 'config' and 'file:<version>/<name>' are accepted",
        ),
    ] {
        let r = post(&s.http, path, body);
        r.expect(status, JSON);
        assert_eq!(r.error(), msg, "{path} {}", String::from_utf8_lossy(body));
    }
    // The repository name is ignored by the index, as in Triton.
    assert_eq!(
        post(&s.http, "/v2/repository/other/index", b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        index(&s, b"").len()
    );
    get(&s.http, "/v2/models/simple/ready").expect(200, PLAIN);
}

#[test]
fn model_control_needs_explicit_mode() {
    let s = server();
    for action in ["load", "unload"] {
        let r = post(
            &s.http,
            &format!("/v2/repository/models/simple/{action}"),
            b"",
        );
        r.expect(503, JSON);
        assert_eq!(
            r.error(),
            "explicit model load / unload is not allowed if polling is enabled"
        );
    }
    get(&s.http, "/v2/models/simple/ready").expect(200, PLAIN);
}

fn identity_config(max_batch: u32) -> String {
    json!({
        "name": "identity_fp32", "backend": "identity", "max_batch_size": max_batch,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
    })
    .to_string()
}

fn identity_request(rows: usize) -> Value {
    json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [rows, 2], "data": vec![1.5; rows * 2]}]})
}

#[test]
fn load_with_config_and_file_overrides() {
    let s = explicit();
    let r = post_json(
        &s.http,
        "/v2/repository/models/identity_fp32/load",
        &json!({"parameters": {"config": identity_config(2)}}),
    );
    r.expect(200, JSON);
    assert_eq!(
        get(&s.http, "/v2/models/identity_fp32/config").json()["max_batch_size"],
        2
    );
    post_json(
        &s.http,
        "/v2/models/identity_fp32/infer",
        &identity_request(2),
    )
    .expect(200, JSON);
    let r = post_json(
        &s.http,
        "/v2/models/identity_fp32/infer",
        &identity_request(3),
    );
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "[request id: <id_unknown>] inference request batch-size must be <= 2 for 'identity_fp32'"
    );
    // A plain load goes back to the repository's config.
    post(&s.http, "/v2/repository/models/identity_fp32/load", b"").expect(200, JSON);
    assert_eq!(
        get(&s.http, "/v2/models/identity_fp32/config").json()["max_batch_size"],
        8
    );

    // File overrides: the model loads from a fresh folder holding only these files.
    let cfg = identity_config(4).replace("\"identity_fp32\"", "\"scratch_copy\"");
    let body = json!({"parameters": {"config": cfg, "file:1/notes.txt": "aGVsbG8="}});
    post_json(&s.http, "/v2/repository/models/scratch_copy/load", &body).expect(200, JSON);
    get(&s.http, "/v2/models/scratch_copy/ready").expect(200, PLAIN);
    let out = post_json(
        &s.http,
        "/v2/models/scratch_copy/infer",
        &identity_request(1),
    )
    .json();
    assert_eq!(out["model_name"], "scratch_copy");
    assert_eq!(out["outputs"][0]["data"], json!([1.5, 1.5]));

    for (body, msg) in [
        (
            json!({"parameters": {"config": cfg, "file:1/notes.txt": "!!not base64!!"}}),
            "failed to load 'scratch_copy': parameter 'file:1/notes.txt' is not valid base64: ",
        ),
        (
            json!({"parameters": {"config": "{not json"}}),
            "failed to load 'scratch_copy': the 'config' parameter is not a valid model configuration: ",
        ),
        (
            json!({"parameters": {"config": cfg, "file:../escape.txt": "aGk="}}),
            "invalid file override path '../escape.txt': '..' is not allowed",
        ),
    ] {
        let r = post_json(&s.http, "/v2/repository/models/scratch_copy/load", &body);
        r.expect(400, JSON);
        assert!(
            r.error().starts_with(msg),
            "{} does not start with {msg}",
            r.error()
        );
    }
    // Refused loads leave the serving version alone.
    assert_eq!(
        post_json(
            &s.http,
            "/v2/models/scratch_copy/infer",
            &identity_request(1)
        )
        .status,
        200
    );
}

#[test]
fn failed_load_keeps_its_reason_in_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("broken");
    std::fs::create_dir_all(m.join("1")).unwrap();
    std::fs::write(
        m.join("config.pbtxt"),
        "name: \"broken\"\nbackend: \"identity\"\nmax_batch_size: 0\ninput [ { name: \"X\" data_type: TYPE_FP32 dims: [ 2 ] } ]\noutput [ { name: \"X\" data_type: TYPE_BOGUS dims: [ 2 ] } ]\n",
    )
    .unwrap();
    let s = TestServer::start_with(
        &[&test_models(), dir.path()],
        &["--model-control-mode", "explicit", "--load-model", "simple"],
    );
    assert_eq!(
        entry(&index(&s, b""), "broken"),
        vec![json!({"name": "broken"})]
    );
    let r = post(&s.http, "/v2/repository/models/broken/load", b"");
    r.expect(400, JSON);
    assert!(
        r.error().starts_with("load failed for model 'broken': "),
        "{}",
        r.error()
    );
    let e = &entry(&index(&s, b""), "broken")[0];
    assert_eq!(e["state"], "UNAVAILABLE");
    assert!(!e["reason"].as_str().unwrap().is_empty());
    get(&s.http, "/v2/models/broken/ready").expect(400, PLAIN);
    get(&s.http, "/v2/models/simple/ready").expect(200, PLAIN);
}

#[test]
fn system_shared_memory_registration() {
    let s = server();
    let key = format!("/despina_http_api_{}", std::process::id());
    let _shm = Shm::new(&key, 256);
    let r = get(&s.http, "/v2/systemsharedmemory/status");
    r.expect(200, JSON);
    assert_eq!(r.text(), "[]");
    let reg = |region: &str, body: Value| {
        post_json(
            &s.http,
            &format!("/v2/systemsharedmemory/region/{region}/register"),
            &body,
        )
    };
    let r = reg("r0", json!({"key": key, "offset": 0, "byte_size": 128}));
    r.expect(200, JSON);
    assert!(r.body.is_empty());
    reg("r1", json!({"key": key, "offset": 128, "byte_size": 128})).expect(200, JSON);
    let r = get(&s.http, "/v2/systemsharedmemory/region/r1/status");
    r.expect(200, JSON);
    assert_eq!(
        r.text(),
        format!(r#"[{{"name":"r1","key":"{key}","offset":128,"byte_size":128}}]"#)
    );
    assert_eq!(
        get(&s.http, "/v2/systemsharedmemory/status")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    for (region, body, status, msg) in [
        (
            "r0",
            json!({"key": key, "offset": 0, "byte_size": 8}),
            400,
            "shared memory region 'r0' already in manager".to_string(),
        ),
        (
            "r2",
            json!({}),
            400,
            "Shared memory register request has no 'key' field".into(),
        ),
        (
            "r2",
            json!({"key": key}),
            400,
            "Shared memory register request has no 'byte_size' field".into(),
        ),
        (
            "r2",
            json!({"key": 5, "byte_size": 8}),
            500,
            "attempt to access JSON non-string as string".into(),
        ),
        (
            "r2",
            json!({"key": key, "offset": -1, "byte_size": 8}),
            500,
            "attempt to access JSON non-unsigned-integer as unsigned-integer".into(),
        ),
        (
            "r2",
            json!({"key": key, "byte_size": "8"}),
            500,
            "attempt to access JSON non-unsigned-integer as unsigned-integer".into(),
        ),
    ] {
        let r = reg(region, body.clone());
        r.expect(status, JSON);
        assert_eq!(r.error(), msg, "{body}");
    }
    let r = post(&s.http, "/v2/systemsharedmemory/region/r2/register", b"[1,");
    r.expect(500, JSON);
    assert_eq!(
        r.error(),
        "failed to parse the request JSON buffer: Invalid value. at 3"
    );
    let r = post_json(
        &s.http,
        "/v2/systemsharedmemory/register",
        &json!({"key": key, "byte_size": 8}),
    );
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "'region name' is necessary to register system shared memory region"
    );
    let r = get(&s.http, "/v2/systemsharedmemory/region/nope/status");
    r.expect(404, JSON);
    assert_eq!(
        r.error(),
        "Unable to find system shared memory region: 'nope'"
    );

    post(&s.http, "/v2/systemsharedmemory/region/r0/unregister", b"").expect(200, JSON);
    post(
        &s.http,
        "/v2/systemsharedmemory/region/nope/unregister",
        b"",
    )
    .expect(200, JSON);
    assert_eq!(
        get(&s.http, "/v2/systemsharedmemory/status")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    post(&s.http, "/v2/systemsharedmemory/unregister", b"").expect(200, JSON);
    assert_eq!(get(&s.http, "/v2/systemsharedmemory/status").text(), "[]");
}

#[test]
fn inference_through_system_shared_memory() {
    let s = server();
    let key = format!("/despina_http_infer_{}", std::process::id());
    let shm = Shm::new(&key, 512);
    shm.write(0, &le_i32(&(0..16).collect::<Vec<_>>()));
    shm.write(64, &le_i32(&[1; 16]));
    post_json(
        &s.http,
        "/v2/systemsharedmemory/region/in/register",
        &json!({"key": key, "offset": 0, "byte_size": 128}),
    )
    .expect(200, JSON);
    post_json(
        &s.http,
        "/v2/systemsharedmemory/region/out/register",
        &json!({"key": key, "offset": 256, "byte_size": 256}),
    )
    .expect(200, JSON);
    let input = |name: &str, offset: u64, size: u64| {
        json!({"name": name, "datatype": "INT32", "shape": [1, 16],
               "parameters": {"shared_memory_region": "in", "shared_memory_offset": offset, "shared_memory_byte_size": size}})
    };
    let out_shm = |offset: u64, size: u64| json!({"shared_memory_region": "out", "shared_memory_offset": offset, "shared_memory_byte_size": size});
    let body = json!({
        "inputs": [input("INPUT0", 0, 64), input("INPUT1", 64, 64)],
        "outputs": [{"name": "OUTPUT0", "parameters": out_shm(16, 64)}, {"name": "OUTPUT1"}],
    });
    let r = post_json(&s.http, "/v2/models/simple/infer", &body);
    r.expect(200, JSON);
    // Outputs in shared memory come back without data, as Triton answers them.
    assert_eq!(
        r.text(),
        r#"{"model_name":"simple","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[1,16]},{"name":"OUTPUT1","datatype":"INT32","shape":[1,16],"data":[-1,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]}]}"#
    );
    assert_eq!(shm.read(256 + 16, 64), le_i32(&(1..17).collect::<Vec<_>>()));

    let cases = [
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", 100, 64)]}),
            400,
            JSON,
            "Invalid offset + byte size for shared memory region: 'in'",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", 128, 64)]}),
            400,
            JSON,
            "Invalid offset for shared memory region: 'in'",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", u64::MAX, 64)]}),
            400,
            JSON,
            "Invalid offset for shared memory region: 'in'",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", 64, 60)]}),
            400,
            JSON,
            "[request id: <id_unknown>] input byte size mismatch for input 'INPUT1' for model 'simple'. Expected 64, got 60",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "parameters": {"shared_memory_region": "nope", "shared_memory_byte_size": 64}}]}),
            404,
            JSON,
            "Unable to find shared memory region: 'nope'",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", 64, 64)], "outputs": [{"name": "OUTPUT0", "parameters": out_shm(240, 64)}]}),
            400,
            JSON,
            "Invalid offset + byte size for shared memory region: 'out'",
        ),
        (
            json!({"inputs": [input("INPUT0", 0, 64), input("INPUT1", 64, 64)], "outputs": [{"name": "OUTPUT0", "parameters": out_shm(0, 32)}]}),
            500,
            PLAIN,
            "shared memory size specified with the request for output 'OUTPUT0' (32 bytes) should be at least 64 bytes to hold the results",
        ),
    ];
    for (body, status, ct, msg) in cases {
        let r = post_json(&s.http, "/v2/models/simple/infer", &body);
        r.expect(status, ct);
        assert_eq!(r.error(), msg);
    }
    // Nothing was written by the refused requests.
    assert_eq!(shm.read(256, 16), vec![0; 16]);
}

#[test]
fn cuda_shared_memory_without_a_gpu() {
    let s = server();
    let r = get(&s.http, "/v2/cudasharedmemory/status");
    r.expect(200, JSON);
    assert_eq!(r.text(), "[]");
    let r = get(&s.http, "/v2/cudasharedmemory/region/nope/status");
    r.expect(404, JSON);
    assert_eq!(
        r.error(),
        "Unable to find cuda shared memory region: 'nope'"
    );
    let reg = |handle: &str| {
        post_json(
            &s.http,
            "/v2/cudasharedmemory/region/c0/register",
            &json!({"raw_handle": {"b64": handle}, "device_id": 0, "byte_size": 64}),
        )
    };
    let r = reg("AAAA");
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "'raw_handle' must be a valid base64 encoded cudaIpcMemHandle_t"
    );
    let r = reg(&format!("{}==", "A".repeat(86)));
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "failed to register shared memory region: invalid args"
    );
    let r = post_json(
        &s.http,
        "/v2/cudasharedmemory/region/c0/register",
        &json!({"device_id": 0, "byte_size": 64}),
    );
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "Shared memory register request has no 'raw_handle' field"
    );
    post(&s.http, "/v2/cudasharedmemory/unregister", b"").expect(200, JSON);
    post(&s.http, "/v2/cudasharedmemory/region/c0/unregister", b"").expect(200, JSON);
}

const DEFAULT_TRACE: &str = r#"{"trace_level":["OFF"],"trace_rate":"1000","trace_count":"-1","log_frequency":"0","trace_file":"","trace_mode":"triton"}"#;

#[test]
fn trace_settings() {
    let s = server();
    let r = get(&s.http, "/v2/trace/setting");
    r.expect(200, JSON);
    assert_eq!(r.text(), DEFAULT_TRACE);
    assert_eq!(
        get(&s.http, "/v2/models/simple/trace/setting").text(),
        DEFAULT_TRACE
    );

    let r = post_json(
        &s.http,
        "/v2/trace/setting",
        &json!({"trace_rate": "50", "trace_count": "5"}),
    );
    r.expect(200, JSON);
    assert_eq!(r.json()["trace_rate"], "50");
    assert_eq!(get(&s.http, "/v2/trace/setting").json()["trace_count"], "5");
    let r = post_json(
        &s.http,
        "/v2/models/simple/trace/setting",
        &json!({"log_frequency": "3"}),
    );
    assert_eq!(r.json()["log_frequency"], "3");
    assert_eq!(
        get(&s.http, "/v2/trace/setting").json()["log_frequency"],
        "0"
    );
    // null clears the model's own setting.
    let r = post_json(
        &s.http,
        "/v2/models/simple/trace/setting",
        &json!({"log_frequency": null}),
    );
    assert_eq!(r.json()["log_frequency"], "0");
    post_json(
        &s.http,
        "/v2/trace/setting",
        &json!({"trace_rate": null, "trace_count": null}),
    )
    .expect(200, JSON);
    assert_eq!(get(&s.http, "/v2/trace/setting").text(), DEFAULT_TRACE);

    for (path, body, status, msg) in [
        (
            "/v2/trace/setting",
            &br#"{"trace_file":"/tmp/x"}"#[..],
            501,
            "trace file location can not be updated through network protocol",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_rate":1}"#,
            500,
            "attempt to access JSON non-string as string",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_rate":"abc"}"#,
            400,
            "Unable to parse 'trace_rate', got: abc",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_level":"TIMESTAMPS"}"#,
            500,
            "attempt to access JSON non-array as array",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_level":["OFF","TIMESTAMPS"]}"#,
            400,
            "Expect only one trace level 'OFF' is specified",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_count":"-5"}"#,
            400,
            "Unable to parse 'trace_count'. Expecting value >= -1, got:-5",
        ),
        (
            "/v2/trace/setting",
            br#"{"trace_level":["TIMESTAMPS"],"trace_rate":"7"}"#,
            400,
            "Attempting to set invalid trace setting :trace file name is not given",
        ),
        (
            "/v2/trace/setting",
            b"",
            500,
            "failed to parse the request JSON buffer: The document is empty. at 0",
        ),
        (
            "/v2/models/nope/trace/setting",
            br#"{"trace_rate":"3"}"#,
            400,
            "Request for unknown model : nope",
        ),
    ] {
        let r = post(&s.http, path, body);
        r.expect(status, JSON);
        assert_eq!(r.error(), msg, "{}", String::from_utf8_lossy(body));
    }
    let r = get(&s.http, "/v2/models/nope/trace/setting");
    r.expect(400, JSON);
    assert_eq!(r.error(), "Request for unknown model : nope");
    // Nothing of the refused updates was applied.
    assert_eq!(get(&s.http, "/v2/trace/setting").text(), DEFAULT_TRACE);
}

/// Whether the binary takes Triton's `--trace-config triton,file=<path>` (wired in `main`).
#[test]
fn traces_are_written_once_enabled() {
    // Without a trace file tracing cannot be turned on, exactly as in Triton.
    let s = server();
    let r = post_json(
        &s.http,
        "/v2/trace/setting",
        &json!({"trace_level": ["TIMESTAMPS"], "trace_rate": "1"}),
    );
    r.expect(400, JSON);
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.json");
    let flag = format!("triton,file={}", file.display());
    let s = TestServer::start(&test_models(), &["--trace-config", &flag]);
    let r = post_json(
        &s.http,
        "/v2/trace/setting",
        &json!({"trace_level": ["TIMESTAMPS"], "trace_rate": "1"}),
    );
    r.expect(200, JSON);
    assert_eq!(r.json()["trace_level"], json!(["TIMESTAMPS"]));
    for _ in 0..3 {
        post_json(&s.http, "/v2/models/simple/infer", &simple_request()).expect(200, JSON);
    }
    post_json(
        &s.http,
        "/v2/trace/setting",
        &json!({"trace_level": ["OFF"]}),
    )
    .expect(200, JSON);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 3 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["model_name"], "simple");
        assert_eq!(l["model_version"], 1);
        let names: Vec<&str> = l["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for n in [
            "HTTP_RECV_START",
            "HTTP_RECV_END",
            "REQUEST_START",
            "QUEUE_START",
            "COMPUTE_START",
            "COMPUTE_INPUT_END",
            "COMPUTE_OUTPUT_START",
            "COMPUTE_END",
            "REQUEST_END",
            "HTTP_SEND_START",
            "HTTP_SEND_END",
        ] {
            assert!(names.contains(&n), "{n} missing in {names:?}");
        }
    }
}

#[test]
fn log_settings() {
    let s = server();
    let default = r#"{"log_file":"","log_info":true,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"default"}"#;
    let r = get(&s.http, "/v2/logging");
    r.expect(200, JSON);
    assert_eq!(r.text(), default);
    let r = post_json(
        &s.http,
        "/v2/logging",
        &json!({"log_verbose_level": 1, "log_info": null, "bogus": 1}),
    );
    r.expect(200, JSON);
    assert_eq!(r.json()["log_verbose_level"], 1);
    assert_eq!(get(&s.http, "/v2/logging").json()["log_verbose_level"], 1);
    for (body, status, msg) in [
        (
            &br#"{"log_verbose_level":-1}"#[..],
            500,
            "attempt to access JSON non-unsigned-integer as unsigned-integer",
        ),
        (
            br#"{"log_info":"yes"}"#,
            500,
            "attempt to access JSON non-boolean as boolean",
        ),
        (
            br#"{"log_format":"xml"}"#,
            503,
            "invalid argument for --log_format, got: xml",
        ),
        (
            br#"{"log_file":"/tmp/a"}"#,
            501,
            "log file location can not be updated through network protocol",
        ),
        (
            b"",
            500,
            "failed to parse the request JSON buffer: The document is empty. at 0",
        ),
    ] {
        let r = post(&s.http, "/v2/logging", body);
        r.expect(status, JSON);
        assert_eq!(r.error(), msg);
    }
    post_json(&s.http, "/v2/logging", &json!({"log_verbose_level": 0})).expect(200, JSON);
    assert_eq!(get(&s.http, "/v2/logging").text(), default);
}
