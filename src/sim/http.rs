//! The JSON answers every simulated server shares: an error as `{"error": ...}`, and the 404 and 405 of
//! an unknown path or method.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::world::admin::ApiError;

pub(crate) fn json_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.status, &self.message)
    }
}

pub(crate) async fn not_found(req: Request) -> Response {
    json_error(
        404,
        &format!("no such endpoint: {} {}", req.method(), req.uri().path()),
    )
}

pub(crate) async fn method_not_allowed(req: Request) -> Response {
    json_error(
        405,
        &format!(
            "method {} not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
}
