//! Interim config codec used only until the nom parser, Triton's normalisation and the
//! validation rules land (they are being written beside this file); it lets the rest of
//! the server run end to end meanwhile. Parsing is prost-reflect's text-format reader.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use super::ModelConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone)]
pub struct ConfigError {
    path: String,
    pos: Option<Pos>,
    message: String,
}

impl ConfigError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), pos: None, message: message.into() }
    }
    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Default, Debug, Clone)]
pub struct SourceMap;

impl SourceMap {
    pub fn position(&self, _path: &str) -> Option<Pos> {
        None
    }
}

pub struct NormalizeContext {
    pub gpu_count: usize,
}

pub struct ValidateContext {
    pub model_name: String,
    pub gpu_count: usize,
    pub known_backends: Vec<String>,
}

fn descriptor() -> MessageDescriptor {
    static D: OnceLock<MessageDescriptor> = OnceLock::new();
    D.get_or_init(|| {
        let pool = DescriptorPool::decode(crate::proto::DESCRIPTOR_SET).expect("descriptor set is built into the binary");
        pool.get_message_by_name("inference.ModelConfig").expect("ModelConfig is in the descriptor set")
    })
    .clone()
}

fn transcode(m: &DynamicMessage) -> Result<ModelConfig, ConfigError> {
    ModelConfig::decode(m.encode_to_vec().as_slice()).map_err(|e| ConfigError::invalid("", e.to_string()))
}

pub fn parse(text: &str) -> Result<(ModelConfig, SourceMap), ConfigError> {
    let m = DynamicMessage::parse_text_format(descriptor(), text).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    Ok((transcode(&m)?, SourceMap))
}

pub fn from_json(text: &str) -> Result<ModelConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let m = DynamicMessage::deserialize(descriptor(), &mut de).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    transcode(&m)
}

pub fn to_json(cfg: &ModelConfig) -> serde_json::Value {
    let mut m = DynamicMessage::new(descriptor());
    if m.merge(cfg.encode_to_vec().as_slice()).is_err() {
        return serde_json::Value::Null;
    }
    let opts = prost_reflect::SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false).skip_default_fields(false);
    m.serialize_with_options(serde_json::value::Serializer, &opts).unwrap_or(serde_json::Value::Null)
}

pub fn normalize(cfg: &mut ModelConfig, _ctx: &NormalizeContext) {
    match (cfg.platform.as_str(), cfg.backend.as_str()) {
        ("onnxruntime_onnx", "") => cfg.backend = "onnxruntime".into(),
        ("pytorch_libtorch", "") => cfg.backend = "pytorch".into(),
        ("", "onnxruntime") => cfg.platform = "onnxruntime_onnx".into(),
        ("", "pytorch") => cfg.platform = "pytorch_libtorch".into(),
        _ => {}
    }
    if cfg.default_model_filename.is_empty() {
        cfg.default_model_filename = match cfg.backend.as_str() {
            "onnxruntime" => "model.onnx",
            "pytorch" => "model.pt",
            "python" => "model.py",
            "llm" => "model.gguf",
            _ => "",
        }
        .into();
    }
}

pub fn validate(_cfg: &ModelConfig, _ctx: &ValidateContext) -> Vec<ConfigError> {
    Vec::new()
}
