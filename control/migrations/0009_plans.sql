-- Self-serve plans: each tenant's plan and Stripe subscription, sign-ups
-- waiting for their email to be verified or their payment, single-use links
-- that set a password, and the Stripe events already handled.

-- plan: a name from [[billing.plans]]; NULL: none (the operator's limits
-- alone). plan_status: active | suspended.
ALTER TABLE tenants ADD COLUMN plan TEXT;
ALTER TABLE tenants ADD COLUMN plan_status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE tenants ADD COLUMN trial_ends_at BIGINT;
ALTER TABLE tenants ADD COLUMN stripe_customer TEXT;
ALTER TABLE tenants ADD COLUMN stripe_subscription TEXT;
CREATE INDEX tenants_subscription ON tenants (stripe_subscription);
CREATE INDEX tenants_customer ON tenants (stripe_customer);

-- A sign-up. token_hash: SHA-256 of the link mailed to verify the email.
-- checkout_session: Stripe's Checkout Session, made once the email is
-- verified; tenant_id: the tenant made when it was paid (or at once, for a
-- plan with no price).
CREATE TABLE signups (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    company TEXT NOT NULL,
    plan TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    verified_at BIGINT,
    checkout_session TEXT,
    checkout_url TEXT,
    tenant_id TEXT
);
CREATE INDEX signups_email ON signups (email, created_at);

-- A link that sets a user's password once (SHA-256 of its token).
CREATE TABLE password_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Stripe events handled (Stripe delivers each at least once).
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
