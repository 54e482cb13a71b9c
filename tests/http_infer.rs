//! Inference over HTTP against the real binary: JSON and binary tensors, raw requests,
//! classification, compression both ways, versions, sequences, the generate extension, and
//! a catalogue of bad requests answered with Triton 2.51's status, message and content type,
//! after which the server still answers good requests.

mod common;
mod http_support;

use common::{TestServer, test_models};
use http_support::*;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const PLAIN: &str = "text/plain";
const OCTET: &str = "application/octet-stream";
const SSE: &str = "text/event-stream; charset=utf-8";

fn server() -> TestServer {
    TestServer::start(&test_models(), &[])
}

fn infer(s: &TestServer, model: &str, body: &Value) -> Resp {
    post_json(&s.http, &format!("/v2/models/{model}/infer"), body)
}

fn data(r: &Value, i: usize) -> Value {
    r["outputs"][i]["data"].clone()
}

const SIMPLE_ANSWER: &str = concat!(
    r#"{"model_name":"simple","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},"#,
    r#"{"name":"OUTPUT1","datatype":"INT32","shape":[1,16],"data":[-1,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]}]}"#
);

#[test]
fn json_tensors_of_each_model() {
    let s = server();
    let r = infer(&s, "simple", &simple_request());
    r.expect(200, JSON);
    assert_eq!(r.text(), SIMPLE_ANSWER);

    // Nested data is flattened whatever its nesting; the id and parameters are accepted.
    let mut nested = simple_request();
    nested["inputs"][0]["data"] = json!([(0..16).map(|i| json!([i])).collect::<Vec<_>>()]);
    nested["id"] = json!("my-request-42");
    nested["parameters"] = json!({"custom_string": "x", "custom_int": 3, "custom_bool": true, "priority": 1, "timeout": 10000000});
    let r = infer(&s, "simple", &nested).json();
    assert_eq!(r["id"], "my-request-42");
    assert_eq!(data(&r, 0), json!(simple_sum()));

    let int8 = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT8", "shape": [1, 16], "data": [127, -128, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 200]},
        {"name": "INPUT1", "datatype": "INT8", "shape": [1, 16], "data": vec![1; 16]},
    ]});
    let r = infer(&s, "simple_int8", &int8).json();
    assert_eq!(
        data(&r, 0),
        json!([-128, -127, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, -55])
    );
    assert_eq!(
        data(&r, 1),
        json!([126, 127, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -57])
    );

    let fp32 = json!({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1.5, 2.25, -3.0, 0.1]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [0.5, 0.25, 1, 0.2]},
    ]});
    let r = infer(&s, "add_sub", &fp32);
    assert!(
        r.text()
            .contains(r#""data":[2.0,2.5,-2.0,0.30000001192092896]"#),
        "{}",
        r.text()
    );
    assert!(
        r.text()
            .contains(r#""data":[1.0,2.0,-4.0,-0.10000000149011612]"#),
        "{}",
        r.text()
    );

    let strings = json!({"inputs": [
        {"name": "INPUT0", "datatype": "BYTES", "shape": [1, 16], "data": (0..16).map(|i| i.to_string()).collect::<Vec<_>>()},
        {"name": "INPUT1", "datatype": "BYTES", "shape": [1, 16], "data": vec!["1"; 16]},
    ]});
    let r = infer(&s, "simple_string", &strings).json();
    assert_eq!(
        data(&r, 0),
        json!((1..17).map(|i| i.to_string()).collect::<Vec<_>>())
    );
    assert_eq!(r["outputs"][1]["datatype"], "BYTES");

    let unicode = json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 4], "data": ["h\u{e9}llo", "", "\u{65e5}\u{672c}", "a b\tc\n\u{0}"]}]});
    let r = infer(&s, "simple_identity", &unicode);
    assert_eq!(
        r.text(),
        "{\"model_name\":\"simple_identity\",\"model_version\":\"1\",\"outputs\":[{\"name\":\"OUTPUT0\",\"datatype\":\"BYTES\",\"shape\":[1,4],\"data\":[\"h\u{e9}llo\",\"\",\"\u{65e5}\u{672c}\",\"a b\\tc\\n\\u0000\"]}]}"
    );

    // Base64-looking strings are plain strings to a BYTES input.
    let b64 = json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 1], "data": ["AAECAw=="]}]});
    assert_eq!(
        data(&infer(&s, "simple_identity", &b64).json(), 0),
        json!(["AAECAw=="])
    );

    // Requested outputs only, in the model's order; the first mention of a name counts.
    let mut one = simple_request();
    one["outputs"] =
        json!([{"name": "OUTPUT1"}, {"name": "OUTPUT1", "parameters": {"binary_data": true}}]);
    let r = infer(&s, "simple", &one);
    r.expect(200, JSON);
    assert_eq!(r.json()["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(data(&r.json(), 0), json!(simple_diff()));
    let mut both = simple_request();
    both["outputs"] = json!([{"name": "OUTPUT1"}, {"name": "OUTPUT0"}]);
    assert_eq!(infer(&s, "simple", &both).text(), SIMPLE_ANSWER);

    let zero =
        json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 0], "data": []}]});
    assert_eq!(
        infer(&s, "identity_fp32", &zero).text(),
        r#"{"model_name":"identity_fp32","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,0],"data":[]}]}"#
    );
}

