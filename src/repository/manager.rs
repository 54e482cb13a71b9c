//! The model manager: which model versions exist, in what state, and which serve.
//!
//! Each model's serving versions sit behind an `ArcSwap`, so a request looks a version up
//! without locks and keeps an `Arc` of it: a swap or unload never cuts off a request that
//! was already admitted. Loads are serialised per model and run off the request path (the
//! frontends call these blocking methods from a blocking pool). New versions load beside
//! the serving ones; the table switches only when they are ready; leaving versions drain.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::fingerprint;
use super::load::{self, PrepareContext, Prepared};
pub use super::overrides::LoadOverrides;
use super::overrides::write_override_dir;
use super::scan::{self, ModelDir};
use super::version::ModelVersion;
use crate::backend::Registry;
use crate::config::{ConfigExt, ModelConfig};
use crate::scheduler::ensemble::Submit;
use crate::scheduler::instance::ModelFiles;
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
    /// Longest a leaving version keeps accepting requests for it by number while it drains.
    pub drain_timeout: Duration,
    /// Keep windowed latency quantiles per version (`--metrics-config summary_latencies`).
    pub latency_summaries: bool,
    /// The response cache shared by models whose config enables it.
    pub response_cache: Option<Arc<crate::cache::ResponseCache>>,
    /// Times a failed version load is retried.
    pub load_retries: u32,
    /// Triton's `--model-config-name`: use `<model>/configs/<name>.pbtxt` where present.
    pub config_name: Option<String>,
    /// `--rate-limit=execution_count`: instances hold their group's resources while executing.
    pub rate_limiter: Option<Arc<crate::scheduler::rate_limit::RateLimiter>>,
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

