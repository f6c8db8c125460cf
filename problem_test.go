package idemgate_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/idemgate/idemgate"
)

// problemTypes lists the ProblemType constants declared in a Go file, by
// reading its source: a constant added without documenting it is caught.
func problemTypes(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if len(v.Values) != 1 || !strings.HasSuffix(types(v.Type), "ProblemType") {
				continue
			}
			lit, ok := v.Values[0].(*ast.BasicLit)
			if !ok {
				t.Fatalf("%s: %s is not a string literal", file, v.Names[0].Name)
			}
			name, _ := strconv.Unquote(lit.Value)
			out[v.Names[0].Name] = name
		}
	}
	return out
}

func types(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return types(e.X) + "." + e.Sel.Name
	}
	return ""
}

// Every problem type, idemgate's and the payments module's, is listed in
// the API's OpenAPI document, and no two constants share a wire name.
func TestProblemTypesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("command/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, file := range []string{"problem.go", "payments/payments.go"} {
		consts := problemTypes(t, file)
		if len(consts) == 0 {
			t.Fatalf("%s declares no ProblemType", file)
		}
		for c, name := range consts {
			if other, dup := seen[name]; dup {
				t.Errorf("%s and %s are both %q", c, other, name)
			}
			seen[name] = c
			if !regexp.MustCompile(`\.\.\./` + regexp.QuoteMeta(name) + `[^a-z-]`).Match(doc) {
				t.Errorf("%s (%q) is not listed in command/openapi.json's Problem type", c, name)
			}
		}
	}
	if got := idemgate.ProblemKeyReused.URI(); got != "https://idemgate.dev/problems/idempotency-key-reused" {
		t.Errorf("URI %q", got)
	}
}
