package command

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/idemgate/idemgate"
)

const typeValidationFailed = "/validation-failed"

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
			firstFP := Fingerprint(idemgate.OpCreatePayment, "", first)
			for _, s := range g.spellings[1:] {
				got, err := Canonicalize([]byte(s))
				if err != nil {
					t.Fatalf("Canonicalize(%q) error: %v", s, err)
				}
				if !bytes.Equal(got, first) {
					t.Errorf("Canonicalize(%q) = %q, want %q", s, got, first)
				}
				if fp := Fingerprint(idemgate.OpCreatePayment, "", got); !bytes.Equal(fp, firstFP) {
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

	t.Run("OKLength", func(t *testing.T) {
		if got := len(Fingerprint(idemgate.OpCreatePayment, "", body)); got != sha256.Size {
			t.Fatalf("len(Fingerprint) = %d, want %d", got, sha256.Size)
		}
	})
	t.Run("OKDeterministic", func(t *testing.T) {
		a := Fingerprint(idemgate.OpCreateRefund, "pay_1", body)
		b := Fingerprint(idemgate.OpCreateRefund, "pay_1", append([]byte(nil), body...))
		if !bytes.Equal(a, b) {
			t.Fatalf("Fingerprint differs between calls: %x, %x", a, b)
		}
	})
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

	base := Fingerprint(idemgate.OpCreatePayment, "", body)
	tests := []struct {
		name      string
		operation string
		target    string
		canonical []byte
	}{
		{name: "OKDifferentAmount", operation: idemgate.OpCreatePayment, canonical: canon(`{"amount":1001,"currency":"EUR","customer":"cus_1"}`)},
		{name: "OKDifferentCurrency", operation: idemgate.OpCreatePayment, canonical: canon(`{"amount":1000,"currency":"USD","customer":"cus_1"}`)},
		{name: "OKDifferentCustomer", operation: idemgate.OpCreatePayment, canonical: canon(`{"amount":1000,"currency":"EUR","customer":"cus_2"}`)},
		{name: "OKExtraDescription", operation: idemgate.OpCreatePayment, canonical: canon(`{"amount":1000,"currency":"EUR","customer":"cus_1","description":null}`)},
		{name: "OKAmountAsString", operation: idemgate.OpCreatePayment, canonical: canon(`{"amount":"1000","currency":"EUR","customer":"cus_1"}`)},
		{name: "OKDifferentOperation", operation: idemgate.OpCreateRefund, canonical: body},
		{name: "OKDifferentTarget", operation: idemgate.OpCreatePayment, target: "pay_1", canonical: body},
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
		a := Fingerprint(idemgate.OpCreateRefund, "pay_1", canon(`{"amount":5}`))
		b := Fingerprint(idemgate.OpCreateRefund, "pay_2", canon(`{"amount":5}`))
		if bytes.Equal(a, b) {
			t.Fatalf("refunds of pay_1 and pay_2 share fingerprint %x", a)
		}
	})
}

// Test bodies for validateCreatePayment.
const (
	validPayment     = `{"amount":1000,"currency":"EUR","customer":"cus_1"}`
	validPaymentNorm = `{"amount":1000,"currency":"EUR","customer":"cus_1","description":null}`
)

