//! Unary ModelInfer over gRPC against the real binary on `tests/models`: raw and typed
//! contents, BYTES, requested outputs, classification, parameters, sequences, shared memory
//! and Triton's answers to bad requests (codes and messages as the reference Triton 2.51
//! gives them).

mod common;
mod grpc_support;

use std::ffi::CString;

use despina::proto::inference::infer_parameter::ParameterChoice as P;
use grpc_support::*;
use tonic::Code;

#[tokio::test]
async fn simple_typed_and_raw_contents() {
    let server = start();
    let mut c = client(&server).await;

    let mut req = simple_request();
    req.id = "grpc-id-1".into();
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        (
            r.model_name.as_str(),
            r.model_version.as_str(),
            r.id.as_str()
        ),
        ("simple", "1", "grpc-id-1")
    );
    let names: Vec<&str> = r.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["OUTPUT0", "OUTPUT1"]);
    for o in &r.outputs {
        assert_eq!(
            (o.datatype.as_str(), o.shape.as_slice()),
            ("INT32", &[1i64, 16][..])
        );
        assert!(
            o.contents.is_none() && o.parameters.is_empty(),
            "outputs travel as raw contents only"
        );
    }
    assert!(r.parameters.is_empty());
    assert_eq!(
        as_int32s(&r.raw_output_contents[0]),
        (1..=16).collect::<Vec<i32>>()
    );
    assert_eq!(
        as_int32s(&r.raw_output_contents[1]),
        (-1..=14).collect::<Vec<i32>>()
    );

    // Raw contents, batch of two.
    let a: Vec<i32> = (0..32).map(|x| x * 3).collect();
    let b: Vec<i32> = (0..32).map(|x| 100 - x).collect();
    let mut req = request(
        "simple",
        vec![
            input("INPUT0", "INT32", &[2, 16]),
            input("INPUT1", "INT32", &[2, 16]),
        ],
    );
    req.raw_input_contents = vec![int32s(&a), int32s(&b)];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.id, "");
    assert_eq!(r.outputs[0].shape, [2, 16]);
    let sum: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert_eq!(as_int32s(&r.raw_output_contents[0]), sum);
    assert_eq!(as_int32s(&r.raw_output_contents[1]), diff);

    // Only the requested output, once even when asked twice.
    let mut req = simple_request();
    req.outputs = vec![output("OUTPUT1"), output("OUTPUT1")];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].name, "OUTPUT1");
    assert_eq!(
        as_int32s(&r.raw_output_contents[0]),
        (-1..=14).collect::<Vec<i32>>()
    );
}

#[tokio::test]
async fn int8_fp32_and_bytes() {
    let server = start();
    let mut c = client(&server).await;

    // INT8 from int_contents: values keep their low byte, sums wrap.
    let mut a: Vec<i32> = (0..16).collect();
    a[0] = 127;
    a[1] = 300; // 44 as INT8
    let req = request(
        "simple_int8",
        vec![
            ints("INPUT0", "INT8", &[1, 16], &a),
            ints("INPUT1", "INT8", &[1, 16], &[1; 16]),
        ],
    );
    let r = c.model_infer(req).await.unwrap().into_inner();
    let out: Vec<i8> = r.raw_output_contents[0].iter().map(|&b| b as i8).collect();
    let mut want: Vec<i8> = (1..=16).collect();
    want[0] = -128;
    want[1] = 45;
    assert_eq!(out, want);
    assert_eq!(r.outputs[1].datatype, "INT8");
    // INT8 raw.
    let mut req = request(
        "simple_int8",
        vec![
            input("INPUT0", "INT8", &[1, 16]),
            input("INPUT1", "INT8", &[1, 16]),
        ],
    );
    req.raw_input_contents = vec![vec![0xf6u8; 16].into(), vec![3u8; 16].into()];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.raw_output_contents[0].as_ref(), &[0xf9u8; 16]); // -10 + 3
    assert_eq!(r.raw_output_contents[1].as_ref(), &[0xf3u8; 16]); // -10 - 3

    // FP32, typed and raw.
    let req = request(
        "add_sub",
        vec![
            typed("INPUT0", "FP32", &[4], |c| {
                c.fp32_contents = vec![1.5, 2.0, 3.0, 4.0]
            }),
            typed("INPUT1", "FP32", &[4], |c| {
                c.fp32_contents = vec![0.5, 1.0, 1.0, 1.0]
            }),
        ],
    );
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs[0].shape, [4]);
    assert_eq!(as_fp32s(&r.raw_output_contents[0]), [2.0, 3.0, 4.0, 5.0]);
    assert_eq!(as_fp32s(&r.raw_output_contents[1]), [1.0, 1.0, 2.0, 3.0]);
    let mut req = request("identity_fp32", vec![input("INPUT0", "FP32", &[1, 3])]);
    req.raw_input_contents = vec![fp32s(&[-0.25, 1e30, 7.0])];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(as_fp32s(&r.raw_output_contents[0]), [-0.25, 1e30, 7.0]);

    // BYTES from bytes_contents: decimal strings added as numbers.
    let a: Vec<Vec<u8>> = (0..16).map(|i: i32| i.to_string().into_bytes()).collect();
    let b: Vec<Vec<u8>> = vec![b"1".to_vec(); 16];
    let req = request(
        "simple_string",
        vec![
            typed("INPUT0", "BYTES", &[1, 16], |c| {
                c.bytes_contents = a.clone()
            }),
            typed("INPUT1", "BYTES", &[1, 16], |c| {
                c.bytes_contents = b.clone()
            }),
        ],
    );
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs[0].datatype, "BYTES");
    assert_eq!(
        as_strings(&r.raw_output_contents[0]),
        (1..=16).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        as_strings(&r.raw_output_contents[1]),
        (-1..=14).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    // BYTES raw contents are already serialized; they come back byte for byte.
    let items: [&[u8]; 3] = [b"\x00\xff", b"", "\u{e9}".as_bytes()];
    let mut req = request("simple_identity", vec![input("INPUT0", "BYTES", &[1, 3])]);
    req.raw_input_contents = vec![serialized(&items)];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs[0].shape, [1, 3]);
    assert_eq!(r.raw_output_contents[0], serialized(&items));
    let req = request(
        "simple_identity",
        vec![typed("INPUT0", "BYTES", &[1, 3], |c| {
            c.bytes_contents = items.iter().map(|s| s.to_vec()).collect()
        })],
    );
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        r.raw_output_contents[0].as_ref(),
        b"\x02\0\0\0\x00\xff\0\0\0\0\x02\0\0\0\xc3\xa9"
    );
}

