//! WhatsApp: a tenant's WhatsApp numbers answered by its agents, through
//! Meta's WhatsApp Cloud API, with a desk of people behind them.
//!
//! ```text
//! Meta ─► POST /v1/whatsapp/{app}/webhook (signed with that app's secret)
//!   └─► receive: each message stored once (Meta redelivers), 200 at once
//!         └─► answered in the background, one at a time per contact:
//!             the conversation's log resumed (pipeline Thread) ─► the agent's reply
//!             ─► Graph API (read mark + typing first; split at 4096 characters)
//! the agent's escalate_to_human tool, or a handoff keyword
//!   └─► waiting_for_human: the agent is silent, conversation.escalated webhook,
//!       the desk's feed; a person claims it, replies, hands it back or closes it
//! nobody writes for [whatsapp] idle_close_s ─► closed: its call record
//!   (channel whatsapp) and post-call work; the contact's next message opens a new one
//! ```
//!
//! A conversation lives in the store (its messages, and its `CallLog` so
//! far), not in memory, so a restart loses nothing and the desk reads it.

mod desk;
pub mod graph;
pub mod payload;
pub mod signature;
pub mod split;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use voxgate_calls::CallHooks;
use voxgate_domain::{CallId, CallInfo, Channel, Speaker};
use voxgate_pipeline::session::{CallLog, EndReason, Thread};

use crate::agent::Agent;
use crate::agent::registry::{AgentError, Agents};
use crate::ledger::Ledger;
use crate::store::{
    ConversationRow, ConversationStatus, MessageRow, Store, StoreError, WhatsAppApp, WhatsAppNumber, now_ms,
};
use graph::{Graph, GraphError};
use payload::{Inbound, MessagesChange, Notification};

/// `[whatsapp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppSettings {
    /// Meta's Graph API, its version included.
    pub graph_url: String,
    /// A conversation nobody writes in for this many seconds is closed (its
    /// record and post-call work follow); the contact's next message opens a new one.
    pub idle_close_s: u32,
    /// What the contact reads when the conversation is handed to the team
    /// and the agent said nothing itself.
    pub handoff_line: String,
    /// What a message the agent cannot read (an image, a sticker) gets.
    pub unsupported_line: String,
    /// What a voice note gets that could not be heard.
    pub unheard_line: String,
    /// How long a Graph API request may take, in seconds.
    pub timeout_s: u32,
}

impl Default for WhatsAppSettings {
    fn default() -> Self {
        Self {
            graph_url: "https://graph.facebook.com/v21.0".to_owned(),
            idle_close_s: 3600,
            handoff_line: "I have passed this to a colleague, who will reply here shortly.".to_owned(),
            unsupported_line: "Sorry, I can read text and voice messages only.".to_owned(),
            unheard_line: "Sorry, I could not hear that voice message. Could you write it?".to_owned(),
            timeout_s: 15,
        }
    }
}

impl WhatsAppSettings {
    /// The first setting out of range.
    ///
    /// # Errors
    /// That setting, and why.
    pub fn check(&self) -> Result<(), crate::config::Invalid> {
        let invalid =
            |setting, reason: &str| Err(crate::config::Invalid { setting, reason: reason.to_owned() });
        if !(self.graph_url.starts_with("https://") || self.graph_url.starts_with("http://")) {
            return invalid("whatsapp.graph_url", "must be an http(s) URL");
        }
        if !(1..=7 * 24 * 3600).contains(&self.idle_close_s) {
            return invalid("whatsapp.idle_close_s", "must be 1 to 604800 (a week)");
        }
        if !(1..=120).contains(&self.timeout_s) {
            return invalid("whatsapp.timeout_s", "must be 1 to 120");
        }
        Ok(())
    }
}

/// A WhatsApp operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhatsAppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The webhook's body is not Meta's JSON.
    #[error("not a WhatsApp notification: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The conversation is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// The contact last wrote over 24 hours ago: WhatsApp takes only an
    /// approved template now.
    #[error("the contact last wrote over 24 hours ago: only an approved template may be sent")]
    OutsideWindow,
    /// The tenant's plan opens no more conversations (or is suspended).
    #[error("{0}")]
    OverPlan(String),
}

