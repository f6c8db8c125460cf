package idemgate_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsMatchTheTree holds docs/ARCHITECTURE.md and RELIABILITY.md to the
// code: every test they name exists (an invariant's proof keeps its name,
// or the doc says where it went), and the folder table names every folder
// that holds Go code, and no folder that does not exist.
func TestDocsMatchTheTree(t *testing.T) {
	tests := map[string]bool{}
	goDirs := map[string]bool{}
	defines := regexp.MustCompile(`(?m)^func (Test\w+|Benchmark\w+|Fuzz\w+|Example\w*)\(`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		goDirs[filepath.Dir(path)] = true
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range defines.FindAllStringSubmatch(string(b), -1) {
				tests[m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tests["TestDocsMatchTheTree"] {
		t.Fatal("the walk found no test definitions: the check would be vacuous")
	}

	named := regexp.MustCompile(`\bTest[A-Z]\w*`)
	for _, doc := range []string{"docs/ARCHITECTURE.md", "RELIABILITY.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, name := range named.FindAllString(string(b), -1) {
			seen++
			if !tests[name] {
				t.Errorf("%s names %s, which no _test.go file defines", doc, name)
			}
		}
		if seen == 0 {
			t.Errorf("%s names no test at all", doc)
		}
	}

	arch, err := os.ReadFile("docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`[^|]+) \\|")
	folder := regexp.MustCompile("`([^`]+)`")
	for _, r := range row.FindAllStringSubmatch(string(arch), -1) {
		for _, f := range folder.FindAllStringSubmatch(r[1], -1) {
			name := strings.TrimSuffix(f[1], "/")
			if strings.HasPrefix(name, ".") {
				continue // the root package
			}
			if st, err := os.Stat(name); err != nil || !st.IsDir() {
				// only rows that name folders count; a table of tables names none
				if strings.Contains(r[1], "/`") {
					t.Errorf("docs/ARCHITECTURE.md's folder table names %s/, which is not a folder", name)
				}
				continue
			}
			table[name] = true
		}
	}
	for dir := range goDirs {
		if dir == "." {
			continue
		}
		covered := false
		for p := dir; p != "."; p = filepath.Dir(p) {
			if table[p] {
				covered = true
				break
			}
		}
		if !covered {
			t.Errorf("docs/ARCHITECTURE.md's folder table does not name %s/ (nor a folder above it)", dir)
		}
	}
}

// TestMetricsListIsExported: every metric deploy/prometheus/metrics.txt
// lists (the alerts and the dashboard may name only those:
// scripts/check-deploy.sh) is registered by the code, as a name literal
// outside the tests. Two gauges the alerts used were listed and never
// exported, which left IdemgateClaimsStuckPending unable to fire.
func TestMetricsListIsExported(t *testing.T) {
	list, err := os.ReadFile("deploy/prometheus/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		code.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(list), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n++
		if !strings.Contains(code.String(), `"`+f[0]+`"`) {
			t.Errorf("deploy/prometheus/metrics.txt lists %s, which no Go file outside the tests names", f[0])
		}
	}
	if n < 10 {
		t.Fatalf("read %d metrics from deploy/prometheus/metrics.txt: the check would be vacuous", n)
	}
}
