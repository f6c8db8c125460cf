-- CockroachDB multi-region: a command's recorded response lives beside its
-- claim, in its tenant's home region, so that a replay (the claim joined
-- with its outbox row) reads one region. A TEMPLATE (see
-- 0001_regions.crdb.sql); NOT RUN HERE. Its primary key (operation_id)
-- does not contain tenant_id: the projector's INSERT checks it in every
-- region, once per run of records (a multi-row statement), off the
-- client's path.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE
{{- range .Tenants}}
        WHEN tenant_id = {{literal .Tenant}} THEN {{literal .Region}}::crdb_internal_region
{{- end}}
        ELSE {{literal .Home}}::crdb_internal_region
    END) STORED;
ALTER TABLE outbox SET LOCALITY REGIONAL BY ROW AS crdb_region;