impl From<crate::plans::PlanCheck> for WhatsAppError {
    fn from(e: crate::plans::PlanCheck) -> Self {
        match e {
            crate::plans::PlanCheck::Over(over) => Self::OverPlan(over.0),
            crate::plans::PlanCheck::Store(e) => Self::Store(e),
        }
    }
}

/// Something the desk should see at once (the dashboard's live feed).
#[derive(Debug, Clone, Serialize)]
pub struct DeskEvent {
    #[serde(skip)]
    pub tenant_id: String,
    pub conversation_id: String,
    pub status: ConversationStatus,
    /// `message` (a new message either way) or `status` (claimed, handed back, closed, escalated).
    pub kind: &'static str,
}

/// WhatsApp for every tenant.
#[derive(Debug)]
pub struct WhatsApp {
    store: Store,
    agents: Arc<Agents>,
    ledger: Arc<Ledger>,
    graph: Graph,
    settings: WhatsAppSettings,
    show_pii: bool,
    /// Per contact and number: one delivery stored at a time (`Lock::Store`),
    /// and one answer or desk action at a time (`Lock::Turn`), so a webhook
    /// never waits for an answer.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The desk's live feed.
    pub feed: tokio::sync::broadcast::Sender<DeskEvent>,
}

/// What a lock of [`WhatsApp::lock`] keeps to one at a time.
#[derive(Debug, Clone, Copy)]
enum Lock {
    Store,
    Turn,
}

/// The largest voice note fetched (WhatsApp's own limit for audio is 16 MB).
const MAX_VOICE_NOTE_BYTES: usize = 16 * 1024 * 1024;
/// The longest voice note heard, in seconds.
const MAX_VOICE_NOTE_S: u32 = 600;
/// How long the recogniser may take over one voice note.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(180);

/// A WhatsApp contact's 24-hour customer-service window, in ms.
const WINDOW_MS: i64 = 24 * 3600 * 1000;

