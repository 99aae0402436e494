package filesystem

import (
	"context"
	"errors"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func TestReadOnly(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := copyFixture(t, "crashed-spool")
	before := spooltest.Snapshot(t, dir)
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
	want := map[FindingKind]int{OrphanTemp: 2, Corrupt: 2, StateMismatch: 0, Duplicate: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("Check found %d %s, want %d (all: %+v)", kinds[k], k, n, findings)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	spooltest.SameSnapshot(t, before, spooltest.Snapshot(t, dir))

	if _, err := NewFactory(t.TempDir()).WithReadOnly(true).Open(); err == nil {
		t.Error("read-only open of an empty directory succeeded, want an error")
	}
}
