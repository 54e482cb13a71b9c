//! Runtime log and trace settings (the logging and trace extensions), shared by both
//! frontends. Changing them changes what the server does: the log filter is reloaded and
//! the tracer samples, records and writes request traces accordingly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::status::Status;
use crate::trace::otel::OtelSettings;
use crate::trace::{Trace, TraceSink};

/// A log setting value: Triton's settings are booleans, unsigned integers or strings.
#[derive(Clone, Debug, PartialEq)]
pub enum LogValue {
    Bool(bool),
    Uint(u32),
    Str(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    pub file: String,
    pub info: bool,
    pub warning: bool,
    pub error: bool,
    pub verbose_level: u32,
    pub format: String,
}

impl LogSettings {
    pub fn to_map(&self) -> Vec<(&'static str, LogValue)> {
        vec![
            ("log_file", LogValue::Str(self.file.clone())),
            ("log_info", LogValue::Bool(self.info)),
            ("log_warning", LogValue::Bool(self.warning)),
            ("log_error", LogValue::Bool(self.error)),
            ("log_verbose_level", LogValue::Uint(self.verbose_level)),
            ("log_format", LogValue::Str(self.format.clone())),
        ]
    }

    /// The tracing filter these settings stand for.
    pub fn filter(&self) -> String {
        let level = if self.verbose_level > 0 {
            "debug"
        } else if self.info {
            "info"
        } else if self.warning {
            "warn"
        } else if self.error {
            "error"
        } else {
            "off"
        };
        format!("{level},h2=warn,hyper=warn,tower=warn,tonic=warn")
    }
}

/// Applies the log filter; installed by `main` (a tracing-subscriber reload handle).
pub type LogApplier = Box<dyn Fn(&LogSettings) -> Result<(), String> + Send + Sync>;

#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    pub level: Vec<String>,
    pub rate: u64,
    /// -1 for unlimited.
    pub count: i64,
    pub log_frequency: u64,
    pub file: String,
    /// "triton" (trace files) or "opentelemetry" (spans to a collector).
    pub mode: String,
    pub otel: OtelSettings,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            level: vec!["OFF".into()],
            rate: 1000,
            count: -1,
            log_frequency: 0,
            file: String::new(),
            mode: "triton".into(),
            otel: OtelSettings::default(),
        }
    }
}

impl TraceSettings {
    /// Builds start-up settings from `--trace-config` values (`[triton,]key=value`, or
    /// `opentelemetry,key=value` for the exporter).
    pub fn from_flags(flags: &[String]) -> Result<TraceSettings, String> {
        let mut t = TraceSettings::default();
        for flag in flags {
            if let Some(kv) = flag.strip_prefix("opentelemetry,") {
                t.set_otel(kv)
                    .map_err(|e| format!("--trace-config '{flag}': {e}"))?;
                continue;
            }
            let kv = flag.strip_prefix("triton,").unwrap_or(flag);
            let (key, value) = kv.split_once('=').ok_or_else(|| {
                format!("--trace-config '{flag}' must look like '[triton,]<setting>=<value>'")
            })?;
            let key = match key {
                "file" => "trace_file",
                "level" => "trace_level",
                "rate" => "trace_rate",
                "count" => "trace_count",
                "log-frequency" | "log_frequency" => "log_frequency",
                "mode" => "trace_mode",
                other => {
                    return Err(format!(
                        "unknown trace setting '{other}' in --trace-config '{flag}'"
                    ));
                }
            };
            let values: Vec<String> = if key == "trace_level" {
                value.split(',').map(str::to_string).collect()
            } else {
                vec![value.to_string()]
            };
            t.set(key, &values)
                .map_err(|e| format!("--trace-config '{flag}': {}", e.message))?;
        }
        Ok(t)
    }

