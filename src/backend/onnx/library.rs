//! Finding libonnxruntime: despina loads ONNX Runtime at run time (ort's `load-dynamic`),
//! so the binary has no link-time dependency and a missing library only disables ONNX
//! models instead of stopping the server.

use std::path::{Path, PathBuf};

/// The environment variable ort itself reads.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/usr/local/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/opt/onnxruntime/lib",
];

/// Resolves the ONNX Runtime library to load, first match wins:
/// 1. `explicit` (the `--onnxruntime-lib` flag), as given;
/// 2. `$ORT_DYLIB_PATH`, as given;
/// 3. the project venv's wheel (`.venv/lib/python3*/site-packages/onnxruntime/capi/
///    libonnxruntime.so*`), under the current directory, then under each folder above the
///    executable (so `target/debug/despina` finds `../../.venv`);
/// 4. `libonnxruntime.so*` in `$LD_LIBRARY_PATH` and the usual system folders.
pub fn find_library(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    search_roots()
        .iter()
        .find_map(|root| in_venv(&root.join(".venv")))
        .or_else(|| system_dirs().iter().find_map(|d| in_dir(d)))
}

/// The folders whose `.venv` is searched, in order.
fn search_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        roots.extend(dir.ancestors().map(Path::to_path_buf));
    }
    roots
}

fn system_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    dirs
}

/// `<venv>/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`.
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .rev()
        .find_map(|py| in_dir(&py.join("site-packages/onnxruntime/capi")))
}

/// The best `libonnxruntime.so*` in `dir`: the most specific (versioned) name.
fn in_dir(dir: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_library_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    libs.sort_by_key(|p| p.file_name().map(|n| n.len()).unwrap_or(0));
    libs.pop()
}

fn is_library_name(name: &str) -> bool {
    name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
}

/// What to tell the user when no library was found or it would not load.
pub fn how_to_fix() -> String {
    format!(
        "run scripts/setup.sh (it installs ONNX Runtime into .venv, where despina looks), or pass --onnxruntime-lib /path/to/libonnxruntime.so, or set {ENV_VAR}=/path/to/libonnxruntime.so"
    )
}

pub fn not_found_message() -> String {
    format!(
        "the ONNX Runtime library (libonnxruntime.so) was not found in .venv (beside the working directory or above the executable), $LD_LIBRARY_PATH or {}: {}",
        SYSTEM_DIRS.join(", "),
        how_to_fix()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert!(is_library_name("libonnxruntime.so"));
        assert!(is_library_name("libonnxruntime.so.1.31.1"));
        assert!(!is_library_name("libonnxruntime_providers_shared.so"));
        assert!(!is_library_name("onnxruntime.dll"));
    }

    #[test]
    fn finds_the_wheel_in_a_venv() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join(".venv");
        assert_eq!(in_venv(&venv), None);
        let capi = venv.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        assert_eq!(in_venv(&venv), None);
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime.so"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        assert_eq!(in_venv(&venv), Some(capi.join("libonnxruntime.so.1.31.1")));
    }

    #[test]
    fn explicit_path_wins() {
        let p = Path::new("/nowhere/libonnxruntime.so");
        assert_eq!(find_library(Some(p)), Some(p.to_path_buf()));
    }

    #[test]
    fn message_says_what_to_do() {
        let m = not_found_message();
        assert!(m.contains("scripts/setup.sh"));
        assert!(m.contains("--onnxruntime-lib"));
        assert!(m.contains("ORT_DYLIB_PATH"));
    }
}
