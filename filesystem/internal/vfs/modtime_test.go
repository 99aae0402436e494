package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// modTimeIn returns the modification time of name in the directory dir.
func modTimeIn(t *testing.T, fsys FS, dir, name string) time.Time {
	t.Helper()
	d, err := fsys.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fi, err := fsys.LstatIn(d, name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// setModTimeIn sets the modification time of name in dir through fsys.
func setModTime(fsys FS, dir, name string, mt time.Time) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fsys.(ModTimeSetter).SetModTimeIn(d, name, mt)
}

// TestSetModTimeIn sets an odd-nanosecond time on a file and on a symbolic
// link, in the OS file system and in Mem: the file reads it back, to the
// nanosecond in Mem and to the file system's precision in the OS; the
// link's target keeps its time.
func TestSetModTimeIn(t *testing.T) {
	want := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, tc := range []struct {
		name  string
		fsys  FS
		dir   string
		exact bool
	}{
		{"OS", OS, t.TempDir(), false},
		{"Mem", NewMem(), "/d", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, ok := tc.fsys.(*Mem); ok {
				mustMkdir(t, m, tc.dir)
			}
			writeFile(t, tc.fsys, filepath.Join(tc.dir, "f"), "data")
			writeFile(t, tc.fsys, filepath.Join(tc.dir, "target"), "data")
			link := func(target, name string) error { return os.Symlink(target, name) }
			if m, ok := tc.fsys.(*Mem); ok {
				link = m.Symlink
			}
			if err := link("target", filepath.Join(tc.dir, "s")); err != nil {
				t.Fatal(err)
			}
			before := modTimeIn(t, tc.fsys, tc.dir, "target")
			for _, name := range []string{"f", "s"} {
				if err := setModTime(tc.fsys, tc.dir, name, want); err != nil {
					t.Fatal(err)
				}
				got := modTimeIn(t, tc.fsys, tc.dir, name)
				if tc.exact && !got.Equal(want) || got.After(want) || want.Sub(got) >= 2*time.Second {
					t.Errorf("%s: modification time %v, want %v", name, got, want)
				}
			}
			if got := modTimeIn(t, tc.fsys, tc.dir, "target"); !got.Equal(before) {
				t.Errorf("the link's target changed time: %v, was %v", got, before)
			}
			if err := setModTime(tc.fsys, tc.dir, "missing", want); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("missing file: %v, want an error wrapping ErrNotExist", err)
			}
		})
	}
}

// TestMemModTimeCrash shows that a time set in a Mem survives a crash only
// once the file has been synced, through any File open on it.
func TestMemModTimeCrash(t *testing.T) {
	m := memWithDirs(t, "/d")
	create(t, m, "/d/f", "data", true)
	if err := syncClose(m.OpenDir("/d")); err != nil {
		t.Fatal(err)
	}
	old := modTimeIn(t, m, "/d", "f")
	want := old.Add(time.Hour + 1)
	if err := setModTime(m, "/d", "f", want); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/d", "f"); !got.Equal(old) {
		t.Errorf("unsynced: the crash image has time %v, want the old %v", got, old)
	}
	if err := syncClose(m.Open("/d/f")); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/d", "f"); !got.Equal(want) {
		t.Errorf("synced: the crash image has time %v, want %v", got, want)
	}
}

// TestMemModTimeOrdered shows that, with ordered metadata, a time set in a
// Mem survives a crash once anything changed after it has been synced, and
// not through a sync of what no change touched since; a crash image with
// every name committed has the times set before them.
func TestMemModTimeOrdered(t *testing.T) {
	m := memWithDirs(t, "/d", "/e")
	create(t, m, "/d/f", "data", true)
	create(t, m, "/d/g", "data", true)
	if err := syncClose(m.OpenDir("/d")); err != nil {
		t.Fatal(err)
	}
	m.JournalMetadata()
	old := modTimeIn(t, m, "/d", "f")
	want := old.Add(time.Hour + 1)
	if err := setModTime(m, "/d", "f", want); err != nil {
		t.Fatal(err)
	}
	if err := syncClose(m.OpenDir("/e")); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/d", "f"); !got.Equal(old) {
		t.Errorf("unchanged directory synced: the crash image has time %v, want the old %v", got, old)
	}
	if err := setModTime(m, "/d", "g", want); err != nil {
		t.Fatal(err)
	}
	if err := syncClose(m.Open("/d/g")); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/d", "f"); !got.Equal(want) {
		t.Errorf("a later time synced: the crash image has time %v, want %v", got, want)
	}
	if err := setModTime(m, "/d", "f", want.Add(1)); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("/d/f", "/e/f"); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashCloneNames(), "/e", "f"); !got.Equal(want.Add(1)) {
		t.Errorf("renamed, names committed: the crash image has time %v, want %v", got, want.Add(1))
	}
	if err := syncClose(m.OpenDir("/e")); err != nil {
		t.Fatal(err)
	}
	c := m.CrashClone()
	if got := modTimeIn(t, c, "/e", "f"); !got.Equal(want.Add(1)) {
		t.Errorf("renamed, new directory synced: the crash image has time %v, want %v", got, want.Add(1))
	}
	if _, err := c.Lstat("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("renamed, new directory synced: the old name is left in the crash image (%v)", err)
	}
}

// TestInjectSetModTime shows that an injected failure leaves the time, and
// that a Crasher counts the call as mutating and refuses it at its crash
// point.
func TestInjectSetModTime(t *testing.T) {
	m := injectFixture(t)
	old := modTimeIn(t, m, "/d", "f")
	fsys := Inject(m, And(OnOp(OpSetModTime), Always(syscall.EIO)))
	if err := setModTime(fsys, "/d", "f", old.Add(time.Hour)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("error %v, want EIO", err)
	}
	if got := modTimeIn(t, m, "/d", "f"); !got.Equal(old) {
		t.Errorf("a failed call changed the time: %v, was %v", got, old)
	}
	c := NewCrasher(m, 1)
	if err := setModTime(c, "/d", "f", old.Add(time.Hour)); !errors.Is(err, ErrCrashed) {
		t.Fatalf("crash point: %v, want ErrCrashed", err)
	}
	if c.Calls() != 1 {
		t.Errorf("Calls() = %d, want 1", c.Calls())
	}
	if got := modTimeIn(t, m, "/d", "f"); !got.Equal(old) {
		t.Errorf("the call the Crasher refused changed the time: %v, was %v", got, old)
	}
}

// TestTrackerSyncsModTime shows that a time set through a Tracker is
// durable after its SyncAll, also once the file has been renamed, and not
// before.
func TestTrackerSyncsModTime(t *testing.T) {
	m := memWithDirs(t, "/d", "/e")
	create(t, m, "/d/f", "data", true)
	if err := syncClose(m.OpenDir("/d")); err != nil {
		t.Fatal(err)
	}
	old := modTimeIn(t, m, "/d", "f")
	want := old.Add(time.Hour + 1)
	tr := NewTracker(m)
	if err := setModTime(tr, "/d", "f", want); err != nil {
		t.Fatal(err)
	}
	if err := tr.Rename("/d/f", "/e/f"); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/d", "f"); !got.Equal(old) {
		t.Errorf("before SyncAll: the crash image has time %v, want the old %v", got, old)
	}
	if err := tr.SyncAll(nil); err != nil {
		t.Fatal(err)
	}
	if got := modTimeIn(t, m.CrashClone(), "/e", "f"); !got.Equal(want) {
		t.Errorf("after SyncAll: the crash image has time %v, want %v", got, want)
	}
	if err := tr.Release(); err != nil {
		t.Fatal(err)
	}
}
