-- CockroachDB multi-region (issue 20, docs/MULTI-REGION.md). A TEMPLATE,
-- rendered by store.MultiRegionMigrations from the configuration
-- (IDEMGATE_HOME_REGION, IDEMGATE_REGIONS, IDEMGATE_TENANT_REGIONS) and
-- applied only when IDEMGATE_MIGRATIONS=crdb-multiregion, on CockroachDB
-- only (.crdb.sql: PostgreSQL never runs it, whatever the setting).
-- NOT RUN HERE: this repository has no multi-region CockroachDB cluster;
-- the SQL follows CockroachDB's documentation (ALTER DATABASE ... PRIMARY
-- REGION / ADD REGION) and is checked offline only (TestMultiRegion*).
-- The cluster's nodes must have been started with --locality=region=<name>
-- for every region named here.
ALTER DATABASE {{ident .Database}} SET PRIMARY REGION {{ident .Home}};
{{- range .Others}}
ALTER DATABASE {{ident $.Database}} ADD REGION IF NOT EXISTS {{ident .}};
{{- end}}