#[tokio::test]
async fn classification_strings() {
    let server = start();
    let mut c = client(&server).await;
    let row = [0.1f32, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2];
    let mut out = output("OUTPUT0");
    out.parameters = params(&[("classification", P::Int64Param(3))]);
    let mut req = request(
        "classify_fp32",
        vec![typed("INPUT0", "FP32", &[2, 8], |c| {
            c.fp32_contents = [row, row].concat()
        })],
    );
    req.outputs = vec![out];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        (
            r.outputs[0].datatype.as_str(),
            r.outputs[0].shape.as_slice()
        ),
        ("BYTES", &[2i64, 3][..])
    );
    let top = ["0.900000:1:bravo", "0.700000:3:delta", "0.500000:5:foxtrot"];
    assert_eq!(as_strings(&r.raw_output_contents[0]), [top, top].concat());

    // More classes than there are: all of them, in order. Integers print without decimals.
    let mut out = output("OUTPUT0");
    out.parameters = params(&[("classification", P::Int64Param(100))]);
    let mut req = request(
        "classify_fp32",
        vec![typed("INPUT0", "FP32", &[1, 8], |c| {
            c.fp32_contents = row.to_vec()
        })],
    );
    req.outputs = vec![out];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs[0].shape, [1, 8]);
    assert_eq!(as_strings(&r.raw_output_contents[0])[7], "-1.000000:6:golf");
    let mut out = output("OUTPUT1");
    out.parameters = params(&[("classification", P::Int64Param(2))]);
    let mut req = simple_request();
    req.outputs = vec![out];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(as_strings(&r.raw_output_contents[0]), ["14:15", "13:14"]);

    for (p, message) in [
        (
            P::Int64Param(0),
            "invalid value for 'classification' parameter, expected >= 0",
        ),
        (
            P::Int64Param(-1),
            "invalid value for 'classification' parameter, expected >= 0",
        ),
        (
            P::StringParam("2".into()),
            "invalid value type for 'classification' parameter, expected int64_param",
        ),
        (
            P::Uint64Param(2),
            "invalid value type for 'classification' parameter, expected int64_param",
        ),
    ] {
        let mut out = output("OUTPUT1");
        out.parameters = params(&[("classification", p)]);
        let mut req = simple_request();
        req.outputs = vec![out];
        assert_eq!(
            failure(c.model_infer(req).await),
            (Code::InvalidArgument, message.to_string())
        );
    }
    // Triton 2.51 crashes on this one; despina refuses it.
    let mut out = output("OUTPUT0");
    out.parameters = params(&[("classification", P::Int64Param(1))]);
    let mut req = request(
        "simple_identity",
        vec![typed("INPUT0", "BYTES", &[1, 1], |c| {
            c.bytes_contents = vec![b"a".to_vec()]
        })],
    );
    req.outputs = vec![out];
    assert_eq!(
        failure(c.model_infer(req).await),
        (
            Code::InvalidArgument,
            "class result not available for output due to unsupported type 'BYTES'".to_string()
        )
    );
}

