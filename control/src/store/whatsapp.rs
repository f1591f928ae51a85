//! WhatsApp's records: a tenant's Meta apps (with their secrets), which
//! agent answers each of their phone numbers, and the conversations with
//! every message both ways.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict, now_ms};

/// A tenant's Meta app, secrets included: never sent back by the API.
#[derive(Clone, PartialEq, Eq)]
pub struct WhatsAppApp {
    /// Ours: it names the webhook, `/v1/whatsapp/{id}/webhook`.
    pub id: String,
    pub tenant_id: String,
    /// Meta's id of the app.
    pub meta_app_id: String,
    /// Signs Meta's webhooks (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// What Meta echoes when the webhook is verified.
    pub verify_token: String,
    /// Calls the Graph API.
    pub access_token: String,
    pub created_at: i64,
}

impl std::fmt::Debug for WhatsAppApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppApp")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("meta_app_id", &self.meta_app_id)
            .finish_non_exhaustive()
    }
}

/// A WhatsApp business number (Meta's phone-number id) and the agent answering it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WhatsAppNumber {
    pub phone_number_id: String,
    pub app_id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub agent_id: String,
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// The agent answers.
    Ai,
    /// Handed to the team; nobody has claimed it yet. The agent is silent.
    WaitingForHuman,
    /// A person of the team (`claimed_by`) answers.
    Human,
    Closed,
}

impl ConversationStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ai => "ai",
            Self::WaitingForHuman => "waiting_for_human",
            Self::Human => "human",
            Self::Closed => "closed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "ai" => Self::Ai,
            "waiting_for_human" => Self::WaitingForHuman,
            "human" => Self::Human,
            _ => Self::Closed,
        }
    }
}

