//! A Triton command line starts despina unchanged: flags despina maps take effect, flags
//! with nothing to act on are noted in the log, and flags asking for services despina
//! does not have stop the start with the reason.

mod common;

use common::{TestServer, test_models};
use despina::proto::inference as pb;
use despina::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::codec::CompressionEncoding;

fn http_get(addr: &str, path: &str) -> String {
    common::http_text(addr, "GET", path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triton_command_line_starts_and_takes_effect() {
    let trace_file = tempfile::NamedTempFile::new().unwrap();
    let trace_path = trace_file.path().display().to_string();
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode=explicit",
            "--load-model=simple",
            "--id=prod-7",
            "--backend-directory=/opt/tritonserver/backends",
            "--pinned-memory-pool-byte-size=268435456",
            "--cuda-memory-pool-byte-size=0:67108864",
            "--grpc-keepalive-time=10000",
            "--grpc-keepalive-timeout=2000",
            "--grpc-infer-response-compression-level=high",
            "--model-load-retry-count=2",
            "--rate-limit=off",
            &format!("--trace-file={trace_path}"),
            "--trace-level=TIMESTAMPS",
            "--trace-rate=7",
        ],
    );
    let body = http_get(&server.http, "/v2");
    assert!(body.contains("{\"name\":\"prod-7\",\"version\":"), "{body}");
    let trace = http_get(&server.http, "/v2/trace/setting");
    for want in [
        "\"trace_level\":[\"TIMESTAMPS\"]",
        "\"trace_rate\":\"7\"",
        &format!("\"trace_file\":\"{trace_path}\""),
    ] {
        assert!(trace.contains(want), "{want} not in {trace}");
    }
    let log = server.log_text();
    for flag in [
        "--backend-directory",
        "--pinned-memory-pool-byte-size",
        "--cuda-memory-pool-byte-size",
    ] {
        assert!(
            log.contains(&format!("{flag}: accepted, nothing to do here")),
            "{flag} not noted in\n{log}"
        );
    }

    let mut c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap()
        .accept_compressed(CompressionEncoding::Gzip);
    let meta = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap();
    assert_eq!(
        meta.metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(meta.into_inner().name, "prod-7");
    // A client that does not accept gzip gets plain responses.
    let mut plain = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let meta = plain
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap();
    assert!(meta.metadata().get("grpc-encoding").is_none());
}

#[test]
fn two_servers_share_a_port_with_reuse_port() {
    let first = TestServer::start(&test_models(), &["--reuse-http-port=true"]);
    let port = first.http.rsplit(':').next().unwrap().to_string();
    let second = TestServer::start(&test_models(), &["--reuse-http-port", "--http-port", &port]);
    assert_eq!(second.http, first.http);
    assert!(http_get(&second.http, "/v2/health/live").starts_with("HTTP/1.1 200"));
}

#[test]
fn services_despina_lacks_stop_the_start_with_the_reason() {
    let repo = tempfile::tempdir().unwrap();
    for (flag, says) in [
        (
            "--allow-sagemaker=true",
            "--allow-sagemaker (the SageMaker endpoint) is not available in despina",
        ),
        ("--rate-limit=fastest", "expected off or execution_count"),
        (
            "--grpc-use-ssl=true",
            "--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key",
        ),
    ] {
        let stderr = common::refused_start(repo.path(), &[flag]);
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}

#[test]
fn a_failing_load_is_retried_model_load_retry_count_times() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("broken");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    // Valid config, but the fault backend refuses FP32 when the instance is created.
    std::fs::write(
        dir.join("config.pbtxt"),
        r#"backend: "fault"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
"#,
    )
    .unwrap();
    let server = TestServer::start(
        repo.path(),
        &["--exit-on-error=false", "--model-load-retry-count=2"],
    );
    let index = common::http_text(&server.http, "POST", "/v2/repository/index");
    assert!(index.contains("UNAVAILABLE"), "{index}");
    let log = server.log_text();
    assert!(
        log.contains("retry 1 of 2") && log.contains("retry 2 of 2"),
        "{log}"
    );
    assert!(!log.contains("retry 3"), "{log}");
}

#[test]
fn model_config_name_picks_configs_name_pbtxt_where_a_model_has_one() {
    let repo = tempfile::tempdir().unwrap();
    for (name, custom) in [("tuned", true), ("plain", false)] {
        let dir = repo.path().join(name);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        let config = |mbs: u32| {
            format!(
                "backend: \"identity\"\nmax_batch_size: {mbs}\ninput [ {{ name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 4 ] }} ]\noutput [ {{ name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n"
            )
        };
        std::fs::write(dir.join("config.pbtxt"), config(8)).unwrap();
        if custom {
            std::fs::write(dir.join("configs/h100.pbtxt"), config(2)).unwrap();
        }
    }
    let server = TestServer::start(repo.path(), &["--model-config-name=h100"]);
    let tuned = http_get(&server.http, "/v2/models/tuned/config");
    let plain = http_get(&server.http, "/v2/models/plain/config");
    assert!(tuned.contains("\"max_batch_size\":2"), "{tuned}");
    assert!(plain.contains("\"max_batch_size\":8"), "{plain}");
    drop(server);

    // `despina check` reads the same file, and names it in its problems.
    std::fs::write(
        repo.path().join("tuned/configs/h100.pbtxt"),
        "backend: \"identity\"\nmax_batch_sise: 2\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_despina"))
        .arg("check")
        .arg(repo.path())
        .arg("--model-config-name=h100")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("tuned/configs/h100.pbtxt:2:1"), "{stdout}");
    let plain_check = std::process::Command::new(env!("CARGO_BIN_EXE_despina"))
        .arg("check")
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(plain_check.status.success(), "{plain_check:?}");
}
