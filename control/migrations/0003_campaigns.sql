-- Outbound campaigns: a list of numbers an agent calls within a time
-- window, a few at a time, retrying busy, unanswered and failed calls.

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    -- NULL: the configured agent.
    agent_id TEXT,
    name TEXT NOT NULL,
    -- running, paused, cancelled, completed
    status TEXT NOT NULL,
    -- The calling window in time_zone (IANA): local HH:MM, and the days it
    -- is open (ISO weekdays, 1 = Monday), e.g. "1,2,3,4,5".
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    days TEXT NOT NULL,
    max_concurrent BIGINT NOT NULL,
    ring_timeout_s BIGINT NOT NULL,
    -- Retries per outcome as JSON: {"busy": {"max_attempts": 3, "retry_after_s": 600}, ...}.
    retry TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, created_at);
CREATE INDEX campaigns_status ON campaigns (status);

CREATE TABLE campaign_numbers (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    -- pending, dialing, completed, busy, no_answer, failed, cancelled
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    -- A dialing number whose lease ran out (its node died) is dialled again.
    lease_until BIGINT NOT NULL,
    last_call_id TEXT,
    -- The last attempt's outcome, e.g. "busy", "failed (403)".
    last_result TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, number)
);
CREATE INDEX campaign_numbers_due ON campaign_numbers (campaign_id, status, next_attempt_at);
