-- The payments module's read model (portable SQL, as the core's).

-- The payments read model.
CREATE TABLE IF NOT EXISTS payments (
    payment_id      UUID        NOT NULL PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    operation_id    UUID        NOT NULL,
    amount          BIGINT      NOT NULL,
    currency        TEXT        NOT NULL,
    customer        TEXT        NOT NULL,
    description     TEXT,
    status          TEXT        NOT NULL,
    refunded_amount BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS payments_operation_id ON payments (operation_id);