#[tokio::test]
async fn parameters_versions_and_sequences() {
    let server = start();
    let mut c = client(&server).await;
    let mut req = simple_request();
    req.parameters = params(&[
        ("custom", P::StringParam("x".into())),
        ("n", P::Int64Param(7)),
        ("flag", P::BoolParam(false)),
        ("d", P::DoubleParam(1.5)),
        ("priority", P::Int64Param(1)),
        ("timeout", P::Int64Param(100_000_000)),
        ("binary_data_output", P::BoolParam(true)),
    ]);
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        as_int32s(&r.raw_output_contents[0]),
        (1..=16).collect::<Vec<i32>>()
    );
    let mut req = simple_request();
    req.parameters = params(&[("priority", P::Uint64Param(3))]);
    c.model_infer(req).await.unwrap();

    for (version, want) in [("1", "1"), ("2", "2"), ("", "2")] {
        let mut req = request("versioned", vec![ints("INPUT0", "INT32", &[1, 2], &[5, 6])]);
        req.model_version = version.into();
        let r = c.model_infer(req).await.unwrap().into_inner();
        assert_eq!(r.model_version, want);
        // The versioned test model adds its version number.
        let v: i32 = want.parse().unwrap();
        assert_eq!(as_int32s(&r.raw_output_contents[0]), [5 + v, 6 + v]);
    }

    // A running sum per correlation id, with integer and string ids, interleaved.
    let step = |id: P, value: i32, start: bool, end: bool| {
        let mut req = request(
            "sequence_accumulate",
            vec![ints("INPUT", "INT32", &[1, 1], &[value])],
        );
        req.parameters = params(&[
            ("sequence_id", id),
            ("sequence_start", P::BoolParam(start)),
            ("sequence_end", P::BoolParam(end)),
        ]);
        req
    };
    let mut sums = Vec::new();
    for (value, start, end) in [(1, true, false), (2, false, false), (3, false, true)] {
        let a = c
            .model_infer(step(P::Int64Param(8001), value, start, end))
            .await
            .unwrap()
            .into_inner();
        let b = c
            .model_infer(step(P::StringParam("seq-b".into()), value * 10, start, end))
            .await
            .unwrap()
            .into_inner();
        sums.push((
            as_int32s(&a.raw_output_contents[0])[0],
            as_int32s(&b.raw_output_contents[0])[0],
        ));
    }
    assert_eq!(sums, [(1, 10), (3, 30), (6, 60)]);
    assert_eq!(
        failure(c.model_infer(step(P::Int64Param(8999), 1, false, false)).await),
        (
            Code::InvalidArgument,
            "inference request for sequence 8999 to model 'sequence_accumulate' must specify the START flag on the first request of the sequence".to_string()
        )
    );
    let req = request(
        "sequence_accumulate",
        vec![ints("INPUT", "INT32", &[1, 1], &[1])],
    );
    assert_eq!(
        failure(c.model_infer(req).await),
        (
            Code::InvalidArgument,
            "inference request to model 'sequence_accumulate' must specify a non-zero or non-empty correlation ID".to_string()
        )
    );
}

/// A POSIX shared memory object, removed on drop.
struct Shm {
    key: String,
    ptr: *mut u8,
    len: usize,
}

impl Shm {
    fn new(tag: &str, len: usize) -> Shm {
        let key = format!("/despina_grpc_test_{}_{tag}", std::process::id());
        let c = CString::new(key.clone()).unwrap();
        // SAFETY: plain libc calls on a fresh object; the mapping lives until drop.
        unsafe {
            let fd = libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600);
            assert!(fd >= 0, "shm_open");
            assert_eq!(libc::ftruncate(fd, len as i64), 0);
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            assert_ne!(ptr, libc::MAP_FAILED);
            Shm {
                key,
                ptr: ptr.cast(),
                len,
            }
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let c = CString::new(self.key.clone()).unwrap();
        // SAFETY: unmapping what new() mapped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
            libc::shm_unlink(c.as_ptr());
        }
    }
}

fn shm_params(
    region: &str,
    offset: i64,
    size: i64,
) -> std::collections::HashMap<String, pb::InferParameter> {
    params(&[
        ("shared_memory_region", P::StringParam(region.into())),
        ("shared_memory_offset", P::Int64Param(offset)),
        ("shared_memory_byte_size", P::Int64Param(size)),
    ])
}

