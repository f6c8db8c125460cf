package sqldb_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// TestMigrationsListsNumberedFilesInOrder: only the .sql files at the
// root count, ordered by their number (not by name: 0010 after 0002), and
// .crdb.sql files are marked CockroachDB-only.
func TestMigrationsListsNumberedFilesInOrder(t *testing.T) {
	set := sqldb.MigrationSet{Module: "m", FS: fstest.MapFS{
		"0010_c.crdb.sql":     {Data: []byte("C")},
		"0002_b.sql":          {Data: []byte("B")},
		"0001_a.sql":          {Data: []byte("A")},
		"README.md":           {Data: []byte("not a migration")},
		"old/0003_moved.sql":  {Data: []byte("in a folder: not a migration")},
		"0004_not-sql.sql.gz": {Data: []byte("not .sql")},
	}}
	got, err := set.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	want := []sqldb.Migration{
		{Module: "m", Version: 1, Name: "0001_a.sql", SQL: "A"},
		{Module: "m", Version: 2, Name: "0002_b.sql", SQL: "B"},
		{Module: "m", Version: 10, Name: "0010_c.crdb.sql", SQL: "C", CockroachOnly: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("migrations:\n got %v\nwant %v", got, want)
	}
	if got, err := (sqldb.MigrationSet{Module: "none"}).Migrations(); got != nil || err != nil {
		t.Fatalf("a set without FS: %v, %v; want nothing", got, err)
	}
}

// TestMigrationsRefusesBadNames: a file that does not start with a
// positive number and '_', or that shares its number with another, is a
// mistake in the set, reported rather than skipped or applied out of order.
func TestMigrationsRefusesBadNames(t *testing.T) {
	for name, files := range map[string][]string{
		"ErrZero":          {"0000_zero.sql"},
		"ErrNegative":      {"-1_minus.sql"},
		"ErrNotANumber":    {"one_a.sql"},
		"ErrNoUnderscore":  {"0001.sql"},
		"ErrSharedVersion": {"0001_a.sql", "1_b.sql"},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range files {
				fsys[f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			if got, err := (sqldb.MigrationSet{Module: "m", FS: fsys}).Migrations(); err == nil {
				t.Fatalf("%v: migrations %v, want an error", files, got)
			}
		})
	}
}

// TestMigrateAppliesEachMigrationOnce migrates two sets on an empty
// database: every statement runs (comment lines dropped, a last statement
// without ';' kept), in order, CockroachDB-only files are skipped on
// PostgreSQL, and the applied names are returned; a second run applies
// nothing and leaves the data as it was.
func TestMigrateAppliesEachMigrationOnce(t *testing.T) {
	ctx := context.Background()
	db := testenv.OpenDB(t, env.NewDatabase(t))
	first := sqldb.MigrationSet{Module: "first", FS: fstest.MapFS{
		"0001_table.sql": {Data: []byte("-- the table;\nCREATE TABLE a (x INT NOT NULL);\n\nINSERT INTO a VALUES (1);\n")},
		"0002_column.sql": {Data: []byte("ALTER TABLE a\n  ADD COLUMN y INT;\n" +
			"INSERT INTO a VALUES (2, 2)")},
		"0003_ttl.crdb.sql": {Data: []byte("ALTER TABLE a SET (ttl_expiration_expression = 'now()');")},
	}}
	second := sqldb.MigrationSet{Module: "second", FS: fstest.MapFS{
		"0001_more.sql": {Data: []byte("INSERT INTO a VALUES (4, 4);")},
	}}
	applied, err := db.Migrate(ctx, first, second)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(applied); got != "[first/0001_table.sql first/0002_column.sql second/0001_more.sql]" {
		t.Fatalf("applied %s", got)
	}
	rows := func() string {
		var n, sum int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), sum(x) FROM a`).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d rows, sum %d", n, sum)
	}
	if got := rows(); got != "3 rows, sum 7" {
		t.Fatalf("after the first run: %s, want 3 rows, sum 7", got)
	}
	applied, err = db.Migrate(ctx, first, second)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second run applied %v (%v); want nothing", applied, err)
	}
	if got := rows(); got != "3 rows, sum 7" {
		t.Fatalf("after the second run: %s, want 3 rows, sum 7", got)
	}
}

// TestOpenPoolSize: a positive size bounds the pool; zero keeps pgxpool's
// default rather than asking for an empty pool.
func TestOpenPoolSize(t *testing.T) {
	ctx := context.Background()
	url := env.NewDatabase(t)
	for _, tc := range []struct {
		maxConns int32
		check    func(int32) bool
		want     string
	}{
		{3, func(n int32) bool { return n == 3 }, "3"},
		{0, func(n int32) bool { return n > 0 }, "pgxpool's default"},
	} {
		db, err := sqldb.Open(ctx, url, sqldb.Options{MaxConns: tc.maxConns})
		if err != nil {
			t.Fatalf("Open(%d): %v", tc.maxConns, err)
		}
		got := db.Pool.Config().MaxConns
		db.Close()
		if !tc.check(got) {
			t.Fatalf("Open(%d): MaxConns = %d, want %s", tc.maxConns, got, tc.want)
		}
	}
}
