//! `despina check`: lint every model of some repositories with the same steps the server
//! runs before loading, without loading anything.

use std::path::PathBuf;

use crate::backend::Registry;
use crate::repository::load::{self, PrepareContext, Problem};
use crate::repository::scan;

/// The outcome of checking one model.
pub struct ModelReport {
    pub name: String,
    pub problems: Vec<Problem>,
}

/// Checks every model of every repository; problems with the repositories themselves
/// (unreadable, duplicate names) come as reports named after the repository.
pub fn check(
    repos: &[PathBuf],
    registry: &Registry,
    gpu_count: usize,
    config_name: Option<&str>,
) -> Vec<ModelReport> {
    let mut reports = Vec::new();
    let (dirs, problems) = match scan::scan(repos, config_name) {
        Ok(found) => found,
        Err(e) => {
            let file = repos.first().cloned().unwrap_or_default();
            return vec![ModelReport {
                name: String::new(),
                problems: vec![Problem {
                    file,
                    pos: None,
                    message: e.to_string(),
                }],
            }];
        }
    };
    for p in problems {
        let file = match &p {
            crate::repository::RepoError::Duplicate { path, .. } => path.clone(),
            crate::repository::RepoError::Repository { path, .. }
            | crate::repository::RepoError::Io { path, .. } => path.clone(),
        };
        reports.push(ModelReport {
            name: String::new(),
            problems: vec![Problem {
                file,
                pos: None,
                message: p.to_string(),
            }],
        });
    }
    // An ensemble inherits decoupling from its steps: read their configs from the same repositories.
    let is_decoupled = |m: &str| {
        dirs.get(m)
            .and_then(|d| load::read_config(d).ok().flatten())
            .is_some_and(|(c, _)| crate::config::ConfigExt::is_decoupled(&c))
    };
    let exists = |m: &str| repos.iter().any(|r| r.join(m).is_dir());
    let ctx = PrepareContext {
        registry,
        gpu_count,
        auto_complete: true,
        is_decoupled: &is_decoupled,
        model_exists: Some(&exists),
    };
    for (name, dir) in &dirs {
        let name = name.clone();
        let problems = load::prepare(dir, None, &ctx).err().unwrap_or_default();
        reports.push(ModelReport { name, problems });
    }
    reports
}
