package command

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// MaxBodyBytes bounds a request body (413 above it).
const MaxBodyBytes = 1 << 20

// readJSONBody checks the media type, reads at most MaxBodyBytes and
// returns the body with its RFC 8785 canonical form.
func readJSONBody(r *http.Request) (body, canonical []byte, p *Problem) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nil, nil, errUnsupportedMediaType(ct)
	}
	body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, nil, errTooLarge(MaxBodyBytes)
		}
		return nil, nil, errMalformedJSON("the body could not be read")
	}
	if !json.Valid(body) {
		return nil, nil, errMalformedJSON("the body is not valid JSON")
	}
	canonical, err = Canonicalize(body)
	if err != nil {
		return nil, nil, errMalformedJSON(err.Error())
	}
	return body, canonical, nil
}

// Canonicalize returns the RFC 8785 (JCS) canonical form of a JSON text:
// sorted keys, no white space, numbers spelled as ECMAScript does, so that
// {"amount":1000.0} and { "amount" : 1e3 } are one request.
func Canonicalize(body []byte) ([]byte, error) {
	c, err := jcs.Transform(body)
	if err != nil {
		return nil, fmt.Errorf("the body has no canonical JSON form: %w", err)
	}
	return c, nil
}

// Fingerprint identifies a request: the operation, its path target and
// its canonical body. Equal fingerprints mean the same request.
func Fingerprint(operation, target string, canonical []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(operation), operation, len(target), target)
	h.Write(canonical)
	return h.Sum(nil)
}

// object decodes a JSON object into its members, refusing anything else
// and any member not in allowed.
func object(body []byte, allowed ...string) (map[string]json.RawMessage, *Problem) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errValidation("the body must be a JSON object")
	}
	for name := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return nil, errValidation(fmt.Sprintf("unknown field %q", name))
		}
	}
	return m, nil
}

// positiveAmount reads a JSON number with an integer value in
// 1..MaxAmount: 1000, 1000.0 and 1e3 are all 1000; 1.5 and "1000" are not
// amounts.
func positiveAmount(m map[string]json.RawMessage, name string, max int64) (int64, *Problem) {
	raw, ok := m[name]
	if !ok {
		return 0, errValidation(fmt.Sprintf("%q is required", name))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, errValidation(fmt.Sprintf("%q must be a number", name))
	}
	num, isNum := v.(json.Number)
	if !isNum {
		return 0, errValidation(fmt.Sprintf("%q must be a number, not %s", name, jsonKind(v)))
	}
	rat, ok := new(big.Rat).SetString(num.String())
	if !ok || !rat.IsInt() {
		return 0, errValidation(fmt.Sprintf("%q must be a whole number of minor units", name))
	}
	n := rat.Num()
	if n.Sign() <= 0 || !n.IsInt64() || n.Int64() > max {
		return 0, errValidation(fmt.Sprintf("%q must be between 1 and %d", name, max))
	}
	return n.Int64(), nil
}

// stringField reads a JSON string of minLen..maxLen characters and no
// NUL; an absent optional field (or null) gives present=false.
func stringField(m map[string]json.RawMessage, name string, required bool, minLen, maxLen int) (s string, present bool, p *Problem) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", false, errValidation(fmt.Sprintf("%q is required", name))
		}
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, errValidation(fmt.Sprintf("%q must be a string", name))
	}
	// SQL text columns cannot hold NUL: refused here, a NUL would make
	// the command fail in the projector and be recorded as a 500.
	if strings.ContainsRune(s, 0) {
		return "", false, errValidation(fmt.Sprintf("%q must not contain NUL (U+0000)", name))
	}
	if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
		return "", false, errValidation(fmt.Sprintf("%q must be %d to %d characters long", name, minLen, maxLen))
	}
	return s, true, nil
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func jsonKind(v any) string {
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
