//! The model manager: which model versions exist, in what state, and which serve.
//!
//! Each model's serving versions sit behind an `ArcSwap`, so a request looks a version up
//! without locks and keeps an `Arc` of it: a swap or unload never cuts off a request that
//! was already admitted. Loading happens off the request path (the frontends call these
//! blocking methods from a blocking pool) and is serialised per model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::load::{self, PrepareContext, Prepared};
use super::scan::{self, ModelDir};
use crate::backend::{DeviceKind, InstanceSpec, Registry};
use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::model_instance_group::Kind as GroupKind;
use crate::request::InferRequest;
use crate::request::validate::{ModelIo, validate};
use crate::scheduler::Scheduler;
use crate::scheduler::instance::ModelFiles;
use crate::stats::ModelStats;
use crate::status::{Code, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMode {
    None,
    Poll,
    Explicit,
}

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    pub repositories: Vec<PathBuf>,
    pub control_mode: ControlMode,
    /// `--load-model` names for explicit mode; `*` loads everything.
    pub startup_models: Vec<String>,
    pub auto_complete: bool,
    pub gpu_count: usize,
}

/// A loaded, serving model version.
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub config: Arc<ModelConfig>,
    pub io: ModelIo,
    pub stats: Arc<ModelStats>,
    scheduler: Scheduler,
}

impl ModelVersion {
    pub fn is_decoupled(&self) -> bool {
        self.config.is_decoupled()
    }

    /// Validates and queues a request; the answers arrive on the request's stream.
    pub fn submit(&self, mut req: InferRequest) -> Result<(), Status> {
        validate(&self.io, &mut req)?;
        self.scheduler.enqueue(req)
    }

    /// Requests queued and not yet executing.
    pub fn queued(&self) -> usize {
        self.scheduler.queued()
    }
}

/// A model's state for the repository index, per version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionState {
    pub state: State,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Loading,
    Ready,
    Unloading,
    Unavailable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Loading => "LOADING",
            State::Ready => "READY",
            State::Unloading => "UNLOADING",
            State::Unavailable => "UNAVAILABLE",
        }
    }
}

/// One row of the repository index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub version: Option<i64>,
    pub state: Option<State>,
    pub reason: String,
}

/// The live routing table of one model.
#[derive(Default)]
pub struct Serving {
    pub versions: BTreeMap<i64, Arc<ModelVersion>>,
}

#[derive(Default)]
struct ModelEntry {
    serving: ArcSwap<Serving>,
    states: Mutex<BTreeMap<i64, VersionState>>,
    /// Serialises loads and unloads of this model.
    op: Mutex<()>,
}

/// What the repository load API may replace.
#[derive(Default, Clone, Debug)]
pub struct LoadOverrides {
    pub config: Option<ModelConfig>,
    /// `file:<version>/<name>` overrides: relative path and content. When present, the model
    /// loads from a fresh temporary folder holding only these files (and needs `config`).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Longest file name component accepted in a file override.
const MAX_NAME_LEN: usize = 255;

/// Checks a file override path: relative, plain components, no `..`, bounded names.
pub fn check_override_path(path: &str) -> Result<std::path::PathBuf, Status> {
    use std::path::Component;
    let bad = |why: &str| Status::invalid_arg(format!("invalid file override path '{path}': {why}"));
    if path.is_empty() {
        return Err(bad("empty path"));
    }
    let p = std::path::Path::new(path);
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
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
            Component::RootDir | Component::Prefix(_) => return Err(bad("absolute paths are not allowed")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad("no file name"));
    }
    Ok(out)
}

pub struct ModelManager {
    config: ManagerConfig,
    registry: Registry,
    models: DashMap<String, Arc<ModelEntry>>,
    /// Lets ensembles reach their composing models without a reference cycle.
    me: Weak<ModelManager>,
}

/// Deepest chain of ensembles loading their composing models.
const MAX_ENSEMBLE_DEPTH: usize = 16;

