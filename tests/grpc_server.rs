//! Server and model questions over gRPC against the real binary: health (inference and
//! grpc.health.v1), metadata, readiness, configuration, statistics, the repository index,
//! CUDA shared memory without a GPU, trace and log settings, and the message size limit.

mod common;
mod grpc_support;

use std::time::{SystemTime, UNIX_EPOCH};

use despina::proto::health::health_check_response::ServingStatus;
use despina::proto::health::{HealthCheckRequest, health_client::HealthClient};
use despina::proto::inference::log_settings_request::setting_value::ParameterChoice as L;
use despina::proto::inference::log_settings_response::setting_value::ParameterChoice as LOut;
use grpc_support::*;
use tonic::Code;

#[tokio::test]
async fn health_and_server_metadata() {
    let server = start();
    let mut c = client(&server).await;
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "despina");
    assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));
    for ext in [
        "classification",
        "sequence",
        "model_repository",
        "system_shared_memory",
        "parameters",
        "statistics",
        "trace",
        "logging",
    ] {
        assert!(
            meta.extensions.iter().any(|e| e == ext),
            "{ext} in {:?}",
            meta.extensions
        );
    }

    // Like Triton: the server's readiness, whatever service is named.
    let mut health = HealthClient::connect(server.grpc_url()).await.unwrap();
    for service in ["", "inference.GRPCInferenceService", "anything"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn not_ready_while_a_model_failed() {
    // Strict readiness: a model that failed to load makes the server unready (and unhealthy).
    let broken = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(broken.path().join("broken/1")).unwrap();
    std::fs::write(
        broken.path().join("broken/config.pbtxt"),
        "name: \"broken\"\nbackend: \"no_such_backend\"\nmax_batch_size: 0\n",
    )
    .unwrap();
    let server = common::TestServer::start_with(
        &[&common::test_models(), broken.path()],
        &[
            "--model-control-mode=explicit",
            "--load-model=simple",
            "--load-model=broken",
            "--exit-on-error=false",
        ],
    );
    let mut c = client(&server).await;
    assert!(
        !c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let mut health = HealthClient::connect(server.grpc_url()).await.unwrap();
    let r = health
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::NotServing as i32);
    let ready = |name: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        c.model_ready(ready("simple"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("broken"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
}

#[tokio::test]
async fn model_ready_metadata_and_config() {
    let server = start();
    let mut c = client(&server).await;
    let ready = |name: &str, version: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    for (name, version, want) in [
        ("simple", "", true),
        ("simple", "1", true),
        ("simple", "2", false),
        ("simple", "0", false),
        ("nope", "", false),
        ("", "", false),
        ("versioned", "1", true),
        ("versioned", "2", true),
        ("versioned", "3", false),
    ] {
        let r = c
            .model_ready(ready(name, version))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.ready, want, "{name} {version:?}");
    }
    assert_eq!(
        failure(c.model_ready(ready("simple", "abc")).await),
        (Code::InvalidArgument, "failed to get model version from specified version string 'abc' (details: stol), version should be an integral value > 0".to_string())
    );
    assert_eq!(
        failure(c.model_ready(ready("simple", "-1")).await),
        (
            Code::InvalidArgument,
            "invalid model version specified '-1' , version should be an integral value > 0"
                .to_string()
        )
    );

    let meta = |name: &str, version: &str| pb::ModelMetadataRequest {
        name: name.into(),
        version: version.into(),
    };
    let m = c
        .model_metadata(meta("simple", ""))
        .await
        .unwrap()
        .into_inner();
    let tensor =
        |name: &str, datatype: &str, shape: &[i64]| pb::model_metadata_response::TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        };
    assert_eq!(m.name, "simple");
    assert_eq!(m.versions, ["1"]);
    assert_eq!(
        m.inputs,
        [
            tensor("INPUT0", "INT32", &[-1, 16]),
            tensor("INPUT1", "INT32", &[-1, 16])
        ]
    );
    assert_eq!(
        m.outputs,
        [
            tensor("OUTPUT0", "INT32", &[-1, 16]),
            tensor("OUTPUT1", "INT32", &[-1, 16])
        ]
    );
    let m = c
        .model_metadata(meta("square_int32", "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (m.inputs, m.outputs),
        (
            vec![tensor("IN", "INT32", &[1])],
            vec![tensor("OUT", "INT32", &[1])]
        )
    );
    let m = c
        .model_metadata(meta("versioned", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.versions, ["1", "2"]);
    let m = c
        .model_metadata(meta("versioned", "2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.versions, ["2"]);
    assert_eq!(m.inputs, [tensor("INPUT0", "INT32", &[-1, -1])]);
    assert_eq!(
        failure(c.model_metadata(meta("nope", "")).await),
        (
            Code::NotFound,
            "Request for unknown model: 'nope' is not found".to_string()
        )
    );
    assert_eq!(
        failure(c.model_metadata(meta("versioned", "3")).await),
        (
            Code::NotFound,
            "Request for unknown model: 'versioned' version 3 is not found".to_string()
        )
    );
    assert_eq!(
        failure(c.model_metadata(meta("simple", "0")).await),
        (
            Code::NotFound,
            "Request for unknown model: 'simple' version 0 is not found".to_string()
        )
    );

    let config = |name: &str, version: &str| pb::ModelConfigRequest {
        name: name.into(),
        version: version.into(),
    };
    let cfg = c
        .model_config(config("simple", ""))
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        (cfg.name.as_str(), cfg.backend.as_str(), cfg.max_batch_size),
        ("simple", "add_sub", 8)
    );
    let inputs: Vec<(&str, i32, &[i64])> = cfg
        .input
        .iter()
        .map(|i| (i.name.as_str(), i.data_type, i.dims.as_slice()))
        .collect();
    let int32 = pb::DataType::TypeInt32 as i32;
    assert_eq!(
        inputs,
        [
            ("INPUT0", int32, &[16i64][..]),
            ("INPUT1", int32, &[16][..])
        ]
    );
    let cfg = c
        .model_config(config("square_int32", "1"))
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert!(cfg.model_transaction_policy.unwrap().decoupled);
    let cfg = c
        .model_config(config("classify_fp32", ""))
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(cfg.output[0].label_filename, "labels.txt");
    assert_eq!(
        failure(c.model_config(config("versioned", "3")).await),
        (
            Code::NotFound,
            "Request for unknown model: 'versioned' version 3 is not found".to_string()
        )
    );
    assert_eq!(
        failure(c.model_config(config("nope", "")).await),
        (
            Code::NotFound,
            "Request for unknown model: 'nope' is not found".to_string()
        )
    );
}

#[tokio::test]
async fn statistics_count_exactly() {
    let server = start();
    let mut c = client(&server).await;
    let stats = |name: &str, version: &str| pb::ModelStatisticsRequest {
        name: name.into(),
        version: version.into(),
    };
    let before = c
        .model_statistics(stats("simple", ""))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(before.len(), 1);
    assert_eq!(
        (
            before[0].inference_count,
            before[0].execution_count,
            before[0].last_inference
        ),
        (0, 0, 0)
    );
    assert_eq!(counts(&before[0]), (0, 0));

    for batch in [1i64, 2, 3] {
        let n = batch as usize * 16;
        let req = request(
            "simple",
            vec![
                ints("INPUT0", "INT32", &[batch, 16], &vec![1; n]),
                ints("INPUT1", "INT32", &[batch, 16], &vec![2; n]),
            ],
        );
        c.model_infer(req).await.unwrap();
    }
    // Refused before the model (validation): not counted, as in Triton.
    let bad = request(
        "simple",
        vec![
            ints("INPUT0", "INT32", &[1, 15], &[1; 15]),
            ints("INPUT1", "INT32", &[1, 16], &[1; 16]),
        ],
    );
    failure(c.model_infer(bad).await);

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let s = c
        .model_statistics(stats("simple", "1"))
        .await
        .unwrap()
        .into_inner()
        .model_stats
        .remove(0);
    assert_eq!((s.name.as_str(), s.version.as_str()), ("simple", "1"));
    assert_eq!((s.inference_count, s.execution_count), (6, 3));
    assert_eq!(counts(&s), (3, 0));
    assert!(
        s.last_inference > now_ms - 60_000 && s.last_inference <= now_ms,
        "{}",
        s.last_inference
    );
    let is = s.inference_stats.as_ref().unwrap();
    for d in [
        &is.queue,
        &is.compute_input,
        &is.compute_infer,
        &is.compute_output,
    ] {
        assert_eq!(d.as_ref().unwrap().count, 3);
    }
    let mut batches: Vec<(u64, u64)> = s
        .batch_stats
        .iter()
        .map(|b| (b.batch_size, b.compute_infer.as_ref().unwrap().count))
        .collect();
    batches.sort();
    assert_eq!(batches, [(1, 1), (2, 1), (3, 1)]);

    let all = c
        .model_statistics(stats("", ""))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    let mut names: Vec<(String, String)> = all
        .iter()
        .map(|s| (s.name.clone(), s.version.clone()))
        .collect();
    names.sort();
    let mut want: Vec<(String, String)> = MODELS
        .iter()
        .map(|m| (m.to_string(), "1".to_string()))
        .collect();
    want.push(("versioned".into(), "2".into()));
    want.sort();
    assert_eq!(names, want);
    let v = c
        .model_statistics(stats("versioned", "2"))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!((v.len(), v[0].version.as_str()), (1, "2"));
    assert_eq!(
        failure(c.model_statistics(stats("nope", "")).await),
        (
            Code::InvalidArgument,
            "requested model 'nope' is not available".to_string()
        )
    );
    assert_eq!(
        failure(c.model_statistics(stats("versioned", "3")).await),
        (
            Code::InvalidArgument,
            "requested model version is not available for model 'versioned'".to_string()
        )
    );
}

#[tokio::test]
async fn repository_index_and_cuda_shared_memory() {
    let server = common::TestServer::start(
        &common::test_models(),
        &[
            "--model-control-mode=explicit",
            "--load-model=simple",
            "--load-model=versioned",
        ],
    );
    let mut c = client(&server).await;
    let index = c
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, &str, &str)> = index
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("add_sub", "", ""),
            ("classify_fp32", "", ""),
            ("ensemble_simple", "", ""),
            ("identity_fp32", "", ""),
            ("sequence_accumulate", "", ""),
            ("simple", "1", "READY"),
            ("simple_identity", "", ""),
            ("simple_int8", "", ""),
            ("simple_string", "", ""),
            ("square_int32", "", ""),
            ("versioned", "1", "READY"),
            ("versioned", "2", "READY"),
        ]
    );
    let ready = c
        .repository_index(pb::RepositoryIndexRequest {
            ready: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, &str)> = ready
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str()))
        .collect();
    assert_eq!(
        rows,
        [("simple", "1"), ("versioned", "1"), ("versioned", "2")]
    );
    assert_eq!(
        failure(
            c.repository_index(pb::RepositoryIndexRequest {
                repository_name: "models".into(),
                ready: false
            })
            .await
        ),
        (
            Code::Unimplemented,
            "'repository_name' specification is not supported".to_string()
        )
    );

    // CUDA shared memory answers as Triton does on a machine without a GPU.
    let status = c
        .cuda_shared_memory_status(pb::CudaSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.regions.is_empty());
    assert_eq!(
        failure(
            c.cuda_shared_memory_status(pb::CudaSharedMemoryStatusRequest {
                name: "nope".into()
            })
            .await
        ),
        (
            Code::NotFound,
            "Unable to find cuda shared memory region: 'nope'".to_string()
        )
    );
    let register = pb::CudaSharedMemoryRegisterRequest {
        name: "c0".into(),
        raw_handle: vec![0; 64],
        device_id: 0,
        byte_size: 64,
    };
    assert_eq!(
        failure(c.cuda_shared_memory_register(register).await),
        (
            Code::InvalidArgument,
            "failed to register shared memory region: invalid args".to_string()
        )
    );
    c.cuda_shared_memory_unregister(pb::CudaSharedMemoryUnregisterRequest {
        name: "nope".into(),
    })
    .await
    .unwrap();
    c.cuda_shared_memory_unregister(pb::CudaSharedMemoryUnregisterRequest::default())
        .await
        .unwrap();
}

fn trace_map(r: pb::TraceSettingResponse) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> =
        r.settings.into_iter().map(|(k, s)| (k, s.value)).collect();
    v.sort();
    v
}

