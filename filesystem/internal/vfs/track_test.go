package vfs

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
)

// memWithDirs returns a Mem holding the directories dirs, durable.
func memWithDirs(t *testing.T, dirs ...string) *Mem {
	t.Helper()
	m := NewMem()
	for _, d := range dirs {
		if err := m.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syncClose(m.OpenDir("/")); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTrackerSyncsWhatChanged shows what a Tracker's SyncAll makes
// durable: the files written through it, wherever they were renamed since,
// also by another file system on the same files, and the directories whose
// entries changed through it; and nothing before SyncAll.
func TestTrackerSyncsWhatChanged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		then  func(m *Mem, tr *Tracker) error // after the writes, before SyncAll
		path  string                          // where "x" must be durable
		gone  string                          // a name that must not be
		other bool                            // the change was not the Tracker's
	}{
		{name: "written", then: func(*Mem, *Tracker) error { return nil }, path: "/d/x"},
		{name: "renamed through it", then: func(_ *Mem, tr *Tracker) error { return tr.Rename("/d/x", "/e/x") }, path: "/e/x", gone: "/d/x"},
		{name: "removed through it", then: func(_ *Mem, tr *Tracker) error { return tr.Remove("/d/x") }, gone: "/d/x"},
		{name: "renamed by another", then: func(m *Mem, _ *Tracker) error {
			if err := m.Rename("/d/x", "/e/x"); err != nil {
				return err
			}
			return syncClose(m.OpenDir("/e")) // the other process syncs its rename
		}, path: "/e/x", other: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := memWithDirs(t, "/d", "/e")
			tr := NewTracker(m)
			writeFile(t, tr, "/d/x", "data")
			if err := tc.then(m, tr); err != nil {
				t.Fatal(err)
			}
			if !tc.other {
				if _, err := readFile(m.CrashClone(), "/d/x"); err == nil && tc.path == "/d/x" {
					t.Fatalf("/d/x durable before SyncAll")
				}
			}
			if err := tr.SyncAll(nil); err != nil {
				t.Fatal(err)
			}
			img := m.CrashClone()
			if tc.path != "" {
				if got, err := readFile(img, tc.path); err != nil || got != "data" {
					t.Errorf("after SyncAll, %s holds %q, %v; want %q", tc.path, got, err, "data")
				}
			}
			if tc.gone != "" {
				if _, err := img.Lstat(tc.gone); err == nil {
					t.Errorf("after SyncAll, %s survives a crash", tc.gone)
				}
			}
		})
	}
}

// TestTrackerBatches shows that files closed unsynced beyond maxHeld are
// synced in the background, and that SyncAll then covers every one.
func TestTrackerBatches(t *testing.T) {
	m := memWithDirs(t, "/d")
	var syncs atomic.Int64
	tr := NewTracker(Inject(m, InjectorFunc(func(op Op, _ string) error {
		if op == OpSync {
			syncs.Add(1)
		}
		return nil
	})))
	n := maxHeld + maxHeld/2
	for i := range n {
		writeFile(t, tr, fmt.Sprintf("/d/%d", i), "x")
	}
	// The batch that maxHeld closed files started is registered before
	// the close that started it returns; wait for it, without SyncAll.
	tr.mu.Lock()
	var batches []chan struct{}
	for done := range tr.batches {
		batches = append(batches, done)
	}
	tr.mu.Unlock()
	for _, done := range batches {
		<-done
	}
	if got := syncs.Load(); got != maxHeld {
		t.Errorf("%d syncs in the background after %d files were closed, want %d: one batch", got, n, maxHeld)
	}
	if err := tr.SyncAll(nil); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != int64(n)+1 {
		t.Errorf("%d syncs, want %d: one per file and one of the directory", got, n+1)
	}
	img := m.CrashClone()
	for i := range n {
		if got, err := readFile(img, fmt.Sprintf("/d/%d", i)); err != nil || got != "x" {
			t.Fatalf("file %d after SyncAll: %q, %v", i, got, err)
		}
	}
}

// TestTrackerSyncFailureIsFinal shows that once a sync fails, every
// SyncAll returns its error, also once the sync would succeed.
func TestTrackerSyncFailureIsFinal(t *testing.T) {
	m := memWithDirs(t, "/d")
	var fail atomic.Bool
	fail.Store(true)
	tr := NewTracker(Inject(m, InjectorFunc(func(op Op, _ string) error {
		if op == OpSync && fail.Load() {
			return syscall.EIO
		}
		return nil
	})))
	writeFile(t, tr, "/d/x", "data")
	if err := tr.SyncAll(nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncAll with a failing sync: %v, want EIO", err)
	}
	fail.Store(false)
	writeFile(t, tr, "/d/y", "data")
	if err := tr.SyncAll(nil); !errors.Is(err, syscall.EIO) {
		t.Errorf("SyncAll after a failed one: %v, want EIO still", err)
	}
}

