//! The model repository extension over gRPC against the real binary: load, unload and
//! reload in explicit mode, `config` and `file:` overrides, and Triton's refusals.

mod common;
mod grpc_support;

use std::collections::HashMap;
use std::time::Duration;

use despina::proto::inference::model_repository_parameter::ParameterChoice as R;
use grpc_support::*;
use tonic::Code;

fn load(name: &str, pairs: Vec<(&str, R)>) -> pb::RepositoryModelLoadRequest {
    let parameters: HashMap<String, pb::ModelRepositoryParameter> = pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                pb::ModelRepositoryParameter {
                    parameter_choice: Some(v),
                },
            )
        })
        .collect();
    pb::RepositoryModelLoadRequest {
        model_name: name.into(),
        parameters,
        ..Default::default()
    }
}

fn unload(name: &str) -> pb::RepositoryModelUnloadRequest {
    pb::RepositoryModelUnloadRequest {
        model_name: name.into(),
        ..Default::default()
    }
}

async fn is_ready(c: &mut Client, name: &str) -> bool {
    c.model_ready(pb::ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .ready
}

async fn index_row(c: &mut Client, name: &str) -> Vec<(String, String, String)> {
    let index = c
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    index
        .models
        .into_iter()
        .filter(|m| m.name == name)
        .map(|m| (m.version, m.state, m.reason))
        .collect()
}

fn add_sub_request() -> pb::ModelInferRequest {
    request(
        "add_sub",
        vec![
            typed("INPUT0", "FP32", &[4], |c| {
                c.fp32_contents = vec![1.0, 2.0, 3.0, 4.0]
            }),
            typed("INPUT1", "FP32", &[4], |c| c.fp32_contents = vec![1.0; 4]),
        ],
    )
}

const IDENTITY_CONFIG: &str = r#"{
    "name": "fresh",
    "backend": "identity",
    "max_batch_size": 4,
    "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [-1]}]
}"#;

