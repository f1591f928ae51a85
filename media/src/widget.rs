//! The embeddable widget: `GET /widget.js` (one script tag on a customer's
//! page) adds a launcher that opens an iframe from `GET /widget/frame`,
//! with the call button (WebRTC) and the chat box (`/v1/chat`), styled by
//! the agent's widget settings (`?agent=<id>`; none: the configured agent
//! and `[widget]`). The iframe talks to its own origin, so the customer's
//! page needs no CORS; `allowed_origins` limits which sites may frame it
//! (`Content-Security-Policy: frame-ancestors`).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use std::sync::Arc;

use crate::calls::CallContext;
use crate::error::Refusal;
use crate::stream::KeyQuery;
use voxgate_calls::agent::CallAgent;

/// The settings the widget's scripts read.
fn settings(agent: &CallAgent) -> serde_json::Value {
    let w = &agent.widget;
    let greeting = agent.session.turn.greeting.clone().unwrap_or_default();
    json!({
        "agent": agent.id.as_deref().unwrap_or_default(),
        "title": w.title,
        "colour": w.colour,
        "avatar": w.avatar,
        "position": w.position,
        "greeting": greeting,
    })
}

/// `value` as a JavaScript literal, safe inside a `<script>` (`<` is escaped).
fn js_literal(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// The agent `?agent=` names, if anonymous visitors may reach it (it is
/// public, or the media key came with the request); else the refusal (404,
/// as for an agent that does not exist).
async fn agent(ctx: &Arc<CallContext>, query: &KeyQuery) -> Result<CallAgent, Response> {
    let agent = ctx.agents.get(&query.agent).await.map_err(|e| Refusal::from(e).into_response())?;
    let media_key = ctx.config.media_key.expose();
    let with_key = !media_key.is_empty() && voxgate_calls::tokens::same_secret(&query.key, media_key);
    if agent.public || with_key { Ok(agent) } else { Err(Refusal::NotFound("agent").into_response()) }
}

/// `GET /widget/token`: a media token for a public agent, so the widget's
/// chat and calls work while the media endpoints are closed to anyone
/// without the media key.
pub async fn token(State(ctx): State<Arc<CallContext>>, Query(query): Query<KeyQuery>) -> Response {
    let agent = match agent(&ctx, &query).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let (token, expires_at) = ctx.tokens.mint(&agent, voxgate_calls::tokens::WIDGET_TOKEN_TTL);
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(json!({ "token": token, "expires_at": expires_at })))
        .into_response()
}

/// `GET /widget.js`.
pub async fn script(State(ctx): State<Arc<CallContext>>, Query(query): Query<KeyQuery>) -> Response {
    let agent = match agent(&ctx, &query).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let js = include_str!("widget/widget.js").replace("__SETTINGS__", &js_literal(&settings(&agent)));
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            // A script tag needs no CORS; this lets a page fetch it too.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        js,
    )
        .into_response()
}

/// `GET /`: a demo page with the widget, to try the agent in a browser.
pub async fn demo(State(ctx): State<Arc<CallContext>>) -> Response {
    let title = html_escape(&ctx.config.widget.title);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - Voxgate</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}}</style>\
         </head><body><h1>{title}</h1><p>This is Voxgate's demo page. Open the button at the corner to call or \
         chat with the agent. Put the same widget on your own site with one tag:</p>\
         <pre>&lt;script src=\"{{ORIGIN}}/widget.js\" async&gt;&lt;/script&gt;</pre>\
         <script>document.querySelector('pre').textContent = document.querySelector('pre').textContent\
         .replace('{{ORIGIN}}', location.origin);</script>\
         <script src=\"/widget.js\" async></script></body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /widget/frame`.
pub async fn frame(State(ctx): State<Arc<CallContext>>, Query(query): Query<KeyQuery>) -> Response {
    let agent = match agent(&ctx, &query).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    // The frame carries a media token for its agent, renewed by its script (GET /widget/token).
    let (token, expires_at) = ctx.tokens.mint(&agent, voxgate_calls::tokens::WIDGET_TOKEN_TTL);
    let mut settings = settings(&agent);
    settings["token"] = json!(token);
    settings["token_expires_at"] = json!(expires_at);
    let html = include_str!("widget/frame.html").replace("__SETTINGS__", &js_literal(&settings));
    let allowed = &agent.widget.allowed_origins;
    let ancestors = if allowed.is_empty() { "*".to_owned() } else { format!("'self' {}", allowed.join(" ")) };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_SECURITY_POLICY, format!("frame-ancestors {ancestors}")),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        html,
    )
        .into_response()
}
