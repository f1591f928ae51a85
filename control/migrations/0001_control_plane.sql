-- The control plane's records. One script for SQLite and PostgreSQL: plain
-- types only (TEXT, BIGINT), times in Unix milliseconds, documents as JSON text.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    email TEXT NOT NULL UNIQUE,
    -- argon2id, PHC string format.
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    -- SHA-256 of the key, hex; the key itself is shown once and never kept.
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    -- The agent's whole definition (AgentSpec) as JSON.
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX agents_tenant ON agents (tenant_id, created_at);

-- Phone numbers routed to agents: one agent per number, across tenants.
CREATE TABLE agent_numbers (
    number TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL
);
CREATE INDEX agent_numbers_agent ON agent_numbers (agent_id);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT,
    campaign_id TEXT,
    -- sip, webrtc, twilio, websocket, chat
    channel TEXT NOT NULL,
    -- inbound, outbound
    direction TEXT NOT NULL,
    -- how it ended: caller_hung_up, no_media, agent_ended, transferred, ...
    status TEXT NOT NULL,
    caller TEXT,
    callee TEXT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- The recording's key in the recording store; NULL: none.
    recording TEXT,
    -- Transcript, events and per-turn latency (the session's CallLog) as JSON.
    detail TEXT NOT NULL,
    -- Post-call analytics as JSON, once done.
    analytics TEXT
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at, id);

-- Server-wide values every node shares (e.g. the token signing key).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
