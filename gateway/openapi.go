package gateway

import (
	"encoding/json"
	"strings"
)

// routeDoc is what the OpenAPI document says of a route.
type routeDoc struct {
	operation string
	path      string
	params    []string
	schema    any // the route's JSON Schema document, or nil
}

// openAPIFragment describes the routes for the served OpenAPI document:
// the core's contract (202, replay, 409, the 4xx before the claim) and,
// as the request body, each route's JSON Schema. What the upstream
// answers is whatever it answers, replayed byte for byte.
func openAPIFragment(routes []routeDoc) ([]byte, error) {
	paths := map[string]any{}
	for _, r := range routes {
		params := []any{
			map[string]any{"$ref": "#/components/parameters/IdempotencyKey"},
			map[string]any{"$ref": "#/components/parameters/Prefer"},
		}
		for _, p := range r.params {
			params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		schema := map[string]any{}
		if m, ok := r.schema.(map[string]any); ok {
			for k, v := range m {
				if k != "$schema" && k != "$id" {
					schema[k] = v
				}
			}
		}
		problem := func(desc string) map[string]any {
			return map[string]any{"description": desc, "content": map[string]any{
				"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		}
		paths[r.path] = map[string]any{"post": map[string]any{
			"operationId": "gateway_" + strings.NewReplacer(".", "_", "-", "_").Replace(r.operation),
			"tags":        []string{"gateway"},
			"summary":     "Gateway route (operation " + r.operation + ")",
			"description": "Claims the Idempotency-Key and answers 202; the projector calls the upstream with Idempotency-Key: <operation id> and records its answer, which every retry with the same key and an equivalent body gets byte for byte.",
			"parameters":  params,
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}},
			"responses": map[string]any{
				"202":     map[string]any{"$ref": "#/components/responses/Accepted"},
				"400":     map[string]any{"$ref": "#/components/responses/BadRequest"},
				"401":     map[string]any{"$ref": "#/components/responses/Unauthorized"},
				"409":     map[string]any{"$ref": "#/components/responses/KeyReused"},
				"413":     map[string]any{"$ref": "#/components/responses/TooLarge"},
				"415":     map[string]any{"$ref": "#/components/responses/UnsupportedMediaType"},
				"422":     problem("The body does not match the route's schema (type .../validation-failed, detail naming the failing location); consumes no key."),
				"502":     problem("The upstream kept failing and the command was dead-lettered (type .../upstream-failed, recorded), or its answer was over 1 MiB."),
				"503":     map[string]any{"$ref": "#/components/responses/Unavailable"},
				"default": map[string]any{"description": "The upstream's recorded answer (status, Content-Type, Location and body), replayed byte for byte."},
			},
		}}
	}
	return json.Marshal(map[string]any{
		"paths": paths,
		"tags":  []any{map[string]any{"name": "gateway", "description": "Routes of the gateway's routes file, each in front of an upstream service."}},
	})
}
