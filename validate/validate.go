// Package validate reads the members of a JSON request body for an
// operation's Validate function, answering every mistake with the 422
// problem (idemgate.Invalid) that the API returns before the claim.
package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/idemgate/idemgate"
)

// Object decodes a JSON object into its members, refusing anything else
// and any member not in allowed.
func Object(body []byte, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, idemgate.Invalid("the body must be a JSON object")
	}
	for name := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return nil, idemgate.Invalid(fmt.Sprintf("unknown field %q", name))
		}
	}
	return m, nil
}

// PositiveInt reads a required JSON number with an integer value in
// 1..max: 1000, 1000.0 and 1e3 are all 1000; 1.5 and "1000" are not.
func PositiveInt(m map[string]json.RawMessage, name string, max int64) (int64, error) {
	raw, ok := m[name]
	if !ok {
		return 0, idemgate.Invalid(fmt.Sprintf("%q is required", name))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, idemgate.Invalid(fmt.Sprintf("%q must be a number", name))
	}
	num, isNum := v.(json.Number)
	if !isNum {
		return 0, idemgate.Invalid(fmt.Sprintf("%q must be a number, not %s", name, kind(v)))
	}
	rat, ok := new(big.Rat).SetString(num.String())
	if !ok || !rat.IsInt() {
		return 0, idemgate.Invalid(fmt.Sprintf("%q must be a whole number", name))
	}
	n := rat.Num()
	if n.Sign() <= 0 || !n.IsInt64() || n.Int64() > max {
		return 0, idemgate.Invalid(fmt.Sprintf("%q must be between 1 and %d", name, max))
	}
	return n.Int64(), nil
}

// String reads a JSON string of minLen..maxLen characters and no NUL; an
// absent optional member (or null) gives present=false.
func String(m map[string]json.RawMessage, name string, required bool, minLen, maxLen int) (s string, present bool, err error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", false, idemgate.Invalid(fmt.Sprintf("%q is required", name))
		}
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, idemgate.Invalid(fmt.Sprintf("%q must be a string", name))
	}
	// SQL text columns cannot hold NUL: refused here, a NUL would make
	// the command fail in the projector and be recorded as a 500.
	if strings.ContainsRune(s, 0) {
		return "", false, idemgate.Invalid(fmt.Sprintf("%q must not contain NUL (U+0000)", name))
	}
	if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
		return "", false, idemgate.Invalid(fmt.Sprintf("%q must be %d to %d characters long", name, minLen, maxLen))
	}
	return s, true, nil
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a value of another type"
}
