//! Model configuration: the `config.pbtxt` text-format parser, the typed
//! `ModelConfig`, Triton's normalisation and validation, and its JSON form.
//!
//! This module parses `&str` and never touches the file system; it never
//! panics. Facts about the model's folder (its name, the files of its first
//! version, the GPUs present) come in through [`NormalizeContext`] and
//! [`ValidateContext`].
//!
//! The usual pipeline, as Triton runs it when it loads a model:
//! [`parse`] (or [`from_json`]), [`normalize`], [`validate`], and
//! [`to_json`] for `/v2/models/<m>/config`.

pub mod access;
pub mod error;
mod json;
mod json_parse;
pub mod normalize;
mod reflect;
mod source_map;
pub mod textformat;
mod validate;
mod validate_ensemble;
mod validate_io;
mod validate_sequence;

pub use crate::proto::inference::ModelConfig;
pub use access::ConfigExt;
pub use error::{ConfigError, ErrorKind, Pos};
pub use json::to_json;
pub use json_parse::from_json;
pub use normalize::{DirEntry, NormalizeContext, normalize};
pub use source_map::SourceMap;
pub use validate::{ValidateContext, validate};

/// Parses the text of a `config.pbtxt` into a `ModelConfig`, with the
/// position of every field written.
pub fn parse(text: &str) -> Result<(ModelConfig, SourceMap), ConfigError> {
    let fields = textformat::parse(text)?;
    reflect::build(&fields)
}

#[cfg(test)]
mod tests;
