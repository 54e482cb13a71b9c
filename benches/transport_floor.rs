//! The transport floor for the serving benchmark (scripts/bench_onnx.sh): the same client and
//! server stacks despina and despina-perf use (axum/hyper HTTP/1.1, tonic gRPC, tokio with
//! one client thread), over loopback, to a server that does no work at all. It answers an
//! HTTP infer request with a canned one-row MLP response and a gRPC health check with its
//! status. What despina measures beyond this floor is its own cost; the floor itself is the
//! price of the protocol, the kernel and the client on this machine.
//!
//! Prints one JSON object: p50 of one request at a time, and requests/s at concurrency 32.
//!
//! `cargo bench --bench transport_floor -- [--requests 20000] [--seconds 2]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use despina::proto::health::health_client::HealthClient;
use despina::proto::health::health_server::{Health, HealthServer};
use despina::proto::health::{HealthCheckRequest, HealthCheckResponse};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::transport::Channel;

/// The JSON header despina sends for one row of the MLP with a binary output.
const RESPONSE_HEADER: &str = r#"{"model_name":"mlp","model_version":"1","outputs":[{"name":"logits","datatype":"FP32","shape":[1,16],"parameters":{"binary_data_size":64}}]}"#;
/// The size of despina-perf's one-row binary request.
const REQUEST_BYTES: usize = 423;
const CONCURRENCY: usize = 32;

async fn infer() -> impl axum::response::IntoResponse {
    let mut body = RESPONSE_HEADER.as_bytes().to_vec();
    body.extend_from_slice(&[0u8; 64]);
    (
        [
            ("content-type", "application/octet-stream".to_string()),
            (
                "inference-header-content-length",
                RESPONSE_HEADER.len().to_string(),
            ),
        ],
        body,
    )
}

struct Ready;

#[tonic::async_trait]
impl Health for Ready {
    async fn check(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(HealthCheckResponse { status: 1 }))
    }

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<HealthCheckResponse>>, tonic::Status>
    {
        Err(tonic::Status::unimplemented("watch"))
    }
}

#[derive(Clone)]
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    body: Bytes,
}

impl Http {
    async fn call(&self) {
        let req = hyper::Request::post(self.uri.clone())
            .header("content-type", "application/octet-stream")
            .header("inference-header-content-length", "150")
            .body(Full::new(self.body.clone()))
            .expect("request");
        let resp = self.client.request(req).await.expect("http answer");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        std::hint::black_box(bytes);
    }
}

async fn check(grpc: &mut HealthClient<Channel>) {
    let r = grpc
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answer");
    std::hint::black_box(r);
}

fn p50(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e6
}

/// `CONCURRENCY` loops of `call` for `seconds`: requests per second.
async fn throughput<F, Fut>(seconds: f64, call: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (stop, done, call) = (stop.clone(), done.clone(), call.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    call().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (start, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let count = done.load(Ordering::Relaxed) - before;
    let rate = count as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    rate
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let requests = arg("--requests", 20000.0) as usize;
    let seconds = arg("--seconds", 2.0);

    // The server: a multi-thread runtime with the default worker count, as despina's.
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    let (http_addr, grpc_addr) = server.block_on(async {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
        let app = axum::Router::new().route("/v2/models/{m}/infer", axum::routing::post(infer));
        tokio::spawn(async move { axum::serve(http, app).await });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(HealthServer::new(Ready))
                .serve_with_incoming(incoming),
        );
        addrs
    });

    // The client: one runtime thread and spawned loops, as despina-perf's on 2 cores.
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let out = client.block_on(async move {
        tokio::spawn(async move {
            let http = Http {
                client: Client::builder(TokioExecutor::new()).build_http(),
                uri: format!("http://{http_addr}/v2/models/mlp/infer")
                    .parse()
                    .expect("uri"),
                body: Bytes::from(vec![0u8; REQUEST_BYTES]),
            };
            let mut times = Vec::with_capacity(requests);
            for i in 0..requests + requests / 10 {
                let t = Instant::now();
                http.call().await;
                if i >= requests / 10 {
                    times.push(t.elapsed());
                }
            }
            let http_p50 = p50(std::mem::take(&mut times));
            let h = http.clone();
            let http_rate = throughput(seconds, move || {
                let h = h.clone();
                async move { h.call().await }
            })
            .await;

            let mut grpc = HealthClient::connect(format!("http://{grpc_addr}"))
                .await
                .expect("grpc connect");
            for i in 0..requests + requests / 10 {
                let t = Instant::now();
                check(&mut grpc).await;
                if i >= requests / 10 {
                    times.push(t.elapsed());
                }
            }
            let grpc_p50 = p50(times);
            let grpc_rate = throughput(seconds, move || {
                let mut g = grpc.clone();
                async move { check(&mut g).await }
            })
            .await;
            format!(
                "{{\"http_p50_us\": {http_p50:.1}, \"grpc_p50_us\": {grpc_p50:.1}, \
                 \"http_c{CONCURRENCY}_per_s\": {http_rate:.0}, \"grpc_c{CONCURRENCY}_per_s\": {grpc_rate:.0}}}"
            )
        })
        .await
        .expect("client task")
    });
    println!("{out}");
}
