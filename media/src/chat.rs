//! `GET /v1/chat`: a text conversation with the agent over a websocket,
//! its replies streamed token by token. Stored like a call (channel
//! `chat`), without a recording.
//!
//! Client: `{"type": "message", "text": "..."}`, `{"type": "end"}`.
//! Server: `{"type": "started", "session_id"}`, `{"type": "delta", "text"}`
//! as the reply is written, `{"type": "message", "text"}` when it is whole
//! (the greeting too), `{"type": "error", "error"}` for a message it cannot
//! take, `{"type": "ended", "reason"}`, then it closes.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use voxgate_pipeline::session::{ChatEvent, spawn_chat};

use voxgate_domain::{CallId, Channel};

use crate::calls::CallContext;
use crate::error::Refusal;
use crate::stream::{KeyQuery, Limits, close, upgrade};
use voxgate_calls::agent::CallAgent;

/// The longest message a visitor may send, in characters.
const MAX_TEXT_CHARS: usize = 4000;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    Message { text: String },
    End {},
}

/// `GET /v1/chat`.
pub async fn chat(
    ws: WebSocketUpgrade,
    Query(query): Query<KeyQuery>,
    State(ctx): State<Arc<CallContext>>,
) -> Response {
    let access = match ctx.access(&query.key, &query.token) {
        Ok(a) => a,
        Err(refused) => return axum::response::IntoResponse::into_response(refused),
    };
    let agent = match ctx.agents.get(&query.agent).await {
        // An agent this visitor may not reach is as unknown as a missing one.
        Ok(agent) if ctx.may_use(&access, &agent) => agent,
        Ok(_) => return axum::response::IntoResponse::into_response(Refusal::NotFound("agent")),
        Err(e) => return axum::response::IntoResponse::into_response(Refusal::from(e)),
    };
    upgrade(ws, &ctx, &query, 16 * 1024, move |socket, calls, _access| serve(socket, calls, agent))
}

async fn send(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket.send(Message::Text(value.to_string().into())).await.is_ok()
}

async fn serve(mut socket: WebSocket, calls: Arc<CallContext>, agent: CallAgent) {
    // Within the limits, or closed with the limit met; held until the chat ends.
    let _seat = match calls.admit(Channel::Chat, &agent) {
        Ok(seat) => seat,
        Err(full) => return close(socket, full.close_code(), full.text()).await,
    };
    let id = CallId::random();
    tracing::info!(call_id = %id, "chat started");
    let mut chat = spawn_chat(agent.session.clone(), agent.providers.clone());
    let info = CallContext::inbound(id.clone(), Channel::Chat, &agent);
    calls.started(&info).await;
    let mut limits = Limits::new(Channel::Chat);
    send(&mut socket, json!({"type": "started", "session_id": id})).await;
    let (mut reading, mut close_reason) = (true, None);
    let mut visitor = Some(chat.messages.clone());
    drop(chat.messages);
    loop {
        tokio::select! {
            event = chat.events.recv() => match event {
                Some(ChatEvent::Delta(text)) => {
                    send(&mut socket, json!({"type": "delta", "text": text})).await;
                }
                Some(ChatEvent::Message(text)) => {
                    send(&mut socket, json!({"type": "message", "text": text})).await;
                }
                Some(ChatEvent::Ended(reason)) => {
                    let reason = serde_json::to_value(&reason).unwrap_or_default();
                    send(&mut socket, json!({"type": "ended", "reason": reason["reason"]})).await;
                    break;
                }
                None => break,
            },
            message = socket.recv(), if reading => {
                let Some(Ok(message)) = message else {
                    // The visitor left: the conversation ends.
                    reading = false;
                    visitor = None;
                    continue;
                };
                let mut problem = limits.message();
                match message {
                    Message::Text(text) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
                        Ok(ClientMessage::Message { text }) => {
                            let chars = text.chars().count();
                            if text.trim().is_empty() || chars > MAX_TEXT_CHARS {
                                problem = problem.or(limits.bad(&format!("a message of {chars} characters")));
                                let error = format!("a message is 1 to {MAX_TEXT_CHARS} characters");
                                send(&mut socket, json!({"type": "error", "error": error})).await;
                            } else if let Some(v) = &visitor
                                && v.try_send(text).is_err()
                            {
                                send(&mut socket, json!({"type": "error", "error": "too many messages waiting"})).await;
                            }
                        }
                        Ok(ClientMessage::End {}) => visitor = None,
                        Err(e) => {
                            problem = problem.or(limits.bad(&e));
                            send(&mut socket, json!({"type": "error", "error": e.to_string()})).await;
                        }
                    },
                    Message::Binary(_) => problem = problem.or(limits.bad(&"a binary message")),
                    Message::Close(_) => {
                        reading = false;
                        visitor = None;
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
                if let Some(reason) = problem {
                    close_reason = Some(reason);
                    reading = false;
                    visitor = None;
                }
            }
        }
    }
    match chat.task.await {
        Ok(log) => calls.ended(&info, &log).await,
        Err(e) => tracing::error!(call_id = %id, error = %e, "chat failed"),
    }
    match close_reason {
        Some(reason) => close(socket, close_code::POLICY, reason).await,
        None => close(socket, close_code::NORMAL, "chat ended").await,
    }
}
