package filesystem

import (
	"path/filepath"
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/metastoragetest"
)

// TestConformance runs the contract's conformance suite in each mode.
func TestConformance(t *testing.T) {
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		t.Run(mode.String(), func(t *testing.T) {
			metastoragetest.Run(t, func(t *testing.T) metastorage.Backend {
				b, err := factoryFor(t.TempDir(), mode).Open()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			})
		})
	}
}

// TestConformanceShared runs the suite's checks of several Backends on one
// directory.
func TestConformanceShared(t *testing.T) {
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		t.Run(mode.String(), func(t *testing.T) {
			metastoragetest.RunShared(t, func(t *testing.T) func() (metastorage.Backend, error) {
				dir := filepath.Join(t.TempDir(), "spool")
				return func() (metastorage.Backend, error) {
					b, err := factoryFor(dir, mode).Open()
					if err != nil {
						return nil, err
					}
					t.Cleanup(func() { b.Close() })
					return b, nil
				}
			})
		})
	}
}

func factoryFor(dir string, mode Mode) *Factory {
	return NewFactory(dir).WithDisableSync(mode == Performance).WithBatchSync(mode == Hybrid)
}
