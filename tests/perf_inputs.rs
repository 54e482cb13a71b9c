//! despina-perf input generation: shapes, datatypes, BYTES serialisation, the JSON
//! data format, batching and request encoding.

use despina::perf::client::{ConfigFacts, ModelInfo, TensorFormat, TensorMeta, encode_http_body};
use despina::perf::inputs::{
    BatchTensor, DataType, InputData, InputSpec, SyntheticOptions, Tensor, batch_requests,
    check_shape_names, deserialize_bytes, parse_json_data, parse_shape_flag, raw_to_json,
    resolve_dims, serialize_bytes, synthetic_sample, synthetic_tensor,
};
use despina::perf::schedule::Rng;
use serde_json::{Value, json};

fn spec(name: &str, dt: DataType, dims: &[i64]) -> InputSpec {
    InputSpec {
        name: name.into(),
        datatype: dt,
        dims: dims.to_vec(),
    }
}

#[test]
fn datatype_names_and_sizes() {
    for (name, size) in [
        ("BOOL", Some(1)),
        ("UINT8", Some(1)),
        ("INT8", Some(1)),
        ("UINT16", Some(2)),
        ("INT16", Some(2)),
        ("FP16", Some(2)),
        ("BF16", Some(2)),
        ("UINT32", Some(4)),
        ("INT32", Some(4)),
        ("FP32", Some(4)),
        ("UINT64", Some(8)),
        ("INT64", Some(8)),
        ("FP64", Some(8)),
        ("BYTES", None),
    ] {
        let dt = DataType::parse(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(dt.name(), name);
        assert_eq!(dt.size(), size, "{name}");
    }
    assert_eq!(DataType::parse("TYPE_FP32"), None);
    assert_eq!(DataType::parse("fp32"), None);
}

#[track_caller]
fn check_shape_flag(text: &str, want: Result<(&str, &[i64]), ()>) {
    match (parse_shape_flag(text), want) {
        (Ok((n, d)), Ok((wn, wd))) => assert_eq!((n.as_str(), d.as_slice()), (wn, wd), "{text}"),
        (Err(e), Err(())) => assert!(e.to_string().contains("invalid --shape"), "{e}"),
        (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn shape_flags() {
    check_shape_flag("INPUT0:16", Ok(("INPUT0", &[16])));
    check_shape_flag("IMAGE:3,224,224", Ok(("IMAGE", &[3, 224, 224])));
    check_shape_flag("ns:name:4", Ok(("ns:name", &[4])));
    check_shape_flag("INPUT0:", Err(()));
    check_shape_flag(":4", Err(()));
    check_shape_flag("INPUT0", Err(()));
    check_shape_flag("INPUT0:0", Err(()));
    check_shape_flag("INPUT0:-1", Err(()));
    check_shape_flag("INPUT0:3,x", Err(()));
}

#[test]
fn dims_resolution() {
    let fixed = spec("A", DataType::Fp32, &[4]);
    let var = spec("B", DataType::Fp32, &[-1, 3]);
    let shapes = vec![("B".to_string(), vec![7, 3])];
    assert_eq!(resolve_dims(&fixed, &[]).unwrap(), vec![4]);
    assert_eq!(
        resolve_dims(&fixed, &[("A".into(), vec![4])]).unwrap(),
        vec![4]
    );
    assert_eq!(resolve_dims(&var, &shapes).unwrap(), vec![7, 3]);
    let e = resolve_dims(&var, &[]).unwrap_err().to_string();
    assert!(
        e.contains("input 'B' has variable dims [-1, 3]; give its shape with --shape B:<dims>"),
        "{e}"
    );
    let e = resolve_dims(&fixed, &[("A".into(), vec![5])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--shape A:5 does not fit the model's dims [4]"),
        "{e}"
    );
    let e = resolve_dims(&var, &[("B".into(), vec![7, 4])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
    let e = resolve_dims(&var, &[("B".into(), vec![7])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
    assert!(check_shape_names(&[fixed.clone(), var.clone()], &shapes).is_ok());
    let e = check_shape_names(&[fixed], &shapes)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--shape names 'B', which is not an input of the model"),
        "{e}"
    );
}

#[test]
fn bytes_serialisation_round_trips() {
    let raw = serialize_bytes(["ab", "", "xyz"]);
    assert_eq!(raw, b"\x02\0\0\0ab\0\0\0\0\x03\0\0\0xyz".to_vec());
    let back: Vec<&[u8]> = deserialize_bytes(&raw).unwrap();
    assert_eq!(back, vec![&b"ab"[..], &b""[..], &b"xyz"[..]]);
    assert_eq!(deserialize_bytes(&[]).unwrap().len(), 0);
    let e = deserialize_bytes(b"\x05\0\0\0ab").unwrap_err().to_string();
    assert!(
        e.contains("BYTES element of 5 bytes runs past the end"),
        "{e}"
    );
    let e = deserialize_bytes(b"\x01\0").unwrap_err().to_string();
    assert!(e.contains("4-byte length prefix"), "{e}");
}

fn opts(random: bool) -> SyntheticOptions {
    SyntheticOptions {
        random,
        string_length: 5,
        string_data: None,
    }
}

#[test]
fn zero_data_per_datatype() {
    let mut rng = Rng::new(1);
    for (dt, bytes) in [
        (DataType::Fp32, 24),
        (DataType::Int64, 48),
        (DataType::Fp16, 12),
        (DataType::Bool, 6),
    ] {
        let t = synthetic_tensor(dt, &[2, 3], &opts(false), &mut rng);
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.raw, vec![0u8; bytes], "{dt:?}");
    }
    let t = synthetic_tensor(DataType::Bytes, &[2], &opts(false), &mut rng);
    assert_eq!(t.raw, serialize_bytes(["00000", "00000"]));
}

#[test]
fn random_data_stays_in_range() {
    let mut rng = Rng::new(3);
    let t = synthetic_tensor(DataType::Fp32, &[1000], &opts(true), &mut rng);
    let v: Vec<f32> = t
        .raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
    assert!(v.iter().any(|x| *x != v[0]), "not all equal");
    let t = synthetic_tensor(DataType::Int8, &[1000], &opts(true), &mut rng);
    assert!(t.raw.iter().all(|b| (*b as i8) >= 0));
    let t = synthetic_tensor(DataType::Int32, &[1000], &opts(true), &mut rng);
    assert!(
        t.raw
            .chunks_exact(4)
            .all(|c| (0..128).contains(&i32::from_le_bytes(c.try_into().unwrap())))
    );
    let t = synthetic_tensor(DataType::Bool, &[100], &opts(true), &mut rng);
    assert!(t.raw.iter().all(|b| *b <= 1) && t.raw.contains(&0) && t.raw.contains(&1));
    let t = synthetic_tensor(DataType::Bytes, &[3], &opts(true), &mut rng);
    let items = deserialize_bytes(&t.raw).unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|s| s.len() == 5 && s.iter().all(u8::is_ascii_alphanumeric))
    );
    let fixed = SyntheticOptions {
        random: true,
        string_length: 5,
        string_data: Some("42".into()),
    };
    let t = synthetic_tensor(DataType::Bytes, &[2], &fixed, &mut rng);
    assert_eq!(t.raw, serialize_bytes(["42", "42"]));
    // Same seed, same data.
    let specs = [spec("A", DataType::Fp32, &[8])];
    let a = synthetic_sample(&specs, &[vec![8]], &opts(true), 9);
    assert_eq!(a, synthetic_sample(&specs, &[vec![8]], &opts(true), 9));
    assert_ne!(a, synthetic_sample(&specs, &[vec![8]], &opts(true), 10));
}

#[test]
fn input_data_flag() {
    assert_eq!(InputData::parse("zero"), InputData::Zero);
    assert_eq!(InputData::parse("random"), InputData::Random);
    assert_eq!(InputData::parse("d.json"), InputData::Json("d.json".into()));
}

fn i32s(raw: &[u8]) -> Vec<i32> {
    raw.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn json_data_forms() {
    let specs = [
        spec("A", DataType::Int32, &[2, 2]),
        spec("S", DataType::Bytes, &[-1]),
    ];
    let dims = [Some(vec![2, 2]), None];
    // b64 of 4 little-endian int32: 1, 2, 3, 4
    let b64 = "AQAAAAIAAAADAAAABAAAAA==";
    let text = json!({"data": [
        {"A": [1, 2, 3, 4], "S": {"content": ["x", "yz"], "shape": [2]}},
        {"A": [[5, 6], [7, 8]], "S": {"content": [1], "shape": [1]}},
        [{"A": {"b64": b64}, "S": {"content": {"b64": "AQAAAHE="}, "shape": [1]}}],
        {"A": {"content": [9, 9, 9, 9], "shape": [2, 2]}, "S": {"content": ["a", "b", "c"], "shape": [3]}}
    ]})
    .to_string();
    let samples = parse_json_data(&text, &specs, &dims).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(i32s(&samples[0][0].raw), vec![1, 2, 3, 4]);
    assert_eq!(samples[0][0].shape, vec![2, 2]);
    assert_eq!(
        samples[0][1],
        Tensor {
            shape: vec![2],
            raw: serialize_bytes(["x", "yz"])
        }
    );
    assert_eq!(i32s(&samples[1][0].raw), vec![5, 6, 7, 8]);
    assert_eq!(samples[1][1].raw, serialize_bytes(["1"]));
    assert_eq!(i32s(&samples[2][0].raw), vec![1, 2, 3, 4]);
    assert_eq!(samples[2][1].raw, serialize_bytes(["q"]));
    assert_eq!(samples[3][1].shape, vec![3]);
}

#[track_caller]
fn check_json_error(specs: &[InputSpec], dims: &[Option<Vec<i64>>], data: Value, want: &str) {
    let e = parse_json_data(&data.to_string(), specs, dims)
        .unwrap_err()
        .to_string();
    assert!(e.contains(want), "got: {e}\nwant: {want}");
}

#[test]
fn json_data_errors() {
    let a = [spec("A", DataType::Int8, &[2])];
    let d = [Some(vec![2])];
    check_json_error(&a, &d, json!({"x": []}), "needs a top-level \"data\" array");
    check_json_error(&a, &d, json!({"data": []}), "empty \"data\" array");
    check_json_error(
        &a,
        &d,
        json!({"data": [3]}),
        "data entry 0 is not an object",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"B": [1, 2]}]}),
        "data entry 0 has no value for input 'A'",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": [1, 2]}, {"A": [1]}]}),
        "data entry 1, input 'A': holds 1 elements but shape [2] needs 2",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": [1, 200]}]}),
        "200 is out of range for INT8",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": [1, 1.5]}]}),
        "1.5 is not an integer, as INT8 needs",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": [1, "x"]}]}),
        "\"x\" is not a valid INT8 value",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": {"b64": "AAAA"}}]}),
        "holds 3 elements but shape [2] needs 2",
    );
    check_json_error(
        &a,
        &d,
        json!({"data": [{"A": {"b64": "@@"}}]}),
        "invalid base64",
    );
    let f = [spec("F", DataType::Fp32, &[2])];
    check_json_error(
        &f,
        &d,
        json!({"data": [{"F": {"b64": "AAAAAAA="}}]}),
        "5 bytes of base64 data is not a whole number of 4-byte elements",
    );
    let v = [spec("V", DataType::Fp32, &[-1])];
    check_json_error(
        &v,
        &[None],
        json!({"data": [{"V": [1.0]}]}),
        "no full shape for dims [-1]: add a \"shape\" to the data or give --shape V:<dims>",
    );
    check_json_error(
        &v,
        &[None],
        json!({"data": [{"V": {"content": [1.0], "shape": "x"}}]}),
        "'shape' must be an array of integers",
    );
    check_json_error(&a, &d, json!("nope"), "needs a top-level \"data\" array");
    let e = parse_json_data("{", &a, &d).unwrap_err().to_string();
    assert!(e.contains("input data is not valid JSON"), "{e}");
}

#[test]
fn json_data_numbers_per_datatype() {
    let specs = [
        spec("B", DataType::Bool, &[2]),
        spec("H", DataType::Fp16, &[1]),
        spec("U", DataType::Uint64, &[1]),
        spec("D", DataType::Fp64, &[1]),
    ];
    let dims: Vec<Option<Vec<i64>>> = specs.iter().map(|s| Some(s.dims.clone())).collect();
    let text =
        json!({"data": [{"B": [true, 0], "H": [1.5], "U": [18446744073709551615u64], "D": [0.1]}]})
            .to_string();
    let s = &parse_json_data(&text, &specs, &dims).unwrap()[0];
    assert_eq!(s[0].raw, vec![1, 0]);
    assert_eq!(s[1].raw, half::f16::from_f32(1.5).to_le_bytes().to_vec());
    assert_eq!(s[2].raw, u64::MAX.to_le_bytes().to_vec());
    assert_eq!(s[3].raw, 0.1f64.to_le_bytes().to_vec());
}

fn sample_i32(a: i32) -> Vec<Tensor> {
    vec![Tensor {
        shape: vec![2],
        raw: [a, a].iter().flat_map(|v| v.to_le_bytes()).collect(),
    }]
}

#[test]
fn batching_walks_the_data_round_robin() {
    let specs = [spec("A", DataType::Int32, &[2])];
    let samples = vec![sample_i32(1), sample_i32(2), sample_i32(3)];
    let reqs = batch_requests(&specs, &samples, 2, true).unwrap();
    assert_eq!(reqs.len(), 3);
    // request k holds samples 2k and 2k+1 (mod 3)
    let vals: Vec<Vec<i32>> = reqs.iter().map(|r| i32s(&r[0].raw)).collect();
    assert_eq!(
        vals,
        vec![vec![1, 1, 2, 2], vec![3, 3, 1, 1], vec![2, 2, 3, 3]]
    );
    assert!(
        reqs.iter().all(|r| r[0].shape == vec![2, 2]
            && r[0].name == "A"
            && r[0].datatype == DataType::Int32)
    );

    let one = batch_requests(&specs, &samples[..1], 4, true).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0][0].shape, vec![4, 2]);
    assert_eq!(one[0][0].raw.len(), 32);

    let unbatched = batch_requests(&specs, &samples[..1], 1, false).unwrap();
    assert_eq!(unbatched[0][0].shape, vec![2]);
    let e = batch_requests(&specs, &samples, 2, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch size 2 needs a model that batches"), "{e}");
    let e = batch_requests(&specs, &samples, 0, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 1"), "{e}");
    let mixed = vec![
        sample_i32(1),
        vec![Tensor {
            shape: vec![1],
            raw: vec![0; 4],
        }],
    ];
    let e = batch_requests(&specs, &mixed, 2, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("entries batched together have different shapes [2] and [1]"),
        "{e}"
    );
}

#[test]
fn raw_to_json_decodes_every_datatype() {
    let check = |dt: DataType, raw: Vec<u8>, want: Value| {
        assert_eq!(Value::Array(raw_to_json(dt, &raw).unwrap()), want, "{dt:?}");
    };
    check(DataType::Bool, vec![1, 0], json!([true, false]));
    check(DataType::Int8, vec![0xff, 3], json!([-1, 3]));
    check(
        DataType::Uint16,
        513u16.to_le_bytes().to_vec(),
        json!([513]),
    );
    check(DataType::Int32, (-7i32).to_le_bytes().to_vec(), json!([-7]));
    check(
        DataType::Uint64,
        u64::MAX.to_le_bytes().to_vec(),
        json!([u64::MAX]),
    );
    check(DataType::Fp32, 0.5f32.to_le_bytes().to_vec(), json!([0.5]));
    check(
        DataType::Fp16,
        half::f16::from_f32(2.5).to_le_bytes().to_vec(),
        json!([2.5]),
    );
    check(
        DataType::Bf16,
        half::bf16::from_f32(-2.0).to_le_bytes().to_vec(),
        json!([-2.0]),
    );
    check(
        DataType::Fp64,
        0.25f64.to_le_bytes().to_vec(),
        json!([0.25]),
    );
    check(
        DataType::Bytes,
        serialize_bytes(["hi", "7"]),
        json!(["hi", "7"]),
    );
    let e = raw_to_json(DataType::Bytes, &serialize_bytes([[0xffu8, 0xfe]]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    let e = raw_to_json(DataType::Fp32, &[0; 6])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("6 bytes are not a whole number of FP32 elements"),
        "{e}"
    );
}

fn tensor(name: &str, dt: DataType, shape: &[i64], raw: Vec<u8>) -> BatchTensor {
    BatchTensor {
        name: name.into(),
        datatype: dt,
        shape: shape.to_vec(),
        raw: raw.into(),
    }
}

#[test]
fn http_binary_body_layout() {
    let a = tensor(
        "A",
        DataType::Int32,
        &[1, 2],
        [3i32, 4].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let s = tensor("S", DataType::Bytes, &[1, 1], serialize_bytes(["ok"]));
    let body = encode_http_body(&[a, s], &["OUT".to_string()], TensorFormat::Binary).unwrap();
    let header_len: usize = body
        .header_len
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let header: Value = serde_json::from_slice(&body.body[..header_len]).unwrap();
    assert_eq!(
        header,
        json!({
            "inputs": [
                {"name": "A", "shape": [1, 2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
                {"name": "S", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
            ],
            "outputs": [{"name": "OUT", "parameters": {"binary_data": true}}]
        })
    );
    let mut tail = [3i32, 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    tail.extend(serialize_bytes(["ok"]));
    assert_eq!(&body.body[header_len..], tail.as_slice());
}

#[test]
fn http_json_body() {
    let a = tensor(
        "A",
        DataType::Fp32,
        &[2],
        [0.5f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let s = tensor("S", DataType::Bytes, &[1], serialize_bytes(["7"]));
    let body = encode_http_body(&[a, s], &["OUT".to_string()], TensorFormat::Json).unwrap();
    assert!(body.header_len.is_none());
    let v: Value = serde_json::from_slice(&body.body).unwrap();
    assert_eq!(
        v,
        json!({"inputs": [
            {"name": "A", "shape": [2], "datatype": "FP32", "data": [0.5, 1.0]},
            {"name": "S", "shape": [1], "datatype": "BYTES", "data": ["7"]}
        ]})
    );
}

fn meta(name: &str, dt: &str, shape: &[i64]) -> TensorMeta {
    TensorMeta {
        name: name.into(),
        datatype: dt.into(),
        shape: shape.to_vec(),
    }
}

#[test]
fn model_info_drops_the_batch_dimension_of_batching_models() {
    let cfg = ConfigFacts::from_json(&json!({
        "max_batch_size": 8,
        "dynamic_batching": {"preferred_batch_size": [4, 8]},
        "model_transaction_policy": {"decoupled": false}
    }));
    assert_eq!(
        cfg,
        ConfigFacts {
            max_batch_size: 8,
            dynamic_batching: true,
            sequence_batching: false,
            decoupled: false
        }
    );
    let info = ModelInfo::new(
        &[meta("IN", "FP32", &[-1, -1, 3])],
        &[meta("OUT", "FP32", &[-1, 3])],
        cfg,
    )
    .unwrap();
    assert_eq!(info.inputs, vec![spec("IN", DataType::Fp32, &[-1, 3])]);
    assert_eq!(info.outputs, vec!["OUT".to_string()]);

    let plain = ConfigFacts::from_json(
        &json!({"max_batch_size": 0, "sequence_batching": {}, "model_transaction_policy": {"decoupled": true}}),
    );
    assert_eq!(
        plain,
        ConfigFacts {
            max_batch_size: 0,
            dynamic_batching: false,
            sequence_batching: true,
            decoupled: true
        }
    );
    let info = ModelInfo::new(&[meta("IN", "BYTES", &[4])], &[], plain).unwrap();
    assert_eq!(info.inputs, vec![spec("IN", DataType::Bytes, &[4])]);

    let e = ModelInfo::new(&[meta("IN", "FP8", &[4])], &[], plain)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input 'IN' has datatype 'FP8', which is not supported"),
        "{e}"
    );
    let e = ModelInfo::new(&[meta("IN", "FP32", &[])], &[], cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty shape"), "{e}");
}
