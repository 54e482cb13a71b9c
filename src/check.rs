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
pub fn check(repos: &[PathBuf], registry: &Registry, gpu_count: usize) -> Vec<ModelReport> {
    let mut reports = Vec::new();
    let (dirs, problems) = match scan::scan(repos) {
        Ok(found) => found,
        Err(e) => {
            let file = repos.first().cloned().unwrap_or_default();
            return vec![ModelReport { name: String::new(), problems: vec![Problem { file, pos: None, message: e.to_string() }] }];
        }
    };
    for p in problems {
        let file = match &p {
            crate::repository::RepoError::Duplicate { path, .. } => path.clone(),
            crate::repository::RepoError::Repository { path, .. } | crate::repository::RepoError::Io { path, .. } => path.clone(),
        };
        reports.push(ModelReport { name: String::new(), problems: vec![Problem { file, pos: None, message: p.to_string() }] });
    }
    let ctx = PrepareContext { registry, gpu_count, auto_complete: true };
    for (name, dir) in dirs {
        let problems = load::prepare(&dir, None, &ctx).err().unwrap_or_default();
        reports.push(ModelReport { name, problems });
    }
    reports
}
