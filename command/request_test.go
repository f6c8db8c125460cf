package command

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "OKKeyOrder", in: `{"currency":"EUR","amount":1000,"customer":"c"}`, want: `{"amount":1000,"currency":"EUR","customer":"c"}`},
		{name: "OKNestedKeyOrder", in: `{"b":{"z":1,"y":[{"d":1,"c":2}]},"a":null}`, want: `{"a":null,"b":{"y":[{"c":2,"d":1}],"z":1}}`},
		{name: "OKArrayOrderKept", in: `[3,1,2]`, want: `[3,1,2]`},
		// RFC 8785 3.2.3: members are sorted by UTF-16 code units, so
		// U+1F600 (D83D DE00) comes before U+FB33 although its UTF-8
		// encoding sorts after.
		{name: "OKKeyOrderUTF16", in: `{"\ufb33":1,"😀":2,"€":3,"ö":4,"\u0080":5,"1":6,"\r":7}`, want: "{\"\\r\":7,\"1\":6,\"\u0080\":5,\"ö\":4,\"€\":3,\"😀\":2,\"\ufb33\":1}"},
		{name: "OKWhitespace", in: " \n\t{ \"a\" :\r\n [ 1 , 2 ] ,\"b\" : { } } \n", want: `{"a":[1,2],"b":{}}`},
		{name: "OKEmptyObject", in: `{}`, want: `{}`},
		{name: "OKTopLevelScalar", in: ` 42 `, want: `42`},
		{name: "OKLiterals", in: `[true,false,null]`, want: `[true,false,null]`},

		{name: "OKNumberInteger", in: `{"amount":1000}`, want: `{"amount":1000}`},
		{name: "OKNumberFraction", in: `{"amount":1000.0}`, want: `{"amount":1000}`},
		{name: "OKNumberFractionZeros", in: `{"amount":1000.000}`, want: `{"amount":1000}`},
		{name: "OKNumberExponent", in: `{"amount":1e3}`, want: `{"amount":1000}`},
		{name: "OKNumberExponentUpper", in: `{"amount":1E3}`, want: `{"amount":1000}`},
		{name: "OKNumberExponentPlus", in: `{"amount":1e+3}`, want: `{"amount":1000}`},
		{name: "OKNumber10e2", in: `{"amount":10e2}`, want: `{"amount":1000}`},
		{name: "OKNumberNegativeExponent", in: `{"amount":100000e-2}`, want: `{"amount":1000}`},
		{name: "OKNumberFractionExponent", in: `{"amount":1.0e3}`, want: `{"amount":1000}`},
		{name: "OKNumberMinusZero", in: `-0`, want: `0`},
		{name: "OKNumberMinusZeroFraction", in: `-0.0e5`, want: `0`},
		{name: "OKNumberFractional", in: `1.50`, want: `1.5`},
		{name: "OKNumberLarge", in: `1e21`, want: `1e+21`},
		{name: "OKNumberBelow1e21", in: `1e20`, want: `100000000000000000000`},
		{name: "OKNumberSmall", in: `0.000001`, want: `0.000001`},
		{name: "OKNumberTiny", in: `0.0000001`, want: `1e-7`},
		{name: "OKNumberMaxSafe", in: `9007199254740991`, want: `9007199254740991`},

		{name: "OKStringEscapeE", in: `"\u00e9"`, want: `"é"`},
		{name: "OKStringEscapeUpperHex", in: `"\u00E9"`, want: `"é"`},
		{name: "OKStringEscapeASCII", in: `"\u0041"`, want: `"A"`},
		{name: "OKStringEscapeSolidus", in: `"a\/b"`, want: `"a/b"`},
		{name: "OKStringSurrogatePair", in: `"\ud83d\ude00"`, want: `"😀"`},
		{name: "OKStringControlEscapes", in: `"\u0008\u0009\u000a\u000c\u000d\u001f"`, want: `"\b\t\n\f\r\u001f"`},
		{name: "OKStringHTMLChars", in: `"\u003c\u003e\u0026"`, want: `"<>&"`},
		{name: "OKStringDELRaw", in: "\"\\u007f\"", want: "\"\x7f\""},
		{name: "OKKeyEscaped", in: `{"\u0061":1}`, want: `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonicalize(%q) error: %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonicalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("Canonicalize(%q) = %q, %v, want the fixed point %q", got, again, err, got)
			}
		})
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "ErrDuplicateKey", in: `{"a":1,"a":2}`},
		{name: "ErrDuplicateKeySameValue", in: `{"a":1,"a":1}`},
		{name: "ErrDuplicateKeyEscaped", in: `{"é":1,"\u00e9":2}`},
		{name: "ErrDuplicateKeyNested", in: `{"x":{"amount":1,"amount":1000}}`},
		{name: "ErrDuplicateKeyInArray", in: `[{"a":1,"b":2,"a":3}]`},
		{name: "ErrDuplicateAmount", in: `{"amount":1000,"currency":"EUR","amount":1}`},

		{name: "ErrEmpty", in: ``},
		{name: "ErrWhitespaceOnly", in: " \n"},
		{name: "ErrUnterminatedObject", in: `{"a":1`},
		{name: "ErrUnterminatedArray", in: `[1,2`},
		{name: "ErrUnterminatedString", in: `{"a":"b}`},
		{name: "ErrTrailingCommaObject", in: `{"a":1,}`},
		{name: "ErrTrailingCommaArray", in: `[1,]`},
		{name: "ErrLeadingComma", in: `[,1]`},
		{name: "ErrMissingColon", in: `{"a" 1}`},
		{name: "ErrMissingComma", in: `{"a":1 "b":2}`},
		{name: "ErrSpaceInNumber", in: `[1 2]`},
		{name: "ErrTrailingValue", in: `{"a":1} {"b":2}`},
		{name: "ErrTrailingGarbage", in: `{"a":1}x`},
		{name: "ErrSingleQuotes", in: `{'a':1}`},
		{name: "ErrUnquotedKey", in: `{a:1}`},
		{name: "ErrMismatchedBrackets", in: `{"a":1]`},
		{name: "ErrLeadingZero", in: `{"a":01}`},
		{name: "ErrLeadingPlus", in: `{"a":+1}`},
		{name: "ErrBareDot", in: `{"a":1.}`},
		{name: "ErrHexNumber", in: `{"a":0x10}`},
		{name: "ErrNaN", in: `{"a":NaN}`},
		{name: "ErrInfinity", in: `{"a":Infinity}`},
		{name: "ErrNumberOutOfRange", in: `{"a":1e400}`},
		{name: "ErrBadLiteral", in: `nul`},
		{name: "ErrUpperCaseLiteral", in: `True`},
		{name: "ErrRawControlInString", in: "\"a\nb\""},
		{name: "ErrBadEscape", in: `"\x41"`},
		{name: "ErrShortUnicodeEscape", in: `"\u00e"`},
		{name: "ErrLoneHighSurrogate", in: `"\ud800"`},
		{name: "ErrLoneLowSurrogate", in: `"\udc00"`},
		{name: "ErrSwappedSurrogates", in: `"\ude00\ud83d"`},
		{name: "ErrInvalidUTF8", in: "\"\xff\""},
		{name: "ErrTruncatedUTF8", in: "\"\xc3\""},
		{name: "ErrNonASCIIOutsideString", in: "{\"a\":1}\u00a0"},
		{name: "ErrTooDeep", in: strings.Repeat("[", 10001) + strings.Repeat("]", 10001)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err == nil {
				t.Fatalf("Canonicalize(%q) = %q, want an error", tt.in, got)
			}
			if got != nil {
				t.Errorf("Canonicalize(%q) returned %q alongside error %v, want nil", tt.in, got, err)
			}
		})
	}
}

// TestCanonicalizeEquivalent checks that every spelling in a group gives
// one canonical form and one fingerprint.
func TestCanonicalizeEquivalent(t *testing.T) {
	groups := []struct {
		name      string
		spellings []string
	}{
		{name: "OKAmountSpellings", spellings: []string{
			`{"amount":1000,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":1000.0,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":1e3,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":1E3,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":10e2,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":1.000e+3,"currency":"EUR","customer":"cus_1"}`,
			`{"amount":10000e-1,"currency":"EUR","customer":"cus_1"}`,
			`{ "customer" : "cus_1" , "currency" : "EUR" , "amount" : 1000 }`,
			"{\n  \"currency\": \"EUR\",\n  \"customer\": \"cus_1\",\n  \"amount\": 1e3\n}\n",
			`{"amount":1000,"currency":"\u0045UR","customer":"cus\u005f1"}`,
		}},
		{name: "OKUnicodeEscapes", spellings: []string{
			`{"customer":"José"}`,
			`{"customer":"Jos\u00e9"}`,
			`{"customer":"Jos\u00E9"}`,
			`{"\u0063ustomer":"Jos\u00e9"}`,
		}},
		{name: "OKSolidus", spellings: []string{`{"d":"a/b"}`, `{"d":"a\/b"}`, `{"d":"a\u002fb"}`}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			first, err := Canonicalize([]byte(g.spellings[0]))
			if err != nil {
				t.Fatalf("Canonicalize(%q) error: %v", g.spellings[0], err)
			}
			firstFP := Fingerprint("payments.create", "", first)
			for _, s := range g.spellings[1:] {
				got, err := Canonicalize([]byte(s))
				if err != nil {
					t.Fatalf("Canonicalize(%q) error: %v", s, err)
				}
				if !bytes.Equal(got, first) {
					t.Errorf("Canonicalize(%q) = %q, want %q", s, got, first)
				}
				if fp := Fingerprint("payments.create", "", got); !bytes.Equal(fp, firstFP) {
					t.Errorf("Fingerprint of %q = %x, want %x", s, fp, firstFP)
				}
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	canon := func(s string) []byte {
		t.Helper()
		c, err := Canonicalize([]byte(s))
		if err != nil {
			t.Fatalf("Canonicalize(%q): %v", s, err)
		}
		return c
	}
	body := canon(`{"amount":1000,"currency":"EUR","customer":"cus_1"}`)

	// Fingerprints are stored with claimed keys; a change of their layout
	// would turn every retry across a deploy into a 409.
	t.Run("OKStableLayout", func(t *testing.T) {
		got := hex.EncodeToString(Fingerprint("payments.create", "", []byte(`{"amount":1000}`)))
		sum := sha256.Sum256([]byte(`15:payments.create0:{"amount":1000}`))
		if want := hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("Fingerprint = %s, want %s", got, want)
		}
		got = hex.EncodeToString(Fingerprint("refunds.create", "pay_1", []byte(`{"amount":5}`)))
		sum = sha256.Sum256([]byte(`14:refunds.create5:pay_1{"amount":5}`))
		if want := hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("Fingerprint = %s, want %s", got, want)
		}
	})

	base := Fingerprint("payments.create", "", body)
	tests := []struct {
		name      string
		operation string
		target    string
		canonical []byte
	}{
		{name: "OKDifferentAmount", operation: "payments.create", canonical: canon(`{"amount":1001,"currency":"EUR","customer":"cus_1"}`)},
		{name: "OKDifferentCurrency", operation: "payments.create", canonical: canon(`{"amount":1000,"currency":"USD","customer":"cus_1"}`)},
		{name: "OKDifferentCustomer", operation: "payments.create", canonical: canon(`{"amount":1000,"currency":"EUR","customer":"cus_2"}`)},
		{name: "OKExtraDescription", operation: "payments.create", canonical: canon(`{"amount":1000,"currency":"EUR","customer":"cus_1","description":null}`)},
		{name: "OKAmountAsString", operation: "payments.create", canonical: canon(`{"amount":"1000","currency":"EUR","customer":"cus_1"}`)},
		{name: "OKDifferentOperation", operation: "refunds.create", canonical: body},
		{name: "OKDifferentTarget", operation: "payments.create", target: "pay_1", canonical: body},
		{name: "OKEmptyOperation", operation: "", canonical: body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.operation, tt.target, tt.canonical); bytes.Equal(got, base) {
				t.Fatalf("Fingerprint(%q, %q, %q) = %x, the same as for the base request", tt.operation, tt.target, tt.canonical, got)
			}
		})
	}

	// The operation, target and body are delimited: moving bytes from one
	// to the next must not give the same fingerprint.
	t.Run("OKBoundaries", func(t *testing.T) {
		type in struct{ op, target, canonical string }
		ins := []in{
			{"refunds.create", "pay_1", `{"amount":5}`},
			{"refunds.create", "pay_2", `{"amount":5}`},
			{"refunds.create", "pay_1{", `"amount":5}`},
			{"refunds.createp", "ay_1", `{"amount":5}`},
			{"refunds.create5:pay_1", "", `{"amount":5}`},
			{"refunds.create", "", `pay_1{"amount":5}`},
			{"", "refunds.create", `{"amount":5}`},
			{"ab", "", "{}"},
			{"a", "b", "{}"},
			{"", "ab", "{}"},
			{"", "", "ab{}"},
		}
		seen := map[string]in{}
		for _, x := range ins {
			fp := string(Fingerprint(x.op, x.target, []byte(x.canonical)))
			if prev, ok := seen[fp]; ok {
				t.Fatalf("Fingerprint%q = Fingerprint%q", x, prev)
			}
			seen[fp] = x
		}
	})
	t.Run("OKPerTarget", func(t *testing.T) {
		a := Fingerprint("refunds.create", "pay_1", canon(`{"amount":5}`))
		b := Fingerprint("refunds.create", "pay_2", canon(`{"amount":5}`))
		if bytes.Equal(a, b) {
			t.Fatalf("refunds of pay_1 and pay_2 share fingerprint %x", a)
		}
	})
}
