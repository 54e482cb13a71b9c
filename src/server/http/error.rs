//! Errors as the HTTP frontend answers them: a status code and `{"error":"<message>"}`.
//!
//! Triton labels an error body `application/json` when the handler had set that content
//! type before failing, and `text/plain` otherwise (health, readiness, unknown paths, and
//! errors of an inference that was already accepted); clients and the reference catalogue
//! see the difference, so each error carries its content type.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json::escape_into;
use crate::status::{Code, Status};

/// The one mapping from Triton's error codes to HTTP (Triton's `HttpCodeFromError`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unsupported => StatusCode::NOT_IMPLEMENTED,
        Code::Unknown | Code::InvalidArg | Code::AlreadyExists | Code::Cancelled => {
            StatusCode::BAD_REQUEST
        }
    }
}

pub const JSON: &str = "application/json";
pub const PLAIN: &str = "text/plain";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub content_type: &'static str,
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            content_type: JSON,
            header: None,
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found").plain()
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }

    /// Labels the body `text/plain`, as Triton does where no content type was set yet.
    pub fn plain(mut self) -> ApiError {
        self.content_type = PLAIN;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> ApiError {
        self.header = Some((name, HeaderValue::from_static(value)));
        self
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> ApiError {
        ApiError::new(http_status(s.code), s.message)
    }
}

/// `{"error":"<message>"}`.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 12);
    out.extend_from_slice(b"{\"error\":");
    escape_into(&mut out, message.as_bytes());
    out.push(b'}');
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            error_body(&self.message),
        )
            .into_response();
        if let Some((name, value)) = self.header {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_body() {
        assert_eq!(
            http_status(Code::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(http_status(Code::Unsupported), StatusCode::NOT_IMPLEMENTED);
        for c in [
            Code::Unknown,
            Code::InvalidArg,
            Code::AlreadyExists,
            Code::Cancelled,
        ] {
            assert_eq!(http_status(c), StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            error_body("a \"b\"\n"),
            br#"{"error":"a \"b\"\n"}"#.to_vec()
        );
    }
}
