package filesystem

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/metastoragetest"
)

// longTestsEnv, set to any value, runs the long forms of the tests: the
// conformance suite on disk in every mode, and every kill cycle. CI sets
// it; without it the tests run each kind of check fewer times.
const longTestsEnv = "SPOOLMETA_LONG_TESTS"

// longTests reports whether longTestsEnv is set.
func longTests() bool { return os.Getenv(longTestsEnv) != "" }

// conformanceOnDisk are the modes in which the conformance suites run on
// the real file system: Standard, and every mode in the long tests. Every
// mode runs on the in-memory file system.
func conformanceOnDisk() []Mode {
	if longTests() {
		return []Mode{Standard, Performance, Hybrid}
	}
	return []Mode{Standard}
}

// TestConformance runs the contract's conformance suite in each mode, on
// the in-memory file system and on disk.
func TestConformance(t *testing.T) {
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		t.Run("mem/"+mode.String(), func(t *testing.T) {
			t.Parallel()
			metastoragetest.Run(t, func(t *testing.T) metastorage.Backend {
				b, err := open(memConfig(vfs.NewMem(), mode))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			})
		})
	}
	for _, mode := range conformanceOnDisk() {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
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
// directory, on the in-memory file system and on disk.
func TestConformanceShared(t *testing.T) {
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		t.Run("mem/"+mode.String(), func(t *testing.T) {
			t.Parallel()
			metastoragetest.RunShared(t, func(t *testing.T) func() (metastorage.Backend, error) {
				m := vfs.NewMem()
				return func() (metastorage.Backend, error) {
					b, err := open(memConfig(m, mode))
					if err != nil {
						return nil, err
					}
					t.Cleanup(func() { b.Close() })
					return b, nil
				}
			})
		})
	}
	for _, mode := range conformanceOnDisk() {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
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

// memConfig is the configuration of a Backend in mode on fsys, an
// in-memory file system, that is otherwise a Factory's.
func memConfig(fsys vfs.FS, mode Mode) config {
	cfg := factoryFor(crashDir, mode).cfg
	cfg.fs = fsys
	return cfg
}

func factoryFor(dir string, mode Mode) *Factory {
	return NewFactory(dir).WithDisableSync(mode == Performance).WithBatchSync(mode == Hybrid)
}