impl ModelManager {
    pub fn new(config: ManagerConfig, registry: Registry) -> Arc<ModelManager> {
        Arc::new_cyclic(|me| ModelManager { config, registry, models: DashMap::new(), me: me.clone() })
    }

    pub fn control_mode(&self) -> ControlMode {
        self.config.control_mode
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Loads what the control mode asks for at start-up. Failures are reported in the index
    /// and returned; they never stop the other models.
    pub fn startup(&self) -> Vec<(String, Status)> {
        let (dirs, problems) = match scan::scan(&self.config.repositories) {
            Ok(found) => found,
            Err(e) => return vec![(String::new(), e.into())],
        };
        let mut failures: Vec<(String, Status)> =
            problems.into_iter().map(|p| (String::new(), Status::from(p))).collect();
        let wanted: Vec<String> = match self.config.control_mode {
            ControlMode::Explicit if !self.config.startup_models.iter().any(|m| m == "*") => {
                self.config.startup_models.clone()
            }
            _ => dirs.keys().cloned().collect(),
        };
        for name in wanted {
            if let Err(s) = self.load(&name, LoadOverrides::default()) {
                tracing::error!(model = %name, "{}", s.message);
                failures.push((name, s));
            }
        }
        failures
    }

    /// Finds a serving version: the highest one when `version` is `None`.
    pub fn get(&self, name: &str, version: Option<i64>) -> Result<Arc<ModelVersion>, Status> {
        let unknown = || match version {
            Some(v) => Status::not_found(format!("Request for unknown model: '{name}' version {v} is not found")),
            None => Status::not_found(format!("Request for unknown model: '{name}' is not found")),
        };
        let entry = self.models.get(name).ok_or_else(unknown)?;
        let serving = entry.serving.load();
        let found = match version {
            Some(v) => serving.versions.get(&v),
            None => serving.versions.values().next_back(),
        };
        found.cloned().ok_or_else(unknown)
    }

    /// Serving versions of a model, ascending.
    pub fn versions(&self, name: &str) -> Vec<i64> {
        self.models.get(name).map(|e| e.serving.load().versions.keys().copied().collect()).unwrap_or_default()
    }

    /// Every serving model version.
    pub fn serving(&self) -> Vec<Arc<ModelVersion>> {
        let mut out: Vec<Arc<ModelVersion>> = Vec::new();
        for e in self.models.iter() {
            out.extend(e.serving.load().versions.values().cloned());
        }
        out.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        out
    }

    /// Whether every model that was asked for is ready (Triton's strict readiness).
    pub fn all_ready(&self) -> bool {
        self.models.iter().all(|e| {
            e.states.lock().values().all(|s| s.state == State::Ready || (s.state == State::Unavailable && s.reason == "unloaded"))
        })
    }

    /// The repository index: every model on disk or known, with its versions' states.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        let mut names: Vec<String> = scan::scan(&self.config.repositories)
            .map(|(d, _)| d.into_keys().collect())
            .unwrap_or_default();
        names.extend(self.models.iter().map(|e| e.key().clone()));
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let states = self.models.get(&name).map(|e| e.states.lock().clone()).unwrap_or_default();
            if states.is_empty() {
                if !ready_only {
                    out.push(IndexEntry { name, version: None, state: None, reason: String::new() });
                }
                continue;
            }
            for (v, s) in states {
                if ready_only && s.state != State::Ready {
                    continue;
                }
                out.push(IndexEntry { name: name.clone(), version: Some(v), state: Some(s.state), reason: s.reason });
            }
        }
        out
    }

    fn entry(&self, name: &str) -> Arc<ModelEntry> {
        self.models.entry(name.to_string()).or_default().clone()
    }

    fn find_dir(&self, name: &str) -> Result<ModelDir, Status> {
        for repo in &self.config.repositories {
            let path = repo.join(name);
            if path.is_dir() && !name.is_empty() && !name.contains('/') && !name.starts_with('.') {
                return scan::scan_model(name, &path).map_err(Status::from);
            }
        }
        Err(Status::new(Code::Internal, format!("failed to load '{name}', failed to poll from model repository")))
    }

    /// Loads (or reloads) a model: every version its policy selects. New versions are
    /// created beside the serving ones and the routing table switches only once they are
    /// ready; if they fail, the old versions keep serving.
    pub fn load(&self, name: &str, overrides: LoadOverrides) -> Result<(), Status> {
        self.load_at(name, overrides, 0)
    }

    fn load_at(&self, name: &str, overrides: LoadOverrides, depth: usize) -> Result<(), Status> {
        if depth > MAX_ENSEMBLE_DEPTH {
            return Err(Status::invalid_arg(format!(
                "failed to load '{name}': ensembles nest deeper than {MAX_ENSEMBLE_DEPTH} levels (is there a cycle?)"
            )));
        }
        let _tmp;
        let dir = if overrides.files.is_empty() {
            self.find_dir(name)?
        } else {
            if overrides.config.is_none() {
                return Err(Status::invalid_arg(format!(
                    "failed to load '{name}': file overrides need a 'config' override as well"
                )));
            }
            let (tmp, dir) = write_override_dir(name, &overrides.files)?;
            _tmp = tmp;
            dir
        };
        let entry = self.entry(name);
        let _op = entry.op.lock();
        let ctx = PrepareContext {
            registry: &self.registry,
            gpu_count: self.config.gpu_count,
            auto_complete: self.config.auto_complete,
        };
        let prepared = match load::prepare(&dir, overrides.config, &ctx) {
            Ok(p) => p,
            Err(problems) => {
                let reason = problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; ");
                self.mark_failed(&entry, &dir, &reason);
                return Err(Status::invalid_arg(format!("load failed for model '{name}': {reason}")));
            }
        };
        let config = Arc::new(prepared.config.clone());
        // An ensemble needs its composing models: load those not serving yet.
        if let Some(e) = config.ensemble_scheduling() {
            for step in &e.step {
                if step.model_name != name && self.versions(&step.model_name).is_empty() {
                    drop(_op);
                    let loaded = self.load_at(&step.model_name, LoadOverrides::default(), depth + 1);
                    if let Err(s) = loaded {
                        return Err(Status::invalid_arg(format!(
                            "load failed for model '{name}': composing model '{}' failed to load: {}",
                            step.model_name, s.message
                        )));
                    }
                    return self.load_at(name, overrides_without_files(&prepared), depth);
                }
            }
        }
        {
            let mut states = entry.states.lock();
            for (v, _) in &prepared.versions {
                states.insert(*v, VersionState { state: State::Loading, reason: String::new() });
            }
        }
        let loaded = self.load_versions(&dir, &prepared, &config);
        let mut failures = Vec::new();
        let mut next = BTreeMap::new();
        {
            let mut states = entry.states.lock();
            for (v, result) in loaded {
                match result {
                    Ok(mv) => {
                        states.insert(v, VersionState { state: State::Ready, reason: String::new() });
                        next.insert(v, mv);
                    }
                    Err(s) => {
                        states.insert(v, VersionState { state: State::Unavailable, reason: s.message.clone() });
                        failures.push(format!("version {v} is at UNAVAILABLE state: {}", s.message));
                    }
                }
            }
            if failures.is_empty() {
                // Versions the policy no longer selects leave.
                for (v, s) in states.iter_mut() {
                    if !next.contains_key(v) && s.state == State::Ready {
                        *s = VersionState { state: State::Unavailable, reason: "unloaded".into() };
                    }
                }
            }
        }
        if !failures.is_empty() {
            return Err(Status::invalid_arg(format!("load failed for model '{name}': {};\n", failures.join(";\n"))));
        }
        let old = entry.serving.swap(Arc::new(Serving { versions: next }));
        retire(old, None);
        Ok(())
    }

    fn load_versions(
        &self,
        dir: &ModelDir,
        prepared: &Prepared,
        config: &Arc<ModelConfig>,
    ) -> Vec<(i64, Result<Arc<ModelVersion>, Status>)> {
        // Versions load in parallel: each has its own instances.
        std::thread::scope(|s| {
            let handles: Vec<_> = prepared
                .versions
                .iter()
                .map(|(v, vdir)| {
                    let files = ModelFiles {
                        name: dir.name.clone(),
                        version: *v,
                        model_dir: dir.path.clone(),
                        version_dir: vdir.clone(),
                        config: config.clone(),
                    };
                    (*v, s.spawn(move || self.load_version(files)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(v, h)| (v, h.join().unwrap_or_else(|_| Err(Status::internal("model load panicked")))))
                .collect()
        })
    }

    fn load_version(&self, files: ModelFiles) -> Result<Arc<ModelVersion>, Status> {
        let cfg = &files.config;
        if cfg.platform == "ensemble" || cfg.ensemble_scheduling().is_some() {
            let me = self.me.clone();
            let submit: crate::scheduler::ensemble::Submit = Arc::new(move |model: &str, version, req| {
                let m = me.upgrade().ok_or_else(|| Status::unavailable("server is shutting down"))?;
                m.get(model, version)?.submit(req)
            });
            let io = ModelIo::from_config(cfg).map_err(Status::invalid_arg)?;
            let stats = Arc::new(ModelStats::default());
            let scheduler = Scheduler::ensemble(cfg, submit, stats.clone())?;
            return Ok(Arc::new(ModelVersion { name: files.name.clone(), version: files.version, config: files.config.clone(), io, stats, scheduler }));
        }
        let backend = self.registry.get(&cfg.backend).ok_or_else(|| {
            Status::unsupported(format!(
                "backend '{}' is not supported by despina; available backends: {}",
                cfg.backend,
                self.registry.names().join(", ")
            ))
        })?;
        let mut io = ModelIo::from_config(cfg).map_err(Status::invalid_arg)?;
        for out in &mut io.outputs {
            if let Some(o) = cfg.output.iter().find(|o| o.name == out.name && !o.label_filename.is_empty()) {
                let labels = load::read_labels(&files.model_dir.join(&o.label_filename))
                    .map_err(|e| Status::internal(format!("cannot read labels file '{}': {e}", o.label_filename)))?;
                out.labels = Some(Arc::new(labels));
            }
        }
        let specs = instance_specs(cfg, self.config.gpu_count)?;
        let stats = Arc::new(ModelStats::default());
        let scheduler = Scheduler::start(backend, &files, specs, stats.clone()).map_err(Status::from)?;
        Ok(Arc::new(ModelVersion { name: files.name.clone(), version: files.version, config: files.config.clone(), io, stats, scheduler }))
    }

    fn mark_failed(&self, entry: &ModelEntry, dir: &ModelDir, reason: &str) {
        let mut states = entry.states.lock();
        let serving = entry.serving.load();
        let versions: Vec<i64> = if dir.versions.is_empty() { vec![] } else { vec![dir.versions.last().map_or(1, |v| v.0)] };
        for v in versions {
            if !serving.versions.contains_key(&v) {
                states.insert(v, VersionState { state: State::Unavailable, reason: reason.to_string() });
            }
        }
    }

    /// Unloads every version of a model. Queued and executing requests finish first.
    pub fn unload(&self, name: &str) -> Result<(), Status> {
        let Some(entry) = self.models.get(name).map(|e| e.clone()) else {
            return Ok(());
        };
        let _op = entry.op.lock();
        let old = entry.serving.swap(Arc::new(Serving::default()));
        {
            let mut states = entry.states.lock();
            for v in old.versions.keys() {
                states.insert(*v, VersionState { state: State::Unloading, reason: String::new() });
            }
        }
        retire(old, Some(entry.clone()));
        Ok(())
    }

    /// Stops every model: closes the queues, lets queued requests finish, joins the instances.
    pub fn shutdown(&self) {
        let entries: Vec<Arc<ModelEntry>> = self.models.iter().map(|e| e.clone()).collect();
        for e in &entries {
            let old = e.serving.swap(Arc::new(Serving::default()));
            for v in old.versions.values() {
                v.scheduler.close();
            }
            for v in old.versions.values() {
                v.scheduler.stop();
            }
        }
    }
}

/// Reloading after composing models loaded uses the config already prepared.
fn overrides_without_files(prepared: &Prepared) -> LoadOverrides {
    LoadOverrides { config: Some(prepared.config.clone()), files: Vec::new() }
}

/// Writes file overrides into a fresh temporary model folder. The folder must outlive the
/// load only as long as backends read files at load time, which ours do.
fn write_override_dir(name: &str, files: &[(String, Vec<u8>)]) -> Result<(tempfile::TempDir, ModelDir), Status> {
    let tmp = tempfile::Builder::new()
        .prefix("despina-override-")
        .tempdir()
        .map_err(|e| Status::internal(format!("cannot create a folder for file overrides: {e}")))?;
    let root = tmp.path().join(name);
    for (path, content) in files {
        let rel = check_override_path(path)?;
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Status::internal(format!("cannot write file override '{path}': {e}")))?;
        }
        // create_new: never follow or replace anything already there.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| Status::invalid_arg(format!("cannot write file override '{path}': {e}")))?;
        std::io::Write::write_all(&mut f, content).map_err(|e| Status::internal(format!("cannot write file override '{path}': {e}")))?;
    }
    let dir = scan::scan_model(name, &root).map_err(Status::from)?;
    Ok((tmp, dir))
}

