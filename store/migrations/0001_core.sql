-- idemgate's portable schema: SQL that both PostgreSQL and CockroachDB accept
-- (INSERT ... ON CONFLICT, no UPSERT, no server-specific types).

-- One row per claimed (tenant, operation, idempotency key). The row holds
-- everything needed to build the command event, so it is the command's own
-- outbox: the sweeper re-emits rows left ACCEPTED past their lease.
CREATE TABLE IF NOT EXISTS idempotency_claims (
    tenant_id       TEXT        NOT NULL,
    operation       TEXT        NOT NULL,
    idem_key        TEXT        NOT NULL,
    operation_id    UUID        NOT NULL,
    fingerprint     BYTEA       NOT NULL,
    state           TEXT        NOT NULL,
    target          TEXT        NOT NULL DEFAULT '',
    request         BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    emit_attempts   INT         NOT NULL DEFAULT 0,
    completed_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, operation, idem_key),
    CONSTRAINT idempotency_claims_state CHECK (state IN ('ACCEPTED', 'PUBLISHED', 'COMPLETED'))
);
CREATE UNIQUE INDEX IF NOT EXISTS idempotency_claims_operation_id ON idempotency_claims (operation_id);
CREATE INDEX IF NOT EXISTS idempotency_claims_lease ON idempotency_claims (state, lease_until);
CREATE INDEX IF NOT EXISTS idempotency_claims_expiry ON idempotency_claims (expires_at);

-- The recorded response of each completed command, byte for byte, and the
-- relay's progress in publishing it as a result event.
CREATE TABLE IF NOT EXISTS outbox (
    operation_id    UUID        NOT NULL PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    operation       TEXT        NOT NULL,
    status          INT         NOT NULL,
    content_type    TEXT        NOT NULL,
    location        TEXT        NOT NULL DEFAULT '',
    body            BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, created_at);

-- Which events each projector has applied: the dedup record that makes a
-- redelivered event a no-op.
CREATE TABLE IF NOT EXISTS processed_events (
    projector       TEXT        NOT NULL,
    event_id        TEXT        NOT NULL,
    processed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, event_id)
);