#[tokio::test]
async fn shared_memory_inputs_and_outputs() {
    let server = start();
    let mut c = client(&server).await;
    let mut shm = Shm::new("io", 4096);
    let a: Vec<i32> = (0..16).map(|x| x * 2).collect();
    shm.bytes()[..64].copy_from_slice(&int32s(&a));
    shm.bytes()[64..128].copy_from_slice(&int32s(&[5; 16]));

    let register =
        |name: &str, offset: u64, byte_size: u64| pb::SystemSharedMemoryRegisterRequest {
            name: name.into(),
            key: shm.key.clone(),
            offset,
            byte_size,
        };
    c.system_shared_memory_register(register("in", 0, 1024))
        .await
        .unwrap();
    c.system_shared_memory_register(register("out", 1024, 1024))
        .await
        .unwrap();
    assert_eq!(
        failure(c.system_shared_memory_register(register("in", 0, 64)).await),
        (
            Code::AlreadyExists,
            "shared memory region 'in' already in manager".to_string()
        )
    );
    let status = c
        .system_shared_memory_status(pb::SystemSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<&String> = status.regions.keys().collect();
    names.sort();
    assert_eq!(names, ["in", "out"]);
    let out_status = &status.regions["out"];
    assert_eq!(
        (
            out_status.key.as_str(),
            out_status.offset,
            out_status.byte_size
        ),
        (shm.key.as_str(), 1024, 1024)
    );

    // INPUT0 from shared memory; INPUT1 takes the first raw contents entry.
    let mut in0 = input("INPUT0", "INT32", &[1, 16]);
    in0.parameters = shm_params("in", 0, 64);
    let mut out0 = output("OUTPUT0");
    out0.parameters = shm_params("out", 16, 64);
    let mut req = request(
        "simple",
        vec![in0.clone(), input("INPUT1", "INT32", &[1, 16])],
    );
    req.raw_input_contents = vec![int32s(&[1; 16])];
    req.outputs = vec![out0.clone(), output("OUTPUT1")];
    req.id = "shm".into();
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.outputs.len(), 2);
    assert_eq!(
        (r.outputs[0].name.as_str(), r.outputs[0].shape.as_slice()),
        ("OUTPUT0", &[1i64, 16][..])
    );
    assert!(r.outputs[0].parameters.is_empty());
    assert!(
        r.raw_output_contents[0].is_empty(),
        "a shared memory output carries no data"
    );
    let sum: Vec<i32> = a.iter().map(|x| x + 1).collect();
    assert_eq!(as_int32s(&shm.bytes()[1024 + 16..1024 + 80]), sum);
    assert_eq!(
        as_int32s(&r.raw_output_contents[1]),
        a.iter().map(|x| x - 1).collect::<Vec<_>>()
    );

    // Both inputs from shared memory, BYTES output into it.
    let mut in1 = input("INPUT1", "INT32", &[1, 16]);
    in1.parameters = shm_params("in", 64, 64);
    let mut req = request("simple", vec![in0.clone(), in1]);
    req.outputs = vec![output("OUTPUT1")];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        as_int32s(&r.raw_output_contents[0]),
        a.iter().map(|x| x - 5).collect::<Vec<_>>()
    );
    let mut req = request(
        "simple_identity",
        vec![typed("INPUT0", "BYTES", &[1, 2], |c| {
            c.bytes_contents = vec![b"ab".to_vec(), b"c".to_vec()]
        })],
    );
    let mut o = output("OUTPUT0");
    o.parameters = shm_params("out", 0, 64);
    req.outputs = vec![o];
    c.model_infer(req).await.unwrap();
    assert_eq!(&shm.bytes()[1024..1024 + 11], b"\x02\0\0\0ab\x01\0\0\0c");

    // Shared memory mistakes.
    let cases: Vec<(pb::ModelInferRequest, Code, &str)> = {
        let with_in0 = |p| {
            let mut t = input("INPUT0", "INT32", &[1, 16]);
            t.parameters = p;
            request(
                "simple",
                vec![t, ints("INPUT1", "INT32", &[1, 16], &[1; 16])],
            )
        };
        let with_out0 = |p| {
            let mut req = simple_request();
            let mut o = output("OUTPUT0");
            o.parameters = p;
            req.outputs = vec![o];
            req
        };
        let mut both = shm_params("out", 0, 64);
        both.insert("classification".into(), param(P::Int64Param(2)));
        let mut content_too = with_in0(shm_params("in", 0, 64));
        content_too.inputs[0].contents = Some(pb::InferTensorContents {
            int_contents: vec![1; 16],
            ..Default::default()
        });
        vec![
            (
                with_in0(shm_params("nope", 0, 64)),
                Code::NotFound,
                "Unable to find shared memory region: 'nope'",
            ),
            (
                with_in0(shm_params("in", 1000, 64)),
                Code::InvalidArgument,
                "Invalid offset + byte size for shared memory region: 'in'",
            ),
            (
                with_in0(shm_params("in", -4, 64)),
                Code::InvalidArgument,
                "Invalid offset for shared memory region: 'in'",
            ),
            (
                with_in0(shm_params("in", 0, 60)),
                Code::InvalidArgument,
                "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60",
            ),
            (
                with_in0(params(&[(
                    "shared_memory_region",
                    P::StringParam("in".into()),
                )])),
                Code::InvalidArgument,
                "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'INPUT0'",
            ),
            (
                with_in0(params(&[("shared_memory_byte_size", P::Int64Param(64))])),
                Code::InvalidArgument,
                "'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor 'INPUT0'",
            ),
            (
                with_in0(params(&[
                    ("shared_memory_region", P::Int64Param(1)),
                    ("shared_memory_byte_size", P::Int64Param(64)),
                ])),
                Code::InvalidArgument,
                "invalid value type for 'shared_memory_region' parameter for tensor 'INPUT0', expected string_param.",
            ),
            (
                content_too,
                Code::InvalidArgument,
                "unexpected 'content' provided when using shared memory for input tensor 'INPUT0' for model 'simple'",
            ),
            (
                with_out0(shm_params("nope", 0, 64)),
                Code::NotFound,
                "Unable to find shared memory region: 'nope'",
            ),
            (
                with_out0(shm_params("out", 0, 32)),
                Code::Internal,
                "shared memory size specified with the request for output 'OUTPUT0' (32 bytes) should be at least 64 bytes to hold the results",
            ),
            (
                with_out0(shm_params("out", 1000, 64)),
                Code::InvalidArgument,
                "Invalid offset + byte size for shared memory region: 'out'",
            ),
            (
                with_out0(both),
                Code::InvalidArgument,
                "output can't set both 'shared_memory_region' and 'classification'",
            ),
        ]
    };
    for (req, code, message) in cases {
        assert_eq!(
            failure(c.model_infer(req).await),
            (code, message.to_string())
        );
    }

    c.system_shared_memory_unregister(pb::SystemSharedMemoryUnregisterRequest {
        name: "in".into(),
    })
    .await
    .unwrap();
    c.system_shared_memory_unregister(pb::SystemSharedMemoryUnregisterRequest {
        name: "nope".into(),
    })
    .await
    .unwrap();
    let status = c
        .system_shared_memory_status(pb::SystemSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.regions.keys().collect::<Vec<_>>(), ["out"]);
    assert_eq!(
        failure(
            c.system_shared_memory_status(pb::SystemSharedMemoryStatusRequest {
                name: "in".into()
            })
            .await
        ),
        (
            Code::NotFound,
            "Unable to find system shared memory region: 'in'".to_string()
        )
    );
    let mut req = request(
        "simple",
        vec![in0, ints("INPUT1", "INT32", &[1, 16], &[1; 16])],
    );
    req.outputs = vec![output("OUTPUT0")];
    assert_eq!(
        failure(c.model_infer(req).await),
        (
            Code::NotFound,
            "Unable to find shared memory region: 'in'".to_string()
        )
    );
    c.system_shared_memory_unregister(pb::SystemSharedMemoryUnregisterRequest::default())
        .await
        .unwrap();
    let status = c
        .system_shared_memory_status(pb::SystemSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.regions.is_empty());
    assert_eq!(
        failure(
            c.system_shared_memory_register(pb::SystemSharedMemoryRegisterRequest {
                name: "x".into(),
                key: "/despina_no_such_key".into(),
                offset: 0,
                byte_size: 64
            })
            .await
        ),
        (
            Code::Internal,
            "Unable to open shared memory region: '/despina_no_such_key'".to_string()
        )
    );
    // Windows beyond the object (4096 bytes) and empty ones are refused as Triton refuses them.
    for (offset, byte_size, code, message) in [
        (
            0,
            8192,
            Code::InvalidArgument,
            "failed to register shared memory region 'w': invalid args",
        ),
        (
            4000,
            200,
            Code::InvalidArgument,
            "failed to register shared memory region 'w': invalid args",
        ),
        (
            0,
            0,
            Code::InvalidArgument,
            "failed to register shared memory region 'w': unable to process address spaceInvalid argument",
        ),
    ] {
        let r = pb::SystemSharedMemoryRegisterRequest {
            name: "w".into(),
            key: shm.key.clone(),
            offset,
            byte_size,
        };
        assert_eq!(
            failure(c.system_shared_memory_register(r).await),
            (code, message.to_string())
        );
    }
    // Unaligned offsets work (Triton 2.51 cannot map them).
    let r = pb::SystemSharedMemoryRegisterRequest {
        name: "w".into(),
        key: shm.key.clone(),
        offset: 100,
        byte_size: 64,
    };
    c.system_shared_memory_register(r).await.unwrap();
    shm.bytes()[100..164].copy_from_slice(&int32s(&[9; 16]));
    let mut in0 = input("INPUT0", "INT32", &[1, 16]);
    in0.parameters = shm_params("w", 0, 64);
    let mut req = request(
        "simple",
        vec![in0, ints("INPUT1", "INT32", &[1, 16], &[1; 16])],
    );
    req.outputs = vec![output("OUTPUT0")];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(as_int32s(&r.raw_output_contents[0]), [10; 16]);
    // With the object already mapped for another region, Triton says this instead.
    let r = pb::SystemSharedMemoryRegisterRequest {
        name: "w2".into(),
        key: shm.key.clone(),
        offset: 0,
        byte_size: 8192,
    };
    assert_eq!(
        failure(c.system_shared_memory_register(r).await),
        (
            Code::Internal,
            format!("Invalid shared memory region: '{}'", shm.key)
        )
    );
}

