//! The one error map of the server: every failure a request can meet, each with its
//! HTTP status and a stable machine-readable `code`, rendered as
//! `{"status": "error", "error": {"code", "message"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vton_core::VtonError;

/// A request's failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A multipart field (or JSON member) that the endpoint requires is absent.
    #[error("missing required field `{field}`")]
    MissingField { field: String },
    /// An uploaded image (or mask, or label map) cannot be decoded.
    #[error("field `{field}`: cannot decode image: {message}")]
    InvalidImage { field: String, message: String },
    /// The `options` field is not valid JSON or has an out-of-range value.
    #[error("invalid options: {message}")]
    InvalidOptions { message: String },
    /// The request is well formed but its content is not usable (bad keypoints JSON,
    /// a mask of the wrong size, a multipart body that does not parse, ...).
    #[error("{message}")]
    InvalidInput { message: String },
    /// The body is over `--max-body`.
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// An image's header claims more pixels than `--max-pixels` (refused before decoding).
    #[error(
        "field `{field}`: image is {width}x{height} = {pixels} pixels, over the limit of {limit}"
    )]
    TooManyPixels {
        field: String,
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    /// The request's content type is not the one the endpoint takes.
    #[error("unsupported content type {found:?}: expected {expected}")]
    UnsupportedMediaType { found: String, expected: String },
    /// No valid `Authorization: Bearer` key.
    #[error("missing or invalid API key (send `Authorization: Bearer <key>`)")]
    Unauthorized,
    /// The waiting queue is full.
    #[error("server busy: {capacity} requests already running or queued; retry later")]
    QueueFull { capacity: usize, retry_after_s: u64 },
    /// The model is still loading.
    #[error("the model is still loading; retry when /api/v1/health says model_loaded")]
    ModelLoading,
    /// The request ran past `--timeout`.
    #[error("request ran past the timeout of {seconds} s")]
    Timeout { seconds: f64 },
    /// No such route.
    #[error("no route {path}")]
    NotFound { path: String },
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
    /// No job, file or result with this id.
    #[error("no {kind} {id:?}")]
    UnknownId { kind: &'static str, id: String },
    /// The resource exists but is not in a state for this (a result not finished yet, a
    /// finished job cancelled).
    #[error("{message}")]
    Conflict { message: String },
    /// The job routes need `vton serve --data-dir DIR`.
    #[error("batch jobs are not enabled: start the server with --data-dir DIR")]
    BatchDisabled,
    /// A bug or an internal failure (a panic is caught into this).
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl ApiError {
    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingField { .. }
            | InvalidImage { .. }
            | InvalidOptions { .. }
            | InvalidInput { .. } => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } | TooManyPixels { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthorized => StatusCode::UNAUTHORIZED,
            QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            ModelLoading | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            NotFound { .. } | UnknownId { .. } | BatchDisabled => StatusCode::NOT_FOUND,
            Conflict { .. } => StatusCode::CONFLICT,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (documented in docs/serving.md and the OpenAPI spec).
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingField { .. } => "missing_field",
            InvalidImage { .. } => "invalid_image",
            InvalidOptions { .. } => "invalid_options",
            InvalidInput { .. } => "invalid_input",
            BodyTooLarge { .. } => "body_too_large",
            TooManyPixels { .. } => "too_many_pixels",
            UnsupportedMediaType { .. } => "unsupported_media_type",
            Unauthorized => "unauthorized",
            QueueFull { .. } => "queue_full",
            ModelLoading => "model_loading",
            ShuttingDown => "shutting_down",
            Timeout { .. } => "timeout",
            NotFound { .. } => "not_found",
            UnknownId { .. } => "unknown_id",
            Conflict { .. } => "conflict",
            BatchDisabled => "batch_disabled",
            MethodNotAllowed => "method_not_allowed",
            Internal { .. } => "internal",
        }
    }

    /// Every code, for the OpenAPI spec.
    pub const CODES: &'static [&'static str] = &[
        "missing_field",
        "invalid_image",
        "invalid_options",
        "invalid_input",
        "body_too_large",
        "too_many_pixels",
        "unsupported_media_type",
        "unauthorized",
        "queue_full",
        "model_loading",
        "shutting_down",
        "timeout",
        "not_found",
        "unknown_id",
        "conflict",
        "batch_disabled",
        "method_not_allowed",
        "internal",
    ];

    /// The library's error for a request's input: problems with what the client sent
    /// are 400, anything else is internal.
    pub fn from_vton(e: VtonError, field: Option<&str>) -> Self {
        match e {
            VtonError::Image { message, .. } => ApiError::InvalidImage {
                field: field.unwrap_or("image").into(),
                message,
            },
            VtonError::Json { .. }
            | VtonError::MissingKeypoints { .. }
            | VtonError::NoPerson { .. }
            | VtonError::SizeMismatch { .. }
            | VtonError::EmptyMask { .. }
            | VtonError::InvalidArgument { .. }
            | VtonError::Unsupported { .. } => ApiError::InvalidInput {
                message: match field {
                    Some(f) => format!("field `{f}`: {e}"),
                    None => e.to_string(),
                },
            },
            other => ApiError::Internal {
                message: other.to_string(),
            },
        }
    }
}

impl From<VtonError> for ApiError {
    fn from(e: VtonError) -> Self {
        ApiError::from_vton(e, None)
    }
}

/// The JSON body of an error.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"status": "error", "error": {"code": code, "message": message}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            axum::Json(error_body(self.code(), &self.to_string())),
        )
            .into_response();
        if let ApiError::QueueFull { retry_after_s, .. } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s.max(1)));
        }
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_and_statuses_are_errors() {
        let all = [
            ApiError::MissingField { field: "f".into() },
            ApiError::InvalidImage {
                field: "f".into(),
                message: "m".into(),
            },
            ApiError::InvalidOptions {
                message: "m".into(),
            },
            ApiError::InvalidInput {
                message: "m".into(),
            },
            ApiError::BodyTooLarge { limit: 1 },
            ApiError::TooManyPixels {
                field: "f".into(),
                width: 1,
                height: 1,
                pixels: 1,
                limit: 0,
            },
            ApiError::UnsupportedMediaType {
                found: "a".into(),
                expected: "b".into(),
            },
            ApiError::Unauthorized,
            ApiError::QueueFull {
                capacity: 1,
                retry_after_s: 1,
            },
            ApiError::ModelLoading,
            ApiError::ShuttingDown,
            ApiError::Timeout { seconds: 1.0 },
            ApiError::NotFound { path: "/".into() },
            ApiError::UnknownId {
                kind: "job",
                id: "x".into(),
            },
            ApiError::Conflict {
                message: "m".into(),
            },
            ApiError::BatchDisabled,
            ApiError::MethodNotAllowed,
            ApiError::Internal {
                message: "m".into(),
            },
        ];
        assert_eq!(all.len(), ApiError::CODES.len());
        for e in &all {
            assert!(ApiError::CODES.contains(&e.code()), "{}", e.code());
            assert!(e.status().is_client_error() || e.status().is_server_error());
        }
        let r = ApiError::QueueFull {
            capacity: 1,
            retry_after_s: 3,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn library_input_errors_are_400_others_500() {
        let e = ApiError::from_vton(VtonError::invalid("x", "bad"), Some("keypoints"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("keypoints"));
        let e = ApiError::from(VtonError::Numerical {
            operation: "o".into(),
            message: "m".into(),
        });
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
