package spoolmeta_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLibraryDependencies proves that the library packages import only the
// standard library and golang.org/x/sys.
func TestLibraryDependencies(t *testing.T) {
	libs := []string{"./metastorage", "./metastoragetest", "./filesystem"}
	for _, pkg := range libs {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/spoolmeta/spoolmeta") || strings.HasPrefix(dep, "golang.org/x/sys/") {
				continue
			}
			t.Errorf("%s depends on %s: library packages may import only the standard library and golang.org/x/sys", pkg, dep)
		}
	}
}
