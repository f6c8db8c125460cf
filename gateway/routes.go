// Package gateway puts idemgate in front of HTTP services written in any
// language. A YAML routes file names, for each route, the operation, its
// POST path, the upstream URL and, optionally, a JSON Schema of the body;
// Load turns the file into an idemgate.Module whose operations are
// applied by calling the upstream (an idemgate.CallApplier) with the
// operation id as Idempotency-Key.
package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/idemgate/idemgate"
)

// Defaults and bounds of a route's settings.
const (
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds a route's timeout: an attempt must end well
	// within the consumer group's rebalance timeout.
	MaxTimeout = 30 * time.Second
	// MaxResponseBytes bounds an upstream's response body; a larger one
	// is recorded as a 502.
	MaxResponseBytes = 1 << 20
)

// Options are what the upstream calls share.
type Options struct {
	// HTTPClient makes the calls; its redirects are never followed (a
	// redirect is recorded as the answer). Default: a client of its own.
	HTTPClient *http.Client
	// Registerer receives the upstream metrics; may be nil.
	Registerer prometheus.Registerer
}

// route is one entry of the routes file.
type route struct {
	Operation string `yaml:"operation"`
	Path      string `yaml:"path"`
	Upstream  string `yaml:"upstream"`
	Schema    string `yaml:"schema"`
	Timeout   string `yaml:"timeout"`
	Retention string `yaml:"retention"`
}

var routeFields = map[string]bool{"operation": true, "path": true, "upstream": true, "schema": true, "timeout": true, "retention": true}

// Load reads a routes file and returns its module, named "gateway". It
// refuses, naming the file, the route and the reason: an unknown field, a
// missing path or upstream, a bad upstream URL or one that uses a
// parameter the path lacks, an unreadable or invalid schema, a bad
// duration. The rules every operation obeys (a name, a well-formed path,
// no two operations with one name or one path, no built-in route taken)
// are the registry's: Load checks the module with idemgate.NewRegistry,
// whose errors name the operation and the file. (A path that collides
// with another module's route is refused when the deployment's registry
// is built, likewise.)
func Load(file string, opts Options) (idemgate.Module, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return idemgate.Module{}, fmt.Errorf("routes file %s: %w", file, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("routes file %s: %s", file, fmt.Sprintf(format, args...))
	}
	routes, err := parseRoutes(raw)
	if err != nil {
		return idemgate.Module{}, fail("%v", err)
	}
	calls, err := newCaller(opts)
	if err != nil {
		return idemgate.Module{}, fail("%v", err)
	}
	mod := idemgate.Module{Name: "gateway", Origin: "routes file " + file}
	var paths []routeDoc
	for i, r := range routes {
		where := fmt.Sprintf("route %d (%s)", i+1, r.Operation)
		if r.Operation == "" {
			where = fmt.Sprintf("route %d", i+1)
		}
		op, doc, err := buildRoute(filepath.Dir(file), r, calls)
		if err != nil {
			return idemgate.Module{}, fail("%s: %v", where, err)
		}
		mod.Operations = append(mod.Operations, op)
		paths = append(paths, doc)
	}
	if _, err := idemgate.NewRegistry(mod); err != nil {
		return idemgate.Module{}, err // it names the file (mod.Origin)
	}
	if mod.OpenAPI, err = openAPIFragment(paths); err != nil {
		return idemgate.Module{}, fail("%v", err)
	}
	return mod, nil
}

// parseRoutes reads the YAML document, refusing any field it does not
// know, with the line it is on.
func parseRoutes(raw []byte) ([]route, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: it must hold 'routes:', a list of routes")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping with 'routes:'", top.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if k.Value != "routes" {
			return nil, fmt.Errorf("line %d: unknown field %q (the file holds only 'routes:')", k.Line, k.Value)
		}
		list = top.Content[i+1]
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, errors.New("'routes:' must be a non-empty list")
	}
	out := make([]route, 0, len(list.Content))
	for i, item := range list.Content {
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("route %d (line %d): must be a mapping of operation, path, upstream and its other settings", i+1, item.Line)
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			if !routeFields[k.Value] {
				return nil, fmt.Errorf("route %d (line %d): unknown field %q (known: operation, path, upstream, schema, timeout, retention)", i+1, k.Line, k.Value)
			}
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("route %d (line %d): %s must be a single value", i+1, v.Line, k.Value)
			}
		}
		var r route
		if err := item.Decode(&r); err != nil {
			return nil, fmt.Errorf("route %d (line %d): %v", i+1, item.Line, err)
		}
		out = append(out, r)
	}
	return out, nil
}