// TestTrackerRelease shows that Release closes the files held, and that a
// file closed after it is closed at once.
func TestTrackerRelease(t *testing.T) {
	m := memWithDirs(t, "/d")
	tr := NewTracker(m)
	writeFile(t, tr, "/d/x", "data")
	late, err := tr.Create("/d/y", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(late, "data"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Release(); err != nil {
		t.Fatal(err)
	}
	if err := late.Close(); err != nil {
		t.Errorf("Close after Release: %v", err)
	}
	if err := late.(*trackedFile).File.Close(); err == nil {
		t.Errorf("the file under %s is still open", late.Name())
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.files) != 0 {
		t.Errorf("%d files held after Release", len(tr.files))
	}
}

// TestTrackerForgetsSyncedFiles shows that a file synced by its owner
// before its close is closed at once and no longer tracked, so that a
// Tracker under calls that sync each file holds nothing.
func TestTrackerForgetsSyncedFiles(t *testing.T) {
	m := memWithDirs(t, "/d")
	tr := NewTracker(m)
	for i := range 3 {
		f, err := tr.Create(fmt.Sprintf("/d/%d", i), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(f, "data"); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.(*trackedFile).File.Close(); err == nil {
			t.Errorf("file %d: the file under it is still open", i)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.files) != 0 || tr.held != 0 {
		t.Errorf("%d files tracked, %d held; want none", len(tr.files), tr.held)
	}
}

// syncFirstFS runs before at the start of each Rename and Remove, so that
// a SyncAll can run between a Tracker's call and the change it makes.
type syncFirstFS struct {
	FS
	before func()
}

func (f *syncFirstFS) Rename(oldname, newname string) error {
	f.before()
	return f.FS.Rename(oldname, newname)
}

func (f *syncFirstFS) Remove(name string) error {
	f.before()
	return f.FS.Remove(name)
}

// TestTrackerSyncsChangeAfterRacingSync shows that a rename or removal
// that a SyncAll overtook, starting before the change was made, is still
// made durable by the next SyncAll.
func TestTrackerSyncsChangeAfterRacingSync(t *testing.T) {
	for _, tc := range []struct {
		name       string
		change     func(tr *Tracker) error
		path, gone string
	}{
		{"rename", func(tr *Tracker) error { return tr.Rename("/d/x", "/e/x") }, "/e/x", "/d/x"},
		{"remove", func(tr *Tracker) error { return tr.Remove("/d/x") }, "", "/d/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := memWithDirs(t, "/d", "/e")
			inner := &syncFirstFS{FS: m}
			tr := NewTracker(inner)
			writeFile(t, tr, "/d/x", "data")
			inner.before = func() {
				if err := tr.SyncAll(nil); err != nil {
					t.Error(err)
				}
			}
			if err := tc.change(tr); err != nil {
				t.Fatal(err)
			}
			inner.before = func() {}
			if err := tr.SyncAll(nil); err != nil {
				t.Fatal(err)
			}
			img := m.CrashClone()
			if tc.path != "" {
				if got, err := readFile(img, tc.path); err != nil || got != "data" {
					t.Errorf("after the second SyncAll, %s holds %q, %v; want %q", tc.path, got, err, "data")
				}
			}
			if _, err := img.Lstat(tc.gone); err == nil {
				t.Errorf("after the second SyncAll, %s survives a crash", tc.gone)
			}
		})
	}
}

// TestTrackerSkipsSyncedFile shows that SyncAll does not sync again a file
// whose owner has synced every write, as a journal's group sync does.
func TestTrackerSkipsSyncedFile(t *testing.T) {
	m := memWithDirs(t, "/d")
	var syncs atomic.Int64
	tr := NewTracker(Inject(m, InjectorFunc(func(op Op, path string) error {
		if op == OpSync && path == "/d/j" {
			syncs.Add(1)
		}
		return nil
	})))
	f, err := tr.Create("/d/j", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := tr.SyncAll(nil); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 1 {
		t.Errorf("%d syncs of a file its owner had synced, want 1: the owner's", n)
	}
}