    /// One `opentelemetry,<key>=<value>` setting.
    fn set_otel(&mut self, kv: &str) -> Result<(), String> {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| "expected opentelemetry,<setting>=<value>".to_string())?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key} must be a whole number"))
        };
        match key {
            "url" => self.otel.url = value.to_string(),
            "resource" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| "resource must be <key>=<value>".to_string())?;
                self.otel.resources.push((k.to_string(), v.to_string()));
            }
            "bsp_schedule_delay" => self.otel.schedule_delay = Duration::from_millis(number()?),
            "bsp_max_export_batch_size" => self.otel.max_export_batch = number()?.max(1) as usize,
            // The queue in front of the exporter is unbounded here.
            "bsp_max_queue_size" => {
                number()?;
            }
            other => return Err(format!("unknown OpenTelemetry setting '{other}'")),
        }
        Ok(())
    }

    /// Triton's string form of every setting (trace settings are lists of strings).
    pub fn to_map(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![
            ("trace_level", self.level.clone()),
            ("trace_rate", vec![self.rate.to_string()]),
            ("trace_count", vec![self.count.to_string()]),
            ("log_frequency", vec![self.log_frequency.to_string()]),
            ("trace_file", vec![self.file.clone()]),
            ("trace_mode", vec![self.mode.clone()]),
        ]
    }

    fn enabled(&self) -> bool {
        self.level
            .iter()
            .any(|l| l == "TIMESTAMPS" || l == "TENSORS")
    }

    /// Applies one update; `None` clears a per-model setting back to the global one.
    fn set(&mut self, key: &str, value: &[String]) -> Result<(), Status> {
        let one = || {
            value
                .first()
                .cloned()
                .ok_or_else(|| Status::invalid_arg(format!("trace setting '{key}' needs a value")))
        };
        let num = |s: String| {
            s.parse::<i64>().map_err(|_| {
                Status::invalid_arg(format!(
                    "trace setting '{key}' must be an integer, got '{s}'"
                ))
            })
        };
        match key {
            "trace_level" => {
                for l in value {
                    if !matches!(l.as_str(), "OFF" | "TIMESTAMPS" | "TENSORS") {
                        return Err(Status::invalid_arg(format!(
                            "invalid trace level '{l}': expected OFF, TIMESTAMPS or TENSORS"
                        )));
                    }
                }
                self.level = if value.iter().any(|l| l == "OFF") || value.is_empty() {
                    vec!["OFF".into()]
                } else {
                    value.to_vec()
                };
            }
            "trace_rate" => {
                let r = num(one()?)?;
                if r < 1 {
                    return Err(Status::invalid_arg("trace_rate must be at least 1"));
                }
                self.rate = r as u64;
            }
            "trace_count" => {
                let c = num(one()?)?;
                if c < -1 {
                    return Err(Status::invalid_arg(
                        "trace_count must be -1 (unlimited) or at least 0",
                    ));
                }
                self.count = c;
            }
            "log_frequency" => {
                let f = num(one()?)?;
                if f < 0 {
                    return Err(Status::invalid_arg("log_frequency must be at least 0"));
                }
                self.log_frequency = f as u64;
            }
            "trace_file" => self.file = one()?,
            "trace_mode" => {
                let m = one()?;
                if m != "triton" && m != "opentelemetry" {
                    return Err(Status::invalid_arg(format!(
                        "unsupported trace mode '{m}': 'triton' or 'opentelemetry'"
                    )));
                }
                self.mode = m;
            }
            _ => {
                return Err(Status::invalid_arg(format!(
                    "unknown trace setting '{key}'"
                )));
            }
        }
        Ok(())
    }
}

struct TraceState {
    settings: TraceSettings,
    sink: Arc<TraceSink>,
    seen: AtomicU64,
    remaining: AtomicI64,
}

impl TraceState {
    fn new(settings: TraceSettings) -> TraceState {
        let sink = Arc::new(if settings.mode == "opentelemetry" {
            TraceSink::otel(settings.otel.clone())
        } else {
            TraceSink::new(settings.file.clone(), settings.log_frequency)
        });
        let remaining = AtomicI64::new(settings.count);
        TraceState {
            settings,
            sink,
            seen: AtomicU64::new(0),
            remaining,
        }
    }
}

pub struct Settings {
    log: RwLock<LogSettings>,
    apply_log: Option<LogApplier>,
    trace: RwLock<Arc<TraceState>>,
    model_trace: RwLock<BTreeMap<String, Arc<TraceState>>>,
    /// The keys each model set itself; the others follow the global settings.
    model_overrides: RwLock<BTreeMap<String, BTreeMap<String, Vec<String>>>>,
    next_id: AtomicU64,
}

