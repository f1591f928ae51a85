//! The desk: a person of the tenant's team takes a conversation over from
//! its agent (claim), writes to the contact (reply), and gives it back to
//! the agent (hand back) or ends it (close). Each runs under the
//! conversation's turn lock, so it never crosses an answer being written.

use voxgate_domain::Speaker;
use voxgate_pipeline::session::EndReason;

use super::{Lock, WINDOW_MS, WhatsApp, WhatsAppError, message_id, resume};
use crate::store::{ConversationRow, ConversationStatus, MessageRow, now_ms};

use ConversationStatus::{Ai, Closed, Human};

impl WhatsApp {
    /// `tenant`'s conversation `id`, and its turn held.
    async fn held(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, ConversationRow), WhatsAppError> {
        let c = self.store.conversation(tenant, id).await?.ok_or(WhatsAppError::NotFound("conversation"))?;
        let turn = self.lock(Lock::Turn, &c.phone_number_id, &c.contact).await;
        let c = self.store.conversation(tenant, id).await?.ok_or(WhatsAppError::NotFound("conversation"))?;
        if c.status == Closed {
            return Err(WhatsAppError::Conflict("the conversation is closed".into()));
        }
        Ok((turn, c))
    }

    async fn moved(
        &self,
        mut c: ConversationRow,
        to: ConversationStatus,
        by: Option<&str>,
    ) -> Result<ConversationRow, WhatsAppError> {
        c.status = to;
        c.claimed_by = by.map(str::to_owned);
        c.last_at = now_ms();
        self.store.update_conversation(&c).await?;
        self.tell(&c, "status");
        Ok(c)
    }

    /// `user` takes conversation `id` over: the agent stops answering it.
    ///
    /// # Errors
    /// No such conversation, or it is closed or someone else's.
    pub async fn claim(&self, tenant: &str, id: &str, user: &str) -> Result<ConversationRow, WhatsAppError> {
        let (_turn, c) = self.held(tenant, id).await?;
        match (c.status, c.claimed_by.as_deref()) {
            (Human, Some(by)) if by == user => Ok(c),
            (Human, _) => Err(WhatsAppError::Conflict("another person has claimed the conversation".into())),
            _ => {
                tracing::info!(conversation = %c.id, by = user, "WhatsApp conversation claimed");
                self.moved(c, Human, Some(user)).await
            }
        }
    }

    /// `user`, who claimed conversation `id`, writes `text` to the contact.
    ///
    /// # Errors
    /// Not claimed by `user`; the contact last wrote over 24 hours ago; Meta refused it.
    pub async fn reply(
        &self,
        tenant: &str,
        id: &str,
        user: &str,
        text: &str,
    ) -> Result<Vec<MessageRow>, WhatsAppError> {
        let (_turn, mut c) = self.held(tenant, id).await?;
        if c.status != Human || c.claimed_by.as_deref() != Some(user) {
            return Err(WhatsAppError::Conflict("claim the conversation before replying".into()));
        }
        if now_ms() - c.last_inbound_at > WINDOW_MS {
            return Err(WhatsAppError::OutsideWindow);
        }
        let app = self.store.whatsapp_app(&c.app_id).await?.ok_or(WhatsAppError::NotFound("app"))?;
        let agent = self.agents.get(&c.agent_id).await?;
        let before = self.store.messages(&c.id).await?.len();
        // The message is kept either way (failed, with Meta's reason); the
        // transcript holds only what reached the contact.
        let sent = self.send(&app, &c, "staff", text).await;
        if sent.is_ok() {
            let mut thread = resume(&agent, &c)?;
            thread.note(Speaker::Staff, text);
            c.log = serde_json::to_string(&thread.log(EndReason::CallerHungUp))?;
            c.last_at = now_ms();
            self.store.update_conversation(&c).await?;
        }
        self.tell(&c, "message");
        sent?;
        Ok(self.store.messages(&c.id).await?.split_off(before))
    }

    /// Conversation `id` goes back to its agent, which answers the contact's next message.
    ///
    /// # Errors
    /// No such conversation, or it is closed.
    pub async fn hand_back(&self, tenant: &str, id: &str) -> Result<ConversationRow, WhatsAppError> {
        let (_turn, c) = self.held(tenant, id).await?;
        if c.status == Ai {
            return Ok(c);
        }
        tracing::info!(conversation = %c.id, "WhatsApp conversation handed back to the agent");
        self.moved(c, Ai, None).await
    }

    /// Ends conversation `id` now: its record and post-call work follow.
    ///
    /// # Errors
    /// No such conversation, or it is closed already.
    pub async fn close_now(&self, tenant: &str, id: &str) -> Result<ConversationRow, WhatsAppError> {
        let (_turn, c) = self.held(tenant, id).await?;
        let id = c.id.clone();
        self.close(c, EndReason::AgentEnded).await?;
        self.store.conversation(tenant, &id).await?.ok_or(WhatsAppError::NotFound("conversation"))
    }

    /// Sends the approved template `name` (`language`, e.g. `en_US`) to the
    /// contact of conversation `id`: how a business writes first, or again
    /// after the 24-hour window.
    ///
    /// # Errors
    /// No such conversation, or Meta refused the template.
    pub async fn send_template(
        &self,
        tenant: &str,
        id: &str,
        (name, language): (&str, &str),
    ) -> Result<MessageRow, WhatsAppError> {
        let (_turn, c) = self.held(tenant, id).await?;
        let app = self.store.whatsapp_app(&c.app_id).await?.ok_or(WhatsAppError::NotFound("app"))?;
        let now = now_ms();
        let mut message = MessageRow {
            id: message_id(now),
            author: "staff".into(),
            kind: "template".into(),
            text: format!("[template {name} ({language})]"),
            status: Some("sending".into()),
            error: None,
            at: now,
        };
        self.store.add_message(&c.id, &message, None).await?;
        match self
            .graph
            .send_template(&app.access_token, &c.phone_number_id, &c.contact, (name, language))
            .await
        {
            Ok(wa_id) => {
                self.store.message_sent(&message.id, Some(&wa_id), None).await?;
                message.status = Some("sent".into());
                self.tell(&c, "message");
                Ok(message)
            }
            Err(e) => {
                self.store.message_sent(&message.id, None, Some(&e.to_string())).await?;
                Err(e.into())
            }
        }
    }
}
