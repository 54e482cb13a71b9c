//! ModelStreamInfer against the real binary: decoupled responses and final flags, several
//! requests in flight on one stream, errors inside the stream, sequences, a clean end on
//! half-close, cancellation when the client leaves, and a prompt end at shutdown.

mod common;
mod grpc_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use despina::proto::inference::infer_parameter::ParameterChoice as P;
use grpc_support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(20);

/// One open stream: requests go in through `tx`, answers come out of `rx`.
struct Stream {
    tx: Option<mpsc::Sender<pb::ModelInferRequest>>,
    rx: Streaming<pb::ModelStreamInferResponse>,
}

impl Stream {
    async fn open(c: &mut Client) -> Stream {
        let (tx, requests) = mpsc::channel(64);
        let rx = c
            .model_stream_infer(ReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Stream { tx: Some(tx), rx }
    }

    async fn send(&self, r: pb::ModelInferRequest) {
        self.tx.as_ref().unwrap().send(r).await.unwrap();
    }

    async fn next(&mut self) -> pb::ModelStreamInferResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("the stream is open")
    }

    /// Half-closes the request side.
    fn close(&mut self) {
        self.tx = None;
    }

    /// Whatever arrives before the stream ends, and how it ends.
    async fn rest(&mut self) -> (Vec<pb::ModelStreamInferResponse>, Result<(), tonic::Status>) {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.rx.message())
                .await
                .expect("the stream ends in time")
            {
                Ok(Some(m)) => got.push(m),
                Ok(None) => return (got, Ok(())),
                Err(s) => return (got, Err(s)),
            }
        }
    }
}

fn square(n: i32, id: &str, empty_final: bool) -> pb::ModelInferRequest {
    let mut r = request("square_int32", vec![ints("IN", "INT32", &[1], &[n])]);
    r.id = id.into();
    if empty_final {
        r.parameters = params(&[("triton_enable_empty_final_response", P::BoolParam(true))]);
    }
    r
}

fn is_final(r: &pb::ModelInferResponse) -> bool {
    bool_param(&r.parameters["triton_final_response"]).expect("triton_final_response is a bool")
}

/// A data response of `square_int32`: OUT = n, not final.
#[track_caller]
fn assert_square(m: &pb::ModelStreamInferResponse, id: &str, n: i32) {
    assert_eq!(m.error_message, "");
    let r = m.infer_response.as_ref().unwrap();
    assert_eq!(
        (
            r.id.as_str(),
            r.model_name.as_str(),
            r.model_version.as_str()
        ),
        (id, "square_int32", "1")
    );
    assert_eq!(
        (
            r.outputs.len(),
            r.outputs[0].name.as_str(),
            r.outputs[0].shape.as_slice()
        ),
        (1, "OUT", &[1i64][..])
    );
    assert_eq!(as_int32s(&r.raw_output_contents[0]), [n]);
    assert!(!is_final(r));
}

/// The bare final flag: id, model name, no outputs.
#[track_caller]
fn assert_bare_final(m: &pb::ModelStreamInferResponse, id: &str) {
    assert_eq!(m.error_message, "");
    let r = m.infer_response.as_ref().unwrap();
    assert_eq!(
        (
            r.id.as_str(),
            r.model_name.as_str(),
            r.model_version.as_str()
        ),
        (id, "square_int32", "")
    );
    assert!(r.outputs.is_empty() && r.raw_output_contents.is_empty());
    assert!(is_final(r));
    assert_eq!(r.parameters.len(), 1);
}

#[tokio::test]
async fn decoupled_responses_and_final_flags() {
    let server = start();
    let mut c = client(&server).await;
    let mut s = Stream::open(&mut c).await;

    for n in [1, 3, 10, 64] {
        let id = format!("sq{n}");
        s.send(square(n, &id, true)).await;
        for _ in 0..n {
            assert_square(&s.next().await, &id, n);
        }
        assert_bare_final(&s.next().await, &id);
    }
    s.send(square(0, "zero", true)).await;
    assert_bare_final(&s.next().await, "zero");

    // Without the empty final response only data responses come: nothing marks the end, so
    // half-close and check that nothing else arrives.
    s.send(square(0, "nothing", false)).await;
    s.send(square(2, "plain", false)).await;
    s.close();
    let (rest, end) = s.rest().await;
    assert!(end.is_ok(), "{end:?}");
    assert_eq!(rest.len(), 2);
    for m in &rest {
        assert_square(m, "plain", 2);
    }
}