#[tokio::test]
async fn load_unload_round_trip() {
    let server = common::TestServer::start(
        &common::test_models(),
        &["--model-control-mode=explicit", "--load-model=simple"],
    );
    let mut c = client(&server).await;
    assert!(!is_ready(&mut c, "add_sub").await);
    assert_eq!(
        index_row(&mut c, "add_sub").await,
        [(String::new(), String::new(), String::new())]
    );
    assert_eq!(
        failure(c.model_infer(add_sub_request()).await),
        (
            Code::NotFound,
            "Request for unknown model: 'add_sub' is not found".to_string()
        )
    );

    c.repository_model_load(load("add_sub", vec![]))
        .await
        .unwrap();
    assert!(is_ready(&mut c, "add_sub").await);
    assert_eq!(
        index_row(&mut c, "add_sub").await,
        [("1".into(), "READY".into(), String::new())]
    );
    let r = c.model_infer(add_sub_request()).await.unwrap().into_inner();
    assert_eq!(as_fp32s(&r.raw_output_contents[0]), [2.0, 3.0, 4.0, 5.0]);

    c.repository_model_unload(unload("add_sub")).await.unwrap();
    assert!(!is_ready(&mut c, "add_sub").await);
    let mut settled = false;
    for _ in 0..250 {
        if index_row(&mut c, "add_sub").await
            == [("1".into(), "UNAVAILABLE".into(), "unloaded".into())]
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(settled, "{:?}", index_row(&mut c, "add_sub").await);
    let (code, _) = failure(c.model_infer(add_sub_request()).await);
    assert_eq!(code, Code::NotFound);

    // Reload: serving again; other models never noticed.
    c.repository_model_load(load("add_sub", vec![]))
        .await
        .unwrap();
    let r = c.model_infer(add_sub_request()).await.unwrap().into_inner();
    assert_eq!(as_fp32s(&r.raw_output_contents[1]), [0.0, 1.0, 2.0, 3.0]);
    c.model_infer(simple_request()).await.unwrap();
    // Unknown names unload quietly, with or without unload_dependents.
    c.repository_model_unload(unload("does_not_exist"))
        .await
        .unwrap();
    let mut u = unload("does_not_exist");
    u.parameters.insert(
        "unload_dependents".into(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(R::BoolParam(true)),
        },
    );
    c.repository_model_unload(u).await.unwrap();
}

#[tokio::test]
async fn config_and_file_overrides() {
    let server = common::TestServer::start(
        &common::test_models(),
        &[
            "--model-control-mode=explicit",
            "--load-model=identity_fp32",
        ],
    );
    let mut c = client(&server).await;

    // A config override replaces the repository's config.
    let config = r#"{"name": "identity_fp32", "backend": "identity", "max_batch_size": 2,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}]}"#;
    c.repository_model_load(load(
        "identity_fp32",
        vec![("config", R::StringParam(config.into()))],
    ))
    .await
    .unwrap();
    let cfg = c
        .model_config(pb::ModelConfigRequest {
            name: "identity_fp32".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    let cfg = cfg.into_inner().config.unwrap();
    assert_eq!(cfg.max_batch_size, 2);
    assert!(
        cfg.scheduling_choice.is_none(),
        "the override has no dynamic batching"
    );
    let big = request(
        "identity_fp32",
        vec![typed("INPUT0", "FP32", &[3, 1], |c| {
            c.fp32_contents = vec![1.0; 3]
        })],
    );
    assert_eq!(
        failure(c.model_infer(big).await),
        (Code::InvalidArgument, "[request id: <id_unknown>] inference request batch-size must be <= 2 for 'identity_fp32'".to_string())
    );

    // Files and a config make a model that is not in the repository at all.
    c.repository_model_load(load(
        "fresh",
        vec![
            ("config", R::StringParam(IDENTITY_CONFIG.into())),
            ("file:1/notes.txt", R::BytesParam(b"any content".to_vec())),
        ],
    ))
    .await
    .unwrap();
    let r = c
        .model_infer(request(
            "fresh",
            vec![ints("INPUT0", "INT32", &[1, 3], &[7, 8, 9])],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.model_name.as_str(), as_int32s(&r.raw_output_contents[0])),
        ("fresh", vec![7, 8, 9])
    );
    let index = c
        .repository_index(pb::RepositoryIndexRequest {
            ready: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        index
            .models
            .iter()
            .any(|m| m.name == "fresh" && m.state == "READY")
    );
}

#[tokio::test]
async fn refusals_like_triton() {
    let server = common::TestServer::start(
        &common::test_models(),
        &["--model-control-mode=explicit", "--load-model=simple"],
    );
    let mut c = client(&server).await;
    let poll_failed =
        |name: &str| format!("failed to load '{name}', failed to poll from model repository");
    let cases = vec![
        (
            load("does_not_exist", vec![]),
            Code::Internal,
            poll_failed("does_not_exist"),
        ),
        (
            // despina says what is wrong with the override (Triton: INTERNAL "failed to poll").
            load(
                "simple",
                vec![("config", R::StringParam("{not json".into()))],
            ),
            Code::InvalidArgument,
            "failed to load 'simple': the 'config' parameter is not a valid model configuration: 1:2: invalid JSON: key must be a string at line 1 column 2".into(),
        ),
        (
            load(
                "fresh",
                vec![("file:1/model.bin", R::BytesParam(b"x".to_vec()))],
            ),
            Code::Internal,
            poll_failed("fresh"),
        ),
        (
            load("simple", vec![("config", R::Int64Param(5))]),
            Code::InvalidArgument,
            "invalid value type for load parameter 'config', expected string_param.".into(),
        ),
        (
            load("simple", vec![("config", R::BytesParam(b"{}".to_vec()))]),
            Code::InvalidArgument,
            "invalid value type for load parameter 'config', expected string_param.".into(),
        ),
        (
            load(
                "simple",
                vec![("file:1/model.py", R::StringParam("x".into()))],
            ),
            Code::InvalidArgument,
            "invalid value type for load parameter 'file:1/model.py', expected bytes_param.".into(),
        ),
        (
            load("simple", vec![("foo", R::StringParam("x".into()))]),
            Code::InvalidArgument,
            "unrecognized load parameter 'foo'.".into(),
        ),
        (
            pb::RepositoryModelLoadRequest {
                repository_name: "x".into(),
                model_name: "simple".into(),
                ..Default::default()
            },
            Code::Unimplemented,
            "'repository_name' specification is not supported".into(),
        ),
    ];
    for (req, code, message) in cases {
        assert_eq!(failure(c.repository_model_load(req).await), (code, message));
    }
    let mut u = unload("simple");
    u.parameters.insert(
        "unload_dependents".into(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(R::StringParam("true".into())),
        },
    );
    assert_eq!(
        failure(c.repository_model_unload(u).await),
        (
            Code::InvalidArgument,
            "invalid value type for 'unload_dependents' parameter, expected bool_param."
                .to_string()
        )
    );
    let u = pb::RepositoryModelUnloadRequest {
        repository_name: "x".into(),
        model_name: "simple".into(),
        ..Default::default()
    };
    assert_eq!(
        failure(c.repository_model_unload(u).await),
        (
            Code::Unimplemented,
            "'repository_name' specification is not supported".to_string()
        )
    );
    // Nothing above disturbed the loaded model.
    assert!(is_ready(&mut c, "simple").await);
    let log = server.log_text();
    assert!(
        log.contains("Poll failed for model directory 'fresh'"),
        "{log}"
    );
}

#[tokio::test]
async fn no_control_outside_explicit_mode() {
    let server = common::TestServer::start(
        &common::test_models(),
        &["--exit-on-error=false", "--strict-readiness=false"],
    );
    let mut c = client(&server).await;
    let refused = (
        Code::Unavailable,
        "explicit model load / unload is not allowed if polling is enabled".to_string(),
    );
    assert_eq!(
        failure(c.repository_model_load(load("simple", vec![])).await),
        refused
    );
    assert_eq!(
        failure(c.repository_model_unload(unload("simple")).await),
        refused
    );
    assert!(is_ready(&mut c, "simple").await);
}