#[test]
fn binary_tensors_in_and_out() {
    let s = server();
    let header = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
    ]});
    let mut tail = le_i32(&(0..16).collect::<Vec<_>>());
    tail.extend(le_i32(&[1; 16]));
    let r = post_binary(&s.http, "/v2/models/simple/infer", &header, &tail);
    r.expect(200, JSON);
    assert_eq!(r.text(), SIMPLE_ANSWER);

    // All outputs binary: JSON header, then the bytes in output order.
    let mut body = simple_request();
    body["parameters"] = json!({"binary_data_output": true});
    let r = infer(&s, "simple", &body);
    r.expect(200, OCTET);
    let (h, bin) = r.split();
    assert_eq!(
        h.to_string(),
        r#"{"model_name":"simple","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[1,16],"parameters":{"binary_data_size":64}},{"name":"OUTPUT1","datatype":"INT32","shape":[1,16],"parameters":{"binary_data_size":64}}]}"#
    );
    let mut want = le_i32(&(1..17).collect::<Vec<_>>());
    want.extend(le_i32(&(-1..15).collect::<Vec<_>>()));
    assert_eq!(bin, want);

    // Mixed: one binary, one JSON; an output's own binary_data:false beats binary_data_output.
    let mut mixed = simple_request();
    mixed["outputs"] =
        json!([{"name": "OUTPUT0", "parameters": {"binary_data": true}}, {"name": "OUTPUT1"}]);
    let (h, bin) = infer(&s, "simple", &mixed).split();
    assert_eq!(h["outputs"][0]["parameters"]["binary_data_size"], 64);
    assert_eq!(h["outputs"][1]["data"], json!(simple_diff()));
    assert_eq!(bin, le_i32(&(1..17).collect::<Vec<_>>()));
    let mut over = simple_request();
    over["parameters"] = json!({"binary_data_output": true});
    over["outputs"] = json!([{"name": "OUTPUT0", "parameters": {"binary_data": false}}, {"name": "OUTPUT1", "parameters": {"binary_data": false}}]);
    assert_eq!(infer(&s, "simple", &over).text(), SIMPLE_ANSWER);

    // A binary input next to a JSON one; the header length may be the whole body.
    let header = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": vec![1; 16]},
    ], "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]});
    let (h, bin) = post_binary(
        &s.http,
        "/v2/models/simple/infer",
        &header,
        &le_i32(&(0..16).collect::<Vec<_>>()),
    )
    .split();
    assert_eq!(h["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(bin, le_i32(&(1..17).collect::<Vec<_>>()));
    let whole = simple_request().to_string();
    let len = whole.len().to_string();
    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Inference-Header-Content-Length", &len)],
        whole.as_bytes(),
    );
    assert_eq!(r.text(), SIMPLE_ANSWER);

    // FP32 both ways, binary.
    let header = json!({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
    ], "parameters": {"binary_data_output": true}});
    let mut tail = le_f32(&[1.5, 2.5, 3.5, 4.5]);
    tail.extend(le_f32(&[0.5; 4]));
    let (_, bin) = post_binary(&s.http, "/v2/models/add_sub/infer", &header, &tail).split();
    let mut want = le_f32(&[2.0, 3.0, 4.0, 5.0]);
    want.extend(le_f32(&[1.0, 2.0, 3.0, 4.0]));
    assert_eq!(bin, want);

    // BYTES in Triton's serialized form, including bytes that are not UTF-8.
    let raw = serialized(&[b"\x00\xff\xfe", b"", b"plain"]);
    let header = json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 3], "parameters": {"binary_data_size": raw.len()}}],
                        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]});
    let (h, bin) = post_binary(&s.http, "/v2/models/simple_identity/infer", &header, &raw).split();
    assert_eq!(h["outputs"][0]["parameters"]["binary_data_size"], 20);
    assert_eq!(bin, raw);
    // Asked as JSON, BYTES that are not UTF-8 come back binary (JSON cannot carry them).
    let header = json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 3], "parameters": {"binary_data_size": raw.len()}}]});
    let r = post_binary(&s.http, "/v2/models/simple_identity/infer", &header, &raw);
    r.expect(200, OCTET);
    assert_eq!(r.split().1, raw);
    let strings = json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [2, 2], "data": ["a", "", "\u{fc}n\u{ef}", "zz"]}],
                         "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]});
    let (_, bin) = infer(&s, "simple_identity", &strings).split();
    assert_eq!(
        bin,
        serialized(&[b"a", b"", "\u{fc}n\u{ef}".as_bytes(), b"zz"])
    );
}

