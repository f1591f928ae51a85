-- WhatsApp (Meta's WhatsApp Cloud API): a tenant's Meta apps, the phone
-- numbers of each and the agent that answers them, and the conversations.

-- A tenant's Meta app. `id` is ours and names the webhook path
-- (/v1/whatsapp/{id}/webhook); the secrets are the app's (app_secret signs
-- Meta's webhooks, access_token calls the Graph API).
CREATE TABLE whatsapp_apps (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    meta_app_id TEXT NOT NULL,
    app_secret TEXT NOT NULL,
    verify_token TEXT NOT NULL,
    access_token TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX whatsapp_apps_tenant ON whatsapp_apps (tenant_id);

-- A WhatsApp business phone number (Meta's phone-number id) and its agent.
CREATE TABLE whatsapp_numbers (
    phone_number_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One conversation of a contact with an agent; its call record (channel
-- whatsapp) has the same id. status: ai | waiting_for_human | human | closed.
-- log: the conversation's CallLog so far (JSON), resumed for each message.
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    contact TEXT NOT NULL,
    contact_name TEXT,
    status TEXT NOT NULL,
    claimed_by TEXT,
    log TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    last_inbound_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX conversations_contact ON conversations (phone_number_id, contact, status);
CREATE INDEX conversations_tenant ON conversations (tenant_id, status, last_at);

-- Every message of a conversation, both ways. wa_message_id is Meta's id:
-- an inbound one delivered twice is stored (and answered) once; an outbound
-- one's status webhooks (sent, delivered, read, failed) land on it.
CREATE TABLE conversation_messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    wa_message_id TEXT UNIQUE,
    status TEXT,
    error TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id, at);
