//! Voxgate as the agent of LiveKit rooms, through LiveKit's server APIs
//! (the `livekit-api` crate: Twirp services, access tokens, webhooks).
//!
//! A dispatch asks LiveKit's SIP service to dial one of the agent's
//! numbers here (`CreateSIPParticipant` on the outbound trunk that points
//! at Voxgate), with a single-use token in [`DISPATCH_HEADER`]. The call
//! that arrives claims the token ([`Rooms::claim`]) and runs as any SIP
//! call of that agent, with the room's name on its record. Voxgate's own
//! participant in the room is named `voxgate-<dispatch id>`.
//!
//! Rooms belong to tenants by name: tenant `T`'s room `sales` is
//! `T-sales` in LiveKit ([`room_name`]), so one LiveKit project serves
//! every tenant and a tenant reaches only its own rooms.
//!
//! Webhooks (verified with LiveKit's signed token and body hash) say who
//! joined: a participant or room whose metadata names an agent
//! (`{"voxgate_agent": "<id>"}`, or the configured agent's name) gets it
//! dispatched; a SIP participant
//! that is not Voxgate's is the room's caller, whom a transfer moves
//! (`TransferSIPParticipant`); `room_finished` hangs up the room's call.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, TokenVerifier, VideoGrants};
use livekit_api::services::room::RoomClient;
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient, TransferSIPParticipantOptions};
use livekit_api::webhooks::WebhookReceiver;
use livekit_protocol::participant_info::Kind;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use voxgate_calls::rooms::{DISPATCH_HEADER, RoomCall, Rooms};
use voxgate_domain::Secret;
use voxgate_pipeline::session::EndReason;

/// `[livekit]`: the LiveKit project Voxgate serves. Off while `url` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveKitSettings {
    /// The project's URL (`https://…`, or its `wss://…` signalling URL).
    pub url: String,
    pub api_key: String,
    /// Empty: `LIVEKIT_API_SECRET` from the environment.
    pub api_secret: Secret,
    /// The SIP outbound trunk in LiveKit whose address is Voxgate's SIP address.
    pub sip_trunk_id: String,
    /// The SIP outbound trunk that reaches people (a carrier): a transfer
    /// dials them into the room through it when the caller is not a SIP
    /// participant. Empty: such transfers are refused.
    pub transfer_trunk_id: String,
    /// Seconds a room token (`POST /v1/livekit/token`) lasts.
    pub token_ttl_s: u32,
    /// Seconds LiveKit has to place a dispatched call before its token expires.
    pub dispatch_ttl_s: u32,
}

impl Default for LiveKitSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: String::new(),
            api_secret: Secret::default(),
            sip_trunk_id: String::new(),
            transfer_trunk_id: String::new(),
            token_ttl_s: 600,
            dispatch_ttl_s: 60,
        }
    }
}

/// Why LiveKit could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    /// The settings are incomplete.
    #[error("livekit.{0} is not set")]
    Missing(&'static str),
    /// The room already has Voxgate's agent (or one on its way).
    #[error("room {0} already has an agent")]
    Busy(String),
    /// LiveKit refused, or could not be reached.
    #[error("LiveKit: {0}")]
    Service(#[from] livekit_api::services::ServiceError),
    #[error("LiveKit token: {0}")]
    Token(#[from] livekit_api::access_token::AccessTokenError),
}

/// A webhook that is not LiveKit's (401).
#[derive(Debug, thiserror::Error)]
#[error("webhook refused: {0}")]
pub struct NotLiveKit(#[from] livekit_api::webhooks::WebhookError);

/// The identity prefix of Voxgate's participants; others may not take it.
pub const OWN_IDENTITY: &str = "voxgate-";
/// The attribute that marks a participant Voxgate created.
const OWN_ATTRIBUTE: &str = "voxgate.dispatch";

/// Tenant `tenant`'s room `room`, as LiveKit names it.
#[must_use]
pub fn room_name(tenant: &str, room: &str) -> String {
    format!("{tenant}-{room}")
}

/// The tenant a LiveKit room belongs to, and its name within the tenant.
#[must_use]
pub fn room_tenant(livekit_room: &str) -> Option<(&str, &str)> {
    livekit_room.split_once('-').filter(|(t, r)| !t.is_empty() && !r.is_empty())
}

/// What a tenant may call a room: 1 to 64 of letters, digits and `_ . -`.
///
/// # Errors
/// Why not.
pub fn check_room(room: &str) -> Result<(), &'static str> {
    if room.is_empty() || room.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    if !room.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err("may hold only letters, digits and _ . -");
    }
    Ok(())
}

/// A dispatch made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dispatched {
    pub id: String,
    /// The room's name in LiveKit.
    pub room: String,
    /// Voxgate's participant in the room.
    pub participant_identity: String,
    /// The number LiveKit dials here.
    pub number: String,
    /// LiveKit's participant id and SIP Call-ID for the call.
    pub participant_id: String,
    pub sip_call_id: String,
}

