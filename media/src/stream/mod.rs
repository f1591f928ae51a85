//! Calls that arrive as a websocket media stream: telephony providers that
//! speak the Twilio Media Streams protocol, and simple clients with plain
//! JSON frames (the protocols: `voxgate-streams`). Either way the audio
//! goes into the same call core as a phone call's, on the call's own
//! 20 ms clock, and the call is recorded and logged the same way.
//!
//! A stream must `start` within 10 s. Bad messages (bad JSON, bad base64,
//! wrong sizes, audio before `start`) are counted and ignored; 50 of them,
//! or more than 250 messages in a second, close the socket with a reason.

//!
//! # Layout
//! - this file: the HTTP side: who may connect, the upgrade;
//! - [`limits`]: what a client may send before its socket is closed;
//! - `call`: a stream's call, the socket and the call core on one loop.

mod call;
mod limits;

use std::sync::Arc;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use voxgate_domain::Channel;
use voxgate_streams::{json, twilio};

use crate::calls::CallContext;
use crate::media_access::Access;
use call::serve;
pub use limits::{Limits, close};

/// The largest message accepted (a second of 16 kHz PCM in base64 is ~43 KB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// `?key=` (the media key), `?token=` (a media token) and `?agent=` (an
/// agent's id; none: the configured agent) on the public media URLs.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub agent: String,
}

/// A public websocket endpoint: checks what the client proved
/// ([`crate::media_access`]), then upgrades with messages (and frames) of at
/// most `max_message` bytes and runs `serve` on the socket.
pub fn upgrade<F, Fut>(
    ws: WebSocketUpgrade,
    ctx: &Arc<CallContext>,
    query: &KeyQuery,
    max_message: usize,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocket, Arc<CallContext>, Access) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let access = match ctx.access(&query.key, &query.token) {
        Ok(a) => a,
        Err(refused) => return refused.into_response(),
    };
    upgrade_with(ws, ctx, access, max_message, serve)
}

fn upgrade_with<F, Fut>(
    ws: WebSocketUpgrade,
    ctx: &Arc<CallContext>,
    access: Access,
    max_message: usize,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocket, Arc<CallContext>, Access) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let calls = ctx.clone();
    // A frame no larger than a message: a peer cannot make us buffer a huge frame of a small message.
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| serve(socket, calls, access))
}

/// `GET /v1/streams/twilio`: a Twilio Media Streams websocket (the agent,
/// if any, in `start`'s custom parameters).
pub async fn twilio(
    ws: WebSocketUpgrade,
    Query(query): Query<KeyQuery>,
    State(ctx): State<Arc<CallContext>>,
) -> Response {
    upgrade(ws, &ctx, &query, MAX_MESSAGE_BYTES, |socket, calls, access| async move {
        serve(socket, twilio::Twilio::default(), calls, Channel::Twilio, access, None).await;
    })
}

/// `GET /v1/streams/twilio/{agent}`: a Twilio Media Streams websocket for
/// one agent (Twilio can add neither a query nor a header of ours, so the
/// agent is in the path). When the agent's tenant has a Twilio auth token,
/// the upgrade must carry Twilio's `X-Twilio-Signature` of this URL (as
/// `http.public_url` names it; without one, `wss://` and the Host header).
pub async fn twilio_for(
    ws: WebSocketUpgrade,
    axum::extract::Path(agent_id): axum::extract::Path<String>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: axum::http::HeaderMap,
    Query(query): Query<KeyQuery>,
    State(ctx): State<Arc<CallContext>>,
) -> Response {
    let calls = &*ctx;
    let not_found = || (StatusCode::NOT_FOUND, "agent not found").into_response();
    let Ok(agent) = calls.agents.get(&agent_id).await else { return not_found() };
    let tenant = calls.tenant_of(&agent).to_owned();
    let signing = match calls.agents.twilio_auth_token(&tenant).await {
        Ok(token) => token,
        Err(e) => return crate::error::Refusal::from(e).into_response(),
    };
    let access = match signing {
        Some(auth_token) => {
            let url = signed_url(&calls.config.public_url, &headers, &uri);
            let expected = crate::media_access::twilio_signature(&auth_token, &url);
            let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !voxgate_calls::tokens::same_secret(given, &expected) {
                tracing::warn!(agent = %agent_id, "Twilio stream refused: missing or wrong X-Twilio-Signature");
                return (StatusCode::UNAUTHORIZED, "missing or wrong X-Twilio-Signature").into_response();
            }
            Access::Twilio(tenant)
        }
        None => match calls.access(&query.key, &query.token) {
            Ok(a) => a,
            Err(refused) => return refused.into_response(),
        },
    };
    if !calls.may_use(&access, &agent) {
        return not_found();
    }
    let fixed = agent.id.as_deref().unwrap_or_default().to_owned();
    upgrade_with(ws, &ctx, access, MAX_MESSAGE_BYTES, move |socket, calls, access| async move {
        serve(socket, twilio::Twilio::default(), calls, Channel::Twilio, access, Some(fixed)).await;
    })
}

/// The URL Twilio signed: `public_url` (its scheme made `ws`/`wss`) or
/// `wss://` and the Host header, then the path and query as requested.
fn signed_url(public_url: &str, headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let base = public_url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}{path}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}{path}")
    } else {
        let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        format!("wss://{host}{path}")
    }
}

/// `GET /v1/streams/json`: the plain JSON stream.
pub async fn json(
    ws: WebSocketUpgrade,
    Query(query): Query<KeyQuery>,
    State(ctx): State<Arc<CallContext>>,
) -> Response {
    upgrade(ws, &ctx, &query, MAX_MESSAGE_BYTES, |socket, calls, access| {
        serve(socket, json::Json::default(), calls, Channel::Websocket, access, None)
    })
}
