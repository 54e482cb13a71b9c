//! OpenTelemetry export of request traces (`--trace-config mode=opentelemetry`): each
//! sampled request becomes three spans, as Triton sends them: `InferRequest` (the
//! frontend's part, child of the caller's `traceparent` span), one named after the model
//! (REQUEST_START to REQUEST_END, with Triton's `triton.*` attributes) and `compute`.
//! Spans are batched and POSTed as OTLP/HTTP JSON from a thread of their own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where and how spans go (Triton's `opentelemetry,<setting>` values).
#[derive(Clone, Debug, PartialEq)]
pub struct OtelSettings {
    /// `host:port/path`, `http://` optional.
    pub url: String,
    /// Extra resource attributes (`resource=key=value`).
    pub resources: Vec<(String, String)>,
    pub schedule_delay: Duration,
    pub max_export_batch: usize,
}

impl Default for OtelSettings {
    fn default() -> Self {
        OtelSettings {
            url: "localhost:4318/v1/traces".into(),
            resources: Vec::new(),
            schedule_delay: Duration::from_millis(5000),
            max_export_batch: 512,
        }
    }
}

/// A caller's W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Parent {
    pub trace_id: String,
    pub span_id: String,
}

impl Parent {
    pub fn parse(header: &str) -> Option<Parent> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            [_, trace, span, _] if hex(trace, 32) && hex(span, 16) => Some(Parent {
                trace_id: trace.to_ascii_lowercase(),
                span_id: span.to_ascii_lowercase(),
            }),
            _ => None,
        }
    }
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh random-looking id of `bytes` bytes, as lowercase hex.
fn new_id(bytes: usize) -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut seed = Vec::with_capacity(36);
    seed.extend_from_slice(&n.to_le_bytes());
    seed.extend_from_slice(&t.to_le_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    let h = xxhash_rust::xxh3::xxh3_128(&seed);
    let hex = format!("{h:032x}");
    hex[..bytes * 2].to_string()
}

const FRONTEND: [&str; 9] = [
    "HTTP_RECV_START",
    "HTTP_RECV_END",
    "INFER_RESPONSE_COMPLETE",
    "HTTP_SEND_START",
    "HTTP_SEND_END",
    "GRPC_WAITREAD_START",
    "GRPC_WAITREAD_END",
    "GRPC_SEND_START",
    "GRPC_SEND_END",
];
const REQUEST: [&str; 3] = ["REQUEST_START", "QUEUE_START", "REQUEST_END"];
const COMPUTE: [&str; 4] = [
    "COMPUTE_START",
    "COMPUTE_INPUT_END",
    "COMPUTE_OUTPUT_START",
    "COMPUTE_END",
];