fn trace_request(model: &str, pairs: &[(&str, &[&str])]) -> pb::TraceSettingRequest {
    let settings = pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                pb::trace_setting_request::SettingValue {
                    value: v.iter().map(|s| s.to_string()).collect(),
                },
            )
        })
        .collect();
    pb::TraceSettingRequest {
        settings,
        model_name: model.into(),
    }
}

fn trace_settings(level: &str, rate: &str, count: &str) -> Vec<(String, Vec<String>)> {
    let one = |k: &str, v: &str| (k.to_string(), vec![v.to_string()]);
    vec![
        one("log_frequency", "0"),
        one("trace_count", count),
        one("trace_file", ""),
        one("trace_level", level),
        one("trace_mode", "triton"),
        one("trace_rate", rate),
    ]
}

#[tokio::test]
async fn trace_settings_global_and_per_model() {
    let server = start();
    let mut c = client(&server).await;
    let get = trace_map(
        c.trace_setting(trace_request("", &[]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(get, trace_settings("OFF", "1000", "-1"));
    let set = c
        .trace_setting(trace_request(
            "",
            &[
                ("trace_rate", &["7"]),
                ("trace_count", &["5"]),
                ("nope", &["1"]),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(trace_map(set.into_inner()), trace_settings("OFF", "7", "5"));
    // A model follows the global settings until it has its own.
    assert_eq!(
        trace_map(
            c.trace_setting(trace_request("simple", &[]))
                .await
                .unwrap()
                .into_inner()
        ),
        trace_settings("OFF", "7", "5")
    );
    let own = c
        .trace_setting(trace_request("simple", &[("trace_rate", &["3"])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trace_map(own), trace_settings("OFF", "3", "5"));
    assert_eq!(
        trace_map(
            c.trace_setting(trace_request("", &[]))
                .await
                .unwrap()
                .into_inner()
        ),
        trace_settings("OFF", "7", "5")
    );
    // An empty value resets: a model's key to the global value, a global key to its default.
    let reset = c
        .trace_setting(trace_request("simple", &[("trace_rate", &[])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trace_map(reset), trace_settings("OFF", "7", "5"));
    let reset = c
        .trace_setting(trace_request(
            "",
            &[("trace_rate", &[]), ("trace_count", &[])],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trace_map(reset), trace_settings("OFF", "1000", "-1"));

    for (model, pairs, code, message) in [
        (
            "nope",
            &[][..],
            Code::InvalidArgument,
            "Request for unknown model : nope",
        ),
        (
            "",
            &[("trace_file", &["/tmp/x"][..])][..],
            Code::Unimplemented,
            "trace file location can not be updated through network protocol",
        ),
        (
            "",
            &[("trace_level", &["TIMESTAMPS"][..])][..],
            Code::InvalidArgument,
            "Attempting to set invalid trace setting :trace file name is not given",
        ),
        (
            "",
            &[("trace_level", &["OFF", "TIMESTAMPS"][..])][..],
            Code::InvalidArgument,
            "Expect only one trace level 'OFF' is specified",
        ),
        (
            "",
            &[("trace_rate", &["abc"][..])][..],
            Code::InvalidArgument,
            "Unable to parse 'trace_rate', got: abc",
        ),
        (
            "",
            &[("trace_rate", &["1", "2"][..])][..],
            Code::InvalidArgument,
            "expect only 1 value for 'trace_rate'",
        ),
        (
            "",
            &[("trace_count", &["-2"][..])][..],
            Code::InvalidArgument,
            "Unable to parse 'trace_count'. Expecting value >= -1, got: -2",
        ),
    ] {
        assert_eq!(
            failure(c.trace_setting(trace_request(model, pairs)).await),
            (code, message.to_string())
        );
    }
}

fn log_request(pairs: Vec<(&str, L)>) -> pb::LogSettingsRequest {
    let settings = pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                pb::log_settings_request::SettingValue {
                    parameter_choice: Some(v),
                },
            )
        })
        .collect();
    pb::LogSettingsRequest { settings }
}

fn log_map(r: pb::LogSettingsResponse) -> Vec<(String, LOut)> {
    let mut v: Vec<(String, LOut)> = r
        .settings
        .into_iter()
        .map(|(k, s)| (k, s.parameter_choice.unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn log_settings_change_what_is_logged() {
    let server = start();
    let mut c = client(&server).await;
    let defaults = vec![
        ("log_error".to_string(), LOut::BoolParam(true)),
        ("log_file".to_string(), LOut::StringParam(String::new())),
        (
            "log_format".to_string(),
            LOut::StringParam("default".into()),
        ),
        ("log_info".to_string(), LOut::BoolParam(true)),
        ("log_verbose_level".to_string(), LOut::Uint32Param(0)),
        ("log_warning".to_string(), LOut::BoolParam(true)),
    ];
    assert_eq!(
        log_map(
            c.log_settings(log_request(vec![]))
                .await
                .unwrap()
                .into_inner()
        ),
        defaults
    );

    let mut req = simple_request();
    req.id = "quiet".into();
    c.model_infer(req).await.unwrap();
    let verbose = c
        .log_settings(log_request(vec![
            ("log_verbose_level", L::Uint32Param(1)),
            ("unknown", L::BoolParam(true)),
        ]))
        .await
        .unwrap();
    let mut want = defaults.clone();
    want[4].1 = LOut::Uint32Param(1);
    assert_eq!(log_map(verbose.into_inner()), want);
    let mut req = simple_request();
    req.id = "loud".into();
    c.model_infer(req).await.unwrap();
    c.log_settings(log_request(vec![("log_verbose_level", L::Uint32Param(0))]))
        .await
        .unwrap();
    let mut req = simple_request();
    req.id = "quiet-again".into();
    c.model_infer(req).await.unwrap();
    // Verbose logging shows each request; the others are not logged.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = server.log_text();
    assert!(
        log.contains("[request id: loud] ModelInfer for model 'simple'"),
        "{log}"
    );
    assert!(
        !log.contains("[request id: quiet]") && !log.contains("[request id: quiet-again]"),
        "{log}"
    );

    for (pairs, code, message) in [
        (
            vec![("log_file", L::StringParam("/tmp/x.log".into()))],
            Code::Unimplemented,
            "log file location can not be updated through network protocol",
        ),
        (
            vec![("log_info", L::StringParam("false".into()))],
            Code::InvalidArgument,
            "expect boolean for 'log_info'",
        ),
        (
            vec![("log_verbose_level", L::BoolParam(true))],
            Code::InvalidArgument,
            "expect int32 for 'log_verbose_level'",
        ),
        (
            vec![("log_format", L::StringParam("json".into()))],
            Code::InvalidArgument,
            "invalid argument for log_format, got: json",
        ),
    ] {
        assert_eq!(
            failure(c.log_settings(log_request(pairs)).await),
            (code, message.to_string())
        );
    }
    let iso = c
        .log_settings(log_request(vec![
            ("log_format", L::StringParam("ISO8601".into())),
            ("log_warning", L::BoolParam(false)),
        ]))
        .await
        .unwrap();
    let mut want = defaults.clone();
    want[2].1 = LOut::StringParam("ISO8601".into());
    want[5].1 = LOut::BoolParam(false);
    assert_eq!(log_map(iso.into_inner()), want);
}

#[tokio::test]
async fn message_size_limit() {
    let server = start_with(&["--grpc-max-message-size=4096"]);
    let mut c = client(&server).await;
    let mut req = request("identity_fp32", vec![input("INPUT0", "FP32", &[1, 2048])]);
    req.raw_input_contents = vec![fp32s(&[0.5; 2048])];
    let (code, message) = failure(c.model_infer(req).await);
    assert_eq!(code, Code::OutOfRange, "{message}");
    assert!(message.contains("the limit is: 4096 bytes"), "{message}");
    let mut req = request("identity_fp32", vec![input("INPUT0", "FP32", &[1, 256])]);
    req.raw_input_contents = vec![fp32s(&[0.5; 256])];
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(as_fp32s(&r.raw_output_contents[0]), [0.5; 256]);
}
