package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// openInFS is a file system to test OpenIn and LstatIn on: fsys, a
// directory root in it, and how to make a symbolic link and rename.
type openInFS struct {
	fsys    FS
	root    string
	symlink func(target, name string) error
}

// inPath is the path the In operations name the entry name of the
// directory opened as dir by.
func inPath(dir, name string) string { return dir + string(filepath.Separator) + name }

func openInSystems(t *testing.T) map[string]openInFS {
	osRoot := t.TempDir()
	mem := func() *Mem {
		m := NewMem()
		if err := m.Mkdir("/r", 0o755); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1, m2, m3 := mem(), mem(), mem()
	return map[string]openInFS{
		"OS":        {OS, osRoot, os.Symlink},
		"Mem":       {m1, "/r", m1.Symlink},
		"Injecting": {Inject(m2, nil), "/r", m2.Symlink},
		"Crasher":   {NewCrasher(m3, 0), "/r", m3.Symlink},
	}
}

// TestOpenIn checks that OpenIn and LstatIn look a name up in the open
// directory as Open and Lstat look up its path, also once the directory has
// been renamed, and that SameFile tells their files apart.
func TestOpenIn(t *testing.T) {
	for name, sys := range openInSystems(t) {
		t.Run(name, func(t *testing.T) {
			if sys.fsys == OS {
				spooltest.NeedDisk(t)
			}
			fsys, dir := sys.fsys, sys.root+"/d"
			if err := fsys.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"f", "g"} {
				w, err := fsys.Create(dir+"/"+f, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(w, "data of "+f); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := fsys.Mkdir(dir+"/sub", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := sys.symlink("f", dir+"/link"); err != nil {
				t.Fatal(err)
			}
			d, err := fsys.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			// The directory moves; d still names it.
			moved := sys.root + "/moved"
			if err := fsys.Rename(dir, moved); err != nil {
				t.Fatal(err)
			}

			f, err := fsys.OpenIn(d, "f")
			if err != nil {
				t.Fatalf("OpenIn f: %v", err)
			}
			data, err := io.ReadAll(f)
			if err != nil || string(data) != "data of f" {
				t.Errorf("OpenIn f: read %q, %v; want %q", data, err, "data of f")
			}
			ffi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			lfi, err := fsys.LstatIn(d, "f")
			if err != nil || !lfi.Mode().IsRegular() || lfi.Size() != int64(len("data of f")) || lfi.Name() != "f" {
				t.Errorf("LstatIn f = %v, %v; want a regular file f of 9 bytes", lfi, err)
			}
			pfi, err := fsys.Lstat(moved + "/f")
			if err != nil {
				t.Fatal(err)
			}
			gfi, err := fsys.LstatIn(d, "g")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !SameFile(ffi, lfi) || !SameFile(lfi, pfi):
				t.Errorf("SameFile: the open file f, LstatIn f and Lstat f differ")
			case SameFile(ffi, gfi) || SameFile(lfi, gfi):
				t.Errorf("SameFile: f and g are the same file")
			case SameFile(ffi, nil):
				t.Errorf("SameFile(fi, nil) is true")
			}
			// f is replaced by g; the open f stays another file.
			if err := fsys.Rename(moved+"/g", moved+"/f"); err != nil {
				t.Fatal(err)
			}
			if nfi, err := fsys.LstatIn(d, "f"); err != nil || SameFile(ffi, nfi) || !SameFile(gfi, nfi) {
				t.Errorf("LstatIn f after g replaced it: %v; want g's file", err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			if fi, err := fsys.LstatIn(d, "link"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
				t.Errorf("LstatIn link = %v, %v; want a symbolic link", fi, err)
			}
			if fi, err := fsys.LstatIn(d, "sub"); err != nil || !fi.IsDir() {
				t.Errorf("LstatIn sub = %v, %v; want a directory", fi, err)
			}
			for _, c := range []struct {
				name string
				want error
			}{
				{"missing", fs.ErrNotExist},
				{"link", syscall.ELOOP},
				{"sub", syscall.EISDIR},
				{"sub/x", syscall.EINVAL},
				{"..", syscall.EINVAL},
				{"", syscall.EINVAL},
			} {
				f, err := fsys.OpenIn(d, c.name)
				if err == nil {
					f.Close()
				}
				var pe *fs.PathError
				if !errors.Is(err, c.want) || !errors.As(err, &pe) || !strings.HasSuffix(pe.Path, inPath("d", c.name)) {
					t.Errorf("OpenIn %q: got %v, want a *fs.PathError on the path of %[1]q in the directory, wrapping %v", c.name, err, c.want)
				}
			}
			if _, err := fsys.LstatIn(d, "missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("LstatIn missing: got %v, want ErrNotExist", err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if f, err := fsys.OpenIn(d, "f"); err == nil {
				f.Close()
				t.Errorf("OpenIn on a closed directory: got nil error")
			}
		})
	}
}

// TestOpenInNotRegular checks that OpenIn, as Open, neither blocks on nor
// opens a FIFO.
func TestOpenInNotRegular(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("FIFOs: Linux only")
	}
	dir := t.TempDir()
	if err := mkfifo(dir + "/fifo"); err != nil {
		t.Fatal(err)
	}
	d, err := OS.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := OS.OpenIn(d, "fifo")
	if err == nil {
		f.Close()
	}
	if !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenIn fifo: got %v, want ErrNotRegular", err)
	}
	if fi, err := OS.LstatIn(d, "fifo"); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("LstatIn fifo = %v, %v; want a named pipe", fi, err)
	}
}

// TestInjectOpenIn checks that an Injecting consults its Injector for
// OpenIn and LstatIn with the path of the name in the directory, and a
// Crasher refuses them after its crash.
func TestInjectOpenIn(t *testing.T) {
	m := NewMem()
	if err := m.Mkdir("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := m.Create("/d/f", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	var seen []string
	inj := Inject(m, InjectorFunc(func(op Op, path string) error {
		seen = append(seen, op.String()+" "+path)
		if op == OpLstat {
			return syscall.EIO
		}
		return nil
	}))
	d, err := inj.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	f, err := inj.OpenIn(d, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*injectingFile); !ok {
		t.Errorf("Injecting.OpenIn returned a %T", f)
	}
	f.Close()
	if _, err := inj.LstatIn(d, "f"); !errors.Is(err, syscall.EIO) {
		t.Errorf("LstatIn with EIO injected: got %v", err)
	}
	pf := inPath("/d", "f")
	want := []string{OpOpenDir.String() + " /d", OpOpen.String() + " " + pf, OpClose.String() + " " + pf, OpLstat.String() + " " + pf}
	if len(seen) != len(want) {
		t.Fatalf("Injector saw %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("Injector saw %q, want %q", seen, want)
			break
		}
	}

	c := NewCrasher(m, 1)
	cd, err := c.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LstatIn(cd, "f"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("/d/x", 0o755); !errors.Is(err, ErrCrashed) { // the crash point
		t.Fatalf("Mkdir at the crash point: got %v, want ErrCrashed", err)
	}
	if _, err := c.OpenIn(cd, "f"); !errors.Is(err, ErrCrashed) {
		t.Errorf("OpenIn after the crash: got %v, want ErrCrashed", err)
	}
	if _, err := c.LstatIn(cd, "f"); !errors.Is(err, ErrCrashed) {
		t.Errorf("LstatIn after the crash: got %v, want ErrCrashed", err)
	}
}
