//! despina: a Triton-compatible, multi-model inference server.

pub mod backend;
pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod logging;
pub mod perf;
pub mod proto;
pub mod registry;
pub mod repository;
pub mod request;
pub mod scheduler;
pub mod server;
pub mod stats;
pub mod status;
pub mod tensor;
pub mod trace;
