//! The backends this build serves with, assembled once at start-up.

use std::path::Path;

use crate::backend::Registry;

/// Every backend that can run here, plus the ones that cannot and why.
pub fn full(_onnxruntime_lib: Option<&Path>) -> (Registry, Vec<(&'static str, String)>) {
    let registry = Registry::with_builtins();
    let unavailable = Vec::new();
    (registry, unavailable)
}