#[test]
fn raw_binary_requests() {
    let s = server();
    let body = le_f32(&[1.0, 2.0, 3.0, 4.0]);
    let r = request(
        &s.http,
        "POST",
        "/v2/models/identity_fp32/infer",
        &[("Inference-Header-Content-Length", "0")],
        &body,
    );
    r.expect(200, OCTET);
    let (h, bin) = r.split();
    assert_eq!(
        h.to_string(),
        r#"{"model_name":"identity_fp32","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,4],"parameters":{"binary_data_size":16}}]}"#
    );
    assert_eq!(bin, body);
    for (model, hdr, body) in [
        ("add_sub", Some("0"), le_f32(&[1.0; 4])),
        ("simple", None, Vec::new()),
    ] {
        let headers: Vec<(&str, &str)> = hdr
            .map(|h| ("Inference-Header-Content-Length", h))
            .into_iter()
            .collect();
        let r = request(
            &s.http,
            "POST",
            &format!("/v2/models/{model}/infer"),
            &headers,
            &body,
        );
        r.expect(400, JSON);
        assert_eq!(
            r.error(),
            format!(
                "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be deduced but got 2 inputs in '{model}' model configuration"
            )
        );
    }
}

#[test]
fn classification() {
    let s = server();
    let req = |count: Value, binary: bool, rows: Vec<Vec<f32>>| {
        let n = rows.len();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [n, 8], "data": flat}],
               "outputs": [{"name": "OUTPUT0", "parameters": {"classification": count, "binary_data": binary}}]})
    };
    let row = vec![0.1, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2];
    let r = infer(
        &s,
        "classify_fp32",
        &req(json!(3), false, vec![row.clone()]),
    );
    r.expect(200, JSON);
    assert_eq!(
        r.text(),
        r#"{"model_name":"classify_fp32","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"BYTES","shape":[1,3],"data":["0.900000:1:bravo","0.700000:3:delta","0.500000:5:foxtrot"]}]}"#
    );
    let r = infer(
        &s,
        "classify_fp32",
        &req(
            json!(2),
            false,
            vec![row.clone(), vec![8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]],
        ),
    )
    .json();
    assert_eq!(r["outputs"][0]["shape"], json!([2, 2]));
    assert_eq!(
        data(&r, 0),
        json!([
            "0.900000:1:bravo",
            "0.700000:3:delta",
            "8.000000:0:alpha",
            "7.000000:1:bravo"
        ])
    );
    let (h, bin) = infer(&s, "classify_fp32", &req(json!(2), true, vec![row.clone()])).split();
    assert_eq!(h["outputs"][0]["parameters"]["binary_data_size"], 40);
    assert_eq!(bin, serialized(&[b"0.900000:1:bravo", b"0.700000:3:delta"]));
    assert_eq!(
        data(
            &infer(
                &s,
                "classify_fp32",
                &req(json!(20), false, vec![row.clone()])
            )
            .json(),
            0
        )
        .as_array()
        .unwrap()
        .len(),
        8
    );
    let r = infer(
        &s,
        "classify_fp32",
        &req(json!(0), false, vec![row.clone()]),
    );
    assert_eq!(r.json()["outputs"][0]["datatype"], "FP32");
    let r = infer(
        &s,
        "classify_fp32",
        &req(json!(-1), false, vec![row.clone()]),
    );
    r.expect(500, JSON);
    assert_eq!(
        r.error(),
        "Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer"
    );
    let mut unlabelled = simple_request();
    unlabelled["outputs"] = json!([{"name": "OUTPUT0", "parameters": {"classification": 2}}]);
    assert_eq!(
        data(&infer(&s, "simple", &unlabelled).json(), 0),
        json!(["16:15", "15:14"])
    );
}

#[test]
fn compression_both_ways() {
    let s = server();
    let body = simple_request().to_string().into_bytes();
    for (enc, packed) in [("gzip", gzip(&body)), ("deflate", zlib(&body))] {
        let r = request(
            &s.http,
            "POST",
            "/v2/models/simple/infer",
            &[("Content-Encoding", enc)],
            &packed,
        );
        r.expect(200, JSON);
        assert_eq!(r.text(), SIMPLE_ANSWER);
    }
    for (accept, got) in [
        ("gzip", Some("gzip")),
        ("deflate", Some("deflate")),
        ("gzip, deflate", Some("gzip")),
        ("gzip;q=0.5, deflate", Some("deflate")),
        ("identity", None),
        ("br", None),
    ] {
        let r = request(
            &s.http,
            "POST",
            "/v2/models/simple/infer",
            &[("Accept-Encoding", accept)],
            &body,
        );
        r.expect(200, JSON);
        assert_eq!(r.header("content-encoding"), got, "{accept}");
        let plain = match got {
            Some("gzip") => gunzip(&r.body),
            Some(_) => unzlib(&r.body),
            None => r.body.clone(),
        };
        assert_eq!(String::from_utf8(plain).unwrap(), SIMPLE_ANSWER);
    }
    // Binary answers compress whole; the header length counts the uncompressed JSON.
    let mut bin = simple_request();
    bin["parameters"] = json!({"binary_data_output": true});
    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Accept-Encoding", "gzip")],
        bin.to_string().as_bytes(),
    );
    r.expect(200, OCTET);
    let plain = gunzip(&r.body);
    let n: usize = r
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(&plain[n..n + 64], &le_i32(&(1..17).collect::<Vec<_>>())[..]);
    // Other answers are not compressed.
    assert_eq!(
        request(&s.http, "GET", "/v2", &[("Accept-Encoding", "gzip")], b"")
            .header("content-encoding"),
        None
    );

    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Content-Encoding", "br")],
        &body,
    );
    r.expect(501, PLAIN);
    assert_eq!(r.error(), "Unsupported compression type");
    assert_eq!(r.header("accept-encoding"), Some("gzip, deflate"));
    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Content-Encoding", "gzip")],
        b"not gzip at all",
    );
    r.expect(400, PLAIN);
    assert!(
        r.error()
            .starts_with("failed to decompress the request body (gzip): "),
        "{}",
        r.error()
    );
}

