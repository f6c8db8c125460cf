package command

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/idemgate/idemgate"
)

// coreOpenAPI is the OpenAPI 3.1 document of the API's own routes; each
// registered module adds its fragment to it (see openAPIDocument).
//
//go:embed openapi.json
var coreOpenAPI []byte

// recordedBodiesKey is the member of a module's fragment that lists, as
// Schema Objects, the bodies its operations record (a payment, a refund):
// GET /v1/operations/{id} shows them as response.body, so the served
// document's RecordedBody is their anyOf, with Problem (every recorded
// error). A module with operations that lists none adds JSONValue: its
// bodies could be anything. The member is not served.
const recordedBodiesKey = "x-idemgate-recorded-bodies"

// jsonValueRef is the core's schema of any JSON value.
const jsonValueRef = "#/components/schemas/JSONValue"

// openAPIDocument merges the modules' fragments into the core document:
// their paths, their components and their tags, and the bodies they
// record into RecordedBody. A path or a component defined twice is
// refused.
func openAPIDocument(reg *idemgate.Registry) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(coreOpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("command: core OpenAPI document: %w", err)
	}
	var bodies []any
	for _, m := range reg.Modules() {
		frag := map[string]any{}
		if len(m.OpenAPI) > 0 {
			if err := json.Unmarshal(m.OpenAPI, &frag); err != nil {
				return nil, fmt.Errorf("command: OpenAPI fragment of module %q: %w", m.Name, err)
			}
		}
		declared, err := recordedBodies(frag)
		if err != nil {
			return nil, fmt.Errorf("command: OpenAPI fragment of module %q: %w", m.Name, err)
		}
		if declared == nil && len(m.Operations) > 0 {
			declared = []any{map[string]any{"$ref": jsonValueRef}}
		}
		bodies = append(bodies, declared...)
		if err := mergeFragment(doc, frag); err != nil {
			return nil, fmt.Errorf("command: OpenAPI fragment of module %q: %w", m.Name, err)
		}
	}
	if err := addRecordedBodies(doc, bodies); err != nil {
		return nil, fmt.Errorf("command: core OpenAPI document: %w", err)
	}
	return json.Marshal(doc)
}

// recordedBodies reads a fragment's recordedBodiesKey: nil when absent.
func recordedBodies(frag map[string]any) ([]any, error) {
	v, ok := frag[recordedBodiesKey]
	if !ok {
		return nil, nil
	}
	delete(frag, recordedBodiesKey)
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a list of schemas", recordedBodiesKey)
	}
	for i, s := range list {
		if _, ok := s.(map[string]any); !ok {
			return nil, fmt.Errorf("%s[%d] is not a schema", recordedBodiesKey, i)
		}
	}
	return append([]any{}, list...), nil
}

// addRecordedBodies makes RecordedBody the anyOf of the modules' bodies,
// then the core's own (Problem), then JSONValue when any module needs it:
// a generated client tries them in that order. Each appears once.
func addRecordedBodies(doc map[string]any, modules []any) error {
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	rb, _ := schemas["RecordedBody"].(map[string]any)
	core, _ := rb["anyOf"].([]any)
	if core == nil {
		return errors.New("components.schemas.RecordedBody has no anyOf")
	}
	var out, last []any
	seen := map[string]bool{}
	for _, s := range append(modules, core...) {
		key, _ := json.Marshal(s)
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		if m, _ := s.(map[string]any); m["$ref"] == jsonValueRef {
			last = append(last, s)
			continue
		}
		out = append(out, s)
	}
	rb["anyOf"] = append(out, last...)
	return nil
}

func mergeFragment(doc, frag map[string]any) error {
	if err := mergeObject(doc, "paths", frag["paths"]); err != nil {
		return err
	}
	comps, _ := frag["components"].(map[string]any)
	for kind, v := range comps {
		dc, _ := doc["components"].(map[string]any)
		if dc == nil {
			dc = map[string]any{}
			doc["components"] = dc
		}
		if err := mergeObject(dc, kind, v); err != nil {
			return fmt.Errorf("components: %w", err)
		}
	}
	tags, _ := frag["tags"].([]any)
	have, _ := doc["tags"].([]any)
	doc["tags"] = append(have, tags...)
	return nil
}

// mergeObject adds src's members to dst[name], refusing one defined twice.
func mergeObject(dst map[string]any, name string, src any) error {
	add, _ := src.(map[string]any)
	if len(add) == 0 {
		return nil
	}
	into, _ := dst[name].(map[string]any)
	if into == nil {
		into = map[string]any{}
		dst[name] = into
	}
	for k, v := range add {
		if _, dup := into[k]; dup {
			return fmt.Errorf("%s %q is defined twice", name, k)
		}
		into[k] = v
	}
	return nil
}

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.openAPI)
}
