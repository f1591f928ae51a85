-- Roles and scopes mean something, and numbers belong to the operator.

-- A user's tokens carry this; raising it (role change, removal) ends them all.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;

-- read, write or calls:place. Keys made before scopes could write.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'write';
-- Unix milliseconds; NULL: never.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;

-- The phone numbers the operator gave each tenant. An agent may route only
-- its tenant's numbers (agent_numbers), so no tenant takes another's callers.
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    assigned_at BIGINT NOT NULL
);
CREATE INDEX numbers_tenant ON numbers (tenant_id);

-- Numbers already routed stay with the tenant that routes them.
INSERT INTO numbers (number, tenant_id, assigned_at) SELECT number, tenant_id, 0 FROM agent_numbers;
