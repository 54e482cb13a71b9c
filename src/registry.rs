//! The backends this build serves with, assembled once at start-up.

use std::path::Path;

use crate::backend::Registry;

/// Every backend that can run here; the ones that cannot are recorded with the reason.
/// `default_max_batch_size` overrides what auto-complete gives batching ONNX models.
pub fn full(onnxruntime_lib: Option<&Path>, default_max_batch_size: Option<i32>) -> Registry {
    let mut registry = Registry::with_builtins();
    match crate::backend::onnx::OnnxBackend::new(onnxruntime_lib) {
        Ok(b) => {
            let b = match default_max_batch_size {
                Some(n) => b.with_default_max_batch_size(n),
                None => b,
            };
            registry.register(std::sync::Arc::new(b))
        }
        Err(e) => registry.mark_unavailable("onnxruntime", e.to_string()),
    }
    #[cfg(feature = "torch")]
    registry.register(std::sync::Arc::new(crate::backend::torch::TorchBackend));
    #[cfg(not(feature = "torch"))]
    registry.mark_unavailable(
        "pytorch",
        "this build has no TorchScript support (build with the cargo feature `torch`)".into(),
    );
    registry
}