#[test]
fn size_limits_and_compression_bombs() {
    let s = TestServer::start(&test_models(), &["--http-max-input-size", "65536"]);
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    assert!(bomb.len() < 100 * 1024);
    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Content-Encoding", "gzip")],
        &bomb,
    );
    r.expect(400, PLAIN);
    assert_eq!(
        r.error(),
        "Decompressed data size exceeds the maximum allowed value of 65536 bytes. Use --http-max-input-size to increase the limit."
    );
    let big = vec![b' '; 70_000];
    let r = post(&s.http, "/v2/models/simple/infer", &big);
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "request body exceeds the maximum allowed input size of 65536 bytes. Use --http-max-input-size to increase the limit."
    );
    // Chunked bodies have no declared length: the cap holds while reading.
    let mut chunked = Vec::new();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        chunked.extend_from_slice(&[b' '; 4096]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = request(
        &s.http,
        "POST",
        "/v2/models/simple/infer",
        &[("Transfer-Encoding", "chunked")],
        &chunked,
    );
    r.expect(400, JSON);
    assert!(
        r.error()
            .starts_with("request body exceeds the maximum allowed input size")
    );
    // A JSON tensor may not decode to more than the limit either.
    let r = infer(
        &s,
        "identity_fp32",
        &json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 100000], "data": [1]}]}),
    );
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "JSON input 'INPUT0' has a byte_size (400000 bytes) that exceeds the maximum allowed value of 65536 bytes. Use --http-max-input-size to increase the limit."
    );
    assert_eq!(infer(&s, "simple", &simple_request()).text(), SIMPLE_ANSWER);
}

#[test]
fn versions_and_sequences() {
    let s = server();
    let body = json!({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 3], "data": [10, 20, 30]}]});
    let r = post_json(&s.http, "/v2/models/versioned/versions/1/infer", &body).json();
    assert_eq!(
        (r["model_version"].clone(), data(&r, 0)),
        (json!("1"), json!([11, 21, 31]))
    );
    let r = post_json(&s.http, "/v2/models/versioned/versions/2/infer", &body).json();
    assert_eq!(
        (r["model_version"].clone(), data(&r, 0)),
        (json!("2"), json!([12, 22, 32]))
    );
    assert_eq!(infer(&s, "versioned", &body).json()["model_version"], "2");
    let r = post_json(&s.http, "/v2/models/versioned/versions/3/infer", &body);
    r.expect(404, PLAIN);
    assert_eq!(
        r.error(),
        "Request for unknown model: 'versioned' version 3 is not found"
    );

    let step = |v: i32, params: Value| {
        infer(
            &s,
            "sequence_accumulate",
            &json!({"inputs": [{"name": "INPUT", "datatype": "INT32", "shape": [1, 1], "data": [v]}], "parameters": params}),
        )
    };
    assert_eq!(
        data(
            &step(5, json!({"sequence_id": 7001, "sequence_start": true})).json(),
            0
        ),
        json!([5])
    );
    assert_eq!(
        data(&step(3, json!({"sequence_id": 7001})).json(), 0),
        json!([8])
    );
    assert_eq!(
        data(
            &step(2, json!({"sequence_id": 7001, "sequence_end": true})).json(),
            0
        ),
        json!([10])
    );
    assert_eq!(
        data(
            &step(
                4,
                json!({"sequence_id": "seq-a", "sequence_start": true, "sequence_end": true})
            )
            .json(),
            0
        ),
        json!([4])
    );
    let r = step(1, json!({"sequence_id": 7001}));
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "inference request for sequence 7001 to model 'sequence_accumulate' must specify the START flag on the first request of the sequence"
    );
    let r = step(1, json!({}));
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "inference request to model 'sequence_accumulate' must specify a non-zero or non-empty correlation ID"
    );
    let r = step(1, json!({"sequence_id": 1.5, "sequence_start": true}));
    r.expect(500, JSON);
    assert_eq!(
        r.error(),
        "Unable to parse 'sequence_id': attempt to access JSON non-string as string"
    );
}

