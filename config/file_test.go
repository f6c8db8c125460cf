package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWithFile(t *testing.T) {
	t.Run("OKEnvironmentOverridesTheFile", func(t *testing.T) {
		path := writeFile(t, "idemgate.yaml", `
database_url: postgres://u:secret@db:5432/idemgate
kafka_brokers: [k1:9092, k2:9092]
addr: 0.0.0.0:8080
retention: 48h
retention_by_operation: {refunds.create: 72h}
api_keys: {key-a: tenant-a}
`)
		getenv, err := WithFile(path, env(map[string]string{"IDEMGATE_ADDR": "127.0.0.1:9999"}))
		if err != nil {
			t.Fatal(err)
		}
		c, err := FromEnv(getenv)
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != "127.0.0.1:9999" || c.DatabaseURL != "postgres://u:secret@db:5432/idemgate" || strings.Join(c.KafkaBrokers, ",") != "k1:9092,k2:9092" ||
			c.Retention != 48*time.Hour || c.RetentionByOperation["refunds.create"] != 72*time.Hour || c.APIKeys["key-a"] != "tenant-a" {
			t.Fatalf("config %+v", c)
		}
		desc := strings.Join(c.Describe(getenv), "\n")
		for _, want := range []string{"DATABASE_URL=postgres://u:****@db:5432/idemgate", "IDEMGATE_API_KEYS=1 key(s), masked, for tenant-a", "IDEMGATE_ADDR=127.0.0.1:9999"} {
			if !strings.Contains(desc, want) {
				t.Fatalf("Describe lacks %q:\n%s", want, desc)
			}
		}
		if strings.Contains(desc, "secret") || strings.Contains(desc, "key-a") {
			t.Fatalf("Describe shows a secret:\n%s", desc)
		}
	})
	for name, tc := range map[string]struct{ body, want string }{
		"ErrUnknownSetting": {"addr: x\ndatabase: y\n", `line 2: unknown setting "database"`},
		"ErrNotAMapping":    {"- a\n- b\n", "must be a mapping"},
		"ErrNotYAML":        {"addr: [\n", "is not YAML"},
		"ErrNestedList":     {"kafka_brokers: [[a]]\n", "a list of single values"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := WithFile(writeFile(t, "c.yaml", tc.body), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
	t.Run("ErrMissingFile", func(t *testing.T) {
		if _, err := WithFile(filepath.Join(t.TempDir(), "none.yaml"), env(nil)); err == nil {
			t.Fatal("a missing file was accepted")
		}
	})
}

func TestAPIKeysFile(t *testing.T) {
	sum := sha256.Sum256([]byte("hashed-key"))
	t.Run("OKPlainAndHashed", func(t *testing.T) {
		path := writeFile(t, "keys", "# the API keys\nplain-key = tenant-a\n\nsha256:"+hex.EncodeToString(sum[:])+"=tenant-b\n")
		c, err := FromEnv(env(map[string]string{"IDEMGATE_API_KEYS_FILE": path, "IDEMGATE_API_KEYS": "env-key=tenant-c"}))
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.KeyHashes()
		if err != nil {
			t.Fatal(err)
		}
		if h[HashKey("plain-key")] != "tenant-a" || h[sum] != "tenant-b" || h[HashKey("env-key")] != "tenant-c" || len(h) != 3 {
			t.Fatalf("hashes %v", h)
		}
	})
	for name, tc := range map[string]struct{ body, want string }{
		"ErrNoTenant":    {"k=\n", "line 1: not key=tenant"},
		"ErrShortHash":   {"sha256:abcd=t\n", "line 1: sha256: needs 64 hex digits"},
		"ErrDuplicate":   {"k=a\nk=b\n", "line 2: the key is listed twice"},
		"ErrEmpty":       {"# nothing\n", "lists no key"},
		"ErrSlashTenant": {"k=a/b\n", "tenants may not contain"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadAPIKeysFile(writeFile(t, "keys", tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
