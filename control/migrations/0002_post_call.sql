-- The work after each call: a queue of jobs kept until done, and what the
-- jobs leave (email and webhook logs, CRM syncs, billing records).

-- A job runs at least once: a worker leases it (lease_until), and a lease
-- that runs out (the node died) lets another worker take it. `key` names the
-- one thing a job does (e.g. `email:CALL`), so enqueueing twice adds nothing.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    -- post_call, webhook, email, crm
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    call_id TEXT,
    -- What the job needs beyond the call, as JSON.
    payload TEXT NOT NULL,
    -- queued, done, failed (attempts used up)
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_call ON jobs (call_id);

-- Every attempt to email a visitor.
CREATE TABLE email_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    template TEXT NOT NULL,
    -- sent, failed
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX email_log_call ON email_log (call_id);

-- Every webhook delivery attempt.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    -- The HTTP status the receiver answered; NULL: no answer.
    status_code BIGINT,
    ok BIGINT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_call ON webhook_deliveries (call_id);

-- CRM syncs that happened: one per call, naming the contact and note made.
CREATE TABLE crm_syncs (
    call_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    email TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    note_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One billing record per call or chat. Money in millionths of the currency unit.
CREATE TABLE billing_records (
    call_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT,
    channel TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    billable_seconds BIGINT NOT NULL,
    rate_per_minute_micros BIGINT NOT NULL,
    amount_micros BIGINT NOT NULL,
    stt_audio_ms BIGINT NOT NULL,
    llm_prompt_tokens BIGINT NOT NULL,
    llm_completion_tokens BIGINT NOT NULL,
    tts_characters BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX billing_tenant_started ON billing_records (tenant_id, started_at);
