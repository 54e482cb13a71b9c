//! Fingerprints of model folders, so poll mode reloads exactly what changed on disk and a
//! reload keeps serving versions whose config and files did not change.

use std::hash::{Hash, Hasher};
use std::path::Path;

use prost::Message;

use crate::config::ModelConfig;

/// Hashes every file under `dir` (relative path, size, modification time), recursively.
pub fn tree(dir: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    walk(dir, dir, &mut h);
    h.finish()
}

/// A version is unchanged when its config and its folder's files are.
pub fn version(config: &ModelConfig, version_dir: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.encode_to_vec().hash(&mut h);
    tree(version_dir).hash(&mut h);
    h.finish()
}

fn walk(root: &Path, dir: &Path, h: &mut impl Hasher) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        path.strip_prefix(root).unwrap_or(&path).hash(h);
        if meta.is_dir() {
            walk(root, &path, h);
        } else {
            meta.len().hash(h);
            meta.modified().ok().hash(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_when_files_change() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("1")).unwrap();
        std::fs::write(d.path().join("1/a"), "x").unwrap();
        let a = tree(d.path());
        assert_eq!(a, tree(d.path()));
        std::fs::write(d.path().join("1/a"), "xy").unwrap();
        let b = tree(d.path());
        assert_ne!(a, b);
        std::fs::create_dir_all(d.path().join("2")).unwrap();
        assert_ne!(b, tree(d.path()));
        let cfg = ModelConfig {
            name: "m".into(),
            ..Default::default()
        };
        let mut other = cfg.clone();
        other.max_batch_size = 4;
        assert_ne!(
            version(&cfg, &d.path().join("1")),
            version(&other, &d.path().join("1"))
        );
    }
}
