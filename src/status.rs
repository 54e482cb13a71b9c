//! The error currency of the request path: a Triton error code and a message.
//!
//! Modules keep their own `thiserror` enums; each maps onto a [`Code`] once, and only
//! `server` turns a [`Code`] into an HTTP status or a gRPC code.

use std::fmt;

/// Triton's error codes (`TRITONSERVER_Error_Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Unknown,
    Internal,
    NotFound,
    InvalidArg,
    Unavailable,
    Unsupported,
    AlreadyExists,
    Cancelled,
}

impl Code {
    /// The failure `reason` label Triton uses in `nv_inference_request_failure`.
    pub fn failure_reason(self) -> &'static str {
        match self {
            Code::Unavailable => "REJECTED",
            Code::Cancelled => "CANCELED",
            Code::Internal | Code::Unknown => "BACKEND",
            _ => "OTHER",
        }
    }
}

/// A request-path error: what the client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }
    pub fn invalid_arg(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArg, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(Code::Unsupported, message)
    }
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(Code::Cancelled, message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Status {}

pub type Result<T, E = Status> = std::result::Result<T, E>;