#[test]
fn generate_and_generate_stream() {
    let s = server();
    let generate = |model: &str, suffix: &str, body: Value| {
        post_json(
            &s.http,
            &format!("/v2/models/{model}/generate{suffix}"),
            &body,
        )
    };
    let r = generate(
        "simple",
        "",
        json!({"INPUT0": (0..16).collect::<Vec<_>>(), "INPUT1": vec![1; 16], "id": "g1", "custom": 3}),
    );
    r.expect(200, JSON);
    assert_eq!(
        r.text(),
        r#"{"OUTPUT0":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"OUTPUT1":[-1,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14],"id":"g1","model_name":"simple","model_version":"1"}"#
    );
    let r = generate(
        "add_sub",
        "",
        json!({"INPUT0": [1, 2, 3, 4], "parameters": {"INPUT1": [0.5, 0.5, 0.5, 0.5]}}),
    );
    assert_eq!(
        r.json(),
        json!({"OUTPUT0": [1.5, 2.5, 3.5, 4.5], "OUTPUT1": [0.5, 1.5, 2.5, 3.5], "model_name": "add_sub", "model_version": "1"})
    );
    // Triton answers 200 with an error body when a model gives other than one response.
    let r = generate("square_int32", "", json!({"IN": 3}));
    r.expect(200, JSON);
    assert_eq!(
        r.error(),
        "generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses"
    );
    assert_eq!(
        generate("simple_identity", "", json!({"INPUT0": "a"})).text(),
        r#"{"OUTPUT0":"a","model_name":"simple_identity","model_version":"1"}"#
    );

    let r = generate("square_int32", "_stream", json!({"IN": 3}));
    r.expect(200, SSE);
    assert_eq!(
        r.text(),
        "data: {\"OUT\":3,\"model_name\":\"square_int32\",\"model_version\":\"1\"}\n\n".repeat(3)
    );
    let r = generate("square_int32", "_stream", json!({"IN": 0}));
    r.expect(200, SSE);
    assert!(r.body.is_empty());
    let r = generate("square_int32", "_stream", json!({"IN": -1}));
    r.expect(400, SSE);
    assert_eq!(
        r.events(),
        vec![json!({"error": "IN must be in [0, 64], got -1"})]
    );
    let r = generate(
        "simple",
        "_stream",
        json!({"INPUT0": (0..16).collect::<Vec<_>>(), "INPUT1": vec![1; 16]}),
    );
    r.expect(200, SSE);
    assert_eq!(
        r.events(),
        vec![
            json!({"OUTPUT0": simple_sum(), "OUTPUT1": simple_diff(), "model_name": "simple", "model_version": "1"})
        ]
    );
    let r = generate("square_int32", "_stream", json!({"IN": 64}));
    assert_eq!(r.events().len(), 64);

    for (model, body, status, msg) in [
        (
            "simple",
            json!({"INPUT0": (0..16).collect::<Vec<_>>()}),
            400,
            "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).",
        ),
        (
            "simple",
            json!({"INPUT0": vec![1; 8], "INPUT1": vec![1; 16]}),
            400,
            "The schema can not convert input 'INPUT0' to tensor with proper shape",
        ),
        (
            "simple",
            json!({"INPUT0": vec![1; 16], "INPUT1": vec![1; 16], "foo": [1]}),
            400,
            "parameter 'foo' has invalid type. It should be either 'int', 'bool', or 'string'.",
        ),
        (
            "simple",
            json!({"INPUT0": vec![1; 16], "INPUT1": vec![1; 16], "id": 5}),
            500,
            "Unable to parse 'id': attempt to access JSON non-string as string",
        ),
        (
            "square_int32",
            json!({"IN": "x"}),
            500,
            "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer",
        ),
        (
            "nope",
            json!({"IN": 1}),
            404,
            "Request for unknown model: 'nope' is not found",
        ),
    ] {
        let r = generate(model, "", body.clone());
        r.expect(status, JSON);
        assert_eq!(r.error(), msg, "{body}");
    }
    let r = post(&s.http, "/v2/models/simple/generate", b"");
    r.expect(500, JSON);
    assert_eq!(
        r.error(),
        "failed to parse the request JSON buffer: The document is empty. at 0"
    );
    let r = post(&s.http, "/v2/models/simple/generate", b"[1,2]");
    r.expect(500, JSON);
    assert_eq!(r.error(), "attempt to get members for non-object");
}

/// What a raw bad request is: name, headers, body, status, content type, message.
type RawCase<'a> = (
    &'a str,
    Vec<(&'a str, String)>,
    Vec<u8>,
    u16,
    &'a str,
    String,
);