#[tokio::test]
async fn concurrent_requests_on_one_stream() {
    let server = start();
    let mut c = client(&server).await;
    let mut s = Stream::open(&mut c).await;
    let counts = HashMap::from([("a", 2), ("b", 5), ("c", 1), ("d", 0), ("e", 33)]);
    let mut plain = simple_request();
    plain.id = "plain".into();
    s.send(plain).await;
    for (id, n) in &counts {
        s.send(square(*n, id, true)).await;
    }
    let mut seen: HashMap<String, i32> = HashMap::new();
    let mut finals = 0;
    let mut plain_answered = false;
    while finals < counts.len() || !plain_answered {
        let m = s.next().await;
        let r = m.infer_response.as_ref().unwrap();
        if r.id == "plain" {
            // A model that is not decoupled answers once, flagged final.
            assert!(is_final(r) && !plain_answered);
            assert_eq!(
                (r.model_name.as_str(), r.model_version.as_str()),
                ("simple", "1")
            );
            assert_eq!(
                as_int32s(&r.raw_output_contents[0]),
                (1..=16).collect::<Vec<i32>>()
            );
            plain_answered = true;
            continue;
        }
        let n = counts[r.id.as_str()];
        if is_final(r) {
            assert_bare_final(&m, &r.id);
            assert_eq!(
                seen.get(&r.id).copied().unwrap_or(0),
                n,
                "every response of {} precedes its final flag",
                r.id
            );
            finals += 1;
        } else {
            assert_square(&m, &r.id, n);
            *seen.entry(r.id.clone()).or_default() += 1;
        }
    }
    s.close();
    let (rest, end) = s.rest().await;
    assert!(rest.is_empty() && end.is_ok());
}

#[tokio::test]
async fn errors_travel_inside_the_stream() {
    let server = start();
    let mut c = client(&server).await;
    let mut s = Stream::open(&mut c).await;

    // The model's own error: final, with the request id and the model name.
    s.send(square(-1, "neg", true)).await;
    let m = s.next().await;
    assert_eq!(m.error_message, "IN must be in [0, 64], got -1");
    let r = m.infer_response.unwrap();
    assert_eq!(
        (
            r.id.as_str(),
            r.model_name.as_str(),
            r.model_version.as_str()
        ),
        ("neg", "square_int32", "")
    );
    assert!(is_final(&r) && r.outputs.is_empty());

    // Refusals before the model: only the request id.
    let mut unknown = simple_request();
    unknown.model_name = "nope".into();
    unknown.id = "u".into();
    let mut bad_input = request("square_int32", vec![ints("X", "INT32", &[1], &[2])]);
    bad_input.id = "w".into();
    let mut bad_shape = request(
        "simple",
        vec![
            ints("INPUT0", "INT32", &[1, 15], &[0; 15]),
            ints("INPUT1", "INT32", &[1, 16], &[1; 16]),
        ],
    );
    bad_shape.id = "b".into();
    let mut bad_version = square(1, "v", true);
    bad_version.model_version = "abc".into();
    let mut bad_flag = square(1, "f", false);
    bad_flag.parameters = params(&[("triton_enable_empty_final_response", P::Int64Param(1))]);
    let cases = [
        (unknown, "u", "Request for unknown model: 'nope' is not found".to_string()),
        (bad_input, "w", "unexpected inference input 'X' for model 'square_int32'".to_string()),
        (bad_shape, "b", "[request id: b] unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.".to_string()),
        (bad_version, "v", "failed to get model version from specified version string 'abc' (details: stol), version should be an integral value > 0".to_string()),
        (bad_flag, "f", "invalid value type for 'triton_enable_empty_final_response' parameter, expected bool_param.".to_string()),
    ];
    for (req, id, message) in cases {
        s.send(req).await;
        let m = s.next().await;
        assert_eq!(m.error_message, message);
        assert_eq!(
            m.infer_response,
            Some(pb::ModelInferResponse {
                id: id.into(),
                ..Default::default()
            })
        );
    }

    // The stream goes on.
    s.send(square(2, "after", true)).await;
    assert_square(&s.next().await, "after", 2);
    assert_square(&s.next().await, "after", 2);
    assert_bare_final(&s.next().await, "after");
    s.close();
    let (rest, end) = s.rest().await;
    assert!(rest.is_empty() && end.is_ok());
}

