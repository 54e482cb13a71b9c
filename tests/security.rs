//! The safe repository API and transport security: restricted API keys over HTTP and gRPC,
//! file overrides that try to escape their folder, TLS and mutual TLS with certificates
//! generated here.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use common::{TestServer, test_models};
use despina::proto::inference as pb;
use despina::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// One HTTP/1.1 exchange over any stream: (status, body).
fn http_exchange(
    stream: &mut impl ReadWrite,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    http_exchange(&mut s, method, path, headers)
}

#[test]
fn restricted_http_endpoints_need_their_key() {
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode",
            "explicit",
            "--load-model",
            "simple",
            "--http-restricted-api",
            "model-repository,shared-memory:admin-key=s3cret",
        ],
    );
    let idx = "/v2/repository/index";
    let (status, body) = http(&server.http, "POST", idx, &[]);
    assert_eq!(
        (status, body.as_str()),
        (
            401,
            r#"{"error":"This API is restricted, expecting header 'admin-key'"}"#
        )
    );
    let (status, body) = http(&server.http, "POST", idx, &[("admin-key", "wrong")]);
    assert_eq!(
        (status, body.as_str()),
        (
            403,
            r#"{"error":"This API is restricted, header 'admin-key' has a wrong value"}"#
        )
    );
    let (status, body) = http(&server.http, "POST", idx, &[("Admin-Key", "s3cret")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""name":"simple""#), "{body}");
    assert_eq!(
        http(&server.http, "GET", "/v2/systemsharedmemory/status", &[]).0,
        401
    );
    // Other groups stay open.
    assert_eq!(http(&server.http, "GET", "/v2/health/ready", &[]).0, 200);
}

#[tokio::test]
async fn restricted_grpc_methods_need_their_key() {
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode",
            "explicit",
            "--grpc-restricted-protocol",
            "model-repository:admin-key=s3cret",
        ],
    );
    let mut c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let err = c
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        err.message(),
        "This API is restricted, expecting header 'admin-key'"
    );
    let mut req = tonic::Request::new(pb::RepositoryIndexRequest::default());
    req.metadata_mut()
        .insert("admin-key", "nope".parse().unwrap());
    assert_eq!(
        c.repository_index(req).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    for header in ["admin-key", "triton-grpc-protocol-admin-key"] {
        let mut req = tonic::Request::new(pb::RepositoryIndexRequest::default());
        req.metadata_mut().insert(header, "s3cret".parse().unwrap());
        assert!(c.repository_index(req).await.is_ok(), "{header}");
    }
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

fn load_with_file(name: &str, path: &str) -> pb::RepositoryModelLoadRequest {
    use pb::model_repository_parameter::ParameterChoice as P;
    let config = r#"{"name":"escape","backend":"identity","max_batch_size":0,"input":[{"name":"INPUT0","data_type":"TYPE_INT32","dims":[1]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_INT32","dims":[1]}]}"#;
    let mut parameters = std::collections::HashMap::new();
    parameters.insert(
        "config".to_string(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(P::StringParam(config.into())),
        },
    );
    parameters.insert(
        format!("file:{path}"),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(P::BytesParam(b"x".to_vec())),
        },
    );
    pb::RepositoryModelLoadRequest {
        repository_name: String::new(),
        model_name: name.into(),
        parameters,
    }
}

