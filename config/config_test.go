package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := FromEnv(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != "127.0.0.1:8080" || c.MismatchStatus != 409 || c.Retention != 24*time.Hour || c.TopicPrefix != "idemgate" {
			t.Fatalf("defaults = %+v", c)
		}
		// The call budget is separate from the consumer's poison budget, and
		// spans ten minutes (issue 17).
		if c.CallAttempts != 5 || c.CallRetryFor != 10*time.Minute || c.CallMaxUnfinished != 12 || c.MaxAttempts != 5 {
			t.Fatalf("call budget defaults = %d, %v, %d (poison %d)", c.CallAttempts, c.CallRetryFor, c.CallMaxUnfinished, c.MaxAttempts)
		}
	})
	t.Run("OK", func(t *testing.T) {
		c, err := FromEnv(env(map[string]string{
			"IDEMGATE_API_KEYS":               " k1=tenant-a , k2=tenant-b ",
			"KAFKA_BROKERS":                   "a:1, b:2",
			"IDEMGATE_MISMATCH_STATUS":        "422",
			"IDEMGATE_RETENTION_BY_OPERATION": "refunds.create=72h",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.APIKeys["k1"] != "tenant-a" || c.APIKeys["k2"] != "tenant-b" || len(c.KafkaBrokers) != 2 || c.MismatchStatus != 422 {
			t.Fatalf("config = %+v", c)
		}
		if got := c.RetentionByOperation["refunds.create"]; got != 72*time.Hour {
			t.Fatalf("refunds retention = %v", got)
		}
		if _, set := c.RetentionByOperation["payments.create"]; set || c.Retention != 24*time.Hour {
			t.Fatalf("payments retention = %v, default %v", c.RetentionByOperation["payments.create"], c.Retention)
		}
	})
	t.Run("TopicReplication", func(t *testing.T) {
		// 0 = automatic (events.TopicSettings.Resolve): the defaults.
		if c, err := FromEnv(env(nil)); err != nil || c.TopicReplication != 0 || c.TopicMinInsync != 0 {
			t.Fatalf("defaults: replication %d, min insync %d, %v", c.TopicReplication, c.TopicMinInsync, err)
		}
		c, err := FromEnv(env(map[string]string{"IDEMGATE_TOPIC_REPLICATION": "5", "IDEMGATE_TOPIC_MIN_INSYNC": "3"}))
		if err != nil || c.TopicReplication != 5 || c.TopicMinInsync != 3 {
			t.Fatalf("replication %d, min insync %d, %v", c.TopicReplication, c.TopicMinInsync, err)
		}
		// More in-sync replicas than copies: every acks=all write would fail.
		_, err = FromEnv(env(map[string]string{"IDEMGATE_TOPIC_REPLICATION": "2", "IDEMGATE_TOPIC_MIN_INSYNC": "3"}))
		if err == nil || !strings.Contains(err.Error(), "exceeds IDEMGATE_TOPIC_REPLICATION") {
			t.Fatalf("err = %v", err)
		}
	})
	for name, tc := range map[string]struct{ key, value, want string }{
		"ErrMismatchStatus": {"IDEMGATE_MISMATCH_STATUS", "418", "409 or 422"},
		"ErrAPIKeyPair":     {"IDEMGATE_API_KEYS", "nokey", "not key=tenant"},
		"ErrTenantSlash":    {"IDEMGATE_API_KEYS", "k=a/b", "may not contain '/'"},
		"ErrDuration":       {"IDEMGATE_LEASE", "soon", "positive duration"},
		"ErrAddr":           {"IDEMGATE_ADDR", "8080", "host:port"},
		"ErrAddrFd":         {"IDEMGATE_ADDR", "fd:1", "file descriptor above 2"},
		"ErrMetricsAddr":    {"IDEMGATE_METRICS_ADDR", "9090", "host:port"},
		"ErrRetentionPair":  {"IDEMGATE_RETENTION_BY_OPERATION", "refunds.create", "operation=duration"},
		"ErrMaxAttempts":    {"IDEMGATE_MAX_ATTEMPTS", "0", "1 to 100"},
		"ErrCallAttempts":   {"IDEMGATE_CALL_ATTEMPTS", "0", "1 to 1000"},
		"ErrCallRetryFor":   {"IDEMGATE_CALL_RETRY_FOR", "-1m", "positive duration"},
		"ErrMaxUnfinished":  {"IDEMGATE_CALL_MAX_UNFINISHED", "many", "1 to 1000"},
		"ErrReplication":    {"IDEMGATE_TOPIC_REPLICATION", "-1", "0 to 1000"},
		"ErrMinInsync":      {"IDEMGATE_TOPIC_MIN_INSYNC", "two", "0 to 1000"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{tc.key: tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("err spans lines: %q", err)
			}
		})
	}
}
