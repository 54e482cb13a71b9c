//! The frontends: HTTP (axum) and gRPC (tonic) speaking the KServe v2 protocol with
//! Triton's extensions, and Prometheus metrics. Only this module knows wire formats and
//! status codes; everything below it speaks `InferRequest` and `Status`.

pub mod common;
pub mod gpu_metrics;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod restrict;
pub mod settings;
pub mod shm;
pub mod state;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use state::{Limits, ServerState};

/// Already-bound listeners; `None` disables that service.
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub grpc: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

pub struct RunOptions {
    /// How long in-flight requests may take to finish once shutdown starts.
    pub exit_timeout: Duration,
    pub metrics: metrics::MetricsOptions,
    /// TLS for the HTTP and gRPC listeners (metrics stay plain, as scrapers expect).
    pub tls: Option<tls::TlsFiles>,
    /// TLS for the gRPC listener alone (Triton's `--grpc-use-ssl`), over `tls`.
    pub grpc_tls: Option<tls::TlsFiles>,
    pub grpc: grpc::GrpcTransport,
}

/// Serves until `state.shutdown` is cancelled, then shuts down in order: readiness turns
/// false, listeners stop accepting, in-flight requests drain (bounded by the exit
/// timeout), queues close and the instance threads are joined.
pub async fn run(
    state: Arc<ServerState>,
    listeners: Listeners,
    opts: RunOptions,
) -> anyhow::Result<()> {
    let token = state.shutdown.clone();
    let mut tasks = JoinSet::new();
    let tls_config = |files: Option<&tls::TlsFiles>, alpn: &[&[u8]]| {
        files.map(|f| tls::server_config(f, alpn)).transpose()
    };
    if let Some(l) = listeners.grpc {
        let addr = l.local_addr()?;
        let router = grpc::router(state.clone(), &opts.grpc);
        let stop = token.clone();
        match tls_config(opts.grpc_tls.as_ref().or(opts.tls.as_ref()), &[b"h2"])? {
            Some(config) => {
                let incoming = tls::incoming(l, config, token.clone());
                tasks.spawn(async move {
                    router
                        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                        .await
                        .map_err(anyhow::Error::from)
                });
            }
            None => {
                let incoming = tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(l),
                    |s| {
                        s.inspect(|s| {
                            let _ = s.set_nodelay(true);
                        })
                    },
                );
                tasks.spawn(async move {
                    router
                        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                        .await
                        .map_err(anyhow::Error::from)
                });
            }
        }
        tracing::info!("Started GRPCInferenceService at {addr}");
    }
    if let Some(l) = listeners.http {
        let addr = l.local_addr()?;
        let app = http::router(state.clone()).layer(axum::middleware::from_fn_with_state(
            state.restricted_http.clone(),
            restrict::http_middleware,
        ));
        let stop = token.clone();
        match tls_config(opts.tls.as_ref(), &[b"h2", b"http/1.1"])? {
            Some(config) => {
                let incoming = tls::incoming(l, config, token.clone());
                tasks.spawn(serve_tls_http(incoming, app, stop));
            }
            None => {
                tasks.spawn(async move {
                    let l = axum::serve::ListenerExt::tap_io(l, |s| {
                        let _ = s.set_nodelay(true);
                    });
                    axum::serve(l, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                        .map_err(anyhow::Error::from)
                });
            }
        }
        tracing::info!("Started HTTPService at {addr}");
    }
    if let Some(l) = listeners.metrics {
        let addr = l.local_addr()?;
        let app = metrics::router(state.clone(), &opts.metrics)?;
        let stop = token.clone();
        tasks.spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(anyhow::Error::from)
        });
        tracing::info!("Started Metrics Service at {addr}");
    }

    token.cancelled().await;
    tracing::info!(
        "shutting down: waiting up to {:?} for {} in-flight requests",
        opts.exit_timeout,
        state.inflight()
    );
    if tokio::time::timeout(opts.exit_timeout, state.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            "exit timeout reached with {} requests still in flight",
            state.inflight()
        );
    }
    let manager = state.manager.clone();
    let stopped = tokio::task::spawn_blocking(move || manager.shutdown());
    if tokio::time::timeout(opts.exit_timeout, stopped)
        .await
        .is_err()
    {
        tracing::warn!("models did not stop within the exit timeout");
    }
    let joined = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!("listener ended with an error: {e}");
            }
        }
    });
    if joined.await.is_err() {
        tracing::warn!("some connections were still open at exit");
    }
    Ok(())
}

/// Serves HTTP over TLS connections until `stop`, then lets open connections finish.
async fn serve_tls_http(
    mut incoming: impl tokio_stream::Stream<
        Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    > + Unpin
    + Send
    + 'static,
    app: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use tokio_stream::StreamExt;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            s = incoming.next() => match s {
                Some(Ok(s)) => s,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn =
            builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTPS connection ended: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