/// Takes versions out of service on a background thread: their queues close, what is queued
/// finishes, the instances exit, and the versions are marked unloaded.
fn retire(old: Arc<Serving>, entry: Option<Arc<ModelEntry>>) {
    if old.versions.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new().name("unload".into()).spawn(move || {
        for v in old.versions.values() {
            v.scheduler.close();
        }
        for (version, v) in &old.versions {
            v.scheduler.stop();
            if let Some(e) = &entry {
                let mut states = e.states.lock();
                if states.get(version).is_some_and(|s| s.state == State::Unloading) {
                    states.insert(*version, VersionState { state: State::Unavailable, reason: "unloaded".into() });
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start unload thread: {e}");
    }
}

/// Expands `instance_group` into one spec per instance.
fn instance_specs(cfg: &ModelConfig, gpu_count: usize) -> Result<Vec<InstanceSpec>, Status> {
    let mut specs = Vec::new();
    let groups = if cfg.instance_group.is_empty() {
        vec![crate::proto::inference::ModelInstanceGroup { count: 1, ..Default::default() }]
    } else {
        cfg.instance_group.clone()
    };
    for (gi, g) in groups.iter().enumerate() {
        let count = g.count.max(1) as usize;
        let group = if g.name.is_empty() { format!("{}_{gi}", cfg.name) } else { g.name.clone() };
        let kind = match GroupKind::try_from(g.kind).unwrap_or(GroupKind::Auto) {
            GroupKind::Gpu => DeviceKind::Gpu,
            GroupKind::Model => DeviceKind::Model,
            GroupKind::Auto if gpu_count > 0 => DeviceKind::Gpu,
            _ => DeviceKind::Cpu,
        };
        let devices: Vec<i32> = match kind {
            DeviceKind::Gpu if !g.gpus.is_empty() => g.gpus.clone(),
            DeviceKind::Gpu => (0..gpu_count as i32).collect(),
            _ => vec![-1],
        };
        if kind == DeviceKind::Gpu && devices.is_empty() {
            return Err(Status::invalid_arg(format!(
                "instance group {group} of model {} has kind KIND_GPU but no GPUs are available",
                cfg.name
            )));
        }
        for device in devices {
            for i in 0..count {
                specs.push(InstanceSpec { name: format!("{group}_{i}"), kind, device });
            }
        }
    }
    Ok(specs)
}