/// A dispatch whose call has not arrived yet.
#[derive(Debug)]
struct Pending {
    call: RoomCall,
    expires: Instant,
}

/// What LiveKit's webhooks and the dispatches taught.
#[derive(Debug, Default)]
struct Book {
    /// Token -> dispatch, until its call arrives.
    pending: HashMap<String, Pending>,
    /// Dispatch id -> its call, while it runs.
    live: HashMap<String, RoomCall>,
    /// Room -> the identity of its caller (a SIP participant not ours).
    callers: HashMap<String, String>,
    /// Webhook event ids handled lately (LiveKit may deliver one twice).
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
}

impl Book {
    fn has_agent(&self, room: &str, now: Instant) -> bool {
        self.live.values().any(|c| c.room == room)
            || self.pending.values().any(|p| p.call.room == room && p.expires > now)
    }

    /// Whether event `id` is new (and now remembered).
    fn first_time(&mut self, id: &str) -> bool {
        const REMEMBERED: usize = 4096;
        if id.is_empty() {
            return true;
        }
        if !self.seen_set.insert(id.to_owned()) {
            return false;
        }
        self.seen.push_back(id.to_owned());
        if self.seen.len() > REMEMBERED
            && let Some(old) = self.seen.pop_front()
        {
            self.seen_set.remove(&old);
        }
        true
    }
}

/// An agent a webhook asks for in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The room's name in LiveKit.
    pub room: String,
    pub agent: String,
}

/// The LiveKit project, and the dispatches into its rooms.
pub struct LiveKit {
    settings: LiveKitSettings,
    secret: String,
    sip: SIPClient,
    rooms: RoomClient,
    webhooks: WebhookReceiver,
    book: Mutex<Book>,
}

impl std::fmt::Debug for LiveKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKit").field("url", &self.settings.url).finish_non_exhaustive()
    }
}

