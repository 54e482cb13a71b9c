//! OpenTelemetry trace export through the real server: a sampled request arrives at a
//! collector (a loopback HTTP listener here) as Triton's three spans, in the caller's trace.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{TestServer, test_models};

/// Accepts POSTs on a loopback port and hands each body over.
fn collector() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(20) {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (addr, rx)
}

#[test]
fn sampled_requests_are_exported_as_spans_in_the_callers_trace() {
    let (addr, bodies) = collector();
    let url = format!("opentelemetry,url={addr}/v1/traces");
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode=explicit",
            "--load-model=simple",
            "--trace-config=mode=opentelemetry",
            &format!("--trace-config={url}"),
            "--trace-config=rate=1",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config=opentelemetry,bsp_schedule_delay=100",
            "--trace-config=opentelemetry,resource=deployment=test",
        ],
    );
    let input = |name: &str| {
        format!(
            r#"{{"name":"{name}","datatype":"INT32","shape":[1,16],"data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}}"#
        )
    };
    let body = format!(r#"{{"inputs":[{},{}]}}"#, input("INPUT0"), input("INPUT1"));
    let mut s = std::net::TcpStream::connect(&server.http).unwrap();
    write!(
        s,
        "POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let (head, body) = bodies
        .recv_timeout(Duration::from_secs(10))
        .expect("no export");
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rs = &v["resourceSpans"][0];
    let resource: Vec<(String, String)> = rs["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().into(),
                a["value"]["stringValue"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(resource.contains(&("service.name".into(), "triton-inference-server".into())));
    assert!(resource.contains(&("deployment".into(), "test".into())));
    let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("no span {n} in {spans:?}"))
    };
    let (front, model, compute) = (
        by_name("InferRequest"),
        by_name("simple"),
        by_name("compute"),
    );
    for s in [front, model, compute] {
        assert_eq!(s["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s["kind"], 2);
    }
    assert_eq!(front["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(model["parentSpanId"], front["spanId"]);
    assert_eq!(compute["parentSpanId"], model["spanId"]);
    let events = |s: &serde_json::Value| -> Vec<String> {
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        events(model),
        ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
    );
    assert_eq!(
        events(compute),
        [
            "COMPUTE_START",
            "COMPUTE_INPUT_END",
            "COMPUTE_OUTPUT_START",
            "COMPUTE_END"
        ]
    );
    assert_eq!(
        events(front),
        [
            "HTTP_RECV_START",
            "HTTP_RECV_END",
            "INFER_RESPONSE_COMPLETE",
            "HTTP_SEND_START",
            "HTTP_SEND_END"
        ]
    );
    let attr = |k: &str| {
        model["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(attr("triton.model_name")["stringValue"], "simple");
    assert_eq!(attr("triton.model_version")["intValue"], "1");
    let start: u64 = model["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u64 = model["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start <= end && start > 1_700_000_000_000_000_000);
}

#[test]
fn bad_opentelemetry_settings_stop_the_start() {
    let repo = tempfile::tempdir().unwrap();
    let stderr = common::refused_start(
        repo.path(),
        &["--trace-config", "opentelemetry,bsp_schedule_delay=soon"],
    );
    assert!(
        stderr.contains("bsp_schedule_delay must be a whole number"),
        "{stderr}"
    );
}