impl Settings {
    pub fn new(log: LogSettings, trace: TraceSettings, apply_log: Option<LogApplier>) -> Settings {
        Settings {
            log: RwLock::new(log),
            apply_log,
            trace: RwLock::new(Arc::new(TraceState::new(trace))),
            model_trace: RwLock::new(BTreeMap::new()),
            model_overrides: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn log(&self) -> LogSettings {
        self.log.read().clone()
    }

    /// Applies the given log settings; unknown keys and wrong types are errors.
    pub fn update_log(&self, updates: &[(String, LogValue)]) -> Result<LogSettings, Status> {
        let mut next = self.log();
        for (key, value) in updates {
            let wrong = || Status::invalid_arg(format!("invalid value for log setting '{key}'"));
            match (key.as_str(), value) {
                ("log_file", LogValue::Str(s)) => next.file = s.clone(),
                ("log_info", LogValue::Bool(b)) => next.info = *b,
                ("log_warning", LogValue::Bool(b)) => next.warning = *b,
                ("log_error", LogValue::Bool(b)) => next.error = *b,
                ("log_verbose_level", LogValue::Uint(v)) => next.verbose_level = *v,
                ("log_format", LogValue::Str(s)) => {
                    if !matches!(s.as_str(), "default" | "ISO8601") {
                        return Err(Status::invalid_arg(format!(
                            "invalid log format '{s}': expected 'default' or 'ISO8601'"
                        )));
                    }
                    next.format = s.clone();
                }
                (
                    "log_file" | "log_info" | "log_warning" | "log_error" | "log_verbose_level"
                    | "log_format",
                    _,
                ) => {
                    return Err(wrong());
                }
                _ => return Err(Status::invalid_arg(format!("unknown log setting '{key}'"))),
            }
        }
        if let Some(apply) = &self.apply_log {
            apply(&next).map_err(Status::internal)?;
        }
        *self.log.write() = next.clone();
        Ok(next)
    }

    /// The trace settings in force for `model` (the global ones when it has none).
    pub fn trace(&self, model: Option<&str>) -> TraceSettings {
        if let Some(m) = model
            && let Some(s) = self.model_trace.read().get(m)
        {
            return s.settings.clone();
        }
        self.trace.read().settings.clone()
    }

    /// Updates trace settings globally or for one model. A `None` value resets that key:
    /// for a model, back to following the global value.
    pub fn update_trace(
        &self,
        model: Option<&str>,
        updates: &[(String, Option<Vec<String>>)],
    ) -> Result<TraceSettings, Status> {
        let known = |key: &str| {
            TraceSettings::default()
                .to_map()
                .iter()
                .any(|(k, _)| *k == key)
        };
        for (key, _) in updates {
            if !known(key) {
                return Err(Status::invalid_arg(format!(
                    "unknown trace setting '{key}'"
                )));
            }
        }
        match model {
            Some(m) => {
                let mut overrides = self.model_overrides.write();
                let mut mine = overrides.get(m).cloned().unwrap_or_default();
                for (key, value) in updates {
                    match value {
                        Some(v) => {
                            mine.insert(key.clone(), v.clone());
                        }
                        None => {
                            mine.remove(key);
                        }
                    }
                }
                // Validate before anything changes.
                let merged = merge(&self.trace(None), &mine)?;
                if mine.is_empty() {
                    overrides.remove(m);
                    self.model_trace.write().remove(m);
                } else {
                    overrides.insert(m.to_string(), mine);
                    self.model_trace
                        .write()
                        .insert(m.to_string(), Arc::new(TraceState::new(merged.clone())));
                }
                Ok(merged)
            }
            None => {
                let mut next = self.trace(None);
                for (key, value) in updates {
                    let v = match value {
                        Some(v) => v.clone(),
                        None => default_value(key),
                    };
                    next.set(key, &v)?;
                }
                // Models follow the global values for every key they did not set.
                let overrides = self.model_overrides.read();
                let mut rebuilt = BTreeMap::new();
                for (m, mine) in overrides.iter() {
                    rebuilt.insert(m.clone(), Arc::new(TraceState::new(merge(&next, mine)?)));
                }
                *self.trace.write() = Arc::new(TraceState::new(next.clone()));
                *self.model_trace.write() = rebuilt;
                Ok(next)
            }
        }
    }

    /// Decides whether to trace the next request of `model`; returns its trace if so.
    /// `traceparent` is the caller's W3C trace context, continued in OpenTelemetry mode.
    pub fn sample(&self, model: &str, traceparent: Option<&str>) -> Option<Arc<Trace>> {
        let state = match self.model_trace.read().get(model) {
            Some(s) => s.clone(),
            None => self.trace.read().clone(),
        };
        if !state.settings.enabled() {
            return None;
        }
        let n = state.seen.fetch_add(1, Ordering::Relaxed);
        if n % state.settings.rate != 0 {
            return None;
        }
        if state.settings.count >= 0 && state.remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return None;
        }
        Some(Arc::new(
            Trace::new(
                self.next_id.fetch_add(1, Ordering::Relaxed),
                model,
                state.sink.clone(),
            )
            .with_parent(traceparent),
        ))
    }
}

/// The global settings with a model's own keys applied.
fn merge(
    global: &TraceSettings,
    mine: &BTreeMap<String, Vec<String>>,
) -> Result<TraceSettings, Status> {
    let mut t = global.clone();
    for (key, value) in mine {
        t.set(key, value)?;
    }
    Ok(t)
}

fn default_value(key: &str) -> Vec<String> {
    TraceSettings::default()
        .to_map()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let log = LogSettings {
            file: String::new(),
            info: true,
            warning: true,
            error: true,
            verbose_level: 0,
            format: "default".into(),
        };
        Settings::new(log, TraceSettings::default(), None)
    }

