package sqldb

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MigrationSet is one module's schema: numbered SQL files at the root of
// FS ("0001_init.sql"), applied in order and recorded under Module.
type MigrationSet struct {
	Module string
	FS     fs.FS
}

// Migration is one numbered schema change.
type Migration struct {
	Module  string
	Version int
	Name    string
	SQL     string
	// CockroachOnly migrations (file names ending in .crdb.sql) use
	// CockroachDB-only features such as row-level TTL and are skipped on
	// PostgreSQL.
	CockroachOnly bool
}

// Migrations lists a set's migrations in order.
func (s MigrationSet) Migrations() ([]Migration, error) {
	if s.FS == nil {
		return nil, nil
	}
	entries, err := fs.ReadDir(s.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("sqldb: migrations of %s: %w", s.Module, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqldb: migration %s/%s does not start with a positive number and '_'", s.Module, name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("sqldb: migrations %s/%s and %s share version %d", s.Module, other, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(s.FS, name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Module: s.Module, Version: v, Name: name, SQL: string(body), CockroachOnly: strings.HasSuffix(name, ".crdb.sql")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies, set by set, every migration not yet recorded in
// idemgate_migrations and returns the names it applied. Several processes
// may migrate at once: each migration and its record commit together, and
// the statements are idempotent (IF NOT EXISTS), so the loser of a race
// finds the work done.
func (db *DB) Migrate(ctx context.Context, sets ...MigrationSet) ([]string, error) {
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS idemgate_migrations (
		module TEXT NOT NULL,
		version INT NOT NULL,
		name TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
		PRIMARY KEY (module, version))`); err != nil {
		return nil, fmt.Errorf("sqldb: create idemgate_migrations: %w", err)
	}
	var applied []string
	for _, set := range sets {
		all, err := set.Migrations()
		if err != nil {
			return applied, err
		}
		for _, m := range all {
			if m.CockroachOnly && db.Flavor != CockroachDB {
				continue
			}
			did, err := db.apply(ctx, m)
			if err != nil {
				return applied, err
			}
			if did {
				applied = append(applied, m.Module+"/"+m.Name)
			}
		}
	}
	return applied, nil
}

func (db *DB) apply(ctx context.Context, m Migration) (bool, error) {
	var did bool
	err := db.InTx(ctx, func(tx pgx.Tx) error {
		did = false
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM idemgate_migrations WHERE module = $1 AND version = $2`, m.Module, m.Version).Scan(&n); err != nil {
			return fmt.Errorf("read idemgate_migrations: %w", err)
		}
		if n > 0 {
			return nil
		}
		for _, stmt := range SplitStatements(m.SQL) {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s/%s: %w", m.Module, m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO idemgate_migrations (module, version, name) VALUES ($1, $2, $3)
ON CONFLICT (module, version) DO NOTHING`, m.Module, m.Version, m.Name); err != nil {
			return fmt.Errorf("record %s/%s: %w", m.Module, m.Name, err)
		}
		did = true
		return nil
	})
	if err != nil {
		if s := SQLState(err); s == "23505" || s == "42P07" {
			return false, nil // another process created it at the same moment
		}
		return false, fmt.Errorf("sqldb: migrate: %w", err)
	}
	return did, nil
}

// SplitStatements splits a migration file on semicolons that end a line,
// dropping comment lines. Migrations keep to that simple form.
func SplitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
