-- CockroachDB multi-region: the claims live in their tenant's home region.
-- A TEMPLATE (see 0001_regions.crdb.sql); NOT RUN HERE.
-- crdb_region is computed from tenant_id, a column of the primary key
-- (tenant_id, operation, idem_key): CockroachDB then knows the one region
-- a key can be in, and the claim's INSERT ... ON CONFLICT checks the key's
-- uniqueness there alone instead of in every region (the "computed region
-- column" of REGIONAL BY ROW tables; docs/MULTI-REGION.md cites the pages).
-- Changing a tenant's home region later is a new migration (not written).
ALTER TABLE idempotency_claims ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE
{{- range .Tenants}}
        WHEN tenant_id = {{literal .Tenant}} THEN {{literal .Region}}::crdb_internal_region
{{- end}}
        ELSE {{literal .Home}}::crdb_internal_region
    END) STORED;
-- The unique index on operation_id does not contain crdb_region's source
-- column: each new claim would have to check it in every region, a
-- cross-region round trip on the hot path. operation_id is a random UUID
-- (v4, 122 random bits) made by the API; CockroachDB itself skips that
-- check for values made by gen_random_uuid() on the same grounds. So the
-- index stays, not unique.
CREATE INDEX IF NOT EXISTS idempotency_claims_operation_id_any ON idempotency_claims (operation_id);
DROP INDEX IF EXISTS idempotency_claims@idempotency_claims_operation_id CASCADE;
ALTER TABLE idempotency_claims SET LOCALITY REGIONAL BY ROW AS crdb_region;
