//! Finding models in repositories: every folder of a repository is a model; its numeric
//! sub-folders are versions. Only the file system is read here; configs are parsed elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RepoError;

/// A model folder as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDir {
    pub name: String,
    pub path: PathBuf,
    /// `configs/<--model-config-name>.pbtxt` when asked for and present, else
    /// `config.pbtxt` when present.
    pub config_file: Option<PathBuf>,
    /// Numeric version folders, ascending.
    pub versions: Vec<(i64, PathBuf)>,
}

pub const CONFIG_FILE: &str = "config.pbtxt";

/// Scans every repository. A name found in two repositories is an error for that name,
/// reported in the second map; it does not stop the others.
pub fn scan(
    repos: &[PathBuf],
    config_name: Option<&str>,
) -> Result<(BTreeMap<String, ModelDir>, Vec<RepoError>), RepoError> {
    let mut models = BTreeMap::new();
    let mut problems = Vec::new();
    let mut duplicates = Vec::new();
    for repo in repos {
        let entries = std::fs::read_dir(repo).map_err(|e| RepoError::Repository {
            path: repo.clone(),
            message: e.to_string(),
        })?;
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name.starts_with('.') || !path.is_dir() {
                continue;
            }
            names.push((name, path));
        }
        names.sort();
        for (name, path) in names {
            if models.contains_key(&name) {
                duplicates.push(name.clone());
                problems.push(RepoError::Duplicate {
                    name: name.clone(),
                    path,
                });
                continue;
            }
            match scan_model(&name, &path, config_name) {
                Ok(m) => {
                    models.insert(name, m);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    for d in duplicates {
        models.remove(&d);
    }
    Ok((models, problems))
}

/// Reads one model folder. With `config_name` (Triton's `--model-config-name`), the config
/// is `configs/<config_name>.pbtxt` where the model has one.
pub fn scan_model(
    name: &str,
    path: &Path,
    config_name: Option<&str>,
) -> Result<ModelDir, RepoError> {
    let entries = std::fs::read_dir(path).map_err(|e| RepoError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut versions = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if !p.is_dir() {
            continue;
        }
        // Non-numeric folders are not versions (Triton ignores them too).
        if let Some(v) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<i64>().ok())
            && v >= 0
        {
            versions.push((v, p));
        }
    }
    versions.sort();
    let custom = config_name
        .map(|n| path.join("configs").join(format!("{n}.pbtxt")))
        .filter(|p| p.is_file());
    let config = custom.unwrap_or_else(|| path.join(CONFIG_FILE));
    Ok(ModelDir {
        name: name.to_string(),
        path: path.to_path_buf(),
        config_file: config.is_file().then_some(config),
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_models_versions_and_duplicates() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in ["m1/1", "m1/3", "m1/latest", "m2", ".hidden/1", "dup/1"] {
            std::fs::create_dir_all(a.path().join(d)).unwrap();
        }
        std::fs::write(a.path().join("m1/config.pbtxt"), "").unwrap();
        std::fs::write(a.path().join("file.txt"), "").unwrap();
        std::fs::create_dir_all(b.path().join("dup/2")).unwrap();
        let (models, problems) = scan(&[a.path().into(), b.path().into()], None).unwrap();
        assert_eq!(models.keys().collect::<Vec<_>>(), vec!["m1", "m2"]);
        let m1 = &models["m1"];
        assert_eq!(
            m1.versions.iter().map(|v| v.0).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(m1.config_file.is_some());
        assert!(models["m2"].config_file.is_none());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("dup"), "{}", problems[0]);
        assert!(scan(&[a.path().join("nope")], None).is_err());
    }
}