impl LiveKit {
    /// The project `settings` name; `None` when `url` is empty.
    ///
    /// # Errors
    /// A setting it needs is missing.
    pub fn new(settings: &LiveKitSettings) -> Result<Option<Self>, LiveKitError> {
        if settings.url.is_empty() {
            return Ok(None);
        }
        let secret = settings.api_secret.or_env("LIVEKIT_API_SECRET");
        if settings.api_key.is_empty() {
            return Err(LiveKitError::Missing("api_key"));
        }
        if secret.is_empty() {
            return Err(LiveKitError::Missing("api_secret (or LIVEKIT_API_SECRET)"));
        }
        if settings.sip_trunk_id.is_empty() {
            return Err(LiveKitError::Missing("sip_trunk_id"));
        }
        let (url, key) = (settings.url.as_str(), settings.api_key.as_str());
        Ok(Some(Self {
            sip: SIPClient::with_api_key(url, key, &secret).with_failover(false),
            rooms: RoomClient::with_api_key(url, key, &secret).with_failover(false),
            webhooks: WebhookReceiver::new(TokenVerifier::with_api_key(key, &secret)),
            settings: settings.clone(),
            secret,
            book: Mutex::default(),
        }))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks LiveKit to dial `number` here for `agent` (of the room's
    /// tenant) in `room` (LiveKit's name).
    ///
    /// # Errors
    /// The room has an agent already, or LiveKit refused.
    pub async fn dispatch(&self, room: &str, agent: &str, number: &str) -> Result<Dispatched, LiveKitError> {
        let now = Instant::now();
        let token = crate::auth::random_hex(16);
        let id = voxgate_domain::random_id("lkd");
        let identity = format!("{OWN_IDENTITY}{id}");
        let call = RoomCall {
            dispatch_id: id.clone(),
            room: room.to_owned(),
            agent: agent.to_owned(),
            hang_up: CancellationToken::new(),
        };
        {
            let mut book = self.book();
            book.pending.retain(|_, p| p.expires > now);
            if book.has_agent(room, now) {
                return Err(LiveKitError::Busy(room.to_owned()));
            }
            let expires = now + Duration::from_secs(u64::from(self.settings.dispatch_ttl_s));
            book.pending.insert(token.clone(), Pending { call, expires });
        }
        let options = CreateSIPParticipantOptions {
            participant_identity: identity.clone(),
            participant_name: Some("Voxgate agent".to_owned()),
            participant_attributes: Some(HashMap::from([
                (OWN_ATTRIBUTE.to_owned(), id.clone()),
                ("voxgate.agent".to_owned(), agent.to_owned()),
            ])),
            headers: Some(HashMap::from([(DISPATCH_HEADER.to_owned(), token.clone())])),
            ..Default::default()
        };
        let trunk = self.settings.sip_trunk_id.clone();
        match self.sip.create_sip_participant(trunk, number.to_owned(), room.to_owned(), options, None).await
        {
            Ok(info) => {
                tracing::info!(dispatch = %id, %room, %agent, "dispatched into a LiveKit room");
                Ok(Dispatched {
                    id,
                    room: room.to_owned(),
                    participant_identity: identity,
                    number: number.to_owned(),
                    participant_id: info.participant_id,
                    sip_call_id: info.sip_call_id,
                })
            }
            Err(e) => {
                self.book().pending.remove(&token);
                tracing::warn!(dispatch = %id, %room, error = %e, "LiveKit refused the dispatch");
                Err(e.into())
            }
        }
    }

    /// A token for `identity` to join `room` (LiveKit's name), for a while.
    ///
    /// # Errors
    /// It cannot be signed.
    pub fn room_token(&self, room: &str, identity: &str, name: &str) -> Result<(String, u64), LiveKitError> {
        let ttl = Duration::from_secs(u64::from(self.settings.token_ttl_s));
        let grants = VideoGrants {
            room_join: true,
            room: room.to_owned(),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            ..Default::default()
        };
        let token = AccessToken::with_api_key(&self.settings.api_key, &self.secret)
            .with_identity(identity)
            .with_name(name)
            .with_ttl(ttl)
            .with_grants(grants)
            .to_jwt()?;
        Ok((token, voxgate_calls::tokens::now_s() + ttl.as_secs()))
    }

    /// The project's URL, for clients.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Reads a webhook LiveKit signed (`auth`: its `Authorization` header)
    /// and learns from it; the agent it asks for, if any.
    ///
    /// # Errors
    /// The signature or the body hash does not hold: nothing was learnt.
    pub fn webhook(&self, body: &str, auth: &str) -> Result<Option<Wanted>, NotLiveKit> {
        let event = self.webhooks.receive(body, auth)?;
        let mut book = self.book();
        if !book.first_time(&event.id) {
            return Ok(None);
        }
        let room = event.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        tracing::debug!(event = %event.event, %room, "LiveKit webhook");
        match event.event.as_str() {
            "participant_joined" => {
                let Some(p) = &event.participant else { return Ok(None) };
                if p.identity.starts_with(OWN_IDENTITY) || p.attributes.contains_key(OWN_ATTRIBUTE) {
                    return Ok(None);
                }
                if p.kind == Kind::Sip as i32 {
                    book.callers.insert(room.clone(), p.identity.clone());
                }
                let named = named_agent(&p.metadata)
                    .or_else(|| event.room.as_ref().and_then(|r| named_agent(&r.metadata)));
                Ok(named
                    .filter(|_| !book.has_agent(&room, Instant::now()))
                    .map(|agent| Wanted { room, agent }))
            }
            "participant_left" => {
                if let Some(p) = &event.participant
                    && book.callers.get(&room) == Some(&p.identity)
                {
                    book.callers.remove(&room);
                }
                Ok(None)
            }
            "room_finished" => {
                book.callers.remove(&room);
                book.pending.retain(|_, p| p.call.room != room);
                for call in book.live.values().filter(|c| c.room == room) {
                    tracing::info!(dispatch = %call.dispatch_id, %room, "the room finished: its call ends");
                    call.hang_up.cancel();
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

/// The agent `metadata` names: `{"voxgate_agent": "<id>"}`.
fn named_agent(metadata: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        voxgate_agent: String,
    }
    serde_json::from_str::<Named>(metadata).ok().map(|n| n.voxgate_agent)
}

#[async_trait::async_trait]
impl Rooms for LiveKit {
    fn claim(&self, token: &str) -> Option<RoomCall> {
        let mut book = self.book();
        let pending = book.pending.remove(token)?;
        if pending.expires <= Instant::now() {
            return None;
        }
        book.live.insert(pending.call.dispatch_id.clone(), pending.call.clone());
        Some(pending.call)
    }

    async fn transfer(&self, call: &RoomCall, target: &str) {
        let caller = self.book().callers.get(&call.room).cloned();
        let result = match caller {
            // The caller came in over LiveKit's SIP: LiveKit REFERs them on.
            Some(caller) => self
                .sip
                .transfer_sip_participant(
                    call.room.clone(),
                    caller,
                    sip_target(target),
                    TransferSIPParticipantOptions::default(),
                )
                .await
                .map(|()| "moved the caller"),
            // Someone in the room not on SIP: the human is dialled into the room.
            None if !self.settings.transfer_trunk_id.is_empty() => {
                let options = CreateSIPParticipantOptions {
                    participant_identity: format!("{OWN_IDENTITY}transfer-{}", call.dispatch_id),
                    participant_attributes: Some(HashMap::from([(
                        OWN_ATTRIBUTE.to_owned(),
                        call.dispatch_id.clone(),
                    )])),
                    ..Default::default()
                };
                let trunk = self.settings.transfer_trunk_id.clone();
                self.sip
                    .create_sip_participant(trunk, target.to_owned(), call.room.clone(), options, None)
                    .await
                    .map(|_| "dialled the human into the room")
            }
            None => {
                tracing::warn!(room = %call.room, "no SIP caller in the room and no livekit.transfer_trunk_id: transfer dropped");
                return;
            }
        };
        match result {
            Ok(done) => tracing::info!(dispatch = %call.dispatch_id, room = %call.room, "transfer: {done}"),
            Err(e) => {
                tracing::warn!(dispatch = %call.dispatch_id, room = %call.room, error = %e, "transfer failed")
            }
        }
    }

    async fn ended(&self, call: &RoomCall, end: Option<&EndReason>) {
        self.book().live.remove(&call.dispatch_id);
        // When the caller hung up the room sees it; when the agent did, it leaves now.
        if matches!(end, Some(EndReason::AgentEnded | EndReason::Transferred { .. }) | None) {
            let identity = format!("{OWN_IDENTITY}{}", call.dispatch_id);
            if let Err(e) = self.rooms.remove_participant(&call.room, &identity).await {
                tracing::debug!(room = %call.room, error = %e, "removing the agent from the room");
            }
        }
    }
}

/// A transfer target as LiveKit's `transfer_to` takes it: a SIP or tel URI.
fn sip_target(target: &str) -> String {
    if target.starts_with("sip:") || target.starts_with("sips:") || target.starts_with("tel:") {
        target.to_owned()
    } else {
        format!("tel:{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_named_by_tenant() {
        assert_eq!(room_name("ten_1", "sales-2"), "ten_1-sales-2");
        assert_eq!(room_tenant("ten_1-sales-2"), Some(("ten_1", "sales-2")));
        assert_eq!(room_tenant("lobby"), None);
        assert_eq!(room_tenant("-x"), None);
        assert!(check_room("sales.2_b-c").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a/b").is_err());
        assert!(check_room(&"a".repeat(65)).is_err());
    }

    #[test]
    fn metadata_names_an_agent_in_one_way() {
        assert_eq!(named_agent(r#"{"voxgate_agent": "agt_1"}"#).as_deref(), Some("agt_1"));
        assert_eq!(named_agent("agt_1"), None);
        assert_eq!(named_agent(""), None);
        assert_eq!(sip_target("+15550100"), "tel:+15550100");
        assert_eq!(sip_target("sip:desk@pbx.example"), "sip:desk@pbx.example");
    }

    fn livekit() -> LiveKit {
        let settings = LiveKitSettings {
            url: "http://127.0.0.1:9".into(),
            api_key: "key".into(),
            api_secret: Secret::from("a secret of thirty-two bytes or more".to_owned()),
            sip_trunk_id: "ST_1".into(),
            ..LiveKitSettings::default()
        };
        LiveKit::new(&settings).expect("settings").expect("configured")
    }

    #[test]
    fn a_dispatch_token_works_once_and_not_after_it_expires() {
        let lk = livekit();
        let call = |room: &str| RoomCall {
            dispatch_id: format!("lkd_{room}"),
            room: room.into(),
            agent: String::new(),
            hang_up: CancellationToken::new(),
        };
        let now = Instant::now();
        {
            let mut book = lk.book();
            book.pending
                .insert("t1".into(), Pending { call: call("r1"), expires: now + Duration::from_secs(60) });
            book.pending.insert("t2".into(), Pending { call: call("r2"), expires: now });
        }
        assert_eq!(lk.claim("t1").map(|c| c.room), Some("r1".into()));
        assert!(lk.claim("t1").is_none(), "used");
        assert!(lk.claim("t2").is_none(), "expired");
        assert!(lk.claim("").is_none());
        assert!(lk.book().has_agent("r1", now), "its call runs");
    }

    #[test]
    fn an_unsigned_webhook_teaches_nothing() {
        let lk = livekit();
        let body = r#"{"event":"room_finished","room":{"name":"ten_1-a"},"id":"EV_1"}"#;
        assert!(lk.webhook(body, "").is_err());
        assert!(lk.webhook(body, "not.a.jwt").is_err());
        assert!(lk.book().seen.is_empty());
    }
}
