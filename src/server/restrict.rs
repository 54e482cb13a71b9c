//! Restricted APIs, in the spirit of Triton's `--http-restricted-api` and
//! `--grpc-restricted-protocol`: a group of endpoints answers only requests carrying a
//! given header with a given value. Missing header: 401 / UNAUTHENTICATED; wrong value:
//! 403 / PERMISSION_DENIED (Triton answers 403 / UNAVAILABLE for both).

use std::collections::BTreeMap;

/// Endpoint groups, named as Triton names them.
pub const CATEGORIES: [&str; 9] = [
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub header: String,
    pub value: String,
}

#[derive(Clone, Debug, Default)]
pub struct Restrictions {
    by_category: BTreeMap<&'static str, Key>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    Missing(String),
    Wrong(String),
}

impl Denied {
    pub fn message(&self) -> String {
        match self {
            Denied::Missing(h) => format!("This API is restricted, expecting header '{h}'"),
            Denied::Wrong(h) => format!("This API is restricted, header '{h}' has a wrong value"),
        }
    }
}

impl Restrictions {
    /// Parses flags of the form `category[,category...]:header=value`.
    pub fn parse(specs: &[String]) -> Result<Restrictions, String> {
        let mut r = Restrictions::default();
        for spec in specs {
            let (cats, key) = spec.split_once(':').ok_or_else(|| {
                format!("restricted API '{spec}' must look like 'category,...:header=value'")
            })?;
            let (header, value) = key.split_once('=').ok_or_else(|| {
                format!("restricted API '{spec}' must look like 'category,...:header=value'")
            })?;
            if header.is_empty() || value.is_empty() {
                return Err(format!(
                    "restricted API '{spec}' needs a header name and a value"
                ));
            }
            for c in cats.split(',').map(str::trim) {
                let cat = CATEGORIES.iter().find(|k| **k == c).ok_or_else(|| {
                    format!(
                        "unknown API category '{c}'; expected one of {}",
                        CATEGORIES.join(", ")
                    )
                })?;
                if r.by_category.contains_key(cat) {
                    return Err(format!("API category '{c}' is restricted twice"));
                }
                r.by_category.insert(
                    cat,
                    Key {
                        header: header.to_ascii_lowercase(),
                        value: value.to_string(),
                    },
                );
            }
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.by_category.is_empty()
    }

    /// Checks a request of `category`; `header` looks a header up by lower-case name.
    pub fn check<'a>(
        &self,
        category: &str,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<(), Denied> {
        let Some(key) = self.by_category.get(category) else {
            return Ok(());
        };
        match header(&key.header) {
            None => Err(Denied::Missing(key.header.clone())),
            Some(v) if constant_time_eq(v.as_bytes(), key.value.as_bytes()) => Ok(()),
            Some(_) => Err(Denied::Wrong(key.header.clone())),
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The category of an HTTP path (and method), as Triton groups its endpoints.
pub fn http_category(path: &str) -> &'static str {
    let parts: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["v2", "health", ..] => "health",
        ["v2", "repository", ..] => "model-repository",
        ["v2", "systemsharedmemory", ..] | ["v2", "cudasharedmemory", ..] => "shared-memory",
        ["v2", "logging"] => "logging",
        ["v2", "trace", ..] => "trace",
        ["v2", "models", "stats"] => "statistics",
        ["v2", "models", .., "trace", "setting"] => "trace",
        ["v2", "models", .., "stats"] => "statistics",
        ["v2", "models", .., "config"] => "model-config",
        ["v2", "models", .., "ready"] => "health",
        ["v2", "models", .., "infer"]
        | ["v2", "models", .., "generate"]
        | ["v2", "models", .., "generate_stream"] => "inference",
        _ => "metadata",
    }
}

/// The category of a gRPC method of `inference.GRPCInferenceService`.
pub fn grpc_category(method: &str) -> &'static str {
    match method {
        "ServerLive" | "ServerReady" | "ModelReady" => "health",
        "ServerMetadata" | "ModelMetadata" => "metadata",
        "ModelInfer" | "ModelStreamInfer" => "inference",
        "ModelConfig" => "model-config",
        "ModelStatistics" => "statistics",
        "RepositoryIndex" | "RepositoryModelLoad" | "RepositoryModelUnload" => "model-repository",
        "TraceSetting" => "trace",
        "LogSettings" => "logging",
        m if m.contains("SharedMemory") => "shared-memory",
        _ => "metadata",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let r = Restrictions::parse(&["model-repository,shared-memory:Admin-Key=s3cret".into()])
            .unwrap();
        let none = |_: &str| None;
        assert_eq!(
            r.check("model-repository", none),
            Err(Denied::Missing("admin-key".into()))
        );
        assert_eq!(
            r.check("shared-memory", |h| (h == "admin-key").then_some("nope")),
            Err(Denied::Wrong("admin-key".into()))
        );
        assert_eq!(
            r.check("shared-memory", |h| (h == "admin-key").then_some("s3cret")),
            Ok(())
        );
        assert_eq!(r.check("inference", none), Ok(()));
        assert!(Restrictions::parse(&["bogus:a=b".into()]).is_err());
        assert!(Restrictions::parse(&["health:a".into()]).is_err());
        assert!(Restrictions::parse(&["health:a=b".into(), "health:c=d".into()]).is_err());
    }

    #[test]
    fn categories() {
        for (p, c) in [
            ("/v2/health/ready", "health"),
            ("/v2", "metadata"),
            ("/v2/models/m", "metadata"),
            ("/v2/models/m/versions/2/ready", "health"),
            ("/v2/models/m/versions/2/infer", "inference"),
            ("/v2/models/m/generate_stream", "inference"),
            ("/v2/models/m/config", "model-config"),
            ("/v2/models/stats", "statistics"),
            ("/v2/models/m/versions/1/stats", "statistics"),
            ("/v2/repository/models/m/load", "model-repository"),
            ("/v2/systemsharedmemory/status", "shared-memory"),
            ("/v2/cudasharedmemory/region/x/register", "shared-memory"),
            ("/v2/models/m/trace/setting", "trace"),
            ("/v2/trace/setting", "trace"),
            ("/v2/logging", "logging"),
        ] {
            assert_eq!(http_category(p), c, "{p}");
        }
        assert_eq!(grpc_category("SystemSharedMemoryRegister"), "shared-memory");
        assert_eq!(grpc_category("ModelStreamInfer"), "inference");
    }
}

/// A tower layer enforcing gRPC restrictions before tonic routes the call. Clients may send
/// the header as configured or with Triton's `triton-grpc-protocol-` prefix.
#[derive(Clone)]
pub struct GrpcLayer {
    rules: std::sync::Arc<Restrictions>,
}

impl GrpcLayer {
    pub fn new(rules: std::sync::Arc<Restrictions>) -> Self {
        GrpcLayer { rules }
    }
}

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = GrpcRestrict<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcRestrict {
            inner,
            rules: self.rules.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcRestrict<S> {
    inner: S,
    rules: std::sync::Arc<Restrictions>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<::http::Request<B>> for GrpcRestrict<S>
where
    S: tower::Service<::http::Request<B>, Response = ::http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = ::http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ::http::Request<B>) -> Self::Future {
        if !self.rules.is_empty() {
            let path = req.uri().path();
            let category = if path.starts_with("/grpc.health.v1.Health/") {
                "health"
            } else {
                grpc_category(path.rsplit('/').next().unwrap_or(""))
            };
            let headers = req.headers();
            let lookup = |h: &str| {
                headers
                    .get(h)
                    .or_else(|| headers.get(format!("triton-grpc-protocol-{h}")))
                    .and_then(|v| v.to_str().ok())
            };
            if let Err(denied) = self.rules.check(category, lookup) {
                let status = match &denied {
                    Denied::Missing(_) => tonic::Status::unauthenticated(denied.message()),
                    Denied::Wrong(_) => tonic::Status::permission_denied(denied.message()),
                };
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        Box::pin(self.inner.call(req))
    }
}

/// Axum middleware enforcing HTTP restrictions (401 missing key, 403 wrong key).
pub async fn http_middleware(
    axum::extract::State(rules): axum::extract::State<std::sync::Arc<Restrictions>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !rules.is_empty() {
        let category = http_category(req.uri().path());
        let headers = req.headers();
        if let Err(denied) = rules.check(category, |h| headers.get(h).and_then(|v| v.to_str().ok()))
        {
            let status = match denied {
                Denied::Missing(_) => axum::http::StatusCode::UNAUTHORIZED,
                Denied::Wrong(_) => axum::http::StatusCode::FORBIDDEN,
            };
            return (
                status,
                axum::Json(serde_json::json!({ "error": denied.message() })),
            )
                .into_response();
        }
    }
    next.run(req).await
}
