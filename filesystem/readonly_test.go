package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// snapshot returns every path under dir with its size, mode and contents.
func snapshot(t *testing.T, dir string) map[string]string {
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
		v := info.Mode().String()
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

func TestReadOnly(t *testing.T) {
	dir := copyFixture(t, "crashed-spool")
	before := snapshot(t, dir)
	b, err := NewFactory(dir).WithReadOnly(true).Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.GetMeta(ctx, "msg-123"); err != nil {
		t.Errorf("GetMeta: %v", err)
	}
	if err := b.StoreMeta(ctx, "x", metastorage.MessageMetadata{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("StoreMeta = %v, want ErrReadOnly", err)
	}
	if err := b.MoveToState(ctx, "msg-123", metastorage.StateDeferred, metastorage.StateActive); !errors.Is(err, ErrReadOnly) {
		t.Errorf("MoveToState = %v, want ErrReadOnly", err)
	}
	if err := b.RecoverFromCrash(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("RecoverFromCrash = %v, want ErrReadOnly", err)
	}
	findings, err := b.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	kinds := make(map[FindingKind]int)
	for _, f := range findings {
		kinds[f.Kind]++
		if f.Repaired {
			t.Errorf("read-only Check repaired %+v", f)
		}
	}
	want := map[FindingKind]int{OrphanTemp: 2, Corrupt: 2, StateMismatch: 1, Duplicate: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("Check found %d %s, want %d (all: %+v)", kinds[k], k, n, findings)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("read-only open changed the directory: %d entries, had %d", len(after), len(before))
	}
	for p, v := range before {
		if after[p] != v {
			t.Errorf("read-only open changed %s", p)
		}
	}

	if _, err := NewFactory(t.TempDir()).WithReadOnly(true).Open(); err == nil {
		t.Error("read-only open of an empty directory succeeded, want an error")
	}
}
