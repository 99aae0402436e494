package filesystem

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/metastoragetest"
)

// longTestsEnv, set to any value, runs the long forms of the tests: the
// conformance suites in every mode both on disk and in memory, and more
// kill cycles and model operations. CI sets it; without it the tests run
// each kind of check fewer times.
const longTestsEnv = "SPOOLMETA_LONG_TESTS"

// longTests reports whether longTestsEnv is set.
func longTests() bool { return os.Getenv(longTestsEnv) != "" }

// conformanceRun is a run of a conformance suite: a mode, on disk or on
// the in-memory file system.
type conformanceRun struct {
	mode   Mode
	onDisk bool
}

func (r conformanceRun) name() string {
	if r.onDisk {
		return r.mode.String()
	}
	return "mem/" + r.mode.String()
}

// config is the configuration of a Backend of the run: on a new
// in-memory file system, or on disk in the directory dir returns.
func (r conformanceRun) config(t *testing.T, dir func() string) config {
	if r.onDisk {
		return factoryFor(dir(), r.mode).cfg
	}
	return memConfig(vfs.NewMem(), r.mode)
}

// conformanceRuns are the runs of the conformance suites: each mode once,
// Standard on disk and the others in memory, and in the long tests every
// mode both ways.
func conformanceRuns() []conformanceRun {
	runs := []conformanceRun{{Standard, true}, {Performance, false}, {Hybrid, false}}
	if longTests() {
		runs = append(runs, conformanceRun{Standard, false}, conformanceRun{Performance, true}, conformanceRun{Hybrid, true})
	}
	return runs
}

// TestConformance runs the contract's conformance suite in each mode.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, r := range conformanceRuns() {
		t.Run(r.name(), func(t *testing.T) {
			t.Parallel()
			if r.onDisk {
				spooltest.NeedDisk(t)
			}
			metastoragetest.Run(t, func(t *testing.T) metastorage.Backend {
				b, err := open(r.config(t, t.TempDir))
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
	t.Parallel()
	for _, r := range conformanceRuns() {
		t.Run(r.name(), func(t *testing.T) {
			t.Parallel()
			if r.onDisk {
				spooltest.NeedDisk(t)
			}
			metastoragetest.RunShared(t, func(t *testing.T) func() (metastorage.Backend, error) {
				cfg := r.config(t, func() string { return filepath.Join(t.TempDir(), "spool") })
				return func() (metastorage.Backend, error) {
					b, err := open(cfg)
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
