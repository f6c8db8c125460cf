package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// KeyHash is the SHA-256 of an API key: what the API keeps and compares,
// never the key itself.
type KeyHash = [32]byte

// HashKey hashes an API key.
func HashKey(key string) KeyHash { return sha256.Sum256([]byte(key)) }

// ReadAPIKeysFile reads a file of API keys, for a mounted secret: one
// "key=tenant" or "sha256:<64 hex digits>=tenant" per line (the hash of
// the key, so that the file need not hold the key itself), blank lines
// and lines starting with '#' ignored.
func ReadAPIKeysFile(path string) (map[KeyHash]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("IDEMGATE_API_KEYS_FILE: %w", err)
	}
	out := map[KeyHash]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, tenant, ok := strings.Cut(line, "=")
		k, tenant = strings.TrimSpace(k), strings.TrimSpace(tenant)
		if !ok || k == "" || tenant == "" || strings.Contains(tenant, "/") {
			return nil, fmt.Errorf("IDEMGATE_API_KEYS_FILE %s line %d: not key=tenant or sha256:<hex>=tenant (tenants may not contain '/')", path, n)
		}
		h := HashKey(k)
		if hexHash, hashed := strings.CutPrefix(k, "sha256:"); hashed {
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != len(h) {
				return nil, fmt.Errorf("IDEMGATE_API_KEYS_FILE %s line %d: sha256: needs 64 hex digits", path, n)
			}
			copy(h[:], b)
		}
		if _, dup := out[h]; dup {
			return nil, fmt.Errorf("IDEMGATE_API_KEYS_FILE %s line %d: the key is listed twice", path, n)
		}
		out[h] = tenant
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("IDEMGATE_API_KEYS_FILE %s lists no key", path)
	}
	return out, nil
}
