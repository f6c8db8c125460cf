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

// TestRegions: IDEMGATE_REGION and the home regions (issue 20).
func TestRegions(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := FromEnv(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Region != "local" || c.Home() != "local" || c.HomeOf("tenant-a") != "local" || c.Migrations != "" {
			t.Fatalf("region %q, home %q, tenant-a's %q, migrations %q", c.Region, c.Home(), c.HomeOf("tenant-a"), c.Migrations)
		}
		if got := c.AllRegions(); len(got) != 1 || got[0] != "local" {
			t.Fatalf("all regions = %v", got)
		}
	})
	t.Run("Set", func(t *testing.T) {
		c, err := FromEnv(env(map[string]string{
			"IDEMGATE_REGION":         "us-east1",
			"IDEMGATE_HOME_REGION":    "europe-west1",
			"IDEMGATE_TENANT_REGIONS": " tenant-a=europe-west1 , tenant-b=us-east1,tenant-c=asia-1 ",
			"IDEMGATE_MIGRATIONS":     "crdb-multiregion",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Region != "us-east1" || c.HomeOf("tenant-b") != "us-east1" || c.HomeOf("tenant-a") != "europe-west1" ||
			c.HomeOf("tenant-z") != "europe-west1" || c.Migrations != MigrationsMultiRegion {
			t.Fatalf("config = %+v", c)
		}
		if got := strings.Join(c.AllRegions(), ","); got != "europe-west1,asia-1,us-east1" {
			t.Fatalf("all regions = %s (want the home region first, then sorted)", got)
		}
	})
	t.Run("HomeDefaultsToRegion", func(t *testing.T) {
		c, err := FromEnv(env(map[string]string{"IDEMGATE_REGION": "eu"}))
		if err != nil || c.Home() != "eu" || c.HomeOf("tenant-a") != "eu" {
			t.Fatalf("home %q, %v", c.Home(), err)
		}
	})
	for name, tc := range map[string]struct{ env map[string]string }{
		"Uppercase":        {map[string]string{"IDEMGATE_REGION": "EU"}},
		"Space":            {map[string]string{"IDEMGATE_REGION": "eu west"}},
		"LeadingDigit":     {map[string]string{"IDEMGATE_REGION": "1eu"}},
		"TooLong":          {map[string]string{"IDEMGATE_REGION": strings.Repeat("a", 33)}},
		"QuoteInHome":      {map[string]string{"IDEMGATE_HOME_REGION": "eu'; DROP TABLE x; --"}},
		"BadTenantRegion":  {map[string]string{"IDEMGATE_TENANT_REGIONS": "tenant-a=EU"}},
		"NotPairs":         {map[string]string{"IDEMGATE_TENANT_REGIONS": "tenant-a"}},
		"TenantTwice":      {map[string]string{"IDEMGATE_TENANT_REGIONS": "tenant-a=eu,tenant-a=us"}},
		"UnknownMigration": {map[string]string{"IDEMGATE_MIGRATIONS": "multiregion"}},
		"RegionsMissOne":   {map[string]string{"IDEMGATE_REGION": "eu", "IDEMGATE_REGIONS": "us"}},
	} {
		t.Run("Refused"+name, func(t *testing.T) {
			if _, err := FromEnv(env(tc.env)); err == nil {
				t.Fatalf("%v accepted", tc.env)
			}
		})
	}
}
