//! The backends this build serves with, assembled once at start-up.

use std::path::Path;

use crate::backend::Registry;

/// Every backend that can run here; the ones that cannot are recorded with the reason.
pub fn full(_onnxruntime_lib: Option<&Path>) -> Registry {
    let mut registry = Registry::with_builtins();
    #[cfg(feature = "torch")]
    registry.register(std::sync::Arc::new(crate::backend::torch::TorchBackend));
    #[cfg(not(feature = "torch"))]
    registry.mark_unavailable(
        "pytorch",
        "this build has no TorchScript support (build with the cargo feature `torch`)".into(),
    );
    registry
}
