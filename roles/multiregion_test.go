package roles

import (
	"regexp"
	"strings"
	"testing"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// TestMultiRegionMigrationsSelectedBySettingOnly (issue 20): CockroachDB's
// multi-region DDL is applied only when IDEMGATE_MIGRATIONS asks for it;
// regions and home regions alone select nothing. Every file of the set is
// CockroachDB-only, so that the runner would skip it on PostgreSQL even
// if selected (MigrateConfig refuses it there first).
func TestMultiRegionMigrationsSelectedBySettingOnly(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"Defaults": nil,
		"Regions": {"IDEMGATE_REGION": "us-east1", "IDEMGATE_HOME_REGION": "europe-west1",
			"IDEMGATE_TENANT_REGIONS": "tenant-a=europe-west1,tenant-b=us-east1"},
	} {
		cfg, err := config.FromEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		sets, err := OptionalMigrations(cfg, "idemgate")
		if err != nil || len(sets) != 0 {
			t.Fatalf("%s: optional sets %v (%v), want none", name, sets, err)
		}
	}
	sets := multiRegionSets(t, map[string]string{"IDEMGATE_MIGRATIONS": "crdb-multiregion"})
	if len(sets) != 1 || sets[0].Module != store.MultiRegionModule {
		t.Fatalf("sets %+v, want the multi-region set alone", sets)
	}
	all, err := sets[0].Migrations()
	if err != nil || len(all) == 0 {
		t.Fatalf("migrations %v (%v), want some", all, err)
	}
	for _, m := range all {
		if !m.CockroachOnly {
			t.Errorf("%s is not CockroachDB-only (.crdb.sql): PostgreSQL would run it", m.Name)
		}
	}
}

// TestMultiRegionMigrationsSQL checks the rendered set as far as can be
// done without a multi-region CockroachDB cluster: each statement is
// non-empty and of a known form, each table it alters exists in the core
// schema, every region it names is configured, each tenant maps to its
// region, and names are quoted (a tenant with a quote in it cannot end
// the literal).
func TestMultiRegionMigrationsSQL(t *testing.T) {
	sets := multiRegionSets(t, map[string]string{
		"IDEMGATE_MIGRATIONS":     "crdb-multiregion",
		"IDEMGATE_REGION":         "us-east1",
		"IDEMGATE_HOME_REGION":    "europe-west1",
		"IDEMGATE_TENANT_REGIONS": "tenant-a=europe-west1,tenant-b=us-east1,o'hara=asia-east1",
	})
	core, err := store.Migrations().Migrations()
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	for _, m := range core {
		for _, match := range regexp.MustCompile(`CREATE TABLE IF NOT EXISTS (\w+)`).FindAllStringSubmatch(m.SQL, -1) {
			tables[match[1]] = true
		}
	}
	all, err := sets[0].Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var sql strings.Builder
	forms := regexp.MustCompile(`^(ALTER DATABASE "idemgate" (SET PRIMARY REGION|ADD REGION IF NOT EXISTS) "[a-z0-9-]+"` +
		`|ALTER TABLE (\w+) (?:ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region |SET LOCALITY REGIONAL BY ROW AS crdb_region$)` +
		`|CREATE INDEX IF NOT EXISTS \w+ ON (\w+) \(operation_id\)$` +
		`|DROP INDEX IF EXISTS (\w+)@\w+ CASCADE$)`)
	for _, m := range all {
		stmts := sqldb.SplitStatements(m.SQL)
		if len(stmts) == 0 {
			t.Errorf("%s: no statement", m.Name)
		}
		for _, s := range stmts {
			match := forms.FindStringSubmatch(s)
			if match == nil {
				t.Errorf("%s: statement of no known form: %s", m.Name, s)
				continue
			}
			for _, table := range match[3:] {
				if table != "" && !tables[table] {
					t.Errorf("%s: table %s is not in the core schema: %s", m.Name, table, s)
				}
			}
			if strings.Contains(s, "{{") || strings.Contains(s, "<no value>") {
				t.Errorf("%s: template left unrendered: %s", m.Name, s)
			}
			sql.WriteString(s + ";\n")
		}
	}
	got := sql.String()
	for _, want := range []string{
		`SET PRIMARY REGION "europe-west1"`,
		`ADD REGION IF NOT EXISTS "asia-east1"`,
		`ADD REGION IF NOT EXISTS "us-east1"`,
		`WHEN tenant_id = 'tenant-a' THEN 'europe-west1'::crdb_internal_region`,
		`WHEN tenant_id = 'tenant-b' THEN 'us-east1'::crdb_internal_region`,
		`WHEN tenant_id = 'o''hara' THEN 'asia-east1'::crdb_internal_region`,
		`ELSE 'europe-west1'::crdb_internal_region`,
		`ALTER TABLE idempotency_claims SET LOCALITY REGIONAL BY ROW AS crdb_region`,
		`ALTER TABLE outbox SET LOCALITY REGIONAL BY ROW AS crdb_region`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the set does not contain %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "ADD REGION") != 2 || strings.Contains(got, "GLOBAL") {
		t.Errorf("want two regions added beside the primary, and no GLOBAL table:\n%s", got)
	}
}

func multiRegionSets(t *testing.T, env map[string]string) []sqldb.MigrationSet {
	t.Helper()
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	sets, err := OptionalMigrations(cfg, "idemgate")
	if err != nil {
		t.Fatal(err)
	}
	return sets
}
