//! The repository load API's overrides: a config replacing `config.pbtxt`, and files
//! written into a fresh temporary model folder, never anywhere else.

use std::path::{Component, Path, PathBuf};

use super::scan::{self, ModelDir};
use crate::config::ModelConfig;
use crate::status::Status;

/// What the repository load API may replace.
#[derive(Default, Clone, Debug)]
pub struct LoadOverrides {
    pub config: Option<ModelConfig>,
    /// `file:<version>/<name>` overrides: relative path and content. When present, the model
    /// loads from a fresh temporary folder holding only these files (and needs `config`).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Longest file name component accepted in a file override.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a file override path: relative, plain components, no `..`, bounded names.
pub fn check_override_path(path: &str) -> Result<PathBuf, Status> {
    let bad =
        |why: &str| Status::invalid_arg(format!("invalid file override path '{path}': {why}"));
    if path.is_empty() {
        return Err(bad("empty path"));
    }
    if path.contains('\0') {
        return Err(bad("NUL byte in path"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => {
                let n = n.to_str().ok_or_else(|| bad("not valid UTF-8"))?;
                if n.len() > MAX_NAME_LEN {
                    return Err(bad(&format!("a name is longer than {MAX_NAME_LEN} bytes")));
                }
                out.push(n);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("'..' is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("absolute paths are not allowed"));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad("no file name"));
    }
    Ok(out)
}

/// Writes file overrides into a fresh temporary model folder, which lives as long as the
/// returned guard (backends read their files while loading).
pub fn write_override_dir(
    name: &str,
    files: &[(String, Vec<u8>)],
) -> Result<(tempfile::TempDir, ModelDir), Status> {
    let tmp = tempfile::Builder::new()
        .prefix("despina-override-")
        .tempdir()
        .map_err(|e| Status::internal(format!("cannot create a folder for file overrides: {e}")))?;
    let root = tmp.path().join(name);
    std::fs::create_dir_all(&root)
        .map_err(|e| Status::internal(format!("cannot create a folder for file overrides: {e}")))?;
    for (path, content) in files {
        let rel = check_override_path(path)?;
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Status::invalid_arg(format!("cannot write file override '{path}': {e}"))
            })?;
        }
        // create_new: never follow or replace anything already there (no symlink games).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| {
                Status::invalid_arg(format!("cannot write file override '{path}': {e}"))
            })?;
        std::io::Write::write_all(&mut f, content)
            .map_err(|e| Status::internal(format!("cannot write file override '{path}': {e}")))?;
    }
    let dir = scan::scan_model(name, &root, None).map_err(Status::from)?;
    Ok((tmp, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_paths() {
        assert_eq!(
            check_override_path("1/model.onnx").unwrap(),
            PathBuf::from("1/model.onnx")
        );
        assert_eq!(
            check_override_path("./1/model.onnx").unwrap(),
            PathBuf::from("1/model.onnx")
        );
        for bad in ["", "../x", "1/../../x", "/etc/passwd", "a\0b", "."] {
            assert!(check_override_path(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("1/{}", "a".repeat(256));
        assert!(
            check_override_path(&long)
                .unwrap_err()
                .message
                .contains("longer than 255")
        );
        assert!(check_override_path(&format!("1/{}", "a".repeat(255))).is_ok());
    }

    #[test]
    fn writes_only_inside_a_fresh_folder() {
        let files = vec![
            ("1/model.bin".to_string(), b"abc".to_vec()),
            ("labels.txt".to_string(), b"x\n".to_vec()),
        ];
        let (tmp, dir) = write_override_dir("m", &files).unwrap();
        assert!(dir.path.starts_with(tmp.path()));
        assert_eq!(std::fs::read(dir.path.join("1/model.bin")).unwrap(), b"abc");
        assert_eq!(dir.versions.len(), 1);
        let dup = vec![("a".to_string(), vec![]), ("a".to_string(), vec![])];
        assert!(write_override_dir("m", &dup).is_err());
        assert!(write_override_dir("m", &[("../escape".to_string(), vec![])]).is_err());
    }
}
