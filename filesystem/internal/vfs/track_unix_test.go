//go:build linux || darwin

package vfs

import (
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestTrackerPrunesUnlinked shows, on the OS's file system, which knows
// link counts, that a batch of held files closes those no name leads to
// without syncing them, and holds the few others until SyncAll syncs them.
func TestTrackerPrunesUnlinked(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int64
	tr := NewTracker(Inject(OS, InjectorFunc(func(op Op, _ string) error {
		if op == OpSync {
			syncs.Add(1)
		}
		return nil
	})))
	const kept = 10
	files := make([]File, maxHeld)
	for i := range files {
		name := filepath.Join(dir, fmt.Sprint(i))
		f, err := tr.Create(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(f, "data"); err != nil {
			t.Fatal(err)
		}
		files[i] = f
		if i >= kept {
			if err := tr.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range files {
		if err := f.Close(); err != nil { // the last starts a batch
			t.Fatal(err)
		}
	}
	tr.mu.Lock()
	tr.syncing = true
	tr.waitBatches() // the batch has run
	held := len(tr.files)
	tr.syncing = false
	tr.mu.Unlock()
	if held != kept || syncs.Load() != 0 {
		t.Errorf("after the batch, %d files held and %d syncs; want %d held and no sync", held, syncs.Load(), kept)
	}
	if err := tr.SyncAll(nil); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != kept+1 {
		t.Errorf("%d syncs, want %d: the files still named and their directory", got, kept+1)
	}
	for i, f := range files {
		g := f.(*trackedFile)
		g.mu.Lock()
		released := g.released
		g.mu.Unlock()
		if !released {
			t.Errorf("file %d still open after SyncAll", i)
		}
	}
}
