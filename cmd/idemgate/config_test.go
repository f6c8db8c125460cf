package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFileAndHashedKeys runs serve from a config file whose API keys
// come from a mounted file holding only their hashes: the key
// authenticates, and config check prints the settings with no secret.
func TestConfigFileAndHashedKeys(t *testing.T) {
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("s3cret-key"))
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte("# mounted secret\nsha256:"+hex.EncodeToString(sum[:])+"=tenant-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startRoles(t, nil)
	file := filepath.Join(dir, "idemgate.yaml")
	body := "database_url: " + s.vars["DATABASE_URL"] + "\nkafka_brokers: [" + s.vars["KAFKA_BROKERS"] + "]\napi_keys_file: " + keys +
		"\naddr: " + s.apiAddr() + "\ntopic_prefix: " + s.vars["IDEMGATE_TOPIC_PREFIX"] + "\ngroup: " + s.vars["IDEMGATE_GROUP"] +
		"\npartitions: 3\nmetrics_token: tok\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s.vars = map[string]string{} // everything from the file now
	t.Run("ConfigCheck", func(t *testing.T) {
		var out, errOut strings.Builder
		if err := run(context.Background(), []string{"--config", file, "config", "check"}, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		for _, want := range []string{"IDEMGATE_API_KEYS_FILE=" + keys, "IDEMGATE_METRICS_TOKEN=****", "# ok: 2 operations payments.create refunds.create"} {
			if !strings.Contains(got, want) {
				t.Fatalf("config check lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "tok\n") || strings.Contains(got, "s3cret") {
			t.Fatalf("config check shows a secret:\n%s", got)
		}
	})
	t.Run("ErrConfigCheck", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		_ = os.WriteFile(bad, []byte("api_keys_file: "+filepath.Join(dir, "missing")+"\n"), 0o600)
		err := run(context.Background(), []string{"--config", bad, "config", "check"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "IDEMGATE_API_KEYS_FILE") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ServeFromTheFile", func(t *testing.T) {
		s := s.on(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--config", file, "serve"}, func(string) string { return "" }, &strings.Builder{}, &syncBuffer{})
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}()
		s.waitHealthy()
		mustPending(t, "hashed key", s.postPayment("s3cret-key", "cfg-1", payment), false)
		mustProblem(t, "the hash itself is no key", s.postPayment("sha256:"+hex.EncodeToString(sum[:]), "cfg-2", payment), 401, "/unauthorized")
		mustProblem(t, "metrics behind the token", s.do("GET", "/metrics", "", "", "", ""), 401, "/unauthorized")
		if r := s.do("GET", "/metrics", "tok", "", "", ""); r.Status != 200 {
			t.Fatalf("metrics with the token: %d", r.Status)
		}
	})
}
