package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// OperatorScope is what an operator key may see and act on in the
// console: every tenant ("*"), or the tenants listed ("tenant-a|tenant-b").
type OperatorScope struct {
	All     bool
	Tenants []string // sorted, when not All
}

// ParseOperatorScope reads "*" or "t1|t2|...".
func ParseOperatorScope(s string) (OperatorScope, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return OperatorScope{All: true}, nil
	}
	var sc OperatorScope
	for _, t := range strings.Split(s, "|") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			return OperatorScope{}, errors.New("a scope is * or tenants separated by '|', none empty")
		case t == "*":
			return OperatorScope{}, errors.New("* is a scope alone, not among tenants")
		case strings.Contains(t, "/"):
			return OperatorScope{}, errors.New("tenants may not contain '/'")
		}
		if !slices.Contains(sc.Tenants, t) {
			sc.Tenants = append(sc.Tenants, t)
		}
	}
	slices.Sort(sc.Tenants)
	return sc, nil
}

// Allows says whether the scope covers tenant.
func (s OperatorScope) Allows(tenant string) bool {
	return s.All || slices.Contains(s.Tenants, tenant)
}

// String is the scope as it is written.
func (s OperatorScope) String() string {
	if s.All {
		return "*"
	}
	return strings.Join(s.Tenants, "|")
}

var operatorKeys = keyList{setting: "IDEMGATE_OPERATOR_KEYS", what: "scope", check: func(scope string) error {
	_, err := ParseOperatorScope(scope)
	return err
}}

// ParseOperatorKeys reads IDEMGATE_OPERATOR_KEYS: "key1=*,key2=tenant-a|tenant-b",
// the shape of IDEMGATE_API_KEYS with a scope for a tenant.
func ParseOperatorKeys(s string) (map[string]string, error) { return operatorKeys.parse(s) }

// OperatorKeyHashes are the hashes of every operator key, from
// IDEMGATE_OPERATOR_KEYS and IDEMGATE_OPERATOR_KEYS_FILE (plain or
// sha256:<hex> keys, as IDEMGATE_API_KEYS_FILE), with their scopes. None
// is no error: the console is then off.
func (c Config) OperatorKeyHashes() (map[KeyHash]OperatorScope, error) {
	raw, err := operatorKeys.hashes(c.OperatorKeys, c.OperatorKeysFile)
	if err != nil {
		return nil, err
	}
	out := make(map[KeyHash]OperatorScope, len(raw))
	for h, s := range raw {
		sc, err := ParseOperatorScope(s)
		if err != nil { // checked when read; kept for safety
			return nil, fmt.Errorf("IDEMGATE_OPERATOR_KEYS: %w", err)
		}
		out[h] = sc
	}
	return out, nil
}

// DevOperatorKey is the dev mode's default operator key, of scope "*".
const DevOperatorKey = "dev-operator"
