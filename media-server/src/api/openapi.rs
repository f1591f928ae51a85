//! The OpenAPI 3 document of the control API, built from the handlers'
//! annotations and served at `GET /v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agents, calls, keys};

#[derive(OpenApi)]
#[openapi(
    info(title = "Voxgate control API", description = "Agents, calls, recordings and access for a Voxgate media server. \
        Send `Authorization: Bearer <token>` (from /v1/auth/login) or `Bearer <API key>`."),
    paths(
        keys::login, keys::me, keys::create, keys::list, keys::revoke,
        agents::create, agents::list, agents::read, agents::update, agents::remove, agents::upload_knowledge,
        calls::place, calls::list, calls::read, calls::recording_url, calls::download,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&Bearer),
    tags((name = "auth"), (name = "agents"), (name = "calls")),
)]
struct Doc;

/// Declares the bearer scheme the operations' `security` names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or API key").build(),
            ),
        );
    }
}

/// The document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/v1/auth/login",
            "/v1/me",
            "/v1/api-keys",
            "/v1/api-keys/{id}",
            "/v1/agents",
            "/v1/agents/{id}",
            "/v1/agents/{id}/knowledge",
            "/v1/calls",
            "/v1/calls/{id}",
            "/v1/calls/{id}/recording",
            "/v1/recordings/{key}",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
        }
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        assert!(doc["components"]["schemas"]["AgentSpec"].is_object());
    }
}
