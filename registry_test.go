package idemgate_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

func validateAny(body []byte) (json.RawMessage, error) { return body, nil }

var applyNothing = idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
	return idemgate.Response{Status: 204}, nil
})

type callNothing struct{}

func (callNothing) Call(context.Context, idemgate.Command, int) (idemgate.Response, error) {
	return idemgate.Response{Status: 204}, nil
}

func op(name, path string) idemgate.Operation {
	return idemgate.Operation{Name: name, Path: path, Validate: validateAny, Apply: applyNothing}
}

func TestNewRegistry(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		reg, err := idemgate.NewRegistry(
			idemgate.Module{Name: "a", Operations: []idemgate.Operation{op("b.create", "/v1/b"), op("a.create", "/v1/a/{id}/x")}},
			idemgate.Module{Name: "c", Operations: []idemgate.Operation{{Name: "c.call", Path: "/c", Validate: validateAny, Call: callNothing{}}},
				Reads: []idemgate.Read{{Path: "/v1/a/{id}", Handle: func(context.Context, pgx.Tx, idemgate.ReadRequest) (idemgate.Response, error) {
					return idemgate.Response{}, nil
				}}}},
		)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range reg.Operations() {
			names = append(names, o.Name)
		}
		if got := strings.Join(names, ","); got != "a.create,b.create,c.call" {
			t.Fatalf("operations = %s", got)
		}
		if _, ok := reg.Operation("c.call"); !ok {
			t.Fatal("c.call not found")
		}
		if len(reg.Reads()) != 1 || len(reg.Modules()) != 2 {
			t.Fatalf("reads %d, modules %d", len(reg.Reads()), len(reg.Modules()))
		}
	})

	// Each refusal is one line that names the operation (or route) and
	// the reason: it is what serve, project and dev print at start-up.
	noApplier := op("x.create", "/v1/x")
	noApplier.Apply = nil
	noRoute := op("x.create", "")
	twoAppliers := op("x.create", "/v1/x")
	twoAppliers.Call = callNothing{}
	noValidate := op("x.create", "/v1/x")
	noValidate.Validate = nil
	for name, tc := range map[string]struct {
		modules []idemgate.Module
		want    string
	}{
		"ErrRouteWithoutApplier": {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{noApplier}}}, `operation "x.create": route POST /v1/x has no applier`},
		"ErrApplierWithoutRoute": {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{noRoute}}}, `operation "x.create" has an applier but no route`},
		"ErrTwoAppliers":         {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{twoAppliers}}}, `has two appliers`},
		"ErrNoValidation":        {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{noValidate}}}, `has no body validation`},
		"ErrDuplicateName":       {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/x")}}, {Name: "n", Operations: []idemgate.Operation{op("x.create", "/v1/y")}}}, `operation "x.create" is registered twice`},
		"ErrDuplicatePath":       {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/x/{id}"), op("y.create", "/v1/x/{other}")}}}, `operation "y.create": POST /v1/x/{other} collides with operation "x.create"`},
		"ErrBuiltinPath":         {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/operations/{x}")}}}, `collides with a built-in route`},
		"ErrBuiltinReadPath": {[]idemgate.Module{{Name: "m", Reads: []idemgate.Read{{Path: "/healthz", Handle: func(context.Context, pgx.Tx, idemgate.ReadRequest) (idemgate.Response, error) {
			return idemgate.Response{}, nil
		}}}}}, `GET /healthz collides with a built-in route`},
		"ErrReadWithoutHandler":    {[]idemgate.Module{{Name: "m", Reads: []idemgate.Read{{Path: "/v1/r"}}}}, `has no handler`},
		"ErrNoName":                {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("", "/v1/x")}}}, `an operation has no name`},
		"ErrSlashInName":           {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("a/b", "/v1/x")}}}, `may not contain '/'`},
		"ErrRelativePath":          {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "v1/x")}}}, `must start with '/'`},
		"ErrTrailingSlash":         {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/x/")}}}, `not end with one`},
		"ErrBadParameter":          {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/{a-b}")}}}, `parameter {a-b}`},
		"ErrRepeatedParameter":     {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/{a}/{a}")}}}, `names parameter {a} twice`},
		"ErrWildcard":              {[]idemgate.Module{{Name: "m", Operations: []idemgate.Operation{op("x.create", "/v1/*")}}}, `may not contain`},
		"ErrModuleWithoutName":     {[]idemgate.Module{{Operations: []idemgate.Operation{op("x.create", "/v1/x")}}}, `a module has no name`},
		"ErrModuleRegisteredTwice": {[]idemgate.Module{{Name: "m"}, {Name: "m"}}, `module "m" registered twice`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := idemgate.NewRegistry(tc.modules...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestTargetOf(t *testing.T) {
	o := op("x", "/v1/x")
	for name, tc := range map[string]struct {
		params map[string]string
		want   string
	}{
		"OKNoParams":  {nil, ""},
		"OKOneParam":  {map[string]string{"id": "p/1"}, "p/1"},
		"OKTwoParams": {map[string]string{"b": "2", "a": "1 &"}, "a=1+%26&b=2"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := o.TargetOf(tc.params)
			if err != nil || got != tc.want {
				t.Fatalf("TargetOf(%v) = %q, %v; want %q", tc.params, got, err, tc.want)
			}
		})
	}
}
