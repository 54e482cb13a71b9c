//! Model configuration: the `config.pbtxt` text-format parser, the typed
//! `ModelConfig`, Triton's normalisation and validation, and its JSON form.

pub use crate::proto::inference::ModelConfig;

pub mod access;
pub use access::ConfigExt;
