-- Refunds of the payments read model.
CREATE TABLE IF NOT EXISTS refunds (
    refund_id       UUID        NOT NULL PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    payment_id      UUID        NOT NULL,
    operation_id    UUID        NOT NULL,
    amount          BIGINT      NOT NULL,
    status          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS refunds_operation_id ON refunds (operation_id);
CREATE INDEX IF NOT EXISTS refunds_payment ON refunds (payment_id, created_at);
