// Package spooltest holds what the project's tests share: the metadata
// directories written by another implementation of the on-disk format, and
// a way to check that a directory did not change.
package spooltest

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtures are testdata/clean-spool (six messages, one in each state) and
// testdata/crashed-spool (the same after a crash in the middle of several
// writes: a message in two states, orphaned temp files, a truncated and an
// empty file, a State field that disagrees with its directory).
//
//go:embed all:testdata
var fixtures embed.FS

// Fixture copies the fixture name ("clean-spool" or "crashed-spool") into
// a new temporary directory of t and returns the copy's path: opening a
// directory may change it.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	src, err := fs.Sub(fixtures, "testdata/"+name)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, src); err != nil {
		t.Fatalf("copy fixture %s: %v", name, err)
	}
	return dst
}

// Snapshot returns every path under dir with its mode, size, modification
// time and contents.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%s %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(data)
		}
		m[strings.TrimPrefix(p, dir)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SameSnapshot reports every difference between two snapshots as a test
// error.
func SameSnapshot(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if v != w {
			t.Errorf("%s changed:\n%s\n-> %s", p, v, w)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}