impl WhatsApp {
    /// # Errors
    /// The Graph API's HTTP client cannot be built.
    pub fn new(
        settings: &WhatsAppSettings,
        store: Store,
        agents: Arc<Agents>,
        ledger: Arc<Ledger>,
        show_pii: bool,
    ) -> Result<Self, GraphError> {
        let graph = Graph::new(&settings.graph_url, Duration::from_secs(u64::from(settings.timeout_s)))?;
        Ok(Self {
            store,
            agents,
            ledger,
            graph,
            settings: settings.clone(),
            show_pii,
            locks: std::sync::Mutex::default(),
            feed: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Holds `lock` of contact `contact` of number `phone_number_id` until dropped.
    async fn lock(
        &self,
        lock: Lock,
        phone_number_id: &str,
        contact: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if locks.len() > 1024 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(format!("{lock:?}\n{phone_number_id}\n{contact}")).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn contact(&self, c: &ConversationRow) -> String {
        voxgate_calls::redact::number(Some(&c.contact), self.show_pii)
    }

    fn tell(&self, c: &ConversationRow, kind: &'static str) {
        let _ = self.feed.send(DeskEvent {
            tenant_id: c.tenant_id.clone(),
            conversation_id: c.id.clone(),
            status: c.status,
            kind,
        });
    }

    /// A webhook delivery of `app`, its signature already checked: statuses
    /// recorded, each new message stored and its answer started.
    ///
    /// # Errors
    /// The body is not Meta's JSON, or the database fails (Meta retries).
    pub async fn receive(self: &Arc<Self>, app: &WhatsAppApp, body: &[u8]) -> Result<(), WhatsAppError> {
        let notification: Notification = serde_json::from_slice(body)?;
        if notification.object != "whatsapp_business_account" {
            return Ok(());
        }
        for change in notification.entry.iter().flat_map(|e| &e.changes).filter(|c| c.field == "messages") {
            let change: MessagesChange = serde_json::from_value(change.value.clone())?;
            let pnid = &change.metadata.phone_number_id;
            let number = match self.store.whatsapp_number(pnid).await? {
                // Another app's (another tenant's) number is not this app's to speak for.
                Some(n) if n.app_id == app.id && n.tenant_id == app.tenant_id => n,
                _ => {
                    tracing::warn!(app = %app.id, phone_number_id = %pnid, "WhatsApp: a number no agent of this app answers");
                    continue;
                }
            };
            for s in &change.statuses {
                if ["sent", "delivered", "read", "failed"].contains(&s.status.as_str()) {
                    self.store.message_status(pnid, &s.id, &s.status, s.error().as_deref()).await?;
                }
            }
            for m in &change.messages {
                let name = change
                    .contacts
                    .iter()
                    .find(|c| c.wa_id == m.from)
                    .and_then(|c| c.profile.as_ref())
                    .map(|p| p.name.chars().take(100).collect());
                self.inbound(app, &number, m, name).await?;
            }
        }
        Ok(())
    }

    /// Stores message `m` (once) in its contact's open conversation, and
    /// starts its answer.
    async fn inbound(
        self: &Arc<Self>,
        app: &WhatsAppApp,
        number: &WhatsAppNumber,
        m: &Inbound,
        name: Option<String>,
    ) -> Result<(), WhatsAppError> {
        // Reactions and system notices are not messages to answer.
        if matches!(m.kind.as_str(), "reaction" | "system") || m.from.is_empty() || m.from.len() > 32 {
            return Ok(());
        }
        let storing = self.lock(Lock::Store, &number.phone_number_id, &m.from).await;
        if self.store.message_seen(&m.id).await? {
            return Ok(());
        }
        let (kind, text) = match (m.kind.as_str(), &m.text, &m.audio) {
            ("text", Some(t), _) => ("text", t.body.chars().take(split::MAX_CHARS).collect()),
            // Heard when it is answered: the text is what the agent's recogniser makes of it.
            ("audio", _, Some(_)) => ("voice", String::new()),
            (other, ..) => ("other", format!("[{}]", other.chars().take(20).collect::<String>())),
        };
        let now = now_ms();
        let conversation = match self.conversation_for(app, number, &m.from, now).await {
            Err(WhatsAppError::OverPlan(why)) => {
                // Taken (Meta would only deliver it again), not stored, not answered.
                tracing::warn!(tenant = %number.tenant_id, reason = %why, "a WhatsApp message left unanswered: over the plan");
                return Ok(());
            }
            opened => opened?,
        };
        let message = MessageRow {
            id: message_id(now),
            author: "contact".into(),
            kind: kind.into(),
            text,
            status: None,
            error: None,
            at: now,
        };
        if !self.store.add_message(&conversation.id, &message, Some(&m.id)).await? {
            return Ok(());
        }
        self.store.conversation_inbound(&conversation.id, name.as_deref(), now).await?;
        self.tell(&conversation, "message");
        tracing::info!(conversation = %conversation.id, contact = %self.contact(&conversation), kind, "WhatsApp message");
        drop(storing);
        let this = self.clone();
        let wa_id = m.id.clone();
        let media = m.audio.as_ref().map(|a| a.id.clone());
        tokio::spawn(async move {
            let id = conversation.id.clone();
            if let Err(e) = this.answer(conversation, message, &wa_id, media.as_deref()).await {
                tracing::error!(conversation = %id, error = %e, "WhatsApp message not answered");
            }
        });
        Ok(())
    }

    /// `contact`'s open conversation with `number`, or a new one (an idle one closed first).
    async fn conversation_for(
        &self,
        app: &WhatsAppApp,
        number: &WhatsAppNumber,
        contact: &str,
        now: i64,
    ) -> Result<ConversationRow, WhatsAppError> {
        if let Some(open) = self.store.open_conversation(&number.phone_number_id, contact).await? {
            if open.last_at >= now - self.idle_ms() {
                return Ok(open);
            }
            let _turn = self.lock(Lock::Turn, &number.phone_number_id, contact).await;
            self.close(open, EndReason::MaxSilence).await?;
        }
        // The agent must exist before a conversation is opened for it.
        self.agents.get(&number.agent_id).await?;
        // WhatsApp is counted in conversations a month, not minutes.
        self.agents.plans().may_open_conversation(&self.store, &number.tenant_id).await?;
        let conversation = ConversationRow {
            id: CallId::random().to_string(),
            tenant_id: number.tenant_id.clone(),
            agent_id: number.agent_id.clone(),
            app_id: app.id.clone(),
            phone_number_id: number.phone_number_id.clone(),
            contact: contact.to_owned(),
            contact_name: None,
            status: ConversationStatus::Ai,
            claimed_by: None,
            log: serde_json::to_string(&empty_log())?,
            opened_at: now,
            last_inbound_at: now,
            last_at: now,
            closed_at: None,
        };
        self.store.add_conversation(&conversation).await?;
        self.ledger.started(&call_info(&conversation)).await;
        tracing::info!(conversation = %conversation.id, contact = %self.contact(&conversation), "WhatsApp conversation opened");
        Ok(conversation)
    }

    fn idle_ms(&self) -> i64 {
        i64::from(self.settings.idle_close_s) * 1000
    }

    /// Answers the contact's `message` (Meta's `wa_id`; a voice note's audio
    /// is Meta's `media`) in `conversation`, unless a person of the team has it.
    async fn answer(
        &self,
        conversation: ConversationRow,
        mut message: MessageRow,
        wa_id: &str,
        media: Option<&str>,
    ) -> Result<(), WhatsAppError> {
        let _turn = self.lock(Lock::Turn, &conversation.phone_number_id, &conversation.contact).await;
        // As it is now: the desk may have claimed it, or the sweeper closed it.
        let Some(mut conversation) =
            self.store.conversation(&conversation.tenant_id, &conversation.id).await?
        else {
            return Ok(());
        };
        let app =
            self.store.whatsapp_app(&conversation.app_id).await?.ok_or(WhatsAppError::NotFound("app"))?;
        let agent = self.agents.get(&conversation.agent_id).await?;
        if let (
            Some(media),
            ConversationStatus::Ai | ConversationStatus::WaitingForHuman | ConversationStatus::Human,
        ) = (media, conversation.status)
        {
            message.text = self.listen(&app, &agent, &conversation, media).await;
            self.store.set_message_text(&message.id, &message.text).await?;
        }
        let unreadable = message.kind == "other" || message.text.trim().is_empty();
        let mut thread = resume(&agent, &conversation)?;
        let mut ended = false;
        // What the contact said stays in the conversation even when the answer cannot go out.
        let sent = match conversation.status {
            ConversationStatus::Ai if unreadable => {
                thread.note(Speaker::Caller, &message.text);
                let line = if message.kind == "voice" {
                    self.settings.unheard_line.clone()
                } else {
                    self.settings.unsupported_line.clone()
                };
                thread.note(Speaker::Agent, &line);
                self.send(&app, &conversation, "agent", &line).await
            }
            ConversationStatus::Ai if asks_for_person(&agent, &message.text) => {
                thread.note(Speaker::Caller, &message.text);
                self.hand_over(&app, &mut conversation, &mut thread, "the contact asked for a person", "")
                    .await;
                Ok(())
            }
            ConversationStatus::Ai => {
                if let Err(e) =
                    self.graph.read_and_typing(&app.access_token, &conversation.phone_number_id, wa_id).await
                {
                    tracing::warn!(conversation = %conversation.id, error = %e, "WhatsApp: read mark not sent");
                }
                let answer = thread.answer(message.text).await;
                ended = answer.ended;
                match answer.escalated {
                    Some(reason) => {
                        self.hand_over(&app, &mut conversation, &mut thread, &reason, &answer.reply).await;
                        Ok(())
                    }
                    None => self.send(&app, &conversation, "agent", &answer.reply).await,
                }
            }
            // A person of the team has it (or will): they read it on the desk.
            ConversationStatus::WaitingForHuman | ConversationStatus::Human => {
                thread.note(Speaker::Caller, &message.text);
                Ok(())
            }
            ConversationStatus::Closed => return Ok(()),
        };
        conversation.log = serde_json::to_string(&thread.log(EndReason::CallerHungUp))?;
        conversation.last_at = now_ms();
        self.store.update_conversation(&conversation).await?;
        self.tell(&conversation, "message");
        if ended {
            self.close(conversation, EndReason::AgentEnded).await?;
        }
        sent
    }

    /// What the contact says in voice note `media`, as the agent's recogniser
    /// hears it; empty when it cannot be fetched, read or heard (logged).
    async fn listen(&self, app: &WhatsAppApp, agent: &Agent, c: &ConversationRow, media: &str) -> String {
        let heard = async {
            let (file, mime) = self.graph.media(&app.access_token, media, MAX_VOICE_NOTE_BYTES).await?;
            if !mime.is_empty() && !mime.starts_with("audio/ogg") {
                return Err(format!("a voice note of type {mime}, not Ogg Opus").into());
            }
            let pcm = tokio::task::spawn_blocking(move || {
                voxgate_codecs::ogg_opus::decode(
                    &file,
                    voxgate_codecs::SampleRate::HZ_16000,
                    MAX_VOICE_NOTE_S,
                )
            })
            .await??;
            let stt = agent.providers.stt.clone();
            let text = voxgate_pipeline::providers::recording::transcribe(stt.as_ref(), &pcm, LISTEN_TIMEOUT)
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(text)
        };
        match heard.await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(conversation = %c.id, error = %e, "WhatsApp voice note not heard");
                String::new()
            }
        }
    }

    /// Hands `conversation` to the team: the agent falls silent, the contact
    /// is told (the agent's own words, else the handoff line), and the
    /// agent's webhooks and the desk hear of it, even when telling the
    /// contact failed.
    async fn hand_over(
        &self,
        app: &WhatsAppApp,
        conversation: &mut ConversationRow,
        thread: &mut Thread,
        reason: &str,
        said: &str,
    ) {
        let line = if said.trim().is_empty() {
            thread.note(Speaker::Agent, &self.settings.handoff_line);
            self.settings.handoff_line.clone()
        } else {
            said.to_owned()
        };
        // `send` logs a failure; the team is told all the same.
        let _ = self.send(app, conversation, "agent", &line).await;
        conversation.status = ConversationStatus::WaitingForHuman;
        conversation.claimed_by = None;
        let now = now_ms();
        let data = json!({
            "conversation_id": conversation.id,
            "agent_id": conversation.agent_id,
            "channel": Channel::WhatsApp,
            "contact_name": conversation.contact_name,
            "reason": reason.chars().take(300).collect::<String>(),
        });
        self.ledger
            .post_call
            .conversation_escalated(
                &conversation.tenant_id,
                &conversation.agent_id,
                &conversation.id,
                now,
                data,
            )
            .await;
        self.tell(conversation, "status");
        tracing::info!(conversation = %conversation.id, "WhatsApp conversation handed to the team");
    }

    /// Sends `text` (split to WhatsApp's limit) as `author`, each message
    /// stored first, then marked sent with Meta's id, or failed.
    ///
    /// # Errors
    /// Meta refused a message (the first refusal), or the database failed.
    async fn send(
        &self,
        app: &WhatsAppApp,
        conversation: &ConversationRow,
        author: &str,
        text: &str,
    ) -> Result<(), WhatsAppError> {
        for part in split::messages(text, split::MAX_CHARS) {
            let now = now_ms();
            let message = MessageRow {
                id: message_id(now),
                author: author.to_owned(),
                kind: "text".into(),
                text: part,
                status: Some("sending".into()),
                error: None,
                at: now,
            };
            self.store.add_message(&conversation.id, &message, None).await?;
            let sent = self
                .graph
                .send_text(
                    &app.access_token,
                    &conversation.phone_number_id,
                    &conversation.contact,
                    &message.text,
                )
                .await;
            match sent {
                Ok(wa_id) => self.store.message_sent(&message.id, Some(&wa_id), None).await?,
                Err(e) => {
                    self.store.message_sent(&message.id, None, Some(&e.to_string())).await?;
                    tracing::warn!(conversation = %conversation.id, error = %e, "WhatsApp message not sent");
                    return Err(if e.code() == Some(graph::OUTSIDE_WINDOW) {
                        WhatsAppError::OutsideWindow
                    } else {
                        e.into()
                    });
                }
            }
        }
        Ok(())
    }

    /// Closes `conversation` for `end`: its call record is written and its
    /// post-call work runs.
    async fn close(&self, mut conversation: ConversationRow, end: EndReason) -> Result<(), WhatsAppError> {
        let mut log: CallLog = serde_json::from_str(&conversation.log)?;
        let now = now_ms();
        log.end = end;
        log.duration_ms = u64::try_from(conversation.last_at.max(now) - conversation.opened_at).unwrap_or(0);
        conversation.status = ConversationStatus::Closed;
        conversation.closed_at = Some(now);
        conversation.log = serde_json::to_string(&log)?;
        self.store.update_conversation(&conversation).await?;
        self.tell(&conversation, "status");
        self.ledger.ended(&call_info(&conversation), &log).await;
        tracing::info!(conversation = %conversation.id, end = ?log.end, "WhatsApp conversation closed");
        Ok(())
    }

    /// Closes the conversations idle for `idle_close_s`, looking every 30 s
    /// (or every half of that time, when it is shorter).
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        let every =
            Duration::from_millis(u64::from(self.settings.idle_close_s) * 500).min(Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => this.sweep().await,
                }
            }
        });
    }

    async fn sweep(&self) {
        let idle = match self.store.idle_conversations(now_ms() - self.idle_ms()).await {
            Ok(rows) => rows,
            Err(e) => return tracing::warn!(error = %e, "WhatsApp: idle conversations not read"),
        };
        for c in idle {
            let _turn = self.lock(Lock::Turn, &c.phone_number_id, &c.contact).await;
            // A message may have come meanwhile.
            match self.store.conversation(&c.tenant_id, &c.id).await {
                Ok(Some(now))
                    if now.status != ConversationStatus::Closed
                        && now.last_at < now_ms() - self.idle_ms() =>
                {
                    if let Err(e) = self.close(now, EndReason::MaxSilence).await {
                        tracing::warn!(conversation = %c.id, error = %e, "WhatsApp: idle conversation not closed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(conversation = %c.id, error = %e, "WhatsApp: conversation not read"),
            }
        }
    }
}

/// What the agent's WhatsApp conversations add to its calls' session: the
/// `escalate_to_human` tool.
fn resume(agent: &Agent, c: &ConversationRow) -> Result<Thread, WhatsAppError> {
    let log: CallLog = serde_json::from_str(&c.log)?;
    let mut session = agent.session.clone();
    session.escalate_tool = true;
    let age = Duration::from_millis(u64::try_from(now_ms() - c.opened_at).unwrap_or(0));
    Ok(Thread::resume(session, agent.providers.clone(), log, age))
}

/// Whether `text` holds one of the agent's handoff keywords (whole words, any case).
fn asks_for_person(agent: &Agent, text: &str) -> bool {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let padded = format!(" {} ", words.join(" "));
    agent.handoff_keywords.iter().any(|k| {
        let k: Vec<&str> = k.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        !k.is_empty() && padded.contains(&format!(" {} ", k.join(" ")))
    })
}

/// A message id that sorts by time, then at random within a millisecond.
fn message_id(now: i64) -> String {
    format!("msg_{now:013}_{}", voxgate_domain::random_id("").trim_start_matches('_'))
}

/// A conversation's log before anything is said.
fn empty_log() -> CallLog {
    CallLog {
        transcript: Vec::new(),
        events: Vec::new(),
        latencies: Vec::new(),
        end: EndReason::CallerHungUp,
        duration_ms: 0,
        recorded_ms: 0,
        dropped_frames: 0,
        usage: voxgate_pipeline::session::Usage::default(),
    }
}

/// The call record a conversation keeps.
fn call_info(c: &ConversationRow) -> CallInfo {
    CallInfo {
        caller: Some(format!("+{}", c.contact.trim_start_matches('+'))),
        callee: Some(c.phone_number_id.clone()),
        tenant_id: Some(c.tenant_id.clone().into()),
        // The configured agent is no stored agent.
        agent_id: Some(c.agent_id.clone()).filter(|a| !a.is_empty()).map(Into::into),
        ..CallInfo::inbound(c.id.clone().into(), Channel::WhatsApp)
    }
}