fn span(
    name: &str,
    trace_id: &str,
    span_id: &str,
    parent: Option<&str>,
    events: &[(&'static str, u64)],
    attributes: Vec<Value>,
) -> Option<Value> {
    let start = events.iter().map(|e| e.1).min()?;
    let end = events.iter().map(|e| e.1).max()?;
    let mut s = json!({
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "events": events.iter().map(|(n, t)| json!({"name": n, "timeUnixNano": t.to_string()})).collect::<Vec<_>>(),
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    if !attributes.is_empty() {
        s["attributes"] = json!(attributes);
    }
    Some(s)
}

fn int_attr(key: &str, v: i64) -> Value {
    json!({"key": key, "value": {"intValue": v.to_string()}})
}

/// The spans of one traced request, from its timestamps.
pub fn spans(
    id: u64,
    model: &str,
    version: i64,
    parent: Option<&Parent>,
    stamps: &[(&'static str, u64)],
) -> Vec<Value> {
    let trace_id = parent.map_or_else(|| new_id(16), |p| p.trace_id.clone());
    let (front_id, model_id, compute_id) = (new_id(8), new_id(8), new_id(8));
    let pick = |names: &[&str]| -> Vec<(&'static str, u64)> {
        stamps
            .iter()
            .filter(|(n, _)| names.contains(n))
            .copied()
            .collect()
    };
    let attributes = vec![
        json!({"key": "triton.model_name", "value": {"stringValue": model}}),
        int_attr("triton.model_version", version),
        int_attr("triton.trace_id", id as i64),
        int_attr("triton.trace_parent_id", 0),
    ];
    let front = pick(&FRONTEND);
    let request = pick(&REQUEST);
    // With no frontend stamps (an ensemble step), the model span is the top one.
    let model_parent = if front.is_empty() {
        parent.map(|p| p.span_id.as_str())
    } else {
        Some(front_id.as_str())
    };
    let mut out = Vec::new();
    out.extend(span(
        "compute",
        &trace_id,
        &compute_id,
        Some(&model_id),
        &pick(&COMPUTE),
        vec![],
    ));
    out.extend(span(
        model,
        &trace_id,
        &model_id,
        model_parent,
        &request,
        attributes,
    ));
    let front_parent = parent.map(|p| p.span_id.as_str());
    out.extend(span(
        "InferRequest",
        &trace_id,
        &front_id,
        front_parent,
        &front,
        vec![],
    ));
    out
}

/// Sends span batches to the collector from its own thread.
pub struct Exporter {
    tx: mpsc::Sender<Vec<Value>>,
}

impl Exporter {
    pub fn start(settings: OtelSettings) -> Exporter {
        let (tx, rx) = mpsc::channel::<Vec<Value>>();
        // Detached: when the exporter is dropped the channel closes and the thread sends
        // what it holds, then exits, without making the dropping thread wait for the network.
        let started = std::thread::Builder::new()
            .name("otel-export".into())
            .spawn(move || export_loop(&settings, &rx));
        if let Err(e) = started {
            tracing::warn!("cannot start the trace exporter: {e}");
        }
        Exporter { tx }
    }

    pub fn send(&self, spans: Vec<Value>) {
        let _ = self.tx.send(spans);
    }
}

fn export_loop(settings: &OtelSettings, rx: &mpsc::Receiver<Vec<Value>>) {
    let mut batch: Vec<Value> = Vec::new();
    let mut due = Instant::now() + settings.schedule_delay;
    loop {
        let wait = due.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(spans) => {
                batch.extend(spans);
                if batch.len() >= settings.max_export_batch {
                    post(settings, std::mem::take(&mut batch));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                post(settings, std::mem::take(&mut batch));
                due = Instant::now() + settings.schedule_delay;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                post(settings, batch);
                return;
            }
        }
    }
}

/// The OTLP/HTTP JSON body for `spans`.
pub fn body(settings: &OtelSettings, spans: Vec<Value>) -> Value {
    let mut resource: Vec<(String, String)> = vec![
        ("telemetry.sdk.name".into(), "opentelemetry".into()),
        ("telemetry.sdk.language".into(), "rust".into()),
        ("service.name".into(), "triton-inference-server".into()),
    ];
    for (k, v) in &settings.resources {
        match resource.iter_mut().find(|(rk, _)| rk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => resource.push((k.clone(), v.clone())),
        }
    }
    json!({
        "resourceSpans": [{
            "resource": {"attributes": resource.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>()},
            "scopeSpans": [{"scope": {"name": "triton-server"}, "spans": spans}],
        }]
    })
}

fn post(settings: &OtelSettings, spans: Vec<Value>) {
    if spans.is_empty() {
        return;
    }
    let payload = body(settings, spans).to_string();
    let url = settings
        .url
        .strip_prefix("http://")
        .unwrap_or(&settings.url);
    let (host, path) = match url.find('/') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, "/v1/traces"),
    };
    let result = (|| -> std::io::Result<()> {
        let addr = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:4318")
        };
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        if !status.starts_with('2') {
            return Err(std::io::Error::other(format!(
                "collector answered {status}"
            )));
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(url = %settings.url, "cannot export traces: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_spans_under_the_callers_context() {
        let parent =
            Parent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let stamps = [
            ("HTTP_RECV_START", 10),
            ("HTTP_RECV_END", 11),
            ("REQUEST_START", 12),
            ("QUEUE_START", 13),
            ("COMPUTE_START", 14),
            ("COMPUTE_END", 15),
            ("REQUEST_END", 16),
            ("HTTP_SEND_START", 17),
            ("HTTP_SEND_END", 18),
        ];
        let s = spans(7, "simple", 1, Some(&parent), &stamps);
        let names: Vec<&str> = s.iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["compute", "simple", "InferRequest"]);
        assert!(
            s.iter()
                .all(|x| x["traceId"] == "0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(s[2]["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(s[1]["parentSpanId"], s[2]["spanId"]);
        assert_eq!(s[0]["parentSpanId"], s[1]["spanId"]);
        assert_eq!(
            (
                s[1]["startTimeUnixNano"].as_str(),
                s[1]["endTimeUnixNano"].as_str()
            ),
            (Some("12"), Some("16"))
        );
        assert_eq!(s[1]["attributes"][2]["value"]["intValue"], "7");
        assert_eq!(s[2]["events"].as_array().unwrap().len(), 4);
        assert_eq!(s[2]["spanId"].as_str().unwrap().len(), 16);
        // Without a caller's context: a new trace id, and no parent on the top span.
        let s = spans(8, "simple", 1, None, &stamps);
        assert_eq!(s[0]["traceId"].as_str().unwrap().len(), 32);
        assert!(s[2].get("parentSpanId").is_none());
        assert!(Parent::parse("00-xyz-b7ad6b7169203331-01").is_none());
    }
}
