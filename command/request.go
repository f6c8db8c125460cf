package command

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

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
