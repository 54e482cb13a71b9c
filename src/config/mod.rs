//! Model configuration: the `config.pbtxt` text-format parser, the typed
//! `ModelConfig`, Triton's normalisation and validation, and its JSON form.
