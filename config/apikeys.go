package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeyHash is the SHA-256 of an API key: what the API keeps and compares,
// never the key itself.
type KeyHash = [32]byte

// HashKey hashes an API key.
func HashKey(key string) KeyHash { return sha256.Sum256([]byte(key)) }

// KeyName names a key in logs without revealing it: "sha256:" and the
// first 12 hex digits of its hash, the same whether the key was given in
// plain text or as its hash.
func KeyName(h KeyHash) string { return "sha256:" + hex.EncodeToString(h[:6]) }

// keyList is a setting of keys, each given a value: the API keys (a
// tenant each) and the operator keys (a scope each). Both are read the
// same way: "key=value,..." in the environment, and from a file one
// "key=value" or "sha256:<64 hex digits>=value" per line.
type keyList struct {
	setting string // IDEMGATE_API_KEYS; the file's is setting+"_FILE"
	what    string // what a key is given: "tenant"
	check   func(value string) error
}

var apiKeys = keyList{setting: "IDEMGATE_API_KEYS", what: "tenant", check: func(tenant string) error {
	if strings.Contains(tenant, "/") {
		return errors.New("tenants may not contain '/'")
	}
	return nil
}}

// pair reads one "key=value".
func (l keyList) pair(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" || v == "" {
		err = errors.New("empty")
	} else {
		err = l.check(v)
	}
	return k, v, err
}

// parse reads "key1=value1,key2=value2".
func (l keyList) parse(s string) (map[string]string, error) {
	keys := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, err := l.pair(pair)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not key=%s (%s)", l.setting, pair, l.what, l.rule(err))
		}
		if _, dup := keys[k]; dup {
			return nil, fmt.Errorf("%s: key listed twice", l.setting)
		}
		keys[k] = v
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s lists no key", l.setting)
	}
	return keys, nil
}

// rule is what a refused value broke: its check's words, or the rule of
// a valid value when it was empty.
func (l keyList) rule(err error) string {
	if err.Error() != "empty" {
		return err.Error()
	}
	if msg := l.check("/"); msg != nil {
		return msg.Error()
	}
	return "a " + l.what + " is needed"
}

// readFile reads a file of keys, for a mounted secret: one "key=value"
// or "sha256:<64 hex digits>=value" per line (the hash of the key, so
// that the file need not hold the key itself), blank lines and lines
// starting with '#' ignored.
func (l keyList) readFile(path string) (map[KeyHash]string, error) {
	setting := l.setting + "_FILE"
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	out := map[KeyHash]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, err := l.pair(line)
		if err != nil {
			return nil, fmt.Errorf("%s %s line %d: not key=%s or sha256:<hex>=%s (%s)", setting, path, n, l.what, l.what, l.rule(err))
		}
		h := HashKey(k)
		if hexHash, hashed := strings.CutPrefix(k, "sha256:"); hashed {
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != len(h) {
				return nil, fmt.Errorf("%s %s line %d: sha256: needs 64 hex digits", setting, path, n)
			}
			copy(h[:], b)
		}
		if _, dup := out[h]; dup {
			return nil, fmt.Errorf("%s %s line %d: the key is listed twice", setting, path, n)
		}
		out[h] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %s lists no key", setting, path)
	}
	return out, nil
}

// hashes are the hashes of every key, from the file (when named) and
// the environment's keys, with their values. A key given twice must be
// given the same value.
func (l keyList) hashes(plain map[string]string, file string) (map[KeyHash]string, error) {
	out := map[KeyHash]string{}
	if file != "" {
		fromFile, err := l.readFile(file)
		if err != nil {
			return nil, err
		}
		out = fromFile
	}
	for k, v := range plain {
		h := HashKey(k)
		if other, dup := out[h]; dup && other != v {
			return nil, fmt.Errorf("%s: a key is given two %ss (%s and %s)", l.setting, l.what, other, v)
		}
		out[h] = v
	}
	return out, nil
}

// ReadAPIKeysFile reads a file of API keys (IDEMGATE_API_KEYS_FILE): one
// "key=tenant" or "sha256:<64 hex digits>=tenant" per line.
func ReadAPIKeysFile(path string) (map[KeyHash]string, error) { return apiKeys.readFile(path) }

// ParseAPIKeys reads "key1=tenant-a,key2=tenant-b".
func ParseAPIKeys(s string) (map[string]string, error) { return apiKeys.parse(s) }

// KeyHashes are the hashes of every API key, from IDEMGATE_API_KEYS and
// IDEMGATE_API_KEYS_FILE, with their tenants.
func (c Config) KeyHashes() (map[KeyHash]string, error) {
	return apiKeys.hashes(c.APIKeys, c.APIKeysFile)
}

// DevAPIKeys are the dev mode's default keys.
func DevAPIKeys() map[string]string {
	return map[string]string{"dev-key-a": "tenant-a", "dev-key-b": "tenant-b"}
}