#[tokio::test]
async fn sequences_over_a_stream() {
    let server = start();
    let mut c = client(&server).await;
    let mut s = Stream::open(&mut c).await;
    let step = |id: P, tag: &str, value: i32, start: bool, end: bool| {
        let mut r = request(
            "sequence_accumulate",
            vec![ints("INPUT", "INT32", &[1, 1], &[value])],
        );
        r.id = tag.into();
        r.parameters = params(&[
            ("sequence_id", id),
            ("sequence_start", P::BoolParam(start)),
            ("sequence_end", P::BoolParam(end)),
        ]);
        r
    };
    // Two sequences interleaved, sent without waiting: the stream keeps each one's order.
    for (i, (start, end)) in [(true, false), (false, false), (false, false), (false, true)]
        .into_iter()
        .enumerate()
    {
        let i = i as i32 + 1;
        s.send(step(
            P::StringParam("abc".into()),
            &format!("s{i}"),
            i,
            start,
            end,
        ))
        .await;
        s.send(step(
            P::Int64Param(77),
            &format!("n{i}"),
            10 * i,
            start,
            end,
        ))
        .await;
    }
    s.close();
    let (got, end) = s.rest().await;
    assert!(end.is_ok());
    let mut sums: HashMap<String, i32> = HashMap::new();
    for m in &got {
        assert_eq!(m.error_message, "");
        let r = m.infer_response.as_ref().unwrap();
        assert!(is_final(r));
        assert_eq!(
            (r.model_name.as_str(), r.model_version.as_str()),
            ("sequence_accumulate", "1")
        );
        sums.insert(r.id.clone(), as_int32s(&r.raw_output_contents[0])[0]);
    }
    let want: HashMap<String, i32> = [
        ("s1", 1),
        ("s2", 3),
        ("s3", 6),
        ("s4", 10),
        ("n1", 10),
        ("n2", 30),
        ("n3", 60),
        ("n4", 100),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(sums, want);
}

/// Requests in flight when the client leaves are cancelled, not run.
#[tokio::test]
async fn client_leaving_cancels_requests_in_flight() {
    let repo = slow_batch_repo();
    let server = start_with_slow_batch(&repo, &[]);
    let mut c = client(&server).await;
    let mut s = Stream::open(&mut c).await;
    // One exchange first, so the stream is surely up.
    s.send(square(1, "up", true)).await;
    assert_square(&s.next().await, "up", 1);
    assert_bare_final(&s.next().await, "up");
    for i in 0..3 {
        s.send(slow_batch_request(&format!("slow{i}"))).await;
    }
    // Let the requests reach the queue, where they wait up to two seconds for a batch.
    wait_for_pending(&server, 3).await;
    drop(s);
    let stats = wait_for_stats(&mut c, "slow_batch", |st| counts(st).1 == 3).await;
    assert_eq!(
        (counts(&stats), stats.inference_count, stats.execution_count),
        ((0, 3), 0, 0)
    );
}

/// Waits until `slow_batch` has `n` requests queued, read from the metrics endpoint.
async fn wait_for_pending(server: &common::TestServer, n: u64) {
    let want =
        format!("nv_inference_pending_request_count{{model=\"slow_batch\",version=\"1\"}} {n}");
    for _ in 0..500 {
        if metrics(&server.metrics).await.lines().any(|l| l == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("slow_batch never had {n} pending requests");
}

/// GET /metrics over a plain HTTP/1.0 connection.
async fn metrics(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).await.unwrap();
    body
}

/// At shutdown a stream stops taking requests, answers those in flight, then ends; health
/// watchers see NOT_SERVING; the server exits promptly although the client keeps its stream.
#[tokio::test]
async fn shutdown_ends_streams_promptly() {
    use despina::proto::health::health_check_response::ServingStatus;
    use despina::proto::health::{HealthCheckRequest, health_client::HealthClient};

    let repo = slow_batch_repo();
    let mut server = start_with_slow_batch(&repo, &[]);
    let mut c = client(&server).await;
    let mut health = HealthClient::connect(server.grpc_url()).await.unwrap();
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let mut s = Stream::open(&mut c).await;
    s.send(square(1, "up", false)).await;
    assert_square(&s.next().await, "up", 1);
    s.send(slow_batch_request("in-flight")).await;
    wait_for_pending(&server, 1).await;

    let started = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        server.signal_and_wait(libc::SIGTERM, Duration::from_secs(30))
    });
    let (rest, end) = s.rest().await;
    assert_eq!(rest.len(), 1, "the request in flight is answered");
    let r = rest[0].infer_response.as_ref().unwrap();
    assert_eq!(
        (r.id.as_str(), as_fp32s(&r.raw_output_contents[0])),
        ("in-flight", vec![1.0, 2.0])
    );
    let end = end.expect_err("the server ends a stream the client kept open");
    assert_eq!(
        (end.code(), end.message()),
        (tonic::Code::Unavailable, "Server is shutting down")
    );

    let last = watch.message().await.unwrap().unwrap();
    assert_eq!(last.status, ServingStatus::NotServing as i32);
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch ends with the server"
    );

    let status = exit.await.unwrap().expect("despina exits");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
}
