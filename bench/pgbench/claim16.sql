-- Baseline R of scripts/bench.sh: idemgate's claim statement (claimSQL in
-- store/claims.go: insert the claim, or read the one that holds the key;
-- same columns, same expressions) on the real schema (bin/idemgate
-- migrate), in SERIALIZABLE transactions, one statement per round trip.
-- Run with: pgbench -n -M prepared -D prefix=<unique per run> -D n=0 --max-tries=30
-- Keys are <prefix>-<client_id>-<n>: n is a per-client counter (pgbench keeps
-- variables across a client's transactions), so no two inserts share a key;
-- scripts/bench.sh checks that the table gained one row per insert.
-- This script: 16 claims per transaction (ClaimKeys with a group of 16).
BEGIN ISOLATION LEVEL SERIALIZABLE;
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
\set n :n + 1
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, state, target, request,
         created_at, lease_until, expires_at, traceparent)
    VALUES ('tenant-pgbench', 'payments.create', :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8,
         gen_random_uuid(), '\x8c2f0d6b3f1a4e5d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d'::BYTEA,
         'ACCEPTED', '', '{"amount":1000,"currency":"EUR","customer":"cus_bench"}'::BYTEA,
         now(), now() + (10000000::INT8 * INTERVAL '1 microsecond'), now() + (86400000000::INT8 * INTERVAL '1 microsecond'), '')
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
WHERE c.tenant_id = 'tenant-pgbench' AND c.operation = 'payments.create'
  AND c.idem_key = :prefix::TEXT || '-' || :client_id::INT8 || '-' || :n::INT8 AND NOT EXISTS (SELECT 1 FROM ins);
COMMIT;
