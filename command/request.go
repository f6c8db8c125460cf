package command

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gowebpki/jcs"

	"github.com/idemgate/idemgate"
)

// MaxBodyBytes bounds a request body (413 above it).
const MaxBodyBytes = 1 << 20

// MaxNumberLength bounds a number literal in a request body: longer ones
// are refused (422) before anything parses them, since turning a
// million-digit literal into a number costs seconds of CPU.
const MaxNumberLength = 40

// checkContentHeaders refuses, before the body is read, a body that is
// not JSON or that comes in an encoding the API does not decode.
func checkContentHeaders(r *http.Request) *Problem {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errUnsupportedMediaType(ct)
	}
	for _, enc := range r.Header.Values("Content-Encoding") {
		for _, e := range strings.Split(enc, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "identity") {
				return errUnsupportedEncoding(e)
			}
		}
	}
	return nil
}

// readJSONBody reads at most MaxBodyBytes and returns the body with its
// RFC 8785 canonical form.
func readJSONBody(r *http.Request) (body, canonical []byte, p *Problem) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
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
	if n := longestNumber(body); n > MaxNumberLength {
		return nil, nil, idemgate.Invalid(fmt.Sprintf("a number of %d characters: numbers may have at most %d", n, MaxNumberLength))
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

// longestNumber returns the length of the longest number literal in a
// valid JSON text, in one pass and without parsing any.
func longestNumber(body []byte) int {
	longest, run := 0, 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		case c == '"':
			inString = true
		case c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E':
			run++
			longest = max(longest, run)
			continue
		}
		run = 0
	}
	return longest
}
