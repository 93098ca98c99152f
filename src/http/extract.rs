//! Extractors whose rejections are [`ApiError`]s, so a bad JSON body or path
//! parameter gets the same `{"error": …}` body as every other failure; and the
//! bearer credentials of a request.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
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
                    _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
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

/// The credentials of `Authorization: Bearer <token>`. The scheme is matched
/// case-insensitively (RFC 9110 §11.1: `bearer`, `BEARER` are the same scheme).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_matches(' ')).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let headers = |v: &str| HeaderMap::from_iter([(header::AUTHORIZATION, v.parse().unwrap())]);
        for v in ["Bearer tok", "bearer tok", "BEARER  tok", "bEaReR tok "] {
            assert_eq!(bearer_token(&headers(v)), Some("tok"), "{v}");
        }
        for v in ["Basic tok", "Bearertok", "Bearer ", "tok"] {
            assert_eq!(bearer_token(&headers(v)), None, "{v}");
        }
    }
}
