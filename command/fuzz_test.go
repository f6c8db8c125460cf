package command

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseIdempotencyKey: ParseIdempotencyKey never panics; a key it
// returns is 1 to 255 visible ASCII characters, and both spellings of that
// key (sf-string, and bare when it can be spelled bare) give it back; a
// rejection is a 400 of one of the two key problem types.
func FuzzParseIdempotencyKey(f *testing.F) {
	for _, s := range []string{
		"abc-123", `"abc-123"`, `"a\"b\\c"`, "", " ", `""`, `"`, `"abc`, `"abc"def`,
		`"a\nb"`, "a b", "clé", "a\x00b", "\t\"x\"\t", strings.Repeat("k", 255),
		strings.Repeat("k", 256), `"` + strings.Repeat(`\\`, 255) + `"`, `"abc\`, "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		key, p := ParseIdempotencyKey([]string{raw})
		if p != nil {
			if key != "" {
				t.Fatalf("ParseIdempotencyKey(%q) = %q alongside a problem", raw, key)
			}
			checkKeyProblem(t, raw, p)
		} else {
			if n := len(key); n < 1 || n > MaxKeyLength {
				t.Fatalf("ParseIdempotencyKey(%q) = %q: length %d, want 1..%d", raw, key, n, MaxKeyLength)
			}
			for i := 0; i < len(key); i++ {
				if c := key[i]; c < 0x21 || c > 0x7e {
					t.Fatalf("ParseIdempotencyKey(%q) = %q: byte %#x at %d is not visible ASCII", raw, key, c, i)
				}
			}
			quoted := sfQuote(key)
			if again, p := ParseIdempotencyKey([]string{quoted}); p != nil || again != key {
				t.Fatalf("ParseIdempotencyKey(%q) = %q; its sf-string %q parses to %q, %v", raw, key, quoted, again, p)
			}
			if key[0] != '"' {
				if again, p := ParseIdempotencyKey([]string{key}); p != nil || again != key {
					t.Fatalf("ParseIdempotencyKey(%q) = %q; the bare key parses to %q, %v", raw, key, again, p)
				}
			}
			if again, p := ParseIdempotencyKey([]string{" \t" + raw + "\t "}); p != nil || again != key {
				t.Fatalf("ParseIdempotencyKey(%q) = %q; with white space around it gives %q, %v", raw, key, again, p)
			}
		}
		// Two header values are never accepted, whatever they hold.
		key2, p := ParseIdempotencyKey([]string{raw, raw})
		if p == nil || key2 != "" {
			t.Fatalf("ParseIdempotencyKey(%q twice) = %q, %v, want a problem", raw, key2, p)
		}
		if p.Status != http.StatusBadRequest || !strings.HasSuffix(p.Type, typeKeyMalformed) {
			t.Fatalf("ParseIdempotencyKey(%q twice) = %d %s, want 400 %s", raw, p.Status, p.Type, typeKeyMalformed)
		}
	})
}

func checkKeyProblem(t *testing.T, raw string, p *Problem) {
	t.Helper()
	if p.Status != http.StatusBadRequest {
		t.Fatalf("ParseIdempotencyKey(%q) status = %d, want 400", raw, p.Status)
	}
	missing := strings.HasSuffix(p.Type, typeKeyMissing)
	if !missing && !strings.HasSuffix(p.Type, typeKeyMalformed) {
		t.Fatalf("ParseIdempotencyKey(%q) type = %q", raw, p.Type)
	}
	if blank := strings.Trim(raw, " \t") == ""; missing != blank {
		t.Fatalf("ParseIdempotencyKey(%q) type = %q; a blank value is missing, anything else malformed", raw, p.Type)
	}
}

// indentations are the white space FuzzCanonicalize re-indents with.
var indentations = []string{"", " ", "  ", "\t", "\n", " \t\r\n", "    "}

// FuzzCanonicalize: Canonicalize never panics; a canonical form is valid
// UTF-8 JSON and a fixed point; re-indenting the input, or decoding it and
// encoding it again with encoding/json, does not change its canonical
// form.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"amount":1000,"currency":"EUR","customer":"cus_1"}`,
		`{"customer":"cus_1","amount":1e3,"currency":"EUR"}`,
		`{ "amount" : 1000.0 }`,
		`{"a":1,"a":2}`,
		`{"\u00e9":"é","\ud83d\ude00":[1,2.5,-0,1E-7,1e21]}`,
		`[true,false,null,"\u0000\u001f\/"]`,
		`{"\ufb33":1,"😀":2,"€":3}`,
		`"\ud800"`,
		`1e400`,
		"{\"a\":\"\xff\"}",
		`{"a":[{"b":{}}],"c":""}`,
		`{"a":1}x`,
		`{"amount":9007199254740993}`,
	} {
		for i := range indentations {
			f.Add([]byte(s), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, indent uint8) {
		canonical, err := Canonicalize(data)
		if err != nil {
			if canonical != nil {
				t.Fatalf("Canonicalize(%q) = %q alongside error %v", data, canonical, err)
			}
			return
		}
		if !utf8.Valid(canonical) || !json.Valid(canonical) {
			t.Fatalf("Canonicalize(%q) = %q: not valid UTF-8 JSON", data, canonical)
		}
		again, err := Canonicalize(canonical)
		if err != nil || !bytes.Equal(again, canonical) {
			t.Fatalf("Canonicalize(%q) = %q; Canonicalize of that = %q, %v, want a fixed point", data, canonical, again, err)
		}
		if !json.Valid(data) {
			t.Fatalf("Canonicalize(%q) = %q, but encoding/json rejects the input", data, canonical)
		}

		prefix := indentations[int(indent)%len(indentations)]
		ind := indentations[int(indent/8)%len(indentations)]
		var indented bytes.Buffer
		if err := json.Indent(&indented, data, prefix, ind); err != nil {
			t.Fatalf("json.Indent(%q): %v", data, err)
		}
		if got, err := Canonicalize(indented.Bytes()); err != nil || !bytes.Equal(got, canonical) {
			t.Fatalf("Canonicalize(%q) = %q; re-indented %q gives %q, %v", data, canonical, indented.Bytes(), got, err)
		}

		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", data, err)
		}
		reencoded, err := json.MarshalIndent(v, prefix, ind)
		if err != nil {
			t.Fatalf("json.MarshalIndent of %q: %v", data, err)
		}
		if got, err := Canonicalize(reencoded); err != nil || !bytes.Equal(got, canonical) {
			t.Fatalf("Canonicalize(%q) = %q; re-encoded %q gives %q, %v", data, canonical, reencoded, got, err)
		}
	})
}