/// A conversation of a contact with an agent; its call record has the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: String,
    pub app_id: String,
    pub phone_number_id: String,
    /// The contact's WhatsApp number (`wa_id`).
    pub contact: String,
    pub contact_name: Option<String>,
    pub status: ConversationStatus,
    /// The user who claimed it.
    pub claimed_by: Option<String>,
    /// Its `CallLog` so far, as JSON.
    pub log: String,
    pub opened_at: i64,
    /// The contact's last message: WhatsApp lets a business write freely
    /// for 24 hours after it.
    pub last_inbound_at: i64,
    pub last_at: i64,
    pub closed_at: Option<i64>,
}

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MessageRow {
    pub id: String,
    /// `contact`, `agent` or `staff`.
    pub author: String,
    /// `text`, or `voice` (a voice note, as transcribed).
    pub kind: String,
    pub text: String,
    /// Outbound: `sending`, `sent`, `delivered`, `read` or `failed`.
    pub status: Option<String>,
    /// Why it failed, as Meta said.
    pub error: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

fn conversation(r: &AnyRow) -> Result<ConversationRow, sqlx::Error> {
    Ok(ConversationRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        agent_id: r.try_get("agent_id")?,
        app_id: r.try_get("app_id")?,
        phone_number_id: r.try_get("phone_number_id")?,
        contact: r.try_get("contact")?,
        contact_name: r.try_get("contact_name")?,
        status: ConversationStatus::parse(&r.try_get::<String, _>("status")?),
        claimed_by: r.try_get("claimed_by")?,
        log: r.try_get("log")?,
        opened_at: r.try_get("opened_at")?,
        last_inbound_at: r.try_get("last_inbound_at")?,
        last_at: r.try_get("last_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

/// The start of every query that reads conversations whole.
macro_rules! conversations {
    () => {
        "SELECT id, tenant_id, agent_id, app_id, phone_number_id, contact, contact_name, \
         status, claimed_by, log, opened_at, last_inbound_at, last_at, closed_at FROM conversations"
    };
}

impl Store {
    /// Keeps a tenant's Meta app.
    ///
    /// # Errors
    /// The database fails.
    pub async fn add_whatsapp_app(&self, app: &WhatsAppApp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO whatsapp_apps (id, tenant_id, meta_app_id, app_secret, verify_token, access_token, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&app.id)
        .bind(&app.tenant_id)
        .bind(&app.meta_app_id)
        .bind(&app.app_secret)
        .bind(&app.verify_token)
        .bind(&app.access_token)
        .bind(app.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// App `id` (any tenant's: the webhook finds its tenant through it).
    ///
    /// # Errors
    /// The database fails.
    pub async fn whatsapp_app(&self, id: &str) -> Result<Option<WhatsAppApp>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, meta_app_id, app_secret, verify_token, access_token, created_at \
             FROM whatsapp_apps WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let app = |r: &AnyRow| -> Result<WhatsAppApp, sqlx::Error> {
            Ok(WhatsAppApp {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                meta_app_id: r.try_get("meta_app_id")?,
                app_secret: r.try_get("app_secret")?,
                verify_token: r.try_get("verify_token")?,
                access_token: r.try_get("access_token")?,
                created_at: r.try_get("created_at")?,
            })
        };
        Ok(row.as_ref().map(app).transpose()?)
    }

    /// `tenant_id`'s apps, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn whatsapp_apps(&self, tenant_id: &str) -> Result<Vec<WhatsAppApp>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM whatsapp_apps WHERE tenant_id = $1 ORDER BY created_at, id")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?;
        let mut apps = Vec::with_capacity(ids.len());
        for id in ids {
            apps.extend(self.whatsapp_app(&id).await?);
        }
        Ok(apps)
    }

    /// Removes `tenant_id`'s app `id` and its numbers; false when it has no such app.
    ///
    /// # Errors
    /// The database fails.
    pub async fn remove_whatsapp_app(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM whatsapp_apps WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM whatsapp_numbers WHERE app_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Routes WhatsApp number `number.phone_number_id` to its agent (again, if it was).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another tenant has that number.
    pub async fn set_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError> {
        let what = format!("WhatsApp number {}", number.phone_number_id);
        sqlx::query(
            "INSERT INTO whatsapp_numbers (phone_number_id, app_id, tenant_id, agent_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone_number_id) DO UPDATE SET app_id = $2, agent_id = $4 \
             WHERE whatsapp_numbers.tenant_id = $3",
        )
        .bind(&number.phone_number_id)
        .bind(&number.app_id)
        .bind(&number.tenant_id)
        .bind(&number.agent_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(conflict(what.clone()))?;
        match self.whatsapp_number(&number.phone_number_id).await? {
            Some(n) if n.tenant_id == number.tenant_id => Ok(()),
            _ => Err(StoreError::Conflict { what }),
        }
    }

    /// The agent answering WhatsApp number `phone_number_id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn whatsapp_number(&self, phone_number_id: &str) -> Result<Option<WhatsAppNumber>, StoreError> {
        let row = sqlx::query(
            "SELECT phone_number_id, app_id, tenant_id, agent_id FROM whatsapp_numbers WHERE phone_number_id = $1",
        )
        .bind(phone_number_id)
        .fetch_optional(&self.pool)
        .await?;
        let number = |r: &AnyRow| -> Result<WhatsAppNumber, sqlx::Error> {
            Ok(WhatsAppNumber {
                phone_number_id: r.try_get("phone_number_id")?,
                app_id: r.try_get("app_id")?,
                tenant_id: r.try_get("tenant_id")?,
                agent_id: r.try_get("agent_id")?,
            })
        };
        Ok(row.as_ref().map(number).transpose()?)
    }

    /// The numbers of `tenant_id`'s app `app_id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn whatsapp_numbers(
        &self,
        tenant_id: &str,
        app_id: &str,
    ) -> Result<Vec<WhatsAppNumber>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT phone_number_id FROM whatsapp_numbers WHERE tenant_id = $1 AND app_id = $2 ORDER BY phone_number_id",
        )
        .bind(tenant_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        let mut numbers = Vec::with_capacity(ids.len());
        for id in ids {
            numbers.extend(self.whatsapp_number(&id).await?);
        }
        Ok(numbers)
    }

    /// The open conversation of `contact` with number `phone_number_id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn open_conversation(
        &self,
        phone_number_id: &str,
        contact: &str,
    ) -> Result<Option<ConversationRow>, StoreError> {
        let sql = concat!(
            conversations!(),
            " WHERE phone_number_id = $1 AND contact = $2 AND status <> 'closed' ORDER BY opened_at DESC LIMIT 1"
        );
        let row = sqlx::query(sql).bind(phone_number_id).bind(contact).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(conversation).transpose()?)
    }

    /// `tenant_id`'s conversation `id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn conversation(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<ConversationRow>, StoreError> {
        let sql = concat!(conversations!(), " WHERE id = $1 AND tenant_id = $2");
        let row = sqlx::query(sql).bind(id).bind(tenant_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(conversation).transpose()?)
    }

    /// `tenant_id`'s conversations in `status` (any but closed: `None`), latest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn conversations(
        &self,
        tenant_id: &str,
        status: Option<ConversationStatus>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let sql = concat!(
            conversations!(),
            " WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL AND status <> 'closed' OR status = $2) \
             ORDER BY last_at DESC LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(tenant_id)
            .bind(status.map(ConversationStatus::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(conversation).collect::<Result<_, _>>()?)
    }

    /// Open conversations nobody wrote in since `before` (Unix ms).
    ///
    /// # Errors
    /// The database fails.
    pub async fn idle_conversations(&self, before: i64) -> Result<Vec<ConversationRow>, StoreError> {
        let sql = concat!(
            conversations!(),
            " WHERE status <> 'closed' AND last_at < $1 ORDER BY last_at LIMIT 100"
        );
        let rows = sqlx::query(sql).bind(before).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(conversation).collect::<Result<_, _>>()?)
    }

    /// Keeps a new conversation.
    ///
    /// # Errors
    /// The database fails.
    pub async fn add_conversation(&self, c: &ConversationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, tenant_id, agent_id, app_id, phone_number_id, contact, contact_name, \
             status, claimed_by, log, opened_at, last_inbound_at, last_at, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.agent_id)
        .bind(&c.app_id)
        .bind(&c.phone_number_id)
        .bind(&c.contact)
        .bind(&c.contact_name)
        .bind(c.status.as_str())
        .bind(&c.claimed_by)
        .bind(&c.log)
        .bind(c.opened_at)
        .bind(c.last_inbound_at)
        .bind(c.last_at)
        .bind(c.closed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The contact (`name`, if Meta gave one) wrote in conversation `id` at `at`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn conversation_inbound(
        &self,
        id: &str,
        name: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversations SET contact_name = COALESCE($2, contact_name), \
             last_inbound_at = CASE WHEN last_inbound_at > $3 THEN last_inbound_at ELSE $3 END, \
             last_at = CASE WHEN last_at > $3 THEN last_at ELSE $3 END WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes where conversation `c` stands: its status, who has it, its
    /// log, when it closed; its last activity moves to `c.last_at` unless
    /// it is later already.
    ///
    /// # Errors
    /// The database fails.
    pub async fn update_conversation(&self, c: &ConversationRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversations SET status = $2, claimed_by = $3, log = $4, closed_at = $5, \
             last_at = CASE WHEN last_at > $6 THEN last_at ELSE $6 END WHERE id = $1",
        )
        .bind(&c.id)
        .bind(c.status.as_str())
        .bind(&c.claimed_by)
        .bind(&c.log)
        .bind(c.closed_at)
        .bind(c.last_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a message; false when one with the same `wa_message_id` is
    /// already kept (Meta delivered it again).
    ///
    /// # Errors
    /// The database fails.
    pub async fn add_message(
        &self,
        conversation_id: &str,
        message: &MessageRow,
        wa_message_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO conversation_messages (id, conversation_id, author, kind, text, wa_message_id, status, error, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (wa_message_id) DO NOTHING",
        )
        .bind(&message.id)
        .bind(conversation_id)
        .bind(&message.author)
        .bind(&message.kind)
        .bind(&message.text)
        .bind(wa_message_id)
        .bind(&message.status)
        .bind(&message.error)
        .bind(message.at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Message `id`'s text is now `text` (a voice note, heard).
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_message_text(&self, id: &str, text: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversation_messages SET text = $2 WHERE id = $1")
            .bind(id)
            .bind(text)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether Meta's message `wa_message_id` is already kept.
    ///
    /// # Errors
    /// The database fails.
    pub async fn message_seen(&self, wa_message_id: &str) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM conversation_messages WHERE wa_message_id = $1")
                .bind(wa_message_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Our message `id` went out as Meta's `wa_message_id` (or failed: `error`).
    ///
    /// # Errors
    /// The database fails.
    pub async fn message_sent(
        &self,
        id: &str,
        wa_message_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let status = if error.is_some() { "failed" } else { "sent" };
        // Meta always names what it took; an empty id is none.
        let wa_message_id = wa_message_id.filter(|w| !w.is_empty());
        sqlx::query(
            "UPDATE conversation_messages SET wa_message_id = $2, status = $3, error = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(wa_message_id)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A status webhook for outbound message `wa_message_id` of number
    /// `phone_number_id`; false when it is not one of that number's.
    /// A status never goes back (`read` stays, a late `delivered` aside).
    ///
    /// # Errors
    /// The database fails.
    pub async fn message_status(
        &self,
        phone_number_id: &str,
        wa_message_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversation_messages SET status = $3, error = COALESCE($4, error) \
             WHERE wa_message_id = $1 AND author <> 'contact' \
             AND conversation_id IN (SELECT id FROM conversations WHERE phone_number_id = $2) \
             AND NOT (status = 'read' OR status = 'failed' OR (status = 'delivered' AND $3 = 'sent'))",
        )
        .bind(wa_message_id)
        .bind(phone_number_id)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Conversation `conversation_id`'s messages, in order.
    ///
    /// # Errors
    /// The database fails.
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, author, kind, text, status, error, at FROM conversation_messages \
             WHERE conversation_id = $1 ORDER BY at, id",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        let message = |r: &AnyRow| -> Result<MessageRow, sqlx::Error> {
            Ok(MessageRow {
                id: r.try_get("id")?,
                author: r.try_get("author")?,
                kind: r.try_get("kind")?,
                text: r.try_get("text")?,
                status: r.try_get("status")?,
                error: r.try_get("error")?,
                at: r.try_get("at")?,
            })
        };
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }
}
