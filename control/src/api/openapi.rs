//! The OpenAPI 3 document of the control API, built from the handlers'
//! annotations and served at `GET /v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    agent_tests, agents, analytics, billing, calls, campaigns, conversations, keys, livekit, numbers,
    settings, signup, users, whatsapp,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Voxgate control API", description = "Agents, calls, recordings and access for a Voxgate media server. \
        Send `Authorization: Bearer <token>` (from /v1/auth/login) or `Bearer <API key>`."),
    paths(
        keys::login, signup::set_password, signup::plans, signup::request, signup::verify, signup::stripe_webhook,
        keys::me, keys::create, keys::list, keys::revoke,
        users::list, users::create, users::update, users::remove,
        numbers::list, numbers::assign, numbers::release,
        settings::read_twilio, settings::set_twilio, settings::remove_twilio,
        agents::create, agents::list, agents::read, agents::update, agents::remove, agents::upload_knowledge,
        agents::media_token,
        agent_tests::start, agent_tests::read,
        calls::place, calls::list, calls::read, calls::recording_url, calls::download,
        billing::usage,
        campaigns::create, campaigns::list, campaigns::read, campaigns::add_numbers, campaigns::pause,
        campaigns::resume, campaigns::cancel,
        analytics::calls, analytics::sentiment, analytics::categories, analytics::top_phrases,
        livekit::dispatch, livekit::webhook, livekit::token,
        whatsapp::add_app, whatsapp::list_apps, whatsapp::remove_app, whatsapp::route_number, whatsapp::verify,
        whatsapp::notify,
        conversations::list, conversations::events, conversations::read, conversations::claim, conversations::reply,
        conversations::hand_back, conversations::close,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&Bearer, &CommonErrors),
    tags((name = "auth"), (name = "signup"), (name = "numbers"), (name = "agents"), (name = "calls"), (name = "campaigns"), (name = "billing"), (name = "analytics"), (name = "livekit"), (name = "whatsapp"), (name = "conversations")),
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

/// Documents the errors any operation can answer with (the body could not
/// be read, a field is out of range, too many requests, ...), so each
/// handler's annotation lists only what is particular to it.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        let common = [
            ("400", "The request could not be read (syntax, query parameters, a value it cannot use)"),
            ("404", "No such resource for this tenant"),
            ("413", "The body is too large"),
            ("415", "The body's content type is not the one expected"),
            ("422", "A field is missing, unknown, of the wrong type or out of range"),
            ("429", "Too many requests from this client"),
            ("503", "A dependency (the database, an agent's models, the recording store) is unavailable"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let extra = [
                    ("401", "Missing, invalid, expired or revoked credentials"),
                    ("403", "The credentials may not do this (a member, a read-only key, not an admin)"),
                ];
                for (code, what) in common.into_iter().chain(extra.into_iter().filter(|_| secured)) {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(what).into());
                }
            }
        }
    }
}

/// The document, as JSON.
#[must_use]
pub fn openapi() -> serde_json::Value {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    open_agent_fields(&mut doc);
    doc
}

/// A stored agent is its definition plus `id` and times, but `AgentSpec`
/// as a request body allows no other fields (an unknown one is a 422): the
/// response refers to a copy that does.
fn open_agent_fields(doc: &mut serde_json::Value) {
    let schemas = &mut doc["components"]["schemas"];
    let mut fields = schemas["AgentSpec"].clone();
    if let Some(f) = fields.as_object_mut() {
        f.remove("additionalProperties");
        f.insert("description".into(), "An agent's definition, as read back.".into());
    }
    schemas["AgentFields"] = fields;
    if let Some(all_of) = schemas["Agent"]["allOf"].as_array_mut() {
        for part in all_of {
            if part["$ref"] == "#/components/schemas/AgentSpec" {
                part["$ref"] = "#/components/schemas/AgentFields".into();
            }
        }
    }
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    // Built once: it never changes while the server runs.
    static DOC: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(openapi);
    Json(DOC.clone())
}

#[cfg(test)]
mod tests {
    /// The document's own shape. That it matches the routes served is
    /// checked on a running server (`media-server/tests/control.rs`).
    #[test]
    fn the_document_is_openapi_3_with_the_common_errors() {
        let doc = super::openapi();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        assert!(doc["components"]["schemas"]["AgentSpec"].is_object());
        assert_eq!(
            doc["components"]["schemas"]["Agent"]["allOf"][0]["$ref"],
            "#/components/schemas/AgentFields"
        );
        // Every operation documents the common errors; secured ones, 401.
        let agents = &doc["paths"]["/v1/agents"]["post"]["responses"];
        for code in ["201", "400", "401", "413", "415", "422", "429"] {
            assert!(agents[code].is_object(), "POST /v1/agents lacks {code}");
        }
        assert!(doc["paths"]["/v1/auth/login"]["post"]["responses"]["401"].is_object());
    }
}
