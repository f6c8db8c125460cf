package command

import (
	"net/http"
	"strings"
	"testing"
)

const (
	typeKeyMissing   = "/idempotency-key-missing"
	typeKeyMalformed = "/idempotency-key-malformed"
)

// visibleASCII is every character a key may hold, 0x21 to 0x7E.
func visibleASCII() string {
	var b strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

// sfQuote spells key as an RFC 8941 sf-string.
func sfQuote(key string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		if key[i] == '"' || key[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
	b.WriteByte('"')
	return b.String()
}

func TestParseIdempotencyKey(t *testing.T) {
	k255 := strings.Repeat("k", 255)
	k256 := strings.Repeat("k", 256)
	tests := []struct {
		name     string
		values   []string
		wantKey  string
		wantType string // "" means success
	}{
		{name: "OKBare", values: []string{"abc-123"}, wantKey: "abc-123"},
		{name: "OKQuoted", values: []string{`"abc-123"`}, wantKey: "abc-123"},
		{name: "OKQuotedEscapedQuote", values: []string{`"a\"b"`}, wantKey: `a"b`},
		{name: "OKQuotedEscapedBackslash", values: []string{`"a\\b"`}, wantKey: `a\b`},
		{name: "OKQuotedOnlyEscapes", values: []string{`"\"\\"`}, wantKey: `"\`},
		{name: "OKQuotedStartsWithEscapedQuote", values: []string{`"\"abc"`}, wantKey: `"abc`},
		{name: "OKSingleChar", values: []string{"x"}, wantKey: "x"},
		{name: "OKSingleCharQuoted", values: []string{`"x"`}, wantKey: "x"},
		{name: "OKUUID", values: []string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, wantKey: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{name: "OKAllVisibleASCIIBare", values: []string{visibleASCII()}, wantKey: visibleASCII()},
		{name: "OKAllVisibleASCIIQuoted", values: []string{sfQuote(visibleASCII())}, wantKey: visibleASCII()},
		{name: "OKBareWithBackslash", values: []string{`a\b`}, wantKey: `a\b`},
		{name: "OKCaseKept", values: []string{"AbC"}, wantKey: "AbC"},

		{name: "OK255Bare", values: []string{k255}, wantKey: k255},
		{name: "OK255Quoted", values: []string{`"` + k255 + `"`}, wantKey: k255},
		{name: "OK255QuotedAllEscapes", values: []string{`"` + strings.Repeat(`\"`, 255) + `"`}, wantKey: strings.Repeat(`"`, 255)},
		{name: "ErrTooLong256Bare", values: []string{k256}, wantType: typeKeyMalformed},
		{name: "ErrTooLong256Quoted", values: []string{`"` + k256 + `"`}, wantType: typeKeyMalformed},
		{name: "ErrTooLong256QuotedAllEscapes", values: []string{`"` + strings.Repeat(`\\`, 256) + `"`}, wantType: typeKeyMalformed},
		{name: "ErrTooLong1000Bare", values: []string{strings.Repeat("k", 1000)}, wantType: typeKeyMalformed},

		{name: "OKSpacesAround", values: []string{"  abc  "}, wantKey: "abc"},
		{name: "OKTabsAround", values: []string{"\tabc\t"}, wantKey: "abc"},
		{name: "OKSpacesAroundQuoted", values: []string{` "abc" `}, wantKey: "abc"},
		{name: "OKTabsAroundQuoted", values: []string{"\t\"abc\"\t"}, wantKey: "abc"},

		{name: "ErrMissingNil", values: nil, wantType: typeKeyMissing},
		{name: "ErrMissingNoValues", values: []string{}, wantType: typeKeyMissing},
		{name: "ErrEmpty", values: []string{""}, wantType: typeKeyMissing},
		{name: "ErrOnlySpaces", values: []string{"   "}, wantType: typeKeyMissing},
		{name: "ErrOnlyTabs", values: []string{"\t\t"}, wantType: typeKeyMissing},
		// A present, well-formed but empty sf-string is a malformed key,
		// not a missing header.
		{name: "ErrQuotedEmpty", values: []string{`""`}, wantType: typeKeyMalformed},
		{name: "ErrQuotedEmptySpacesAround", values: []string{` "" `}, wantType: typeKeyMalformed},

		{name: "ErrTwoHeaders", values: []string{"abc", "def"}, wantType: typeKeyMalformed},
		{name: "ErrTwoHeadersSameKey", values: []string{"abc", "abc"}, wantType: typeKeyMalformed},
		{name: "ErrTwoHeadersOneEmpty", values: []string{"abc", ""}, wantType: typeKeyMalformed},
		{name: "ErrTwoHeadersBothEmpty", values: []string{"", ""}, wantType: typeKeyMalformed},
		{name: "ErrThreeHeaders", values: []string{"a", "b", "c"}, wantType: typeKeyMalformed},
		{name: "ErrListInOneValue", values: []string{"abc, def"}, wantType: typeKeyMalformed},
		{name: "ErrQuotedListInOneValue", values: []string{`"abc", "def"`}, wantType: typeKeyMalformed},

		{name: "ErrNULBare", values: []string{"a\x00b"}, wantType: typeKeyMalformed},
		{name: "ErrTabInsideBare", values: []string{"a\tb"}, wantType: typeKeyMalformed},
		{name: "ErrNewlineBare", values: []string{"a\nb"}, wantType: typeKeyMalformed},
		{name: "ErrCRLFBare", values: []string{"abc\r\n"}, wantType: typeKeyMalformed},
		{name: "ErrDELBare", values: []string{"a\x7fb"}, wantType: typeKeyMalformed},
		{name: "ErrNULQuoted", values: []string{"\"a\x00b\""}, wantType: typeKeyMalformed},
		{name: "ErrTabInsideQuoted", values: []string{"\"a\tb\""}, wantType: typeKeyMalformed},
		{name: "ErrDELQuoted", values: []string{"\"a\x7fb\""}, wantType: typeKeyMalformed},
		{name: "ErrOnlyControl", values: []string{"\x01"}, wantType: typeKeyMalformed},

		{name: "ErrSpaceInsideBare", values: []string{"abc def"}, wantType: typeKeyMalformed},
		{name: "ErrSpaceInsideQuoted", values: []string{`"abc def"`}, wantType: typeKeyMalformed},
		{name: "ErrOnlySpaceQuoted", values: []string{`" "`}, wantType: typeKeyMalformed},

		{name: "ErrNonASCIIBare", values: []string{"clé"}, wantType: typeKeyMalformed},
		{name: "ErrNonASCIIQuoted", values: []string{`"clé"`}, wantType: typeKeyMalformed},
		{name: "ErrEmojiBare", values: []string{"key-😀"}, wantType: typeKeyMalformed},
		{name: "ErrInvalidUTF8Bare", values: []string{"ab\xffcd"}, wantType: typeKeyMalformed},
		{name: "ErrInvalidUTF8Quoted", values: []string{"\"ab\xffcd\""}, wantType: typeKeyMalformed},
		{name: "ErrNBSPBare", values: []string{"\u00a0abc"}, wantType: typeKeyMalformed},

		{name: "ErrUnterminatedQuote", values: []string{`"abc`}, wantType: typeKeyMalformed},
		{name: "ErrLoneQuote", values: []string{`"`}, wantType: typeKeyMalformed},
		{name: "ErrUnterminatedEscapedClose", values: []string{`"abc\"`}, wantType: typeKeyMalformed},
		{name: "ErrUnterminatedTrailingBackslash", values: []string{`"abc\`}, wantType: typeKeyMalformed},

		{name: "ErrTextAfterClosingQuote", values: []string{`"abc"def`}, wantType: typeKeyMalformed},
		{name: "ErrQuoteAfterClosingQuote", values: []string{`"abc""`}, wantType: typeKeyMalformed},
		{name: "ErrTwoStrings", values: []string{`"abc" "def"`}, wantType: typeKeyMalformed},
		{name: "ErrParameters", values: []string{`"abc";a=1`}, wantType: typeKeyMalformed},

		{name: "ErrBadEscapeN", values: []string{`"a\nb"`}, wantType: typeKeyMalformed},
		{name: "ErrBadEscapeU", values: []string{`"\u0041"`}, wantType: typeKeyMalformed},
		{name: "ErrBadEscapeSlash", values: []string{`"a\/b"`}, wantType: typeKeyMalformed},
		{name: "ErrBadEscapeSpace", values: []string{`"a\ b"`}, wantType: typeKeyMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := ParseIdempotencyKey(tt.values)
			if tt.wantType == "" {
				if p != nil {
					t.Fatalf("ParseIdempotencyKey(%q) = problem %s (%s), want key %q", tt.values, p.Type, p.Detail, tt.wantKey)
				}
				if got != tt.wantKey {
					t.Fatalf("ParseIdempotencyKey(%q) = %q, want %q", tt.values, got, tt.wantKey)
				}
				return
			}
			if p == nil {
				t.Fatalf("ParseIdempotencyKey(%q) = key %q, want problem %s", tt.values, got, tt.wantType)
			}
			if got != "" {
				t.Errorf("ParseIdempotencyKey(%q) key = %q alongside a problem, want \"\"", tt.values, got)
			}
			if p.Status != http.StatusBadRequest {
				t.Errorf("ParseIdempotencyKey(%q) status = %d, want %d", tt.values, p.Status, http.StatusBadRequest)
			}
			if !strings.HasSuffix(p.Type, tt.wantType) {
				t.Errorf("ParseIdempotencyKey(%q) type = %q, want suffix %q", tt.values, p.Type, tt.wantType)
			}
			if p.Detail == "" {
				t.Errorf("ParseIdempotencyKey(%q) problem has no detail", tt.values)
			}
		})
	}
}

// TestParseIdempotencyKeySpellings checks that the bare and the quoted
// spelling of one key are the same key, and that different keys stay
// different.
func TestParseIdempotencyKeySpellings(t *testing.T) {
	t.Run("OKSameKey", func(t *testing.T) {
		for _, key := range []string{
			"abc-123", "x", `a\b`, "ABC", strings.Repeat("z", 255), visibleASCII(),
			"8e03978e-40d5-43e8-bc93-6894a57f9324", "a:b/c*d", "!#$%&'*+-.^_`|~",
		} {
			bare, p := ParseIdempotencyKey([]string{key})
			if p != nil {
				t.Fatalf("bare %q: problem %s", key, p.Detail)
			}
			quoted, p := ParseIdempotencyKey([]string{sfQuote(key)})
			if p != nil {
				t.Fatalf("quoted %q: problem %s", sfQuote(key), p.Detail)
			}
			if bare != quoted || bare != key {
				t.Fatalf("bare %q gives %q, quoted %q gives %q, want both %q", key, bare, sfQuote(key), quoted, key)
			}
		}
	})
	t.Run("OKDifferentKeys", func(t *testing.T) {
		pairs := [][2]string{
			{"abc", "ABC"},
			{`"abc"`, `"abd"`},
			{`"a\\b"`, `a\\b`},
			{`"\"abc\""`, "abc"},
			{"abc", "abc-"},
		}
		for _, pair := range pairs {
			a, pa := ParseIdempotencyKey([]string{pair[0]})
			b, pb := ParseIdempotencyKey([]string{pair[1]})
			if pa != nil || pb != nil {
				t.Fatalf("%q, %q: unexpected problems %v, %v", pair[0], pair[1], pa, pb)
			}
			if a == b {
				t.Fatalf("%q and %q both give %q, want different keys", pair[0], pair[1], a)
			}
		}
	})
}