var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// buildRoute checks one route and builds its operation.
func buildRoute(dir string, r route, calls *caller) (idemgate.Operation, routeDoc, error) {
	switch {
	case r.Path == "":
		return idemgate.Operation{}, routeDoc{}, errors.New("path is missing")
	case r.Upstream == "":
		return idemgate.Operation{}, routeDoc{}, errors.New("upstream is missing")
	}
	params := idemgate.PathParams(r.Path)
	known := map[string]bool{}
	for _, p := range params {
		known[p] = true
	}
	for _, m := range placeholder.FindAllStringSubmatch(r.Upstream, -1) {
		if !known[m[1]] {
			return idemgate.Operation{}, routeDoc{}, fmt.Errorf("upstream %s uses {%s}, which path %s does not have", r.Upstream, m[1], r.Path)
		}
	}
	u, err := url.Parse(placeholder.ReplaceAllString(r.Upstream, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return idemgate.Operation{}, routeDoc{}, fmt.Errorf("upstream %q is not an absolute http:// or https:// URL", r.Upstream)
	}
	timeout, err := duration("timeout", r.Timeout, DefaultTimeout, MaxTimeout)
	if err != nil {
		return idemgate.Operation{}, routeDoc{}, err
	}
	retention, err := duration("retention", r.Retention, 0, 0)
	if err != nil {
		return idemgate.Operation{}, routeDoc{}, err
	}
	var schema *jsonschema.Schema
	var schemaDoc any
	if r.Schema != "" {
		if schema, schemaDoc, err = compileSchema(dir, r.Schema); err != nil {
			return idemgate.Operation{}, routeDoc{}, err
		}
	}
	up := &upstream{caller: calls, operation: r.Operation, url: r.Upstream, params: params, timeout: timeout}
	op := idemgate.Operation{
		Name:      r.Operation,
		Path:      r.Path,
		Validate:  validator(schema),
		Call:      up,
		Retention: retention,
	}
	return op, routeDoc{operation: r.Operation, path: r.Path, params: params, schema: schemaDoc, file: r.Schema}, nil
}

// duration reads a route's duration: def when absent, positive, and at
// most max when max is set.
func duration(name, s string, def, max time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q is not a positive duration such as 10s", name, s)
	}
	if max > 0 && d > max {
		return 0, fmt.Errorf("%s %s is longer than %s", name, d, max)
	}
	return d, nil
}

// compileSchema loads a JSON Schema (2020-12 unless it says otherwise)
// relative to the routes file.
func compileSchema(dir, file string) (*jsonschema.Schema, any, error) {
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, file)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s: %v", file, err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s is not JSON: %v", file, err)
	}
	abs, _ := filepath.Abs(path)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(abs, doc); err != nil {
		return nil, nil, fmt.Errorf("schema %s: %v", file, err)
	}
	s, err := c.Compile(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s is not a valid JSON Schema: %s", file, oneLine(err.Error()))
	}
	return s, doc, nil
}

// validator checks a body against the route's schema, when it has one,
// and returns the request the command event carries: the body exactly as
// the client sent it (a JSON string holding its bytes), since that is
// what the upstream is sent.
func validator(schema *jsonschema.Schema) func([]byte) (json.RawMessage, error) {
	return func(body []byte) (json.RawMessage, error) {
		if schema != nil {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
			if err != nil {
				return nil, idemgate.Invalid("the body is not JSON")
			}
			if err := schema.Validate(inst); err != nil {
				return nil, idemgate.Invalid(schemaFailure(err))
			}
		}
		return json.Marshal(string(body))
	}
}

// schemaFailure names the first failing location of a validation error
// ("at /items/0/qty: minimum: got 0, want 1").
func schemaFailure(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return oneLine(err.Error())
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	loc := "/" + strings.Join(leaf.InstanceLocation, "/")
	out := leaf.BasicOutput()
	msg := oneLine(leaf.Error())
	if out != nil && out.Error != nil {
		msg = out.Error.String()
	}
	return fmt.Sprintf("at %s: %s", loc, msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