    #[test]
    fn trace_sampling_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trace.json").to_string_lossy().into_owned();
        let s = settings();
        assert!(s.sample("m", None).is_none());
        let v = |x: &str| Some(vec![x.to_string()]);
        s.update_trace(
            None,
            &[
                ("trace_level".into(), v("TIMESTAMPS")),
                ("trace_rate".into(), v("2")),
                ("trace_file".into(), Some(vec![file.clone()])),
                ("trace_count".into(), v("2")),
            ],
        )
        .unwrap();
        let traced: Vec<_> = (0..10).filter_map(|_| s.sample("m", None)).collect();
        assert_eq!(traced.len(), 2, "rate 2 and count 2");
        traced[0].mark("REQUEST_START");
        drop(traced);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"model_name\":\"m\""));
        assert!(text.contains("REQUEST_START"));
        assert!(
            s.update_trace(None, &[("trace_level".into(), v("LOUD"))])
                .is_err()
        );
        assert!(s.update_trace(None, &[("nope".into(), v("1"))]).is_err());
    }

    #[test]
    fn model_settings_override_and_reset() {
        let s = settings();
        let v = |x: &str| Some(vec![x.to_string()]);
        s.update_trace(Some("m"), &[("trace_rate".into(), v("5"))])
            .unwrap();
        assert_eq!(s.trace(Some("m")).rate, 5);
        assert_eq!(s.trace(None).rate, 1000);
        s.update_trace(Some("m"), &[("trace_rate".into(), None)])
            .unwrap();
        assert_eq!(s.trace(Some("m")).rate, 1000);
        let log = s
            .update_log(&[("log_verbose_level".into(), LogValue::Uint(1))])
            .unwrap();
        assert_eq!(log.verbose_level, 1);
        assert!(
            s.update_log(&[("log_info".into(), LogValue::Uint(1))])
                .is_err()
        );
    }

    #[test]
    fn model_settings_follow_global_keys_they_did_not_set() {
        let s = settings();
        let v = |x: &str| Some(vec![x.to_string()]);
        s.update_trace(Some("m"), &[("trace_rate".into(), v("5"))])
            .unwrap();
        s.update_trace(
            None,
            &[
                ("trace_count".into(), v("7")),
                ("trace_rate".into(), v("9")),
            ],
        )
        .unwrap();
        let m = s.trace(Some("m"));
        assert_eq!(
            (m.rate, m.count),
            (5, 7),
            "own rate kept, global count followed"
        );
        assert_eq!(s.trace(Some("other")).rate, 9);
        s.update_trace(Some("m"), &[("trace_rate".into(), None)])
            .unwrap();
        assert_eq!(
            s.trace(Some("m")).rate,
            9,
            "a reset key follows the global value again"
        );
        assert!(
            s.update_trace(Some("m"), &[("trace_rate".into(), v("zero"))])
                .is_err()
        );
        assert_eq!(
            s.trace(Some("m")).rate,
            9,
            "a refused update changes nothing"
        );
    }
}
