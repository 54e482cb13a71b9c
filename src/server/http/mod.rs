//! The HTTP/REST frontend: KServe v2 with Triton's extensions (binary tensor data,
//! classification, parameters, model repository, statistics, shared memory, trace, logging,
//! generate), on axum.
//!
//! Paths are matched as Triton matches them (`routes`), then each handler checks the method,
//! so unknown paths, wrong methods and every error answer with Triton's status, body and
//! content type. `Code` maps to HTTP status in one place (`error::http_status`).

mod body;
mod data;
mod decode;
mod encode;
mod error;
mod generate;
mod infer;
mod info;
mod json;
mod repository;
mod routes;
mod settings;
mod shm;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use self::error::{ApiError, ApiResult, JSON, PLAIN};
use self::routes::{ControlAction, ModelKind, Route, ShmAction};
use super::{ServerState, common};

pub use self::error::http_status;

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(route) = routes::parse(parts.uri.path()) else {
        return ApiError::not_found().into_response();
    };
    match handle(state, route, parts.method, parts.headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The methods a route takes; a wrong one is 405 with the content type Triton gives it.
fn allow(method: &Method, ok: &[Method], content_type: &'static str) -> Result<(), ApiError> {
    if ok.contains(method) {
        Ok(())
    } else {
        let e = ApiError::method_not_allowed();
        Err(if content_type == PLAIN { e.plain() } else { e })
    }
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
const GET_POST: &[Method] = &[Method::GET, Method::POST];

async fn handle(
    state: Arc<ServerState>,
    route: Route,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let limit = state.limits.max_body_bytes;
    let small = |body: Body| {
        let headers = &headers;
        async move {
            body::read(headers, body, limit)
                .await
                .map_err(ApiError::from)
        }
    };
    match route {
        Route::ServerMetadata => {
            allow(&method, GET, JSON)?;
            Ok(info::server_metadata(&state.server_name))
        }
        Route::Live => {
            allow(&method, GET, PLAIN)?;
            Ok(info::health(state.live()))
        }
        Route::Ready => {
            allow(&method, GET, PLAIN)?;
            Ok(info::health(state.ready()))
        }
        Route::AllStats => {
            allow(&method, GET, JSON)?;
            info::stats(&state, "", None)
        }
        Route::Logging => {
            allow(&method, GET_POST, JSON)?;
            let b = small(body).await?;
            settings::logging(&state, &method, &b)
        }
        Route::Trace => {
            allow(&method, GET_POST, JSON)?;
            let b = small(body).await?;
            settings::trace(&state, None, &method, &b)
        }
        Route::Model {
            name,
            version,
            kind,
        } => match kind {
            ModelKind::Metadata => {
                allow(&method, GET, JSON)?;
                info::model_metadata(&state, &name, version.as_deref())
            }
            ModelKind::Ready => {
                allow(&method, GET, PLAIN)?;
                info::model_ready(&state, &name, version.as_deref())
            }
            ModelKind::Config => {
                allow(&method, GET, JSON)?;
                info::model_config(&state, &name, version.as_deref())
            }
            ModelKind::Stats => {
                allow(&method, GET, JSON)?;
                info::stats(&state, &name, version.as_deref())
            }
            ModelKind::Trace => {
                allow(&method, GET_POST, JSON)?;
                let b = small(body).await?;
                settings::trace(&state, Some(&name), &method, &b)
            }
            ModelKind::Infer => {
                allow(&method, POST, PLAIN)?;
                infer::infer(state, name, version, headers, body).await
            }
            ModelKind::Generate | ModelKind::GenerateStream => {
                allow(&method, POST, JSON)?;
                generate::generate(
                    state,
                    name,
                    version,
                    headers,
                    body,
                    kind == ModelKind::GenerateStream,
                )
                .await
            }
        },
        Route::SystemShm { region, action } => {
            allow(&method, shm_method(action), JSON)?;
            let b = small(body).await?;
            shm::system(&state, region.as_deref(), action, &b)
        }
        Route::CudaShm { region, action } => {
            allow(&method, shm_method(action), JSON)?;
            let b = small(body).await?;
            shm::cuda(&state, region.as_deref(), action, &b)
        }
        Route::RepositoryIndex => {
            allow(&method, POST, JSON)?;
            let b = small(body).await?;
            repository::index(&state, &b)
        }
        Route::RepositoryControl {
            repository,
            model,
            action,
        } => {
            allow(&method, POST, JSON)?;
            let b: Bytes = small(body).await?;
            match action {
                ControlAction::Load => repository::load(state, repository, model, b).await,
                ControlAction::Unload => repository::unload(state, repository, model, b).await,
            }
        }
    }
}

/// An empty body with the given status and content type.
fn empty(status: StatusCode, content_type: &'static str) -> Response {
    (status, [(CONTENT_TYPE, content_type)]).into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(CONTENT_TYPE, JSON)], body).into_response()
}

/// A version from the path (digits only, by the route): too large for a version is Triton's
/// parse error; 0 is a version no model has.
fn path_version(v: Option<&str>) -> Result<Option<i64>, ApiError> {
    match v {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(common::parse_version(text).err().map_or_else(
                || {
                    ApiError::from(crate::status::Status::invalid_arg(format!(
                        "invalid model version '{text}'"
                    )))
                },
                ApiError::from,
            )),
        },
    }
}

/// Shared-memory status is read with GET; register and unregister are POSTs.
fn shm_method(action: ShmAction) -> &'static [Method] {
    if action == ShmAction::Status {
        GET
    } else {
        POST
    }
}
