//! Errors of the load generator. Request failures during a level are not errors here:
//! they are counted in the report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// A flag or config value that cannot work (bad range, batch size over the limit).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached at all.
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server answered a setup call (metadata, config, statistics) with an error.
    #[error("{what} failed: {message}")]
    Server { what: String, message: String },
    /// Inputs could not be built from the model metadata and the input-data flags.
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PerfError {
    pub(crate) fn config(msg: impl Into<String>) -> Self {
        PerfError::Config(msg.into())
    }
    pub(crate) fn input(msg: impl Into<String>) -> Self {
        PerfError::Input(msg.into())
    }
}