const UNLOADED: &str = "unloaded";

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
    /// Versions taken out of the table that still finish their work; reachable only by
    /// explicit version number until they have drained.
    draining: Mutex<BTreeMap<i64, Arc<ModelVersion>>>,
    states: Mutex<BTreeMap<i64, VersionState>>,
    /// Serialises loads and unloads of this model.
    op: Mutex<()>,
    /// The model folder's fingerprint at the last load attempt (poll mode).
    seen: Mutex<Option<u64>>,
    /// Loaded because someone asked for it, not only as an ensemble's composing model.
    explicit: std::sync::atomic::AtomicBool,
    /// Ensembles unloaded because this model was; they come back when it does.
    reload_with: Mutex<std::collections::BTreeSet<String>>,
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
        Arc::new_cyclic(|me| ModelManager {
            config,
            registry,
            models: DashMap::new(),
            me: me.clone(),
        })
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
        let (dirs, problems) = match scan::scan(
            &self.config.repositories,
            self.config.config_name.as_deref(),
        ) {
            Ok(found) => found,
            Err(e) => return vec![(String::new(), e.into())],
        };
        let mut failures: Vec<(String, Status)> = problems
            .into_iter()
            .map(|p| (String::new(), Status::from(p)))
            .collect();
        let wanted: Vec<String> = match self.config.control_mode {
            ControlMode::Explicit if !self.config.startup_models.iter().any(|m| m == "*") => {
                self.config.startup_models.clone()
            }
            _ => dirs.keys().cloned().collect(),
        };
        for name in wanted {
            if !self.versions(&name).is_empty() {
                // Loaded already as an ensemble's composing model; now asked for too.
                self.entry(&name)
                    .explicit
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            if let Err(s) = self.load(&name, LoadOverrides::default()) {
                tracing::error!(model = %name, "{}", s.message);
                failures.push((name, s));
            }
        }
        failures
    }

    /// Finds a serving version: the highest one when `version` is `None`. A version that is
    /// leaving stays reachable by its number until it has drained.
    pub fn get(&self, name: &str, version: Option<i64>) -> Result<Arc<ModelVersion>, Status> {
        let unknown = || match version {
            Some(v) => Status::not_found(format!(
                "Request for unknown model: '{name}' version {v} is not found"
            )),
            None => Status::not_found(format!("Request for unknown model: '{name}' is not found")),
        };
        let entry = self.models.get(name).ok_or_else(unknown)?;
        let serving = entry.serving.load();
        match version {
            Some(v) => match serving.versions.get(&v) {
                Some(mv) => Ok(mv.clone()),
                None => entry.draining.lock().get(&v).cloned().ok_or_else(unknown),
            },
            None => match serving.versions.values().next_back() {
                Some(mv) => Ok(mv.clone()),
                None if entry.states.lock().is_empty() => Err(unknown()),
                None => Err(Status::not_found(format!(
                    "Request for unknown model: '{name}' has no available versions"
                ))),
            },
        }
    }

    /// Serving versions of a model, ascending.
    pub fn versions(&self, name: &str) -> Vec<i64> {
        self.models
            .get(name)
            .map(|e| e.serving.load().versions.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Every serving model version, by name and version.
    /// The server's response cache, if it has one.
    pub fn response_cache(&self) -> Option<&Arc<crate::cache::ResponseCache>> {
        self.config.response_cache.as_ref()
    }

    pub fn serving(&self) -> Vec<Arc<ModelVersion>> {
        let mut out: Vec<Arc<ModelVersion>> = Vec::new();
        for e in self.models.iter() {
            out.extend(e.serving.load().versions.values().cloned());
        }
        out.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        out
    }

    /// Whether every model that was asked for is ready (Triton's strict readiness). Models
    /// unloaded on purpose do not count.
    pub fn all_ready(&self) -> bool {
        self.models.iter().all(|e| {
            e.states.lock().values().all(|s| {
                s.state == State::Ready || (s.state == State::Unavailable && s.reason == UNLOADED)
            })
        })
    }

    /// The repository index: every model on disk or known, with its versions' states.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        let mut names: Vec<String> = scan::scan(
            &self.config.repositories,
            self.config.config_name.as_deref(),
        )
        .map(|(d, _)| d.into_keys().collect())
        .unwrap_or_default();
        names.extend(self.models.iter().map(|e| e.key().clone()));
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let states = self
                .models
                .get(&name)
                .map(|e| e.states.lock().clone())
                .unwrap_or_default();
            if states.is_empty() {
                if !ready_only {
                    out.push(IndexEntry {
                        name,
                        version: None,
                        state: None,
                        reason: String::new(),
                    });
                }
                continue;
            }
            for (v, s) in states {
                if ready_only && s.state != State::Ready {
                    continue;
                }
                out.push(IndexEntry {
                    name: name.clone(),
                    version: Some(v),
                    state: Some(s.state),
                    reason: s.reason,
                });
            }
        }
        out
    }

    fn entry(&self, name: &str) -> Arc<ModelEntry> {
        self.models.entry(name.to_string()).or_default().clone()
    }

    fn find_dir(&self, name: &str) -> Result<ModelDir, Status> {
        let plain = !name.is_empty()
            && !name.contains('/')
            && !name.contains('\\')
            && !name.starts_with('.');
        if plain {
            for repo in &self.config.repositories {
                let path = repo.join(name);
                if path.is_dir() {
                    return scan::scan_model(name, &path, self.config.config_name.as_deref())
                        .map_err(Status::from);
                }
            }
        }
        Err(Status::new(
            Code::Internal,
            format!("failed to load '{name}', failed to poll from model repository"),
        ))
    }

    fn is_decoupled(&self, model: &str) -> bool {
        self.get(model, None).is_ok_and(|v| v.is_decoupled())
    }

    /// Loads (or reloads) a model: every version its policy selects. Versions whose config
    /// and files are unchanged keep serving as they are; new ones are created (and warmed
    /// up) beside them, and the routing table switches only when all are ready. On failure
    /// nothing changes for clients: the old versions keep serving.
    pub fn load(&self, name: &str, overrides: LoadOverrides) -> Result<(), Status> {
        self.load_at(name, overrides, 0)?;
        self.entry(name)
            .explicit
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn load_at(&self, name: &str, overrides: LoadOverrides, depth: usize) -> Result<(), Status> {
        if depth > MAX_ENSEMBLE_DEPTH {
            return Err(Status::invalid_arg(format!(
                "failed to load '{name}': ensembles nest deeper than {MAX_ENSEMBLE_DEPTH} levels (is there a cycle?)"
            )));
        }
        let (_tmp, dir) = if overrides.files.is_empty() {
            (None, self.find_dir(name)?)
        } else {
            if overrides.config.is_none() {
                return Err(Status::invalid_arg(format!(
                    "failed to load '{name}': file overrides need a 'config' override as well"
                )));
            }
            let (tmp, dir) = write_override_dir(name, &overrides.files)?;
            (Some(tmp), dir)
        };
        let entry = self.entry(name);
        let prepared = {
            let _op = entry.op.lock();
            *entry.seen.lock() = Some(fingerprint::tree(&dir.path));
            let is_decoupled = |m: &str| self.is_decoupled(m);
            let ctx = PrepareContext {
                registry: &self.registry,
                gpu_count: self.config.gpu_count,
                auto_complete: self.config.auto_complete,
                is_decoupled: &is_decoupled,
                model_exists: None,
            };
            match load::prepare(&dir, overrides.config.clone(), &ctx) {
                Ok(p) => p,
                Err(problems) => {
                    let reason = problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.mark_failed(&entry, &dir, &reason);
                    return Err(Status::invalid_arg(format!(
                        "load failed for model '{name}': {reason}"
                    )));
                }
            }
        };
        // An ensemble needs its composing models: load those not serving yet (outside this
        // model's lock, since they may be loading on their own too).
        if let Some(e) = prepared.config.ensemble_scheduling() {
            for step in &e.step {
                if step.model_name != name && self.versions(&step.model_name).is_empty() {
                    self.load_at(&step.model_name, LoadOverrides::default(), depth + 1).map_err(|s| {
                        Status::invalid_arg(format!(
                            "load failed for model '{name}': composing model '{}' failed to load: {}",
                            step.model_name, s.message
                        ))
                    })?;
                }
            }
        }
        {
            let _op = entry.op.lock();
            self.install(name, &entry, &dir, prepared)?;
        }
        // Ensembles that left when this model did come back with it.
        let waiting = std::mem::take(&mut *entry.reload_with.lock());
        for ensemble in waiting {
            if self.versions(&ensemble).is_empty()
                && let Err(s) = self.load_at(&ensemble, LoadOverrides::default(), depth + 1)
            {
                tracing::error!(model = %ensemble, "cannot reload after '{name}' returned: {}", s.message);
            }
        }
        Ok(())
    }

    /// Serving ensembles with a step that uses `model`.
    fn ensembles_using(&self, model: &str) -> Vec<String> {
        self.models
            .iter()
            .filter(|e| {
                e.serving.load().versions.values().any(|v| {
                    v.config
                        .ensemble_scheduling()
                        .is_some_and(|s| s.step.iter().any(|st| st.model_name == model))
                })
            })
            .map(|e| e.key().clone())
            .filter(|n| n != model)
            .collect()
    }

    /// Creates what is new, then swaps the routing table and retires what left.
    fn install(
        &self,
        name: &str,
        entry: &Arc<ModelEntry>,
        dir: &ModelDir,
        prepared: Prepared,
    ) -> Result<(), Status> {
        let config = Arc::new(prepared.config.clone());
        let current = entry.serving.load_full();
        let mut next: BTreeMap<i64, Arc<ModelVersion>> = BTreeMap::new();
        let mut to_load = Vec::new();
        for (v, vdir) in &prepared.versions {
            let fp = fingerprint::version(&config, vdir);
            match current.versions.get(v) {
                Some(mv) if mv.fingerprint == fp => {
                    next.insert(*v, mv.clone());
                }
                _ => to_load.push((*v, vdir.clone(), fp)),
            }
        }
        {
            let mut states = entry.states.lock();
            for (v, _, _) in &to_load {
                if !current.versions.contains_key(v) {
                    states.insert(
                        *v,
                        VersionState {
                            state: State::Loading,
                            reason: String::new(),
                        },
                    );
                }
            }
        }
        let loaded = self.create_versions(dir, &config, &to_load);
        let mut failures = Vec::new();
        for (v, result) in loaded {
            match result {
                Ok(mv) => {
                    next.insert(v, mv);
                }
                Err(s) => failures.push((v, s)),
            }
        }
        if !failures.is_empty() {
            // Stop what did load; the old table stays.
            let created: Vec<Arc<ModelVersion>> = next
                .iter()
                .filter(|(v, mv)| current.versions.get(v).is_none_or(|c| !Arc::ptr_eq(c, mv)))
                .map(|(_, mv)| mv.clone())
                .collect();
            retire(created, None, Duration::ZERO);
            let mut states = entry.states.lock();
            let mut msg = Vec::new();
            for (v, s) in &failures {
                if !current.versions.contains_key(v) {
                    states.insert(
                        *v,
                        VersionState {
                            state: State::Unavailable,
                            reason: s.message.clone(),
                        },
                    );
                }
                msg.push(format!(
                    "version {v} is at UNAVAILABLE state: {}",
                    s.message
                ));
            }
            for (v, _, _) in &to_load {
                if !current.versions.contains_key(v)
                    && states.get(v).is_some_and(|s| s.state == State::Loading)
                {
                    states.insert(
                        *v,
                        VersionState {
                            state: State::Unavailable,
                            reason: "not loaded: another version failed".into(),
                        },
                    );
                }
            }
            return Err(Status::invalid_arg(format!(
                "load failed for model '{name}': {};\n",
                msg.join(";\n")
            )));
        }
        let leaving: Vec<Arc<ModelVersion>> = current
            .versions
            .iter()
            .filter(|(v, mv)| next.get(v).is_none_or(|n| !Arc::ptr_eq(n, mv)))
            .map(|(_, mv)| mv.clone())
            .collect();
        {
            let mut states = entry.states.lock();
            for v in next.keys() {
                states.insert(
                    *v,
                    VersionState {
                        state: State::Ready,
                        reason: String::new(),
                    },
                );
            }
            for mv in &leaving {
                if !next.contains_key(&mv.version) {
                    states.insert(
                        mv.version,
                        VersionState {
                            state: State::Unloading,
                            reason: String::new(),
                        },
                    );
                }
            }
        }
        let versions: Vec<i64> = next.keys().copied().collect();
        entry.serving.store(Arc::new(Serving { versions: next }));
        tracing::info!(model = %name, ?versions, "serving");
        retire(leaving, Some(entry.clone()), self.config.drain_timeout);
        Ok(())
    }

    fn create_versions(
        &self,
        dir: &ModelDir,
        config: &Arc<ModelConfig>,
        to_load: &[(i64, PathBuf, u64)],
    ) -> Vec<(i64, Result<Arc<ModelVersion>, Status>)> {
        // Versions load in parallel: each has its own instances.
        std::thread::scope(|s| {
            let handles: Vec<_> = to_load
                .iter()
                .map(|(v, vdir, fp)| {
                    let files = ModelFiles {
                        name: dir.name.clone(),
                        version: *v,
                        model_dir: dir.path.clone(),
                        version_dir: vdir.clone(),
                        config: config.clone(),
                    };
                    let submit = self.submitter();
                    let fp = *fp;
                    (
                        *v,
                        s.spawn(move || self.create_with_retries(files, submit, fp)),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(v, h)| {
                    (
                        v,
                        h.join()
                            .unwrap_or_else(|_| Err(Status::internal("model load panicked"))),
                    )
                })
                .collect()
        })
    }

    /// Creates a version, retrying a failed load `load_retries` times (Triton's
    /// `--model-load-retry-count`).
    fn create_with_retries(
        &self,
        files: ModelFiles,
        submit: Submit,
        fingerprint: u64,
    ) -> Result<Arc<ModelVersion>, Status> {
        let retries = self.config.load_retries;
        let mut attempt = 0;
        loop {
            let created = ModelVersion::create(
                files.clone(),
                &self.registry,
                &self.config,
                submit.clone(),
                fingerprint,
            );
            match created {
                Ok(v) => return Ok(Arc::new(v)),
                Err(e) if attempt < retries => {
                    attempt += 1;
                    tracing::warn!(
                        model = %files.name, version = files.version,
                        "load failed: {}; retry {attempt} of {retries}", e.message
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How an ensemble reaches its composing models.
    fn submitter(&self) -> Submit {
        let me = self.me.clone();
        Arc::new(move |model: &str, version, req| {
            let m = me
                .upgrade()
                .ok_or_else(|| Status::unavailable("server is shutting down"))?;
            m.get(model, version)?.submit(req)
        })
    }

    fn mark_failed(&self, entry: &ModelEntry, dir: &ModelDir, reason: &str) {
        let mut states = entry.states.lock();
        let serving = entry.serving.load();
        if let Some((v, _)) = dir.versions.last()
            && !serving.versions.contains_key(v)
        {
            states.insert(
                *v,
                VersionState {
                    state: State::Unavailable,
                    reason: reason.to_string(),
                },
            );
        }
    }

    /// Unloads every version of a model; queued and executing requests finish first.
    /// Ensembles using the model leave with it (and return when it is loaded again). With
    /// `dependents`, an ensemble's composing models that nobody asked for explicitly and no
    /// other ensemble uses are unloaded too.
    pub fn unload(&self, name: &str, dependents: bool) -> Result<(), Status> {
        let Some(entry) = self.models.get(name).map(|e| e.clone()) else {
            return Ok(());
        };
        entry
            .explicit
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let composing: Vec<String> = {
            let _op = entry.op.lock();
            let old = entry.serving.swap(Arc::new(Serving::default()));
            let composing = old
                .versions
                .values()
                .filter_map(|v| {
                    v.config.ensemble_scheduling().map(|e| {
                        e.step
                            .iter()
                            .map(|s| s.model_name.clone())
                            .collect::<Vec<_>>()
                    })
                })
                .flatten()
                .collect();
            {
                let mut states = entry.states.lock();
                for v in old.versions.keys() {
                    states.insert(
                        *v,
                        VersionState {
                            state: State::Unloading,
                            reason: String::new(),
                        },
                    );
                }
            }
            retire(
                old.versions.values().cloned().collect(),
                Some(entry.clone()),
                Duration::ZERO,
            );
            composing
        };
        for ensemble in self.ensembles_using(name) {
            entry.reload_with.lock().insert(ensemble.clone());
            self.unload(&ensemble, false)?;
        }
        if dependents {
            for m in composing {
                let explicit = self
                    .models
                    .get(&m)
                    .is_some_and(|e| e.explicit.load(std::sync::atomic::Ordering::Relaxed));
                if m != name && !explicit && self.ensembles_using(&m).is_empty() {
                    self.unload(&m, true)?;
                }
            }
        }
        Ok(())
    }

    /// One poll of the repositories: load what is new or changed, unload what is gone.
    pub fn poll(&self) {
        let Ok((dirs, problems)) = scan::scan(
            &self.config.repositories,
            self.config.config_name.as_deref(),
        ) else {
            return;
        };
        for p in problems {
            tracing::warn!("{p}");
        }
        for (name, dir) in &dirs {
            let fp = fingerprint::tree(&dir.path);
            let seen = self.models.get(name).and_then(|e| *e.seen.lock());
            if seen != Some(fp) {
                tracing::info!(model = %name, "repository changed; loading");
                if let Err(s) = self.load(name, LoadOverrides::default()) {
                    tracing::error!(model = %name, "{}", s.message);
                }
            }
        }
        let gone: Vec<String> = self
            .models
            .iter()
            .filter(|e| !dirs.contains_key(e.key()) && !e.serving.load().versions.is_empty())
            .map(|e| e.key().clone())
            .collect();
        for name in gone {
            tracing::info!(model = %name, "removed from the repository; unloading");
            if let Some(e) = self.models.get(&name) {
                *e.seen.lock() = None;
            }
            let _ = self.unload(&name, false);
        }
    }

    /// Stops every model: closes the queues, lets queued requests finish, joins the instances.
    pub fn shutdown(&self) {
        let entries: Vec<Arc<ModelEntry>> = self.models.iter().map(|e| e.clone()).collect();
        let mut all = Vec::new();
        for e in &entries {
            let old = e.serving.swap(Arc::new(Serving::default()));
            all.extend(old.versions.values().cloned());
            all.extend(e.draining.lock().values().cloned());
        }
        for v in &all {
            v.scheduler.close();
        }
        for v in &all {
            v.scheduler.stop();
        }
    }
}

/// Returns freed heap pages to the OS, so unloading a model shows in the process's RSS.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Takes versions out of service on a background thread. Each leaving version stays
/// reachable by its number while requests for it keep it busy (up to `drain`), then its
/// queue closes, what is queued finishes, its instances exit, and it is marked unloaded.
fn retire(leaving: Vec<Arc<ModelVersion>>, entry: Option<Arc<ModelEntry>>, drain: Duration) {
    if leaving.is_empty() {
        return;
    }
    if let Some(e) = &entry {
        let mut d = e.draining.lock();
        for v in &leaving {
            d.insert(v.version, v.clone());
        }
    }
    let spawned = std::thread::Builder::new()
        .name("unload".into())
        .spawn(move || {
            let start = Instant::now();
            for v in &leaving {
                let mut idle_checks = 0;
                while start.elapsed() < drain && idle_checks < 3 {
                    idle_checks = if v.inflight() == 0 {
                        idle_checks + 1
                    } else {
                        0
                    };
                    std::thread::sleep(Duration::from_millis(5));
                }
                v.scheduler.close();
            }
            for v in &leaving {
                v.scheduler.stop();
                if let Some(e) = &entry {
                    let mut d = e.draining.lock();
                    if d.get(&v.version).is_some_and(|x| Arc::ptr_eq(x, v)) {
                        d.remove(&v.version);
                    }
                    drop(d);
                    let serving = e.serving.load();
                    let mut states = e.states.lock();
                    if !serving.versions.contains_key(&v.version) {
                        states.insert(
                            v.version,
                            VersionState {
                                state: State::Unavailable,
                                reason: UNLOADED.into(),
                            },
                        );
                    }
                }
                tracing::info!(model = %v.name, version = v.version, "unloaded");
            }
            drop(leaving);
            release_freed_memory();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start unload thread: {e}");
    }
}