/// Every bad request gets Triton's status, content type and message, and leaves the server
/// answering good requests correctly.
#[test]
fn bad_requests_catalogue() {
    let s = server();
    let i0 = json!({"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": (0..16).collect::<Vec<_>>()});
    let i1 = json!({"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": vec![1; 16]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = simple_request();
        f(&mut b);
        b
    };
    let shape_note = "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.";
    let cases: Vec<(&str, &str, Value, u16, &str, String)> = vec![
        ("wrong shape", "simple", with(&|b| { b["inputs"][0]["shape"] = json!([1, 15]); b["inputs"][0]["data"] = json!(vec![0; 15]); }), 400, JSON,
            format!("[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]. {shape_note}")),
        ("wrong dtype", "simple", with(&|b| { b["inputs"][0]["datatype"] = json!("FP32"); }), 400, JSON,
            "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'".into()),
        ("unknown dtype", "simple", with(&|b| { b["inputs"][0]["datatype"] = json!("INT31"); }), 400, JSON, "invalid datatype for input INPUT0".into()),
        ("missing input", "simple", json!({"inputs": [i0.clone()]}), 400, JSON,
            "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).".into()),
        ("unknown input", "simple", json!({"inputs": [i0.clone(), i1.clone(), {"name": "INPUT2", "datatype": "INT32", "shape": [1, 16], "data": vec![1; 16]}]}), 400, JSON,
            "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'simple'. Got input(s) ['INPUT2','INPUT1','INPUT0'], but missing required input(s) ]. Please provide all required input(s).".into()),
        ("duplicate input", "simple", json!({"id": "d1", "inputs": [i0.clone(), i1.clone(), i1.clone()]}), 400, JSON, "[request id: d1] input 'INPUT1' already exists in request".into()),
        ("unknown output", "simple", with(&|b| { b["outputs"] = json!([{"name": "OUTPUT9"}]); }), 400, JSON, "unexpected inference output 'OUTPUT9' for model 'simple'".into()),
        ("batch over max", "simple", json!({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [9, 16], "data": vec![1; 144]}, {"name": "INPUT1", "datatype": "INT32", "shape": [9, 16], "data": vec![1; 144]}]}), 400, JSON,
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'".into()),
        ("data count short", "simple", with(&|b| { b["inputs"][0]["data"] = json!(vec![0; 15]); }), 500, JSON, "Unable to parse 'data': Shape does not match true shape of 'data' field".into()),
        ("data count long", "simple", with(&|b| { b["inputs"][0]["data"] = json!(vec![0; 17]); }), 500, JSON, "Unable to parse 'data': Shape does not match true shape of 'data' field".into()),
        ("data missing", "simple", with(&|b| { b["inputs"][0].as_object_mut().unwrap().remove("data"); }), 400, JSON,
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But no field is set".into()),
        ("data as base64", "simple", with(&|b| { b["inputs"][0]["data"] = json!("AAAAAAEAAAACAAAA"); }), 500, JSON, "Unable to parse 'data': attempt to access JSON non-array as array".into()),
        ("float for int", "simple", with(&|b| { b["inputs"][0]["data"] = json!(vec![0.5; 16]); }), 500, JSON, "Unable to parse 'data': attempt to access JSON non-signed-integer as signed-integer".into()),
        ("negative for uint", "simple", with(&|b| { b["inputs"][0]["datatype"] = json!("UINT8"); b["inputs"][0]["data"] = json!(vec![-1; 16]); }), 500, JSON,
            "Unable to parse 'data': attempt to access JSON non-unsigned-integer as unsigned-integer".into()),
        ("string for fp32", "add_sub", json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": vec!["1.0"; 4]}]}), 500, JSON,
            "Unable to parse 'data': attempt to access JSON non-number as double".into()),
        ("number for bytes", "simple_identity", json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 2], "data": [1, 2]}]}), 500, JSON,
            "Unable to parse JSON bytes array: attempt to access JSON non-string as string".into()),
        ("bytes count", "simple_identity", json!({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 3], "data": ["a", "b"]}]}), 400, JSON,
            "[request id: <id_unknown>] expected 3 string elements for inference input 'INPUT0' for model 'simple_identity', got 2".into()),
        ("negative dim", "identity_fp32", json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, -1], "data": []}]}), 500, JSON,
            "Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer".into()),
        ("huge shape", "simple", json!({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1000000000000_u64, 1000000000000_u64], "data": [1]}]}), 400, JSON,
            "invalid shape for input 'INPUT0': shape [1000000000000,1000000000000] causes total element count to exceed maximum size of 9223372036854775807".into()),
        ("inputs absent", "simple", json!({"outputs": [{"name": "OUTPUT0"}]}), 500, JSON, "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'".into()),
        ("inputs not array", "simple", json!({"inputs": {"name": "INPUT0"}}), 500, JSON, "Unable to parse 'inputs': attempt to access JSON non-array as array".into()),
        ("top-level array", "simple", json!([1, 2, 3]), 500, JSON, "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'".into()),
        ("input without name", "simple", json!({"inputs": [{"datatype": "INT32", "shape": [1], "data": [1]}]}), 500, JSON, "Unable to parse 'name': attempt to access non-existing object member 'name'".into()),
        ("negative timeout", "simple", with(&|b| { b["parameters"] = json!({"timeout": -1}); }), 400, JSON,
            "Unable to parse 'timeout': attempt to access JSON non-unsigned-integer as unsigned-integer".into()),
        ("fractional priority", "simple", with(&|b| { b["parameters"] = json!({"priority": 1.5}); }), 400, JSON,
            "Unable to parse 'priority': attempt to access JSON non-unsigned-integer as unsigned-integer".into()),
        ("reserved parameter", "simple", with(&|b| { b["parameters"] = json!({"triton_x": 1}); }), 400, JSON,
            "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.".into()),
        ("parameter type", "simple", with(&|b| { b["parameters"] = json!({"x": [1]}); }), 400, JSON,
            "parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'.".into()),
        ("binary size without header", "simple", json!({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}}, i1.clone()]}), 400, JSON,
            "unexpected size for input 'INPUT0', expecting 64 additional bytes for model 'simple'".into()),
        ("data and binary", "simple", with(&|b| { b["inputs"][0]["parameters"] = json!({"binary_data_size": 64}); }), 400, JSON,
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But set 'data' 'binary_data_size'".into()),
        ("shm output with binary", "simple", with(&|b| { b["outputs"] = json!([{"name": "OUTPUT0", "parameters": {"shared_memory_region": "r", "binary_data": true}}]); }), 400, JSON,
            "Output can't set both 'shared_memory_region' and 'binary_data'".into()),
        ("unknown model", "nope", simple_request(), 404, PLAIN, "Request for unknown model: 'nope' is not found".into()),
        ("decoupled model", "square_int32", json!({"inputs": [{"name": "IN", "datatype": "INT32", "shape": [1], "data": [2]}]}), 501, PLAIN,
            "HTTP end point doesn't support models with decoupled transaction policy".into()),
    ];
    for (what, model, body, status, ct, msg) in &cases {
        let r = infer(&s, model, body);
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(*ct), "{what}");
        assert_eq!(&r.error(), msg, "{what}");
    }

    // Bodies that are not JSON, or whose binary part does not add up.
    let header = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
    ]});
    let h = header.to_string();
    let hl = h.len().to_string();
    let full = [h.as_bytes(), &le_i32(&[1; 32])].concat();
    let raw_cases: Vec<RawCase> = vec![
        ("truncated binary", vec![("Inference-Header-Content-Length", hl.clone())], full[..full.len() - 32].to_vec(), 400, JSON,
            "unexpected size for input 'INPUT1', expecting 32 additional bytes for model 'simple'".into()),
        ("trailing bytes", vec![("Inference-Header-Content-Length", hl.clone())], [&full[..], b"xx"].concat(), 400, JSON,
            "unexpected additional input data for model 'simple'".into()),
        ("header beyond body", vec![("Inference-Header-Content-Length", "100000".into())], full.clone(), 400, PLAIN,
            format!("inference header size should be in range (0, {}), got: 100000", full.len())),
        ("negative header", vec![("Inference-Header-Content-Length", "-5".into())], full.clone(), 400, PLAIN,
            format!("inference header size should be in range (0, {}), got: -5", full.len())),
        ("garbage header", vec![("Inference-Header-Content-Length", "abc".into())], full.clone(), 400, PLAIN,
            "Unable to parse Inference-Header-Content-Length, got: abc".into()),
        ("header too short", vec![("Inference-Header-Content-Length", "20".into())], full.clone(), 500, JSON,
            "failed to parse the request JSON buffer: Missing a closing quotation mark in string. at 20".into()),
        ("invalid json", vec![], b"{\"inputs\": [".to_vec(), 500, JSON, "failed to parse the request JSON buffer: Invalid value. at 12".into()),
        ("trailing garbage", vec![], [simple_request().to_string().as_bytes(), b" xyz"].concat(), 500, JSON,
            format!("failed to parse the request JSON buffer: The document root must not be followed by other values. at {}", simple_request().to_string().len() + 1)),
        ("invalid utf-8", vec![], b"{\"inputs\":[{\"name\":\"INPUT0\",\"datatype\":\"BYTES\",\"shape\":[1,1],\"data\":[\"a\xff\xfeb\"]}]}".to_vec(), 400, JSON,
            "failed to parse the request JSON buffer: the request is not valid UTF-8 (at byte 71); send BYTES that are not UTF-8 with the binary tensor data extension".into()),
        ("empty body", vec![], Vec::new(), 400, JSON,
            "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be deduced but got 2 inputs in 'simple' model configuration".into()),
    ];
    // A binary size that does not match the shape is the validation's byte size mismatch.
    let sized = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 60}},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
    ]});
    let r = post_binary(&s.http, "/v2/models/simple/infer", &sized, &[0u8; 124]);
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60"
    );
    for (what, headers, body, status, ct, msg) in &raw_cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request(&s.http, "POST", "/v2/models/simple/infer", &headers, body);
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(*ct), "{what}");
        assert_eq!(&r.error(), msg, "{what}");
    }

    // FP16 and BF16 travel as JSON numbers too (Triton refuses them in JSON).
    let fp16 = json!({"inputs": [{"name": "INPUT0", "datatype": "FP16", "shape": [4], "data": [1.0, 2.0, 3.0, 4.0]}, {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": vec![1.0; 4]}]});
    let r = infer(&s, "add_sub", &fp16);
    r.expect(400, JSON);
    assert_eq!(
        r.error(),
        "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'FP16', but model 'add_sub' expects 'FP32'"
    );

    // Priorities mean nothing to a model without priority levels: accepted, as Triton does.
    let r = infer(
        &s,
        "simple",
        &with(&|b| {
            b["parameters"] = json!({"priority": 99});
        }),
    );
    assert_eq!(r.text(), SIMPLE_ANSWER);
    // After all that, good requests still get exactly their own answers.
    for _ in 0..3 {
        assert_eq!(infer(&s, "simple", &simple_request()).text(), SIMPLE_ANSWER);
    }
    let stats = get(&s.http, "/v2/models/simple/stats").json();
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["success"]["count"],
        4
    );
    get(&s.http, "/v2/health/ready").expect(200, PLAIN);
}

#[test]
fn concurrent_requests_get_their_own_answers() {
    let s = server();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..25 {
                    let base = t * 1000 + i;
                    let body = json!({"inputs": [
                        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": vec![base; 16]},
                        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": vec![1; 16]},
                    ], "id": format!("r{base}")});
                    let r = infer(s, "simple", &body).json();
                    assert_eq!(r["id"], format!("r{base}"));
                    assert_eq!(data(&r, 0), json!(vec![base + 1; 16]));
                }
            });
        }
    });
}

