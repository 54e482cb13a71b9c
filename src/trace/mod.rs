//! Request traces (Triton's trace extension, TIMESTAMPS level): the moments a sampled
//! request passes through the server, written as one JSON object per line to the trace file,
//! or exported as OpenTelemetry spans (`otel`).

pub mod otel;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// One sampled request's timestamps.
pub struct Trace {
    id: u64,
    model: String,
    version: AtomicI64,
    stamps: Mutex<Vec<(&'static str, u64)>>,
    sink: Arc<TraceSink>,
    /// The caller's `traceparent`, for OpenTelemetry export.
    parent: Option<otel::Parent>,
}

impl Trace {
    pub fn new(id: u64, model: &str, sink: Arc<TraceSink>) -> Trace {
        Trace {
            id,
            model: model.to_string(),
            version: AtomicI64::new(0),
            stamps: Mutex::new(Vec::new()),
            sink,
            parent: None,
        }
    }

    /// Continues the caller's trace (a W3C `traceparent` header) when exported.
    pub fn with_parent(mut self, traceparent: Option<&str>) -> Trace {
        self.parent = traceparent.and_then(otel::Parent::parse);
        self
    }

    pub fn mark(&self, name: &'static str) {
        self.stamps.lock().push((name, now_ns()));
    }

    /// Marks `name` at `ns` nanoseconds since the Unix epoch.
    pub fn mark_at(&self, name: &'static str, ns: u64) {
        self.stamps.lock().push((name, ns));
    }
    pub fn set_version(&self, v: i64) {
        self.version.store(v, Ordering::Relaxed);
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if let Some(exporter) = &self.sink.otel {
            let stamps = self.stamps.lock();
            let version = self.version.load(Ordering::Relaxed);
            exporter.send(otel::spans(
                self.id,
                &self.model,
                version,
                self.parent.as_ref(),
                &stamps,
            ));
            return;
        }
        let stamps: Vec<serde_json::Value> = self
            .stamps
            .lock()
            .iter()
            .map(|(n, ns)| serde_json::json!({"name": n, "ns": ns}))
            .collect();
        let record = serde_json::json!({
            "id": self.id,
            "model_name": self.model,
            "model_version": self.version.load(Ordering::Relaxed),
            "timestamps": stamps,
        });
        self.sink.push(record);
    }
}

/// Where finished traces go: buffered, then appended to the trace file as JSON lines
/// every `log_frequency` traces (every trace when 0).
pub struct TraceSink {
    file: String,
    log_frequency: u64,
    buffer: Mutex<Vec<serde_json::Value>>,
    /// Set in OpenTelemetry mode: traces become spans sent to a collector.
    otel: Option<otel::Exporter>,
}

impl TraceSink {
    pub fn new(file: String, log_frequency: u64) -> TraceSink {
        TraceSink {
            file,
            log_frequency,
            buffer: Mutex::new(Vec::new()),
            otel: None,
        }
    }

    /// A sink that exports OpenTelemetry spans.
    pub fn otel(settings: otel::OtelSettings) -> TraceSink {
        TraceSink {
            file: String::new(),
            log_frequency: 0,
            buffer: Mutex::new(Vec::new()),
            otel: Some(otel::Exporter::start(settings)),
        }
    }

    fn push(&self, record: serde_json::Value) {
        let mut buf = self.buffer.lock();
        buf.push(record);
        if self.log_frequency == 0 || buf.len() as u64 >= self.log_frequency {
            let records = std::mem::take(&mut *buf);
            drop(buf);
            self.write(&records);
        }
    }

    fn write(&self, records: &[serde_json::Value]) {
        if self.file.is_empty() || records.is_empty() {
            return;
        }
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| {
                let mut out = String::new();
                for r in records {
                    out.push_str(&r.to_string());
                    out.push('\n');
                }
                f.write_all(out.as_bytes())
            });
        if let Err(e) = result {
            tracing::warn!(file = %self.file, "cannot write trace file: {e}");
        }
    }
}

impl Drop for TraceSink {
    fn drop(&mut self) {
        let records = std::mem::take(&mut *self.buffer.lock());
        self.write(&records);
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
