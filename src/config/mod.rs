//! Model configuration: the `config.pbtxt` text-format parser, the typed
//! `ModelConfig`, Triton's normalisation and validation, and its JSON form.

pub use crate::proto::inference::ModelConfig;

pub mod access;
mod interim;

pub use access::ConfigExt;
pub use interim::{
    ConfigError, NormalizeContext, Pos, SourceMap, ValidateContext, from_json, normalize, parse, to_json, validate,
};
