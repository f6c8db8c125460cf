package store

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing/fstest"
	"text/template"

	"github.com/idemgate/idemgate/sqldb"
)

//go:embed multiregion/*.sql
var multiRegion embed.FS

// MultiRegionModule records the multi-region migrations in
// idemgate_migrations.
const MultiRegionModule = "core-multiregion"

// Regions is what the multi-region migrations are rendered from.
type Regions struct {
	// Database is the database's name (SELECT current_database()).
	Database string
	// Home is the primary region, and the home of tenants Tenants does
	// not name.
	Home string
	// All are the database's regions, Home among them.
	All []string
	// TenantRegions gives tenants their home region.
	TenantRegions map[string]string
}

// MultiRegionMigrations renders CockroachDB's multi-region migrations
// (store/multiregion/*.crdb.sql) for r: the database's regions, and the
// claims and their responses REGIONAL BY ROW, homed in their tenant's
// region (docs/MULTI-REGION.md). Every file is CockroachDB-only; they are
// never applied unless the configuration asks (IDEMGATE_MIGRATIONS). They
// have not been run against a multi-region cluster.
func MultiRegionMigrations(r Regions) (sqldb.MigrationSet, error) {
	if r.Database == "" || r.Home == "" {
		return sqldb.MigrationSet{}, errors.New("store: multi-region migrations need a database name and a home region")
	}
	type tenant struct{ Tenant, Region string }
	data := struct {
		Database, Home string
		Others         []string
		Tenants        []tenant
	}{Database: r.Database, Home: r.Home}
	known := map[string]bool{r.Home: true}
	for _, reg := range r.All {
		if !known[reg] {
			known[reg] = true
			data.Others = append(data.Others, reg)
		}
	}
	for t, reg := range r.TenantRegions {
		if !known[reg] {
			return sqldb.MigrationSet{}, fmt.Errorf("store: tenant %s's home region %q is not one of the database's regions %v", t, reg, r.All)
		}
		data.Tenants = append(data.Tenants, tenant{t, reg})
	}
	sort.Slice(data.Tenants, func(i, j int) bool { return data.Tenants[i].Tenant < data.Tenants[j].Tenant })
	funcs := template.FuncMap{
		"ident":   func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` },
		"literal": func(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` },
	}
	out := fstest.MapFS{}
	err := fs.WalkDir(multiRegion, "multiregion", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(multiRegion, path)
		if err != nil {
			return err
		}
		t, err := template.New(d.Name()).Funcs(funcs).Option("missingkey=error").Parse(string(body))
		if err != nil {
			return fmt.Errorf("store: %s: %w", path, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("store: %s: %w", path, err)
		}
		out[d.Name()] = &fstest.MapFile{Data: b.Bytes()}
		return nil
	})
	if err != nil {
		return sqldb.MigrationSet{}, err
	}
	return sqldb.MigrationSet{Module: MultiRegionModule, FS: out}, nil
}