/// One identity model per datatype, so that every datatype travels as JSON both ways.
#[test]
fn every_datatype_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let types = [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
        "BF16", "FP32", "FP64", "BYTES",
    ];
    for t in types {
        let name = format!("id_{}", t.to_lowercase());
        let cfg_type = if t == "BYTES" {
            "TYPE_STRING".to_string()
        } else {
            format!("TYPE_{t}")
        };
        let m = dir.path().join(&name);
        std::fs::create_dir_all(m.join("1")).unwrap();
        std::fs::write(
            m.join("config.pbtxt"),
            format!("name: \"{name}\"\nbackend: \"identity\"\nmax_batch_size: 0\ninput [ {{ name: \"X\" data_type: {cfg_type} dims: [ -1 ] }} ]\noutput [ {{ name: \"X\" data_type: {cfg_type} dims: [ -1 ] }} ]\n"),
        )
        .unwrap();
    }
    let s = TestServer::start(dir.path(), &[]);
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "BOOL",
            json!([true, false, true]),
            json!([true, false, true]),
        ),
        ("UINT8", json!([0, 255, 256]), json!([0, 255, 0])),
        ("UINT16", json!([0, 65535]), json!([0, 65535])),
        ("UINT32", json!([4294967295_u64]), json!([4294967295_u64])),
        (
            "UINT64",
            json!([18446744073709551615_u64, 0]),
            json!([18446744073709551615_u64, 0]),
        ),
        ("INT8", json!([-128, 127, 200]), json!([-128, 127, -56])),
        ("INT16", json!([-32768, 32767]), json!([-32768, 32767])),
        (
            "INT32",
            json!([-2147483648_i64, 2147483648_i64]),
            json!([-2147483648_i64, -2147483648_i64]),
        ),
        (
            "INT64",
            json!([-9223372036854775808_i64, 9223372036854775807_i64]),
            json!([-9223372036854775808_i64, 9223372036854775807_i64]),
        ),
        ("FP16", json!([0.5, -2, 65504]), json!([0.5, -2.0, 65504.0])),
        ("BF16", json!([1.5, -3]), json!([1.5, -3.0])),
        (
            "FP32",
            json!([0.1, 1e30, -1]),
            json!([0.10000000149011612, 1.0000000150474662e30, -1.0]),
        ),
        ("FP64", json!([0.1, -1e300]), json!([0.1, -1e300])),
        (
            "BYTES",
            json!(["", "x", "\u{e9}\u{0}"]),
            json!(["", "x", "\u{e9}\u{0}"]),
        ),
    ];
    for (t, sent, back) in cases {
        let n = sent.as_array().unwrap().len();
        let body = json!({"inputs": [{"name": "X", "datatype": t, "shape": [n], "data": sent}]});
        let r = infer(&s, &format!("id_{}", t.to_lowercase()), &body);
        r.expect(200, JSON);
        let out = r.json();
        assert_eq!(out["outputs"][0]["datatype"], t);
        assert_eq!(out["outputs"][0]["shape"], json!([n]));
        assert_eq!(data(&out, 0), back, "{t}");
    }
    // And binary both ways for one of them, byte for byte.
    let bytes: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
        .collect();
    let header = json!({"inputs": [{"name": "X", "datatype": "BF16", "shape": [2], "parameters": {"binary_data_size": 4}}], "parameters": {"binary_data_output": true}});
    assert_eq!(
        post_binary(&s.http, "/v2/models/id_bf16/infer", &header, &bytes)
            .split()
            .1,
        bytes
    );
}