#[tokio::test]
async fn file_overrides_cannot_escape_their_folder() {
    let repo = tempfile::tempdir().unwrap();
    let server = TestServer::start(repo.path(), &["--model-control-mode", "explicit"]);
    let mut c = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let long = format!("1/{}", "a".repeat(256));
    for (path, why) in [
        ("../../escaped.txt", "'..' is not allowed"),
        ("1/../../../escaped.txt", "'..' is not allowed"),
        ("/tmp/escaped.txt", "absolute paths are not allowed"),
        (long.as_str(), "a name is longer than 255 bytes"),
    ] {
        let err = c
            .repository_model_load(load_with_file("escape", path))
            .await
            .unwrap_err();
        assert!(err.message().contains(why), "{path}: {}", err.message());
    }
    assert!(!Path::new("/tmp/escaped.txt").exists());
    assert!(!repo.path().join("escaped.txt").exists());
    // A proper override still loads, and the server kept running through all of it.
    c.repository_model_load(load_with_file("escape", "1/model.bin"))
        .await
        .unwrap();
    let ready = c
        .model_ready(pb::ModelReadyRequest {
            name: "escape".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, sans) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ),
            ("client", vec!["client".to_string()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(sans)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }
    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
    fn client_config(&self, with_cert: bool) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap())
            .unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut cfg = if with_cert {
            let cert = CertificateDer::from_pem_file(self.path("client.pem")).unwrap();
            let key = PrivateKeyDer::from_pem_file(self.path("client.key")).unwrap();
            b.with_client_auth_cert(vec![cert], key).unwrap()
        } else {
            b.with_no_client_auth()
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

fn https(addr: &str, cfg: Arc<rustls::ClientConfig>, path: &str) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(addr)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .unwrap()
        .to_owned();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let (status, body) = http_exchange(&mut tls, "GET", path, &[]);
    if status == 0 {
        return Err(std::io::Error::other("no HTTP answer over TLS"));
    }
    Ok((status, body))
}

/// A gRPC channel to `addr` over TLS that trusts `ca`, presenting `identity` when given.
async fn tls_channel(
    addr: &str,
    ca: &str,
    identity: Option<tonic::transport::Identity>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name("127.0.0.1");
    if let Some(id) = identity {
        tls = tls.identity(id);
    }
    tonic::transport::Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode",
            "explicit",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let (status, _) = https(&server.http, pki.client_config(false), "/v2/health/ready").unwrap();
    assert_eq!(status, 200);
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert_eq!(http(&server.http, "GET", "/v2/health/ready", &[]).0, 0);
    let channel = tls_channel(&server.grpc, &ca, None).await.unwrap();
    let mut c = GrpcInferenceServiceClient::new(channel);
    assert!(
        c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    drop(server);

    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode",
            "explicit",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
    );
    assert!(
        https(&server.http, pki.client_config(false), "/v2/health/ready").is_err(),
        "a client without a certificate is refused"
    );
    assert_eq!(
        https(&server.http, pki.client_config(true), "/v2/health/ready")
            .unwrap()
            .0,
        200
    );
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(pki.path("client.pem")).unwrap(),
        std::fs::read(pki.path("client.key")).unwrap(),
    );
    let anonymous = tls_channel(&server.grpc, &ca, None).await;
    if let Ok(ch) = anonymous {
        assert!(
            GrpcInferenceServiceClient::new(ch)
                .server_live(pb::ServerLiveRequest {})
                .await
                .is_err()
        );
    }
    let channel = tls_channel(&server.grpc, &ca, Some(identity))
        .await
        .unwrap();
    assert!(
        GrpcInferenceServiceClient::new(channel)
            .server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

#[tokio::test]
async fn tritons_grpc_ssl_flags_secure_the_grpc_port_alone() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let server = TestServer::start(
        &test_models(),
        &[
            "--model-control-mode=explicit",
            "--grpc-use-ssl=true",
            &format!("--grpc-server-cert={cert}"),
            &format!("--grpc-server-key={key}"),
        ],
    );
    // HTTP stays plain.
    assert_eq!(http(&server.http, "GET", "/v2/health/live", &[]).0, 200);
    let plain = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(
            GrpcInferenceServiceClient::new(ch)
                .server_live(pb::ServerLiveRequest {})
                .await
                .is_err(),
            "plain gRPC on the TLS port"
        );
    }
    let channel = tls_channel(&server.grpc, &ca, None).await.unwrap();
    assert!(
        GrpcInferenceServiceClient::new(channel)
            .server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}