/// Triton's answers to bad requests, recorded from the reference (one deliberate difference:
/// a negative timeout is refused instead of read as 2^64-1 microseconds).
#[tokio::test]
async fn bad_requests_answer_like_triton() {
    let server = start();
    let mut c = client(&server).await;
    let simple_with = |f: &dyn Fn(&mut pb::ModelInferRequest)| {
        let mut r = simple_request();
        f(&mut r);
        r
    };
    let with_params = |pairs: &[(&str, P)]| {
        let mut r = simple_request();
        r.parameters = params(pairs);
        r
    };
    let raw_simple = |raw: Vec<bytes::Bytes>| {
        let mut r = request(
            "simple",
            vec![
                input("INPUT0", "INT32", &[1, 16]),
                input("INPUT1", "INT32", &[1, 16]),
            ],
        );
        r.raw_input_contents = raw;
        r
    };
    let sixteen: Vec<i32> = (0..16).collect();
    let ia = |name: &str, dt: &str, shape: &[i64], n: i32| {
        ints(name, dt, shape, &(0..n).collect::<Vec<i32>>())
    };
    let mismatch = "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.";
    let cases: Vec<(&str, pb::ModelInferRequest, Code, String)> = vec![
        ("wrong shape", request("simple", vec![ia("INPUT0", "INT32", &[1, 15], 15), ints("INPUT1", "INT32", &[1, 16], &[1; 16])]), Code::InvalidArgument, mismatch.into()),
        ("wrong datatype", simple_with(&|r| r.inputs[0] = typed("INPUT0", "FP32", &[1, 16], |c| c.fp32_contents = vec![0.0; 16])), Code::InvalidArgument,
            "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'".into()),
        ("contents of another type", simple_with(&|r| r.inputs[0] = typed("INPUT0", "INT32", &[1, 16], |c| c.fp32_contents = vec![0.0; 16])), Code::InvalidArgument,
            "unexpected explicit tensor data for input tensor 'INPUT0' for model 'simple' of type 'FP32', expected datatype 'INT32'".into()),
        ("two contents fields", simple_with(&|r| r.inputs[0].contents.as_mut().unwrap().int64_contents = vec![1; 16]), Code::InvalidArgument,
            "unexpected explicit tensor data for input tensor 'INPUT0' for model 'simple', binary data was already supplied.".into()),
        ("FP16 typed", request("identity_fp32", vec![typed("INPUT0", "FP16", &[1, 2], |c| c.fp32_contents = vec![1.0, 2.0])]), Code::InvalidArgument,
            "unexpected explicit tensor data for input tensor 'INPUT0' for model 'identity_fp32' of type 'FP32', expected datatype 'FP16'".into()),
        ("unknown datatype", { let mut r = raw_simple(vec![int32s(&sixteen), int32s(&sixteen)]); r.inputs[0].datatype = "INT33".into(); r }, Code::InvalidArgument,
            "[request id: <id_unknown>] inference input 'INPUT0' data-type is '<invalid>', but model 'simple' expects 'INT32'".into()),
        ("missing input", request("simple", vec![ia("INPUT0", "INT32", &[1, 16], 16)]), Code::InvalidArgument,
            "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).".into()),
        ("extra input", simple_with(&|r| r.inputs.push(ia("INPUT2", "INT32", &[1, 16], 16))), Code::InvalidArgument,
            "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'simple'. Got input(s) ['INPUT2','INPUT1','INPUT0'], but missing required input(s) ]. Please provide all required input(s).".into()),
        ("unknown input", simple_with(&|r| r.inputs[1] = ia("X", "INT32", &[1, 16], 16)), Code::InvalidArgument,
            "unexpected inference input 'X' for model 'simple'".into()),
        ("duplicate input", simple_with(&|r| r.inputs[1] = ia("INPUT0", "INT32", &[1, 16], 16)), Code::InvalidArgument,
            "[request id: <id_unknown>] input 'INPUT0' already exists in request".into()),
        ("unknown output", simple_with(&|r| r.outputs = vec![output("OUTPUT9")]), Code::InvalidArgument,
            "unexpected inference output 'OUTPUT9' for model 'simple'".into()),
        ("batch mismatch", request("simple", vec![ia("INPUT0", "INT32", &[2, 16], 32), ia("INPUT1", "INT32", &[1, 16], 16)]), Code::InvalidArgument,
            "[request id: <id_unknown>] input 'INPUT0' batch size does not match other inputs for 'simple'".into()),
        ("two wrong shapes: Triton names the last", request("simple", vec![ia("INPUT0", "INT32", &[1, 8], 8), ia("INPUT1", "INT32", &[1, 8], 8)]), Code::InvalidArgument,
            mismatch.replace("INPUT0", "INPUT1").replace("[1,15]", "[1,8]")),
        ("batch over max", request("simple", vec![ia("INPUT0", "INT32", &[9, 16], 144), ia("INPUT1", "INT32", &[9, 16], 144)]), Code::InvalidArgument,
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'".into()),
        ("no batch dimension", request("simple", vec![ia("INPUT0", "INT32", &[16], 16), ia("INPUT1", "INT32", &[16], 16)]), Code::InvalidArgument,
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'".into()),
        ("typed count short", { let mut r = simple_request(); r.id = "short".into(); r.inputs[0] = ia("INPUT0", "INT32", &[1, 16], 10); r }, Code::InvalidArgument,
            "[request id: short] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 40".into()),
        ("typed count long", simple_with(&|r| r.inputs[0] = ia("INPUT0", "INT32", &[1, 16], 17)), Code::InvalidArgument,
            "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 68".into()),
        ("raw byte size", raw_simple(vec![int32s(&sixteen[..15]), int32s(&sixteen)]), Code::InvalidArgument,
            "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60".into()),
        ("raw count short", raw_simple(vec![int32s(&sixteen)]), Code::InvalidArgument,
            "unable to find data for input tensor 'INPUT1' for model 'simple' in request.".into()),
        ("no data", simple_with(&|r| r.inputs[0].contents = None), Code::InvalidArgument,
            "unable to find data for input tensor 'INPUT0' for model 'simple' in request.".into()),
        ("raw and typed mixed", { let mut r = simple_request(); r.raw_input_contents = vec![int32s(&sixteen)]; r }, Code::InvalidArgument,
            "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'".into()),
        ("BYTES count short", request("simple_identity", vec![typed("INPUT0", "BYTES", &[1, 3], |c| c.bytes_contents = vec![b"a".to_vec(), b"b".to_vec()])]), Code::InvalidArgument,
            "[request id: <id_unknown>] expected 3 string elements for inference input 'INPUT0' for model 'simple_identity', got 2".into()),
        ("BYTES count long", { let mut r = request("simple_identity", vec![input("INPUT0", "BYTES", &[1, 1])]); r.raw_input_contents = vec![serialized(&["a", "b"])]; r }, Code::InvalidArgument,
            "[request id: <id_unknown>] unexpected number of string elements 2 for inference input 'INPUT0' for model 'simple_identity', expecting 1".into()),
        ("BYTES cut length", { let mut r = request("simple_identity", vec![input("INPUT0", "BYTES", &[1, 1])]); r.raw_input_contents = vec![vec![1u8, 0].into()]; r }, Code::InvalidArgument,
            "[request id: <id_unknown>] incomplete string length indicator for inference input 'INPUT0' for model 'simple_identity', expecting 4 bytes but only 2 bytes available. Please make sure the string length indicator is in one buffer.".into()),
        ("BYTES cut data", { let mut r = request("simple_identity", vec![input("INPUT0", "BYTES", &[1, 1])]); r.raw_input_contents = vec![b"\x0a\0\0\0abc".to_vec().into()]; r }, Code::InvalidArgument,
            "incomplete string data for inference input 'INPUT0', expecting string of length 10 but only 3 bytes available".into()),
        ("decoupled on unary", request("square_int32", vec![ints("IN", "INT32", &[1], &[2])]), Code::Unimplemented,
            "ModelInfer RPC doesn't support models with decoupled transaction policy".into()),
        ("unknown model", { let mut r = simple_request(); r.model_name = "nope".into(); r }, Code::NotFound, "Request for unknown model: 'nope' is not found".into()),
        ("unknown version", { let mut r = simple_request(); r.model_version = "9".into(); r }, Code::NotFound, "Request for unknown model: 'simple' version 9 is not found".into()),
        ("version not served", { let mut r = request("versioned", vec![ints("INPUT0", "INT32", &[1, 2], &[5, 6])]); r.model_version = "3".into(); r }, Code::NotFound,
            "Request for unknown model: 'versioned' version 3 is not found".into()),
        ("bad version string", { let mut r = simple_request(); r.model_version = "abc".into(); r }, Code::InvalidArgument,
            "failed to get model version from specified version string 'abc' (details: stol), version should be an integral value > 0".into()),
        ("negative version", { let mut r = simple_request(); r.model_version = "-1".into(); r }, Code::InvalidArgument,
            "invalid model version specified '-1' , version should be an integral value > 0".into()),
        ("negative timeout", with_params(&[("timeout", P::Int64Param(-1))]), Code::InvalidArgument, "invalid value for 'timeout', expected value >= 0.".into()),
        ("timeout as string", with_params(&[("timeout", P::StringParam("5".into()))]), Code::InvalidArgument,
            "invalid value type for 'timeout' parameter, expected int64_param.".into()),
        ("negative priority", with_params(&[("priority", P::Int64Param(-1))]), Code::InvalidArgument, "invalid value for 'priority', expected value >= 0.".into()),
        ("priority as bool", with_params(&[("priority", P::BoolParam(true))]), Code::InvalidArgument,
            "invalid value type for 'priority' parameter, expected int64_param or uint64_param.".into()),
        ("sequence id as bool", with_params(&[("sequence_id", P::BoolParam(true))]), Code::InvalidArgument,
            "invalid value type for 'sequence_id' parameter, expected int64_param or string_param.".into()),
        ("sequence start as int", with_params(&[("sequence_start", P::Int64Param(1))]), Code::InvalidArgument,
            "invalid value type for 'sequence_start' parameter, expected bool_param.".into()),
        ("reserved parameter", with_params(&[("triton_foo", P::Int64Param(1))]), Code::InvalidArgument,
            "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: triton_enable_empty_final_response".into()),
        ("uint64 custom parameter", with_params(&[("u", P::Uint64Param(3))]), Code::InvalidArgument,
            "invalid value type for 'u' parameter, expected int64_param, bool_param, or string_param.".into()),
    ];
    for (what, req, code, message) in cases {
        let got = failure(c.model_infer(req).await);
        assert_eq!(got, (code, message), "{what}");
    }
    // The server is unharmed.
    let r = c.model_infer(simple_request()).await.unwrap().into_inner();
    assert_eq!(
        as_int32s(&r.raw_output_contents[0]),
        (1..=16).collect::<Vec<i32>>()
    );
}

/// A model with priority levels refuses a level it does not have (Triton would quietly use
/// the default level).
#[tokio::test]
async fn priority_levels() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("prio");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::write(
        model.join("config.pbtxt"),
        r#"name: "prio"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
dynamic_batching { priority_levels: 2 default_priority_level: 2 }
"#,
    )
    .unwrap();
    let server = common::TestServer::start(dir.path(), &[]);
    let mut c = client(&server).await;
    for level in [0u64, 1, 2] {
        let mut req = request("prio", vec![ints("INPUT0", "INT32", &[1, 2], &[4, 2])]);
        req.parameters = params(&[("priority", P::Uint64Param(level))]);
        let r = c.model_infer(req).await.unwrap().into_inner();
        assert_eq!(as_int32s(&r.raw_output_contents[0]), [4, 2]);
    }
    let mut req = request("prio", vec![ints("INPUT0", "INT32", &[1, 2], &[4, 2])]);
    req.parameters = params(&[("priority", P::Int64Param(3))]);
    assert_eq!(
        failure(c.model_infer(req).await),
        (
            Code::InvalidArgument,
            "priority level 3 is out of range: the model has priority levels 1 to 2".to_string()
        )
    );
}

/// A client that gives up cancels its request: `slow_batch` holds it for a batch, and the
/// cancelled request fails there instead of running.
#[tokio::test]
async fn client_deadline_cancels_the_request() {
    let repo = slow_batch_repo();
    let server = start_with_slow_batch(&repo, &[]);
    let mut c = client(&server).await;
    let mut req = tonic::Request::new(slow_batch_request("gone"));
    req.set_timeout(std::time::Duration::from_millis(300));
    // tonic's server enforces the deadline too, and answers first.
    assert_eq!(
        failure(c.model_infer(req).await),
        (Code::Cancelled, "Timeout expired".to_string())
    );
    let stats = wait_for_stats(&mut c, "slow_batch", |s| counts(s).1 == 1).await;
    assert_eq!(
        (counts(&stats), stats.inference_count, stats.execution_count),
        ((0, 1), 0, 0)
    );
    // The model still answers whoever waits.
    let r = c
        .model_infer(slow_batch_request("stays"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.id.as_str(), as_fp32s(&r.raw_output_contents[0])),
        ("stays", vec![1.0, 2.0])
    );
}
