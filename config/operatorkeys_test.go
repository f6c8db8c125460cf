package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestOperatorScope(t *testing.T) {
	for in, want := range map[string]string{"*": "*", "tenant-b|tenant-a": "tenant-a|tenant-b", " a | a ": "a"} {
		sc, err := ParseOperatorScope(in)
		if err != nil || sc.String() != want {
			t.Errorf("ParseOperatorScope(%q) = %q, %v; want %q", in, sc, err, want)
		}
	}
	for _, in := range []string{"", "a||b", "a|*", "a/b", "|"} {
		if _, err := ParseOperatorScope(in); err == nil {
			t.Errorf("ParseOperatorScope(%q) accepted", in)
		}
	}
	all, _ := ParseOperatorScope("*")
	two, _ := ParseOperatorScope("tenant-a|tenant-b")
	for _, c := range []struct {
		sc     OperatorScope
		tenant string
		want   bool
	}{{all, "anyone", true}, {two, "tenant-a", true}, {two, "tenant-b", true}, {two, "tenant-c", false}, {two, "", false}, {two, "tenant-a|tenant-b", false}} {
		if got := c.sc.Allows(c.tenant); got != c.want {
			t.Errorf("%q.Allows(%q) = %v", c.sc, c.tenant, got)
		}
	}
}

func TestOperatorKeys(t *testing.T) {
	t.Run("OKFromTheEnvironmentAndAHashedFile", func(t *testing.T) {
		sum := sha256.Sum256([]byte("hashed-op"))
		path := writeFile(t, "ops", "# operators\nplain-op=tenant-a|tenant-b\nsha256:"+hex.EncodeToString(sum[:])+"=*\n")
		c, err := FromEnv(env(map[string]string{"IDEMGATE_OPERATOR_KEYS": "env-op=tenant-c", "IDEMGATE_OPERATOR_KEYS_FILE": path}))
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.OperatorKeyHashes()
		if err != nil {
			t.Fatal(err)
		}
		if h[HashKey("plain-op")].String() != "tenant-a|tenant-b" || !h[sum].All || h[HashKey("env-op")].String() != "tenant-c" || len(h) != 3 {
			t.Fatalf("operator keys %v", h)
		}
		if _, ok := h[HashKey("sha256:"+hex.EncodeToString(sum[:]))]; ok {
			t.Fatal("a hashed line was taken as a plain key")
		}
		desc := strings.Join(c.Describe(env(map[string]string{"IDEMGATE_OPERATOR_KEYS": "env-op=tenant-c"})), "\n")
		if strings.Contains(desc, "env-op") || !strings.Contains(desc, "IDEMGATE_OPERATOR_KEYS=1 key(s), masked, of scope tenant-c") {
			t.Fatalf("Describe shows %s", desc)
		}
	})
	t.Run("OKNoneIsNoConsole", func(t *testing.T) {
		c, err := FromEnv(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if h, err := c.OperatorKeyHashes(); err != nil || len(h) != 0 {
			t.Fatalf("%v %v", h, err)
		}
	})
	for name, tc := range map[string]struct{ value, want string }{
		"ErrPair":      {"nokey", "not key=scope"},
		"ErrEmpty":     {"k=a||b", "none empty"},
		"ErrStarMixed": {"k=*|a", "scope alone"},
		"ErrSlash":     {"k=a/b", "may not contain '/'"},
		"ErrTwice":     {"k=a,k=b", "listed twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{"IDEMGATE_OPERATOR_KEYS": tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "IDEMGATE_OPERATOR_KEYS") {
				t.Fatalf("err = %v, want one naming the setting and %q", err, tc.want)
			}
		})
	}
	t.Run("ErrFileLine", func(t *testing.T) {
		c := Config{OperatorKeysFile: writeFile(t, "ops", "k=*\nbad\n")}
		if _, err := c.OperatorKeyHashes(); err == nil || !strings.Contains(err.Error(), "IDEMGATE_OPERATOR_KEYS_FILE") || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrOneKeyTwoScopes", func(t *testing.T) {
		c := Config{OperatorKeys: map[string]string{"k": "a"}, OperatorKeysFile: writeFile(t, "ops", "k=b\n")}
		if _, err := c.OperatorKeyHashes(); err == nil || !strings.Contains(err.Error(), "two scopes") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("KeyNameHidesTheKey", func(t *testing.T) {
		n := KeyName(HashKey("secret-operator-key"))
		if strings.Contains(n, "secret") || !strings.HasPrefix(n, "sha256:") || len(n) != len("sha256:")+12 {
			t.Fatalf("KeyName = %q", n)
		}
	})
}
