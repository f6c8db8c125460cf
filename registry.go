package idemgate

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// builtinRoutes are the routes the API serves itself, whatever is
// registered; no operation or read may take their place.
var builtinRoutes = []string{
	"/healthz", "/readyz", "/metrics", "/openapi.json",
	"/v1/operations/{operationID}",
	"/v1/idempotency-keys/{operation}/{key}",
}

// Registry holds the operations a deployment protects. The API mounts its
// routes from it and the projector applies events with it, so a route
// without an applier, or an applier without a route, is refused when the
// registry is built, not discovered when a command fails.
type Registry struct {
	modules []Module
	ops     map[string]Operation
	names   []string
	reads   []Read
}

// NewRegistry checks the modules and returns their registry. It refuses,
// with one line naming the operation and the reason: an operation without
// a name, a route or an applier, or with two appliers; two operations
// with one name or one path; a route that collides with a built-in one;
// a malformed path.
func NewRegistry(modules ...Module) (*Registry, error) {
	r := &Registry{ops: map[string]Operation{}}
	routes := map[string]string{} // method+shape -> who holds it
	for _, b := range builtinRoutes {
		routes["GET "+shape(b)] = "a built-in route"
		routes["POST "+shape(b)] = "a built-in route"
	}
	take := func(method, path, who string) error {
		if err := checkPath(path); err != nil {
			return fmt.Errorf("%s: %w", who, err)
		}
		k := method + " " + shape(path)
		if holder, ok := routes[k]; ok {
			return fmt.Errorf("%s: %s %s collides with %s", who, method, path, holder)
		}
		routes[k] = who
		return nil
	}
	modNames := map[string]bool{}
	for _, m := range modules {
		if m.Name == "" {
			return nil, fmt.Errorf("idemgate: a module has no name")
		}
		if modNames[m.Name] {
			return nil, fmt.Errorf("idemgate: module %q registered twice", m.Name)
		}
		modNames[m.Name] = true
		origin := ""
		if m.Origin != "" {
			origin = " (" + m.Origin + ")"
		}
		for _, op := range m.Operations {
			who := fmt.Sprintf("operation %q%s", op.Name, origin)
			switch {
			case op.Name == "":
				return nil, fmt.Errorf("idemgate: module %q%s: an operation has no name", m.Name, origin)
			case strings.ContainsAny(op.Name, "/ \t"):
				return nil, fmt.Errorf("idemgate: %s: a name may not contain '/' or spaces", who)
			case r.ops[op.Name].Name != "":
				return nil, fmt.Errorf("idemgate: %s is registered twice", who)
			case op.Path == "" && (op.Apply != nil || op.Call != nil):
				return nil, fmt.Errorf("idemgate: %s has an applier but no route", who)
			case op.Path == "":
				return nil, fmt.Errorf("idemgate: %s has no route", who)
			case op.Apply == nil && op.Call == nil:
				return nil, fmt.Errorf("idemgate: %s: route POST %s has no applier", who, op.Path)
			case op.Apply != nil && op.Call != nil:
				return nil, fmt.Errorf("idemgate: %s has two appliers (Apply and Call); give it one", who)
			case op.Validate == nil:
				return nil, fmt.Errorf("idemgate: %s: route POST %s has no body validation", who, op.Path)
			case op.Retention < 0:
				return nil, fmt.Errorf("idemgate: %s: negative retention %s", who, op.Retention)
			}
			if err := take("POST", op.Path, who); err != nil {
				return nil, fmt.Errorf("idemgate: %w", err)
			}
			r.ops[op.Name] = op
			r.names = append(r.names, op.Name)
		}
		for _, rd := range m.Reads {
			who := fmt.Sprintf("module %q%s read GET %s", m.Name, origin, rd.Path)
			if rd.Handle == nil {
				return nil, fmt.Errorf("idemgate: %s has no handler", who)
			}
			if err := take("GET", rd.Path, who); err != nil {
				return nil, fmt.Errorf("idemgate: %w", err)
			}
			r.reads = append(r.reads, rd)
		}
		r.modules = append(r.modules, m)
	}
	sort.Strings(r.names)
	return r, nil
}

// MustRegistry is NewRegistry for modules known to be valid; it panics
// otherwise. For tests and examples.
func MustRegistry(modules ...Module) *Registry {
	r, err := NewRegistry(modules...)
	if err != nil {
		panic(err)
	}
	return r
}

// Operation returns the operation of that name.
func (r *Registry) Operation(name string) (Operation, bool) {
	op, ok := r.ops[name]
	return op, ok
}

// Operations lists the operations, sorted by name.
func (r *Registry) Operations() []Operation {
	out := make([]Operation, len(r.names))
	for i, n := range r.names {
		out[i] = r.ops[n]
	}
	return out
}

// Reads lists the read routes, in registration order.
func (r *Registry) Reads() []Read { return append([]Read(nil), r.reads...) }

// Modules lists the modules, in registration order.
func (r *Registry) Modules() []Module { return append([]Module(nil), r.modules...) }

// TargetOf computes a request's target from its path parameters, with the
// operation's Target when it has one.
func (op Operation) TargetOf(params map[string]string) (string, error) {
	if op.Target != nil {
		return op.Target(params)
	}
	switch len(params) {
	case 0:
		return "", nil
	case 1:
		for _, v := range params {
			return v, nil
		}
	}
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	return q.Encode(), nil
}

// PathParams lists the names of a path's {name} parameters, in order.
func PathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkPath accepts "/seg/{param}/seg": absolute, no empty segment, no
// trailing slash, parameters whole segments with distinct names.
func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") || path == "/" || strings.HasSuffix(path, "/") {
		return fmt.Errorf("path %q must start with '/' and not end with one", path)
	}
	seen := map[string]bool{}
	for _, seg := range strings.Split(path[1:], "/") {
		switch {
		case seg == "":
			return fmt.Errorf("path %q has an empty segment", path)
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			if !paramName.MatchString(name) {
				return fmt.Errorf("path %q: parameter {%s} must be a name of letters, digits and '_'", path, name)
			}
			if seen[name] {
				return fmt.Errorf("path %q names parameter {%s} twice", path, name)
			}
			seen[name] = true
		case strings.ContainsAny(seg, "{}*?#% "):
			return fmt.Errorf("path %q: segment %q may not contain {, }, *, ?, #, %% or spaces", path, seg)
		}
	}
	return nil
}

// shape is a path with its parameter names erased: two paths of one
// shape match the same requests.
func shape(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}
