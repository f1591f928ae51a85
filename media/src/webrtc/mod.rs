//! Browser calls over WebRTC: `POST /v1/webrtc/offer` with an SDP offer
//! (WHIP-style: `application/sdp` in, the answer out with a `Location`
//! to `DELETE` to hang up). Opus at 48 kHz both ways, DTLS-SRTP always;
//! our host candidates are `webrtc.addresses`, a socket on each (and
//! `public_address` behind a 1:1 NAT).
//!
//! The engine is [str0m](https://docs.rs/str0m), a sans-IO WebRTC stack:
//! this module owns the sockets and the clock and feeds it, as the SIP
//! edge does for RTP. The browser's Opus frames go into the same call core
//! as a phone caller's (jitter buffer, decoder, session), on the call's
//! 20 ms tick: the caller's frame in, the agent's out, one wake-up for both.

//!
//! # Layout
//! - this file: the HTTP side: the offer (admission, sockets, the answer)
//!   and the hang-up;
//! - [`pending`]: offers answered but not yet connected, counted;
//! - `browser`: the call itself, str0m and the call core on one loop.

mod browser;
mod pending;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use str0m::change::SdpOffer;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use voxgate_domain::{CallId, Channel};

use crate::calls::{self, CallContext};
use crate::error::{Refusal, StartError};
use crate::stream::KeyQuery;
pub use pending::Pending;

/// The largest SDP offer taken.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Calls in progress, by id, so `DELETE` can hang them up; and the
/// answered ones not yet connected.
#[derive(Debug, Default, Clone)]
pub struct Calls(Arc<Mutex<HashMap<String, CancellationToken>>>, Arc<Pending>);

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `POST /v1/webrtc/offer`: an SDP offer in, the answer out.
pub async fn offer(
    State(ctx): State<Arc<CallContext>>,
    State(running): State<Calls>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<SocketAddr>,
    Query(query): Query<KeyQuery>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let access = match ctx.access(&query.key, &query.token) {
        Ok(a) => a,
        Err(refused) => return refused.into_response(),
    };
    let received = std::time::Instant::now();
    if !ctx.config.webrtc.enabled {
        return error(StatusCode::SERVICE_UNAVAILABLE, "WebRTC is off (webrtc.enabled = false)");
    }
    let agent = match ctx.agents.get(&query.agent).await {
        // An agent this visitor may not reach is as unknown as a missing one.
        Ok(agent) if ctx.may_use(&access, &agent) => agent,
        Ok(_) => return Refusal::NotFound("agent").into_response(),
        Err(e) => return Refusal::from(e).into_response(),
    };
    let sdp_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !sdp_type.starts_with("application/sdp") {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the offer as application/sdp");
    }
    if body.len() > MAX_OFFER_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the offer is too large");
    }
    let Ok(offer) = SdpOffer::from_sdp_string(&body) else {
        return error(StatusCode::BAD_REQUEST, "not an SDP offer");
    };
    // Within the limits, before a port is taken; held until the call's task ends.
    let seat = match ctx.admit(Channel::WebRtc, &agent) {
        Ok(seat) => seat,
        Err(full) if !full.passing() => return error(StatusCode::PAYMENT_REQUIRED, full.text()),
        Err(full) => {
            let retry = ctx.admission.retry_after_s().to_string();
            let mut refused =
                error(StatusCode::SERVICE_UNAVAILABLE, &format!("busy: {full}; try again later"));
            if let Ok(v) = header::HeaderValue::from_str(&retry) {
                refused.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return refused;
        }
    };
    let w = &ctx.config.webrtc;
    let Some(pending) = running.1.take(client.ip(), w.max_pending_per_network, w.max_pending) else {
        tracing::warn!(client = %client.ip(), "WebRTC offer refused: too many unconnected sessions");
        let mut refused =
            error(StatusCode::TOO_MANY_REQUESTS, "too many calls waiting to connect; try again shortly");
        refused.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
        return refused;
    };
    install_crypto();
    // A socket and a host candidate per interface.
    let sockets = match bind_sockets(&ctx.config).await {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!(error = %e, "no port for a WebRTC call");
            return error(StatusCode::SERVICE_UNAVAILABLE, "no media port free");
        }
    };
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(std::time::Instant::now());
    for (local, _) in &sockets {
        if let Ok(c) = Candidate::host(*local, "udp") {
            rtc.add_local_candidate(c);
        }
    }
    // Behind a 1:1 NAT: the public address, forwarded to the first interface's port.
    if let (Some(ip), Some((first, _))) = (w.public_address, sockets.first())
        && let Ok(c) = Candidate::host(SocketAddr::new(ip, first.port()), "udp")
    {
        rtc.add_local_candidate(c);
    }
    let answer = match rtc.sdp_api().accept_offer(offer) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the offer cannot be answered: {e}")),
    };
    let id = CallId::random().into_string();
    let cancel = CancellationToken::new();
    if let Ok(mut calls) = running.0.lock() {
        calls.insert(id.clone(), cancel.clone());
    }
    tracing::info!(call_id = %id, ports = ?sockets.iter().map(|s| s.0).collect::<Vec<_>>(), "WebRTC call answered");
    let (registry, call_id) = (running.clone(), id.clone());
    tokio::spawn(async move {
        let call =
            tokio::spawn(browser::run(rtc, sockets, ctx, agent, call_id.clone(), cancel, received, pending));
        let outcome = call.await;
        drop(seat);
        if let Err(e) = outcome {
            tracing::error!(call_id = %call_id, error = %e, "WebRTC call task failed");
        }
        if let Ok(mut calls) = registry.0.lock() {
            calls.remove(&call_id);
        }
    });
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/v1/webrtc/{id}")),
        ],
        answer.to_sdp_string(),
    )
        .into_response()
}

/// `DELETE /v1/webrtc/{id}`: hang up.
pub async fn hang_up(
    State(ctx): State<Arc<CallContext>>,
    State(running): State<Calls>,
    Query(query): Query<KeyQuery>,
    Path(id): Path<String>,
) -> Response {
    // The call's id (unguessable, handed to its caller) is what hangs it up;
    // with a media key set, the key or a media token must come too.
    if let Err(refused) = ctx.access(&query.key, &query.token) {
        return refused.into_response();
    }
    let token = running.0.lock().ok().and_then(|c| c.get(&id).cloned());
    match token {
        Some(t) => {
            t.cancel();
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such call"),
    }
}

/// A media socket on each of `webrtc.addresses`, with its local address.
async fn bind_sockets(
    config: &crate::config::MediaConfig,
) -> Result<Vec<(SocketAddr, UdpSocket)>, StartError> {
    let mut sockets = Vec::with_capacity(config.webrtc.addresses.len());
    for &ip in &config.webrtc.addresses {
        let socket = calls::bind_media_port(config, ip).await?;
        sockets.push((socket.local_addr()?, socket));
    }
    Ok(sockets)
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
