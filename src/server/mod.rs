//! The frontends: HTTP (axum) and gRPC (tonic) speaking the KServe v2 protocol with
//! Triton's extensions, and Prometheus metrics. Only this module knows wire formats and
//! status codes; everything below it speaks `InferRequest` and `Status`.

pub mod common;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod restrict;
pub mod settings;
pub mod shm;
pub mod state;

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
    if let Some(l) = listeners.grpc {
        let addr = l.local_addr()?;
        let router = grpc::router(state.clone());
        let stop = token.clone();
        tasks.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
                .map_err(anyhow::Error::from)
        });
        tracing::info!("Started GRPCInferenceService at {addr}");
    }
    if let Some(l) = listeners.http {
        let addr = l.local_addr()?;
        let app = http::router(state.clone());
        let stop = token.clone();
        tasks.spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(anyhow::Error::from)
        });
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
