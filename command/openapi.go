package command

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/idemgate/idemgate"
)

// coreOpenAPI is the OpenAPI 3.1 document of the API's own routes; each
// registered module adds its fragment to it (see openAPIDocument).
//
//go:embed openapi.json
var coreOpenAPI []byte

// openAPIDocument merges the modules' fragments into the core document:
// their paths, their components and their tags. A path or a component
// defined twice is refused.
func openAPIDocument(reg *idemgate.Registry) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(coreOpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("command: core OpenAPI document: %w", err)
	}
	for _, m := range reg.Modules() {
		if len(m.OpenAPI) == 0 {
			continue
		}
		var frag map[string]any
		if err := json.Unmarshal(m.OpenAPI, &frag); err != nil {
			return nil, fmt.Errorf("command: OpenAPI fragment of module %q: %w", m.Name, err)
		}
		if err := mergeFragment(doc, frag); err != nil {
			return nil, fmt.Errorf("command: OpenAPI fragment of module %q: %w", m.Name, err)
		}
	}
	return json.Marshal(doc)
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
