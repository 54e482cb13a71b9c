//! despina: a Triton-compatible, multi-model inference server.

pub mod config;
pub mod proto;
