//! The OpenAPI document, generated from the handlers' annotations and the types'
//! `ToSchema` derives, served at `GET /openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin;

#[derive(OpenApi)]
#[openapi(
    info(title = "callhook", description = "Telephony call-status webhooks, recorded exactly once."),
    paths(
        admin::create_campaign,
        admin::add_contacts,
        admin::get_contact,
        admin::register_call,
        admin::get_call,
        admin::record_outcome,
        super::webhook::named_provider_doc,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
