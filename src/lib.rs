//! despina: a Triton-compatible, multi-model inference server.

pub mod backend;
pub mod config;
pub mod proto;
pub mod request;
pub mod scheduler;
pub mod stats;
pub mod status;
pub mod tensor;
pub mod repository;
pub mod trace;
pub mod server;
pub mod check;
pub mod cli;
pub mod logging;
pub mod registry;
pub mod perf;
