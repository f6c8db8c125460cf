package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/idemgate/idemgate/testenv"
)

// operationViewsMatchTheDocument checks the real answers of a stack
// serving a routes file against the document it serves: the gateway's
// routes are in it, and each operation view (a payment, a declined one,
// an upstream's JSON answer after retries, an upstream's text answer)
// matches its Operation schema, response.body included.
func operationViewsMatchTheDocument(t *testing.T, s *stack) {
	doc := s.do("GET", "/openapi.json", "", "", "", "")
	mustEqual(t, "GET /openapi.json", doc.Status, 200)
	var paths struct{ Paths map[string]map[string]any }
	if err := json.Unmarshal(doc.Body, &paths); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/orders", "/v1/orders/{id}/cancel", "/v1/payments"} {
		if paths.Paths[p]["post"] == nil {
			t.Fatalf("POST %s is not in the served document", p)
		}
	}
	schema := func(ptr string) *jsonschema.Schema {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc.Body))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("https://idemgate.test/openapi.json", v); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile("https://idemgate.test/openapi.json#" + ptr)
		if err != nil {
			t.Fatalf("%s: %v", ptr, err)
		}
		return sch
	}
	operation, pending := schema("/components/schemas/Operation"), schema("/components/schemas/Pending")
	mustMatch := func(what string, sch *jsonschema.Schema, body []byte) {
		t.Helper()
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %s is not JSON", what, body)
		}
		if err := sch.Validate(v); err != nil {
			t.Fatalf("%s: %s does not match the served document: %v", what, body, err)
		}
	}

	nonce := testenv.Random(6)
	commands := []struct{ what, path, body, want string }{
		{"payment", "/v1/payments", `{"amount":1000,"currency":"EUR","customer":"cus_doc"}`, `"status":201`},
		{"declined payment", "/v1/payments", `{"amount":2000000,"currency":"EUR","customer":"cus_doc"}`, `"status":402`},
		{"upstream JSON after retries", "/v1/orders", orderBody("500-twice", nonce), `"attempts":3`},
		{"upstream text", "/v1/orders", `{"case":1,"nonce":"` + nonce + `"}`, `"body":"not JSON\n"`},
	}
	for i, c := range commands {
		r := s.postWith(c.path, "key-a", []string{"doc-" + nonce + "-" + string(rune('a'+i))}, c.body)
		mustPending(t, c.what, r, false)
		mustMatch(c.what+": the 202", pending, r.Body)
		view := s.waitCompleted("key-a", r.Header.Get("Location"))
		if !strings.Contains(string(view.Body), c.want) {
			t.Fatalf("%s: view %s, want %s in it", c.what, view.Body, c.want)
		}
		mustMatch(c.what, operation, view.Body)
	}
}