// paymentWith returns validPayment with one member replaced (or added).
func paymentWith(name, raw string) string {
	m := map[string]json.RawMessage{
		"amount":   json.RawMessage(`1000`),
		"currency": json.RawMessage(`"EUR"`),
		"customer": json.RawMessage(`"cus_1"`),
	}
	m[name] = json.RawMessage(raw)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// paymentWithout returns validPayment without one member.
func paymentWithout(name string) string {
	m := map[string]json.RawMessage{
		"amount":   json.RawMessage(`1000`),
		"currency": json.RawMessage(`"EUR"`),
		"customer": json.RawMessage(`"cus_1"`),
	}
	delete(m, name)
	b, _ := json.Marshal(m)
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestValidateCreatePayment(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // the normalised request; "" means a 422
	}{
		{name: "OK", body: validPayment, want: validPaymentNorm},
		{name: "OKKeyOrder", body: `{"customer":"cus_1","currency":"EUR","amount":1000}`, want: validPaymentNorm},
		{name: "OKWhitespace", body: " { \"amount\" : 1000 ,\n\"currency\" : \"EUR\", \"customer\":\"cus_1\" }", want: validPaymentNorm},

		{name: "OKAmountFraction", body: paymentWith("amount", `1000.0`), want: validPaymentNorm},
		{name: "OKAmountFractionZeros", body: paymentWith("amount", `1000.000000`), want: validPaymentNorm},
		{name: "OKAmountExponent", body: paymentWith("amount", `1e3`), want: validPaymentNorm},
		{name: "OKAmountExponentUpper", body: paymentWith("amount", `1E3`), want: validPaymentNorm},
		{name: "OKAmountExponentPlus", body: paymentWith("amount", `1e+3`), want: validPaymentNorm},
		{name: "OKAmount10e2", body: paymentWith("amount", `10e2`), want: validPaymentNorm},
		{name: "OKAmountNegativeExponent", body: paymentWith("amount", `100000e-2`), want: validPaymentNorm},
		{name: "OKAmountFractionExponent", body: paymentWith("amount", `1.5e3`), want: strings.Replace(validPaymentNorm, "1000", "1500", 1)},
		{name: "OKAmountOne", body: paymentWith("amount", `1`), want: strings.Replace(validPaymentNorm, "1000", "1", 1)},
		{name: "OKAmountMax", body: paymentWith("amount", `9007199254740991`), want: strings.Replace(validPaymentNorm, "1000", "9007199254740991", 1)},
		{name: "OKAmountMaxFraction", body: paymentWith("amount", `9007199254740991.0`), want: strings.Replace(validPaymentNorm, "1000", "9007199254740991", 1)},
		{name: "ErrAmountFraction", body: paymentWith("amount", `1.5`)},
		{name: "ErrAmountTinyFraction", body: paymentWith("amount", `1000.0000000000000001`)},
		{name: "ErrAmountNegativeExponent", body: paymentWith("amount", `1e-3`)},
		{name: "ErrAmountString", body: paymentWith("amount", `"1000"`)},
		{name: "ErrAmountZero", body: paymentWith("amount", `0`)},
		{name: "ErrAmountZeroFraction", body: paymentWith("amount", `0.0`)},
		{name: "ErrAmountMinusZero", body: paymentWith("amount", `-0`)},
		{name: "ErrAmountNegative", body: paymentWith("amount", `-1`)},
		{name: "ErrAmountNegativeLarge", body: paymentWith("amount", `-1000`)},
		{name: "ErrAmount2Pow53", body: paymentWith("amount", `9007199254740992`)},
		{name: "ErrAmount2Pow53Plus1", body: paymentWith("amount", `9007199254740993`)},
		{name: "ErrAmount2Pow53Exponent", body: paymentWith("amount", `9.007199254740992e15`)},
		{name: "ErrAmountAboveInt64", body: paymentWith("amount", `9223372036854775808`)},
		{name: "ErrAmountHuge", body: paymentWith("amount", `1e400`)},
		{name: "ErrAmountNull", body: paymentWith("amount", `null`)},
		{name: "ErrAmountBool", body: paymentWith("amount", `true`)},
		{name: "ErrAmountArray", body: paymentWith("amount", `[1000]`)},
		{name: "ErrAmountObject", body: paymentWith("amount", `{"value":1000}`)},
		{name: "ErrAmountMissing", body: paymentWithout("amount")},

		{name: "OKCurrencyEscaped", body: paymentWith("currency", `"\u0045UR"`), want: validPaymentNorm},
		{name: "ErrCurrencyLower", body: paymentWith("currency", `"eur"`)},
		{name: "ErrCurrencyMixedCase", body: paymentWith("currency", `"Eur"`)},
		{name: "ErrCurrencyShort", body: paymentWith("currency", `"EU"`)},
		{name: "ErrCurrencyLong", body: paymentWith("currency", `"EURO"`)},
		{name: "ErrCurrencyEmpty", body: paymentWith("currency", `""`)},
		{name: "ErrCurrencyDigit", body: paymentWith("currency", `"E1R"`)},
		{name: "ErrCurrencySpace", body: paymentWith("currency", `"EU "`)},
		{name: "ErrCurrencyTrailingNewline", body: paymentWith("currency", `"EUR\n"`)},
		{name: "ErrCurrencyNonASCII", body: paymentWith("currency", `"ÉUR"`)},
		{name: "ErrCurrencyNumber", body: paymentWith("currency", `978`)},
		{name: "ErrCurrencyNull", body: paymentWith("currency", `null`)},
		{name: "ErrCurrencyMissing", body: paymentWithout("currency")},

		{name: "OKCustomer1", body: paymentWith("customer", `"c"`), want: strings.Replace(validPaymentNorm, `"cus_1"`, `"c"`, 1)},
		{name: "OKCustomer64", body: paymentWith("customer", jsonString(strings.Repeat("c", 64))), want: strings.Replace(validPaymentNorm, `"cus_1"`, jsonString(strings.Repeat("c", 64)), 1)},
		{name: "OKCustomer64Runes", body: paymentWith("customer", jsonString(strings.Repeat("é", 64))), want: strings.Replace(validPaymentNorm, `"cus_1"`, jsonString(strings.Repeat("é", 64)), 1)},
		{name: "ErrCustomerEmpty", body: paymentWith("customer", `""`)},
		{name: "ErrCustomerTooLong", body: paymentWith("customer", jsonString(strings.Repeat("c", 65)))},
		{name: "ErrCustomerTooLongRunes", body: paymentWith("customer", jsonString(strings.Repeat("é", 65)))},
		{name: "ErrCustomerNumber", body: paymentWith("customer", `42`)},
		{name: "ErrCustomerNull", body: paymentWith("customer", `null`)},
		{name: "ErrCustomerObject", body: paymentWith("customer", `{"id":"cus_1"}`)},
		{name: "ErrCustomerMissing", body: paymentWithout("customer")},

		{name: "OKDescriptionNull", body: paymentWith("description", `null`), want: validPaymentNorm},
		{name: "OKDescriptionEmpty", body: paymentWith("description", `""`), want: strings.Replace(validPaymentNorm, `null`, `""`, 1)},
		{name: "OKDescription", body: paymentWith("description", `"Order 42"`), want: strings.Replace(validPaymentNorm, `null`, `"Order 42"`, 1)},
		{name: "OKDescription255", body: paymentWith("description", jsonString(strings.Repeat("d", 255))), want: strings.Replace(validPaymentNorm, `null`, jsonString(strings.Repeat("d", 255)), 1)},
		{name: "OKDescription255Runes", body: paymentWith("description", jsonString(strings.Repeat("€", 255))), want: strings.Replace(validPaymentNorm, `null`, jsonString(strings.Repeat("€", 255)), 1)},
		{name: "ErrDescriptionTooLong", body: paymentWith("description", jsonString(strings.Repeat("d", 256)))},
		{name: "ErrDescriptionTooLongRunes", body: paymentWith("description", jsonString(strings.Repeat("€", 256)))},
		{name: "ErrDescriptionNumber", body: paymentWith("description", `42`)},
		{name: "ErrDescriptionBool", body: paymentWith("description", `false`)},
		{name: "ErrDescriptionArray", body: paymentWith("description", `["a"]`)},

		{name: "ErrUnknownField", body: paymentWith("metadata", `{}`)},
		{name: "ErrUnknownFieldNull", body: paymentWith("extra", `null`)},
		{name: "ErrFieldWrongCase", body: `{"Amount":1000,"currency":"EUR","customer":"cus_1"}`},
		{name: "ErrFieldTrailingSpace", body: `{"amount ":1000,"amount":1000,"currency":"EUR","customer":"cus_1"}`},

		{name: "ErrEmptyObject", body: `{}`},
		{name: "ErrArray", body: `[` + validPayment + `]`},
		{name: "ErrNull", body: `null`},
		{name: "ErrString", body: `"` + validPayment + `"`},
		{name: "ErrNumber", body: `1000`},
		{name: "ErrEmptyBody", body: ``},
		{name: "ErrTruncated", body: `{"amount":1000,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := validateCreatePayment([]byte(tt.body))
			if tt.want != "" {
				if p != nil {
					t.Fatalf("validateCreatePayment(%s) = problem %d %s (%s), want %s", tt.body, p.Status, p.Type, p.Detail, tt.want)
				}
				if string(got) != tt.want {
					t.Fatalf("validateCreatePayment(%s) = %s, want %s", tt.body, got, tt.want)
				}
				return
			}
			if p == nil {
				t.Fatalf("validateCreatePayment(%s) = %s, want a 422", tt.body, got)
			}
			if got != nil {
				t.Errorf("validateCreatePayment(%s) returned %s alongside a problem, want nil", tt.body, got)
			}
			if p.Status != http.StatusUnprocessableEntity {
				t.Errorf("validateCreatePayment(%s) status = %d, want %d", tt.body, p.Status, http.StatusUnprocessableEntity)
			}
			if !strings.HasSuffix(p.Type, typeValidationFailed) {
				t.Errorf("validateCreatePayment(%s) type = %q, want suffix %q", tt.body, p.Type, typeValidationFailed)
			}
			if p.Detail == "" {
				t.Errorf("validateCreatePayment(%s) problem has no detail", tt.body)
			}
		})
	}
}

// TestValidateCreatePaymentRoundTrip checks that the normalised request
// decodes strictly into idemgate.CreatePayment with the amount spelled as
// an integer, and validates again to itself, also through the canonical
// form the handler passes in.
func TestValidateCreatePaymentRoundTrip(t *testing.T) {
	bodies := []string{
		validPayment,
		`{"amount":1e3,"currency":"EUR","customer":"cus_1","description":"Order <42> & co"}`,
		`{"amount":1000.0,"currency":"USD","customer":"José","description":null}`,
		`{"amount":9007199254740991,"currency":"JPY","customer":"c","description":""}`,
		`{"amount":12.5e1,"currency":"GBP","customer":"\ud83d\ude00","description":"line\nbreak \u2028"}`,
	}
	for _, body := range bodies {
		canonical, err := Canonicalize([]byte(body))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", body, err)
		}
		out, p := validateCreatePayment(canonical)
		if p != nil {
			t.Fatalf("validateCreatePayment(%s) = problem %s", canonical, p.Detail)
		}
		raw, p := validateCreatePayment([]byte(body))
		if p != nil || !bytes.Equal(raw, out) {
			t.Fatalf("validateCreatePayment(%s) = %s, %v; from its canonical form %s", body, raw, p, out)
		}

		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			t.Fatalf("normalised %s does not decode: %v", out, err)
		}
		amount, ok := fields["amount"].(json.Number)
		if !ok || strings.ContainsAny(amount.String(), ".eE") {
			t.Fatalf("normalised %s: amount %v is not spelled as an integer", out, fields["amount"])
		}
		var req idemgate.CreatePayment
		dec = json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("normalised %s does not decode into CreatePayment: %v", out, err)
		}
		if n, _ := amount.Int64(); req.Amount != n || req.Amount <= 0 {
			t.Fatalf("normalised %s: amount %d", out, req.Amount)
		}

		again, p := validateCreatePayment(out)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("validateCreatePayment(%s) = %s, %v, want itself", out, again, p)
		}
		outCanonical, err := Canonicalize(out)
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", out, err)
		}
		again, p = validateCreatePayment(outCanonical)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("validateCreatePayment(%s) = %s, %v, want %s", outCanonical, again, p, out)
		}
	}
}
