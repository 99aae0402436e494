package vfs

import (
	"errors"
	"io"
	"path/filepath"
	"syscall"
	"testing"
)

func readAllOf(t *testing.T, fsys FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeNew(t *testing.T, fsys FS, name, data string) {
	t.Helper()
	f, err := fsys.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExchange checks Exchange on the OS and on Mem alike: the two names
// swap their files, and a missing name is ENOENT.
func TestExchange(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T) (FS, string){
		"os":  func(t *testing.T) (FS, string) { return OS, t.TempDir() },
		"mem": func(t *testing.T) (FS, string) { m := NewMem(); mustMkdir(t, m, "/d"); return m, "/d" },
	} {
		t.Run(name, func(t *testing.T) {
			fsys, dir := setup(t)
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			writeNew(t, fsys, a, "new")
			writeNew(t, fsys, b, "old")
			if err := fsys.Exchange(a, b); err != nil {
				t.Fatal(err)
			}
			if got := readAllOf(t, fsys, a) + "," + readAllOf(t, fsys, b); got != "old,new" {
				t.Errorf("after Exchange a,b hold %s, want old,new", got)
			}
			err := fsys.Exchange(a, filepath.Join(dir, "missing"))
			if !errors.Is(err, syscall.ENOENT) {
				t.Errorf("Exchange with a missing name = %v, want ENOENT", err)
			}
		})
	}
}

// TestExchangeDurability shows that an exchange survives a crash only once
// its directory is synced.
func TestExchangeDurability(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	writeNew(t, m, "/d/a", "new")
	writeNew(t, m, "/d/b", "old")
	d, err := m.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	root, err := m.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	root.Sync()
	root.Close()
	if err := m.Exchange("/d/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, m.CrashClone(), "/d/b"); got != "old" {
		t.Errorf("unsynced exchange survived a crash: b holds %q, want old", got)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, m.CrashClone(), "/d/b"); got != "new" {
		t.Errorf("synced exchange lost in a crash: b holds %q, want new", got)
	}
}

// TestOpenRefusesFIFO shows that Open neither blocks on nor reads a FIFO.
func TestOpenRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OS.Open(p)
	if !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open of a FIFO = %v, want ErrNotRegular", err)
	}
}
