package command

import (
	"fmt"
	"strings"
)

// MaxKeyLength bounds an Idempotency-Key (after unquoting).
const MaxKeyLength = 255

// ParseIdempotencyKey reads an Idempotency-Key header value: a Structured
// Field string as in the IETF draft ("abc-123") or a bare token (abc-123).
// Both spellings of one key give the same key. The key is 1 to 255 visible
// ASCII characters.
func ParseIdempotencyKey(values []string) (string, *Problem) {
	if len(values) == 0 {
		return "", errKeyMissing()
	}
	if len(values) > 1 {
		return "", errKeyMalformed("send exactly one Idempotency-Key header")
	}
	raw := strings.Trim(values[0], " \t")
	if raw == "" {
		return "", errKeyMissing()
	}
	key := raw
	if raw[0] == '"' {
		k, err := unquoteSFString(raw)
		if err != nil {
			return "", errKeyMalformed(err.Error())
		}
		key = k
	}
	if len(key) == 0 || len(key) > MaxKeyLength {
		return "", errKeyMalformed(fmt.Sprintf("the key must be 1 to %d characters long", MaxKeyLength))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return "", errKeyMalformed("the key must be visible ASCII characters (0x21-0x7E)")
		}
	}
	return key, nil
}

// unquoteSFString parses an RFC 8941 sf-string: DQUOTE *chr DQUOTE, where
// only \" and \\ are escapes.
func unquoteSFString(s string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
				return "", fmt.Errorf("bad escape in quoted key")
			}
			b.WriteByte(s[i])
		case c == '"':
			if i != len(s)-1 {
				return "", fmt.Errorf("text after the closing quote")
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("the key must be visible ASCII characters")
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("missing closing quote")
}
