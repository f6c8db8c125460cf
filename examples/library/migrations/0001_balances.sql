-- The ledger example's own table: one balance per tenant and account.
CREATE TABLE IF NOT EXISTS example_balances (
    tenant_id TEXT   NOT NULL,
    account   TEXT   NOT NULL,
    balance   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, account)
);
