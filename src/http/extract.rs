//! Extractors whose rejections are [`ApiError`]s, so a bad JSON body or path
//! parameter gets the same `{"error": …}` body as every other failure.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let code = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
                    JsonRejection::JsonDataError(_) => "invalid_request",
                    _ => "malformed_body",
                };
                let status = match rejection.status() {
                    // Shape errors are the client's fault just like syntax errors.
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    other => other,
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|rejection: PathRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
            })
    }
}
