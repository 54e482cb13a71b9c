//! The frontends: HTTP (axum) and gRPC (tonic) speaking the KServe v2 protocol with
//! Triton's extensions, and Prometheus metrics. Only this module knows wire formats and
//! status codes; everything below it speaks `InferRequest` and `Status`.

pub mod settings;
pub mod shm;
