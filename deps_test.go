package spoolmeta_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLibraryDependencies proves that each library package imports only
// the modules it is allowed: the standard library and golang.org/x/sys, and
// for the postgres package the pgx driver and the modules it pulls in.
func TestLibraryDependencies(t *testing.T) {
	base := []string{"github.com/spoolmeta/spoolmeta", "golang.org/x/sys"}
	pgx := append(base,
		"github.com/jackc/pgx/v5", "github.com/jackc/pgpassfile", "github.com/jackc/pgservicefile",
		"github.com/jackc/puddle/v2", "golang.org/x/sync", "golang.org/x/text")
	for _, c := range []struct {
		pkg     string
		allowed []string
	}{
		{"./metastorage", base},
		{"./metastoragetest", base},
		{"./filesystem", base},
		{"./postgres", pgx},
	} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", c.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", c.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !inModules(dep, c.allowed) {
				t.Errorf("%s depends on %s: it may import only the standard library and %s", c.pkg, dep, strings.Join(c.allowed[1:], ", "))
			}
		}
	}
}

// inModules reports whether the package path is in one of the modules.
func inModules(path string, modules []string) bool {
	for _, m := range modules {
		if path == m || strings.HasPrefix(path, m+"/") {
			return true
		}
	}
	return false
}
