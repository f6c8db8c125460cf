package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Names lists the settings FromEnv reads, by their environment names.
// They are found by asking FromEnv itself, so the list never drifts.
func Names() []string {
	seen := map[string]bool{}
	_, _ = FromEnv(func(name string) string {
		seen[name] = true
		return ""
	})
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// fileKey is the name a setting has in a config file: the environment
// name in lower case, without its IDEMGATE_ prefix (database_url,
// kafka_brokers, addr, retention_by_operation, ...).
func fileKey(env string) string { return strings.ToLower(strings.TrimPrefix(env, "IDEMGATE_")) }

// WithFile reads a YAML config file holding the same settings as the
// environment, under their file keys, and returns a getenv in which the
// environment overrides the file. A list is a comma-separated setting
// (kafka_brokers: [a:9092, b:9092]); a mapping is a key=value list
// (api_keys: {key-a: tenant-a}, retention_by_operation: {refunds.create: 72h}).
// An unknown key, or a value that is neither, is refused with its line.
func WithFile(path string, getenv func(string) string) (func(string) string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config file %s is not YAML: %v", path, err)
	}
	known := map[string]string{}
	for _, n := range Names() {
		known[fileKey(n)] = n
	}
	values := map[string]string{}
	if len(doc.Content) > 0 {
		top := doc.Content[0]
		if top.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("config file %s: line %d: the file must be a mapping of settings", path, top.Line)
		}
		for i := 0; i+1 < len(top.Content); i += 2 {
			k, v := top.Content[i], top.Content[i+1]
			env, ok := known[k.Value]
			if !ok {
				return nil, fmt.Errorf("config file %s: line %d: unknown setting %q (the settings of the environment, in lower case without IDEMGATE_: addr, database_url, kafka_brokers, api_keys_file, ...)", path, k.Line, k.Value)
			}
			s, err := flatten(v)
			if err != nil {
				return nil, fmt.Errorf("config file %s: line %d: %s: %v", path, v.Line, k.Value, err)
			}
			values[env] = s
		}
	}
	return func(name string) string {
		if v := getenv(name); strings.TrimSpace(v) != "" {
			return v
		}
		return values[name]
	}, nil
}

func flatten(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		return v.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("a list of single values is expected")
			}
			parts = append(parts, item.Value)
		}
		return strings.Join(parts, ","), nil
	case yaml.MappingNode:
		parts := make([]string, 0, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			if v.Content[i+1].Kind != yaml.ScalarNode {
				return "", fmt.Errorf("a mapping of single values is expected")
			}
			parts = append(parts, v.Content[i].Value+"="+v.Content[i+1].Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("a value, a list or a mapping is expected")
}

// Describe lists the settings in effect, one NAME=value line each, with
// the secrets masked: the database password, the API keys (their tenants
// shown), the metrics token.
func (c Config) Describe(getenv func(string) string) []string {
	var out []string
	for _, n := range Names() {
		v := strings.TrimSpace(getenv(n))
		if v == "" {
			continue
		}
		switch {
		case n == "DATABASE_URL":
			v = maskURL(v)
		case n == "IDEMGATE_API_KEYS":
			tenants := make([]string, 0, len(c.APIKeys))
			for _, t := range c.APIKeys {
				tenants = append(tenants, t)
			}
			sort.Strings(tenants)
			v = fmt.Sprintf("%d key(s), masked, for %s", len(c.APIKeys), strings.Join(tenants, ", "))
		case n == "IDEMGATE_OPERATOR_KEYS":
			scopes := make([]string, 0, len(c.OperatorKeys))
			for _, s := range c.OperatorKeys {
				scopes = append(scopes, s)
			}
			sort.Strings(scopes)
			v = fmt.Sprintf("%d key(s), masked, of scope %s", len(c.OperatorKeys), strings.Join(scopes, ", "))
		case strings.Contains(n, "TOKEN") || strings.Contains(n, "PASSWORD") || strings.Contains(n, "SECRET"):
			v = "****"
		}
		out = append(out, n+"="+v)
	}
	return out
}

// maskURL hides a URL's password ("postgres://u:****@host/db", and a
// password= parameter).
func maskURL(s string) string {
	if i := strings.Index(s, "password="); i >= 0 {
		end := strings.IndexAny(s[i:], "& ")
		if end < 0 {
			end = len(s) - i
		}
		s = s[:i] + "password=****" + s[i+end:]
	}
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	cred := s[scheme+3 : at]
	if user, _, hasPass := strings.Cut(cred, ":"); hasPass {
		return s[:scheme+3] + user + ":****" + s[at:]
	}
	return s
}
