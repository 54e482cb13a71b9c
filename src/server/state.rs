//! What the frontends share: the model manager, shared memory regions, settings, limits
//! and the server's lifecycle (readiness, in-flight requests, shutdown).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::restrict::Restrictions;
use super::settings::Settings;
use super::shm::ShmRegistry;
use crate::repository::ModelManager;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body the HTTP frontend accepts (after decompression).
    pub max_body_bytes: usize,
    /// Largest gRPC message.
    pub max_grpc_message_bytes: usize,
}

pub struct ServerState {
    pub manager: Arc<ModelManager>,
    pub shm: ShmRegistry,
    pub settings: Settings,
    pub limits: Limits,
    /// Cancelled when the server starts shutting down: readiness turns false at once.
    pub shutdown: CancellationToken,
    pub strict_readiness: bool,
    /// `--http-restricted-api` rules.
    pub restricted_http: Arc<Restrictions>,
    /// `--grpc-restricted-protocol` rules.
    pub restricted_grpc: Arc<Restrictions>,
    /// The server metadata's name (Triton's `--id`).
    pub server_name: String,
    inflight: AtomicUsize,
    idle: Notify,
}

impl ServerState {
    pub fn new(
        manager: Arc<ModelManager>,
        settings: Settings,
        limits: Limits,
        strict_readiness: bool,
        shutdown: CancellationToken,
    ) -> ServerState {
        ServerState {
            manager,
            shm: ShmRegistry::default(),
            settings,
            limits,
            shutdown,
            strict_readiness,
            restricted_http: Arc::default(),
            restricted_grpc: Arc::default(),
            server_name: crate::server::common::SERVER_NAME.to_string(),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    pub fn live(&self) -> bool {
        true
    }

    /// Ready to serve: not shutting down, and (with strict readiness) every model loaded.
    pub fn ready(&self) -> bool {
        !self.shutdown.is_cancelled() && (!self.strict_readiness || self.manager.all_ready())
    }

    /// Counts an inference request in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard(self.clone())
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Resolves once no inference request is in flight.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.inflight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct InflightGuard(Arc<ServerState>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
