//! Model repositories: scanning folders, version policies, preparing configs, and the
//! model manager that loads, unloads and swaps versions behind an atomic routing table.

pub mod fingerprint;
pub mod load;
pub mod manager;
pub mod overrides;
pub mod policy;
pub mod scan;
pub mod version;

use std::path::PathBuf;

use crate::status::{Code, Status};

pub use load::Problem;
pub use manager::{ControlMode, ManagerConfig, ModelManager};
pub use overrides::{LoadOverrides, check_override_path};
pub use version::ModelVersion;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("failed to read model repository '{}': {message}", path.display())]
    Repository { path: PathBuf, message: String },
    #[error("model '{name}' appears in more than one repository (again at '{}')", path.display())]
    Duplicate { name: String, path: PathBuf },
    #[error("failed to read '{}': {message}", path.display())]
    Io { path: PathBuf, message: String },
}

impl RepoError {
    pub fn code(&self) -> Code {
        Code::Internal
    }
}

impl From<RepoError> for Status {
    fn from(e: RepoError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}
