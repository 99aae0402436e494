package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// outcome describes err for comparison: its type, its Op and what it
// matches.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var kind string
	switch e := err.(type) {
	case *fs.PathError:
		kind = "PathError " + e.Op
	case *os.LinkError:
		kind = "LinkError " + e.Op
	default:
		kind = fmt.Sprintf("%T", err)
	}
	return kind + ": " + errClass(err)
}

// errClass names what err matches: closed, an errno, or EOF.
func errClass(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, fs.ErrClosed):
		return "closed"
	case err == io.EOF:
		return "EOF"
	case errors.As(err, &errno):
		return errnoName(errno)
	}
	return err.Error()
}

func errnoName(errno syscall.Errno) string {
	names := map[syscall.Errno]string{
		syscall.ENOENT: "ENOENT", syscall.EEXIST: "EEXIST", syscall.ELOOP: "ELOOP",
		syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.ENOTEMPTY: "ENOTEMPTY",
		syscall.EACCES: "EACCES", syscall.EBADF: "EBADF", syscall.EINVAL: "EINVAL",
		syscall.EBUSY: "EBUSY", syscall.ENOSPC: "ENOSPC", syscall.EIO: "EIO",
	}
	if name, ok := names[errno]; ok {
		return name
	}
	return errno.Error()
}

// wantErrno fails t unless err matches want (0 meaning success).
func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: %v, want success", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %s", what, err, errnoName(want))
	}
}

// memFixture builds the tree the tests start from, through fsys, with every
// path passed through at:
//
//	/d/f          "hello"
//	/d/sub/g      "x"
//	/d/sub/deep/
//	/d/empty/
//	/d/s   -> f
//	/d/sd  -> sub
func memFixture(t *testing.T, fsys FS, at func(string) string, symlink func(target, name string) error) {
	t.Helper()
	for _, dir := range []string{"/d", "/d/sub", "/d/sub/deep", "/d/empty"} {
		if err := fsys.Mkdir(at(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"/d/f": "hello", "/d/sub/g": "x"} {
		writeFile(t, fsys, at(name), data)
	}
	for name, target := range map[string]string{"/d/s": "f", "/d/sd": "sub"} {
		if err := symlink(target, at(name)); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, fsys FS, name, data string) {
	t.Helper()
	f, err := fsys.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(fsys FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// dumpTree lists every name under name, its type and a file's data, in
// name order, without following symbolic links.
func dumpTree(fsys FS, at func(string) string, name string) []string {
	fi, err := fsys.Lstat(at(name))
	if err != nil {
		return []string{name + ": " + errClass(err)}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return []string{name + " symlink"}
	case !fi.IsDir():
		data, err := readFile(fsys, at(name))
		if err != nil {
			data = errClass(err)
		}
		return []string{fmt.Sprintf("%s %q", name, data)}
	}
	out := []string{strings.TrimSuffix(name, "/") + "/"}
	d, err := fsys.OpenDir(at(name))
	if err != nil {
		return append(out, name+": "+errClass(err))
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return append(out, name+": "+errClass(err))
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, dumpTree(fsys, at, strings.TrimSuffix(name, "/")+"/"+n)...)
	}
	return out
}

// memOp is one call of a comparison with the OS.
type memOp struct{ op, a, b string }

// apply runs c on fsys and describes what happened.
func (c memOp) apply(fsys FS, at func(string) string) string {
	switch c.op {
	case "create":
		f, err := fsys.Create(at(c.a), 0o644)
		if err != nil {
			return outcome(err)
		}
		_, err = io.WriteString(f, "new")
		return "wrote: " + outcome(err) + "; close: " + outcome(f.Close())
	case "open", "opendir":
		open := fsys.Open
		if c.op == "opendir" {
			open = fsys.OpenDir
		}
		f, err := open(at(c.a))
		if err != nil {
			return outcome(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "stat: " + outcome(err)
		}
		_, errRead := f.Read(make([]byte, 10))
		_, errWrite := f.Write([]byte("x"))
		_, errReadDir := f.ReadDir(1)
		return fmt.Sprintf("name %s dir %v; read: %s; write: %s; readdir: %s",
			fi.Name(), fi.IsDir(), outcome(errRead), outcome(errWrite), outcome(errReadDir))
	case "openappend":
		f, err := fsys.OpenAppend(at(c.a), 0o644)
		if err != nil {
			return outcome(err)
		}
		_, errWrite := io.WriteString(f, "+app")
		_, errRead := f.Read(make([]byte, 1))
		return "write: " + outcome(errWrite) + "; read: " + outcome(errRead) + "; close: " + outcome(f.Close())
	case "truncate":
		size, err := strconv.ParseInt(c.b, 10, 64)
		if err != nil {
			return err.Error()
		}
		return outcome(fsys.Truncate(at(c.a), size))
	case "mkdir":
		return outcome(fsys.Mkdir(at(c.a), 0o755))
	case "remove":
		return outcome(fsys.Remove(at(c.a)))
	case "rename":
		return outcome(fsys.Rename(at(c.a), at(c.b)))
	case "renamenr":
		return outcome(fsys.RenameNoReplace(at(c.a), at(c.b)))
	case "lstat":
		fi, err := fsys.Lstat(at(c.a))
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprintf("name %s type %v", fi.Name(), fi.Mode().Type())
	case "openlock":
		l, err := fsys.OpenLock(at(c.a), 0o644)
		if err != nil {
			return outcome(err)
		}
		ok, err := l.TryLock()
		return fmt.Sprintf("locked %v %s; close: %s", ok, outcome(err), outcome(l.Close()))
	}
	return "unknown op " + c.op
}

// memOps are calls whose results Mem must give exactly as Linux does. They
// leave out what Mem does differently on purpose: following symbolic links,
// permissions (the tests may run as root), and the root directory.
var memOps = []memOp{
	{"create", "/d/new", ""},
	{"create", "/d/f", ""},
	{"create", "/d/sub", ""},
	{"create", "/d/s", ""},
	{"create", "/d/sd", ""},
	{"create", "/d/nope/x", ""},
	{"create", "/d/f/x", ""},
	{"create", "/d/new/", ""},
	{"create", "/d/f/", ""},
	{"create", "/d/sub/", ""},
	{"create", "/d/.", ""},
	{"create", "/d/..", ""},
	{"create", "/d/sub/.", ""},
	{"create", "/d/empty/../new", ""},
	{"create", "/d/f/../new", ""},
	{"create", "/d//sub/./deep/../new", ""},
	{"create", "", ""},

	{"open", "/d/f", ""},
	{"open", "/d/sub", ""},
	{"open", "/d/s", ""},
	{"open", "/d/sd", ""},
	{"open", "/d/nope", ""},
	{"open", "/d/f/", ""},
	{"open", "/d/sub/", ""},
	{"open", "/d/.", ""},
	{"open", "/d/..", ""},
	{"open", "/d/f/x", ""},
	{"open", "/d/f/..", ""},
	{"open", "/d/sub/deep/../g", ""},
	{"open", "", ""},

	{"opendir", "/d/f", ""},
	{"opendir", "/d/sub", ""},
	{"opendir", "/d/s", ""},
	{"opendir", "/d/sd", ""},
	{"opendir", "/d/nope", ""},
	{"opendir", "/d/f/", ""},
	{"opendir", "/d/sub/", ""},
	{"opendir", "/d/.", ""},
	{"opendir", "/d/sub/..", ""},
	{"opendir", "/d/nope/x", ""},

	{"openappend", "/d/new", ""},
	{"openappend", "/d/f", ""},
	{"openappend", "/d/sub", ""},
	{"openappend", "/d/s", ""},
	{"openappend", "/d/sd", ""},
	{"openappend", "/d/nope/x", ""},
	{"openappend", "/d/f/x", ""},
	{"openappend", "/d/new/", ""},
	{"openappend", "/d/f/", ""},
	{"openappend", "/d/sub/", ""},
	{"openappend", "/d/.", ""},
	{"openappend", "/d/..", ""},
	{"openappend", "/d/empty/../new", ""},
	{"openappend", "/d/sub/deep/../g", ""},
	{"openappend", "", ""},

	// For truncate, b is the size.
	{"truncate", "/d/f", "2"},
	{"truncate", "/d/f", "0"},
	{"truncate", "/d/f", "5"},
	{"truncate", "/d/f", "8"},
	{"truncate", "/d/f", "-1"},
	{"truncate", "/d/sub/deep/../g", "3"},
	{"truncate", "/d/sub", "0"},
	{"truncate", "/d/sub", "-1"},
	{"truncate", "/d/s", "0"},
	{"truncate", "/d/sd", "0"},
	{"truncate", "/d/nope", "0"},
	{"truncate", "/d/f/", "0"},
	{"truncate", "/d/sub/", "0"},
	{"truncate", "/d/.", "0"},
	{"truncate", "/d/..", "0"},
	{"truncate", "/d/f/x", "0"},
	{"truncate", "/d/nope/x", "0"},
	{"truncate", "", "0"},

	{"mkdir", "/d/new", ""},
	{"mkdir", "/d/new/", ""},
	{"mkdir", "/d/new//", ""},
	{"mkdir", "/d/f", ""},
	{"mkdir", "/d/sub", ""},
	{"mkdir", "/d/s", ""},
	{"mkdir", "/d/sd", ""},
	{"mkdir", "/d/nope/x", ""},
	{"mkdir", "/d/f/x", ""},
	{"mkdir", "/d/.", ""},
	{"mkdir", "/d/..", ""},
	{"mkdir", "/d/sub/..", ""},
	{"mkdir", "", ""},

	{"remove", "/d/f", ""},
	{"remove", "/d/sub", ""},
	{"remove", "/d/empty", ""},
	{"remove", "/d/empty/", ""},
	{"remove", "/d/f/", ""},
	{"remove", "/d/s", ""},
	{"remove", "/d/sd", ""},
	{"remove", "/d/sd/", ""},
	{"remove", "/d/nope", ""},
	{"remove", "/d/nope/", ""},
	{"remove", "/d/nope/x", ""},
	{"remove", "/d/f/x", ""},
	{"remove", "/d/.", ""},
	{"remove", "/d/..", ""},
	{"remove", "/d/empty/.", ""},
	{"remove", "/d/empty/..", ""},
	{"remove", "/d/f/..", ""},
	{"remove", "", ""},

	{"lstat", "/d/f", ""},
	{"lstat", "/d/sub", ""},
	{"lstat", "/d/s", ""},
	{"lstat", "/d/sd", ""},
	{"lstat", "/d/f/", ""},
	{"lstat", "/d/sub/", ""},
	{"lstat", "/d/nope", ""},
	{"lstat", "/d/.", ""},
	{"lstat", "/d/sub/..", ""},
	{"lstat", "/d/f/x", ""},
	{"lstat", "/d/f/..", ""},
	{"lstat", "", ""},

	{"openlock", "/d/lock", ""},
	{"openlock", "/d/f", ""},
	{"openlock", "/d/sub", ""},
	{"openlock", "/d/s", ""},
	{"openlock", "/d/sd", ""},
	{"openlock", "/d/lock/", ""},
	{"openlock", "/d/f/", ""},
	{"openlock", "/d/.", ""},
	{"openlock", "/d/nope/x", ""},
}

// renamePairs are the names both Rename and RenameNoReplace are tried on.
var renamePairs = [][2]string{
	{"/d/f", "/d/new"},
	{"/d/f", "/d/f"},
	{"/d/f", "/d/./f"},
	{"/d/f", "/d/sub/g"},
	{"/d/f", "/d/sub/new"},
	{"/d/f", "/d/sub"},
	{"/d/f", "/d/empty"},
	{"/d/f", "/d/s"},
	{"/d/f", "/d/nope/x"},
	{"/d/f", "/d/f/x"},
	{"/d/f", "/d/new/"},
	{"/d/f/", "/d/new"},
	{"/d/f", "/d/."},
	{"/d/f", "/d/.."},
	{"/d/sub", "/d/new"},
	{"/d/sub/", "/d/new/"},
	{"/d/sub", "/d/empty"},
	{"/d/sub", "/d/f"},
	{"/d/empty", "/d/sub"},
	{"/d/empty", "/d/sub/g"},
	{"/d/empty", "/d/sub/new"},
	{"/d/sub", "/d/sub"},
	{"/d/sub", "/d/../d/sub"},
	{"/d/sub", "/d/sub/x"},
	{"/d/sub", "/d/sub/deep/x"},
	{"/d/sub/deep", "/d/sub/deep/x"},
	{"/d/sub/deep", "/d/new"},
	{"/d/sub/g", "/d/sub"},
	{"/d/sub/deep", "/d"},
	{"/d/.", "/d/new"},
	{"/d/..", "/d/new"},
	{"/d/nope", "/d/new"},
	{"/d/nope", "/d/sub"},
	{"/d/nope/x", "/d/sub"},
	{"/d/s", "/d/new"},
	{"/d/sd", "/d/new"},
	{"/d/sd", "/d/empty"},
	{"", "/d/new"},
	{"/d/f", ""},
}

// TestMemMatchesOS runs the same calls on Mem and on the OS, each on a
// fresh copy of the fixture, and compares their results and the trees they
// leave.
func TestMemMatchesOS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("compares with Linux")
	}
	ops := slices.Clone(memOps)
	for _, p := range renamePairs {
		ops = append(ops, memOp{"rename", p[0], p[1]}, memOp{"renamenr", p[0], p[1]})
	}
	tmp := t.TempDir()
	for i, c := range ops {
		t.Run(fmt.Sprintf("%s(%q,%q)", c.op, c.a, c.b), func(t *testing.T) {
			m := NewMem()
			self := func(name string) string { return name }
			memFixture(t, m, self, m.Symlink)

			root := fmt.Sprintf("%s/%d", tmp, i)
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			under := func(name string) string {
				if name == "" {
					return ""
				}
				return root + name
			}
			memFixture(t, OS, under, os.Symlink)

			got, want := c.apply(m, self), c.apply(OS, under)
			if got != want {
				t.Errorf("Mem: %s\n OS: %s", got, want)
			}
			gotTree, wantTree := dumpTree(m, self, "/d"), dumpTree(OS, under, "/d")
			if !slices.Equal(gotTree, wantTree) {
				t.Errorf("Mem leaves\n\t%s\nOS leaves\n\t%s",
					strings.Join(gotTree, "\n\t"), strings.Join(wantTree, "\n\t"))
			}
		})
	}
}

func mustMkdir(t *testing.T, fsys FS, name string) {
	t.Helper()
	if err := fsys.Mkdir(name, 0o755); err != nil {
		t.Fatal(err)
	}
}

// create makes name holding data, synced if syncFile.
func create(t *testing.T, fsys FS, name, data string, syncFile bool) {
	t.Helper()
	f, err := fsys.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if syncFile {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, fsys FS, name string) {
	t.Helper()
	d, err := fsys.OpenDir(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, fsys FS, oldname, newname string) {
	t.Helper()
	if err := fsys.Rename(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

func self(name string) string { return name }

func mustOpenAppend(t *testing.T, fsys FS, name string) File {
	t.Helper()
	f, err := fsys.OpenAppend(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustWrite(t *testing.T, f File, data string) {
	t.Helper()
	if n, err := io.WriteString(f, data); n != len(data) || err != nil {
		t.Fatalf("Write(%q) = %d, %v", data, n, err)
	}
}

func mustSync(t *testing.T, f File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func mustTruncate(t *testing.T, fsys FS, name string, size int64) {
	t.Helper()
	if err := fsys.Truncate(name, size); err != nil {
		t.Fatal(err)
	}
}

func TestMemCrash(t *testing.T) {
	// durable sets up /x/a holding "v1", durably, and the empty dir /y.
	durable := func(t *testing.T, m *Mem) {
		mustMkdir(t, m, "/x")
		mustMkdir(t, m, "/y")
		create(t, m, "/x/a", "v1", true)
		syncDir(t, m, "/x")
		syncDir(t, m, "/")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, m *Mem)
		want []string
	}{{
		name: "nothing synced",
		run: func(t *testing.T, m *Mem) {
			mustMkdir(t, m, "/x")
			create(t, m, "/x/a", "v1", true)
			syncDir(t, m, "/x")
		},
		want: []string{"/"},
	}, {
		name: "synced file and dirs",
		run:  durable,
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "unsynced data lost",
		run: func(t *testing.T, m *Mem) {
			create(t, m, "/a", "data", false)
			syncDir(t, m, "/")
		},
		want: []string{"/", `/a ""`},
	}, {
		name: "data after sync lost",
		run: func(t *testing.T, m *Mem) {
			f, err := m.Create("/a", 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			io.WriteString(f, "synced")
			f.Sync()
			io.WriteString(f, " lost")
			syncDir(t, m, "/")
		},
		want: []string{"/", `/a "synced"`},
	}, {
		name: "created file, dir unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			create(t, m, "/x/b", "new", true)
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "rename, dir unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/x/b")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "rename, dir synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/x/b")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", `/x/b "v1"`, "/y/"},
	}, {
		name: "rename replacing, dir unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			create(t, m, "/x/b", "v2", true)
			syncDir(t, m, "/x")
			mustRename(t, m, "/x/a", "/x/b")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, `/x/b "v2"`, "/y/"},
	}, {
		name: "rename replacing, dir synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			create(t, m, "/x/b", "v2", true)
			syncDir(t, m, "/x")
			mustRename(t, m, "/x/a", "/x/b")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", `/x/b "v1"`, "/y/"},
	}, {
		name: "cross-dir rename, nothing synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/y/a")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "cross-dir rename, target synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/", `/y/a "v1"`},
	}, {
		name: "cross-dir rename, source synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", "/y/"},
	}, {
		name: "cross-dir rename, both synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/x")
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		name: "journaled cross-dir rename, source synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		name: "journaled cross-dir rename, target synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		name: "journaled cross-dir rename, nothing synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			mustRename(t, m, "/x/a", "/y/a")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		// The rename is durable whole; the later change of /y is not.
		name: "journaled cross-dir rename, then a change of the target",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			mustRename(t, m, "/x/a", "/y/a")
			if err := m.Remove("/y/a"); err != nil {
				t.Fatal(err)
			}
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		name: "journaled renames carried over a crash clone",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			c := m.CrashClone()
			mustRename(t, c, "/x/a", "/y/a")
			syncDir(t, c, "/x")
			*m = Mem{root: c.CrashClone().root}
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		name: "journaled rename within a dir, another dir synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalRenames()
			mustRename(t, m, "/x/a", "/x/b")
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "ordered metadata, cross-dir rename, target synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalMetadata()
			mustRename(t, m, "/x/a", "/y/a")
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		// The sync of /y commits the earlier change of /x too, but not
		// the unsynced data of the new file.
		name: "ordered metadata, a sync commits earlier changes elsewhere",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalMetadata()
			create(t, m, "/x/b", "new", false)
			create(t, m, "/y/c", "c", true)
			syncDir(t, m, "/y")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, `/x/b ""`, "/y/", `/y/c "c"`},
	}, {
		name: "ordered metadata, later changes not committed",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalMetadata()
			mustRename(t, m, "/x/a", "/y/a")
			create(t, m, "/x/b", "b", true)
			syncDir(t, m, "/y") // covers the rename, not the later create
		},
		want: []string{"/", "/x/", "/y/", `/y/a "v1"`},
	}, {
		// Neither /y nor the file was changed since the mkdir of /y.
		name: "ordered metadata, a sync of what no change touched commits nothing",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalMetadata()
			mustRename(t, m, "/x/a", "/x/b")
			syncDir(t, m, "/y")
			f, err := m.Open("/x/b")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "ordered metadata carried over a crash clone",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			m.JournalMetadata()
			c := m.CrashClone()
			create(t, c, "/x/b", "b", true)
			mustRename(t, c, "/x/a", "/y/a")
			syncDir(t, c, "/y")
			*m = Mem{root: c.CrashClone().root}
		},
		want: []string{"/", "/x/", `/x/b "b"`, "/y/", `/y/a "v1"`},
	}, {
		name: "remove, dir unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			if err := m.Remove("/x/a"); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "remove, dir synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			if err := m.Remove("/x/a"); err != nil {
				t.Fatal(err)
			}
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", "/y/"},
	}, {
		name: "mkdir, parent unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustMkdir(t, m, "/x/dir")
			syncDir(t, m, "/x/dir")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "mkdir, parent synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustMkdir(t, m, "/x/dir")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/x/dir/", "/y/"},
	}, {
		name: "nested mkdir, grandparent unsynced",
		run: func(t *testing.T, m *Mem) {
			mustMkdir(t, m, "/p")
			mustMkdir(t, m, "/p/q")
			create(t, m, "/p/q/f", "data", true)
			syncDir(t, m, "/p/q")
			syncDir(t, m, "/p")
		},
		want: []string{"/"},
	}, {
		name: "removed dir, parent unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			if err := m.Remove("/y"); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "cross-dir rename of a dir, target synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x", "/y/x")
			syncDir(t, m, "/y")
		},
		// Both names are durable; the crash image keeps the one nearer
		// the root.
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "dirs durably inside each other",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/y", "/x/y")
			syncDir(t, m, "/x") // /x durably holds /y
			mustRename(t, m, "/x/y", "/y")
			mustRename(t, m, "/x", "/y/x")
			syncDir(t, m, "/y") // and /y durably holds /x
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "renamed file, both names durable",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/y", "/x/y")
			syncDir(t, m, "/x")
			mustRename(t, m, "/x", "/z")
			syncDir(t, m, "/")
			mustRename(t, m, "/z/a", "/z/y/a")
			syncDir(t, m, "/z/y")
		},
		want: []string{"/", "/z/", `/z/a "v1"`, "/z/y/", `/z/y/a "v1"`},
	}, {
		name: "journal from OpenAppend, dir unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/j")
			mustWrite(t, j, "r1")
			mustSync(t, j)
			j.Close()
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "journal from OpenAppend, dir synced, data unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/j")
			defer j.Close()
			mustWrite(t, j, "r1")
			syncDir(t, m, "/x")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, `/x/j ""`, "/y/"},
	}, {
		name: "appended data after the last Sync lost",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/j")
			defer j.Close()
			syncDir(t, m, "/x")
			mustWrite(t, j, "r1")
			mustSync(t, j)
			mustWrite(t, j, "r2")
		},
		want: []string{"/", "/x/", `/x/a "v1"`, `/x/j "r1"`, "/y/"},
	}, {
		name: "append to an existing file, synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/a")
			defer j.Close()
			mustWrite(t, j, "+r")
			mustSync(t, j)
		},
		want: []string{"/", "/x/", `/x/a "v1+r"`, "/y/"},
	}, {
		name: "truncate, file unsynced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustTruncate(t, m, "/x/a", 1)
		},
		want: []string{"/", "/x/", `/x/a "v1"`, "/y/"},
	}, {
		name: "truncate, synced through a File opened before",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/a")
			defer j.Close()
			mustTruncate(t, m, "/x/a", 1)
			mustSync(t, j)
		},
		want: []string{"/", "/x/", `/x/a "v"`, "/y/"},
	}, {
		name: "truncate, synced through a File opened after",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustTruncate(t, m, "/x/a", 0)
			f, err := m.Open("/x/a")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mustSync(t, f)
		},
		want: []string{"/", "/x/", `/x/a ""`, "/y/"},
	}, {
		name: "truncate to a larger size, synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/a")
			defer j.Close()
			mustTruncate(t, m, "/x/a", 4)
			mustSync(t, j)
		},
		want: []string{"/", "/x/", `/x/a "v1\x00\x00"`, "/y/"},
	}, {
		name: "truncate and append, synced",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			j := mustOpenAppend(t, m, "/x/a")
			defer j.Close()
			mustTruncate(t, m, "/x/a", 0)
			mustWrite(t, j, "new")
			mustSync(t, j)
			mustTruncate(t, m, "/x/a", 1) // not synced
		},
		want: []string{"/", "/x/", `/x/a "new"`, "/y/"},
	}, {
		name: "SyncAll",
		run: func(t *testing.T, m *Mem) {
			durable(t, m)
			mustRename(t, m, "/x/a", "/y/a")
			mustMkdir(t, m, "/y/dir")
			create(t, m, "/y/dir/f", "new", false)
			if err := m.Remove("/x"); err != nil {
				t.Fatal(err)
			}
			if err := syncAll(t, m, "/y"); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"/", "/y/", `/y/a "v1"`, "/y/dir/", `/y/dir/f "new"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMem()
			tt.run(t, m)
			if got := dumpTree(m.CrashClone(), self, "/"); !slices.Equal(got, tt.want) {
				t.Errorf("after crash:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// TestMemCrashHardLink checks that a cross-directory rename synced only in
// its target leaves two names for one file.
func TestMemCrashHardLink(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/x")
	mustMkdir(t, m, "/y")
	create(t, m, "/x/a", "v1", true)
	syncAll(t, m, "/")
	mustRename(t, m, "/x/a", "/y/a")
	syncDir(t, m, "/y")
	c := m.CrashClone()
	x, _ := c.lookup("/x/a")
	y, _ := c.lookup("/y/a")
	if x == nil || x != y {
		t.Fatalf("/x/a is %p and /y/a %p, want one file", x, y)
	}
	// Renaming one name onto the other does nothing, as on Linux.
	mustRename(t, c, "/x/a", "/y/a")
	if got := dumpTree(c, self, "/"); len(got) != 5 {
		t.Errorf("after rename onto itself: %q", got)
	}
	// Removing one leaves the other.
	if err := c.Remove("/x/a"); err != nil {
		t.Fatal(err)
	}
	if data, err := readFile(c, "/y/a"); err != nil || data != "v1" {
		t.Errorf("/y/a = %q, %v", data, err)
	}
}

func TestMemCrashCloneIndependent(t *testing.T) {
	m := NewMem()
	create(t, m, "/a", "v1", true)
	syncDir(t, m, "/")
	l, err := m.OpenLock("/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	f, err := m.Create("/b", 0o644)
	if err != nil {
		t.Fatal(err)
	}

	c := m.CrashClone()

	// The original goes on unchanged, open file and lock included.
	if _, err := io.WriteString(f, "more"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	create(t, m, "/c", "", false)

	// The clone has no locks, and neither sees the other's changes.
	cl, err := c.OpenLock("/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := cl.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock in clone = %v, %v", ok, err)
	}
	create(t, c, "/d", "", false)
	if got, want := dumpTree(c, self, "/"), []string{"/", `/a "v1"`, `/d ""`}; !slices.Equal(got, want) {
		t.Errorf("clone: %q, want %q", got, want)
	}
	if got, want := dumpTree(m, self, "/"), []string{"/", `/a "v1"`, `/b "more"`, `/c ""`}; !slices.Equal(got, want) {
		t.Errorf("original: %q, want %q", got, want)
	}
	// The original's lock still excludes others in the original.
	l2, err := m.OpenLock("/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.TryLock(); !ok {
		t.Fatal("relock failed")
	}
	if ok, _ := l2.TryLock(); ok {
		t.Error("second lock in the original succeeded")
	}
}

func TestMemFileIO(t *testing.T) {
	m := NewMem()
	f, err := m.Create("/a", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello", "", " world"} {
		if n, err := io.WriteString(f, s); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Read of a file from Create: %v, want EBADF", err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name() != "a" || fi.Size() != 11 || fi.Mode() != 0o640 || fi.IsDir() || fi.Sys() != nil {
		t.Errorf("Stat = %v", fi)
	}
	f.Close()

	r, err := m.Open("/a")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4)
	var got []string
	for {
		n, err := r.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	if want := []string{"hell", "o wo", "rld"}; !slices.Equal(got, want) {
		t.Errorf("reads: %q, want %q", got, want)
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Write on a file from Open: %v, want EBADF", err)
	}
	_, err = m.Lstat("/a/")
	wantErrno(t, "Lstat(/a/)", err, syscall.ENOTDIR)
	if fi, err = m.Lstat("/a"); err != nil || fi.Size() != 11 {
		t.Errorf("Lstat = %v, %v", fi, err)
	}
	if fi, err = m.Lstat("/"); err != nil || fi.Name() != string(filepath.Separator) || !fi.IsDir() || fi.Mode() != fs.ModeDir|0o755 {
		t.Errorf("Lstat(/) = %v, %v", fi, err)
	}
}

func TestMemClosed(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	f, err := m.Create("/d/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.OpenLock("/d/lock", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []io.Closer{f, d, l} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	calls := map[string]error{
		"Close twice":   f.Close(),
		"Lock.Close":    l.Close(),
		"Unlock":        l.Unlock(),
		"Sync":          f.Sync(),
		"dir Sync":      d.Sync(),
		"Write":         second(f.Write([]byte("x"))),
		"Write nothing": second(f.Write(nil)),
		"Read":          second(d.Read(nil)),
		"Stat":          second(f.Stat()),
		"ReadDir":       second(d.ReadDir(-1)),
		"TryLock":       second(l.TryLock()),
	}
	for name, err := range calls {
		if !errors.Is(err, syscall.EBADF) || !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close: %v, want EBADF and fs.ErrClosed", name, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			t.Errorf("%s after Close: %T, want *fs.PathError", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestMemReadDir(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	mustMkdir(t, m, "/d/sub")
	create(t, m, "/d/file", "abc", false)
	if err := m.Symlink("file", "/d/link"); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, m, "/empty")

	tests := []struct {
		dir  string
		n    []int
		want []string // per call: names, then the error class
	}{
		{"/d", []int{-1}, []string{"file link sub ok"}},
		{"/d", []int{0, 0}, []string{"file link sub ok", " ok"}},
		{"/d", []int{2, 2, 2}, []string{"file link ok", "sub ok", " EOF"}},
		{"/d", []int{3, 1}, []string{"file link sub ok", " EOF"}},
		{"/d", []int{1, -1, 1}, []string{"file ok", "link sub ok", " EOF"}},
		{"/empty", []int{1}, []string{" EOF"}},
		{"/empty", []int{-1}, []string{" ok"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.dir, tt.n), func(t *testing.T) {
			d, err := m.OpenDir(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var got []string
			for _, n := range tt.n {
				entries, err := d.ReadDir(n)
				if entries == nil {
					t.Errorf("ReadDir(%d) returned a nil slice", n)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				got = append(got, strings.Join(names, " ")+" "+errClass(err))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMemDirEntry(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	mustMkdir(t, m, "/d/sub")
	create(t, m, "/d/file", "abc", false)
	m.Symlink("file", "/d/link")
	d, err := m.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil || len(entries) != 3 {
		t.Fatalf("ReadDir = %v, %v", entries, err)
	}
	want := map[string]struct {
		typ  fs.FileMode
		size int64
	}{"file": {0, 3}, "link": {fs.ModeSymlink, 4}, "sub": {fs.ModeDir, 0}}
	for _, e := range entries {
		w := want[e.Name()]
		if e.Type() != w.typ || e.IsDir() != (w.typ == fs.ModeDir) {
			t.Errorf("%s: Type %v IsDir %v, want %v", e.Name(), e.Type(), e.IsDir(), w.typ)
		}
		fi, err := e.Info()
		if err != nil || fi.Name() != e.Name() || fi.Mode().Type() != w.typ || fi.Size() != w.size {
			t.Errorf("%s: Info = %v, %v", e.Name(), fi, err)
		}
	}
	if err := m.Remove("/d/file"); err != nil {
		t.Fatal(err)
	}
	_, err = entries[0].Info()
	wantErrno(t, "Info of a removed entry", err, syscall.ENOENT)
}

// TestMemReadDirChanging checks that a listing read while the directory
// changes lists each name once, skips those removed and does not list
// those added.
func TestMemReadDirChanging(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		create(t, m, "/d/"+n, "", false)
	}
	d, err := m.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []string
	first, _ := d.ReadDir(2)
	for _, e := range first {
		got = append(got, e.Name())
	}
	create(t, m, "/d/0", "", false)
	create(t, m, "/d/f", "", false)
	m.Remove("/d/d")
	mustRename(t, m, "/d/a", "/d/z")
	mustRename(t, m, "/d/e", "/d/c")
	rest, err := d.ReadDir(-1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rest {
		got = append(got, e.Name())
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}

func TestMemSymlinks(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	create(t, m, "/d/f", "", false)
	m.Symlink("d", "/ld")
	m.Symlink("f", "/d/lf")
	m.Symlink("nowhere", "/dangling")
	tests := []struct {
		what string
		err  error
		want syscall.Errno
	}{
		{"Open", second(m.Open("/d/lf")), syscall.ELOOP},
		{"Open dir link", second(m.Open("/ld")), syscall.ELOOP},
		{"OpenDir", second(m.OpenDir("/ld")), syscall.ENOTDIR},
		{"Create", second(m.Create("/d/lf", 0o644)), syscall.EEXIST},
		{"OpenLock", second(m.OpenLock("/d/lf", 0o644)), syscall.ELOOP},
		{"OpenAppend", second(m.OpenAppend("/d/lf", 0o644)), syscall.ELOOP},
		{"OpenAppend dangling", second(m.OpenAppend("/dangling", 0o644)), syscall.ELOOP},
		{"OpenAppend through a link", second(m.OpenAppend("/ld/new", 0o644)), syscall.ELOOP},
		{"Truncate", m.Truncate("/d/lf", 0), syscall.ELOOP},
		{"Truncate dir link", m.Truncate("/ld", 0), syscall.ELOOP},
		{"Truncate through a link", m.Truncate("/ld/f", 0), syscall.ELOOP},
		{"Lstat", second(m.Lstat("/ld")), 0},
		{"through a link", second(m.Open("/ld/f")), syscall.ELOOP},
		{"Create through a link", second(m.Create("/ld/new", 0o644)), syscall.ELOOP},
		{"Lstat through a link", second(m.Lstat("/ld/f")), syscall.ELOOP},
		{"link with a slash", second(m.OpenDir("/ld/")), syscall.ELOOP},
		{"Lstat link with a slash", second(m.Lstat("/ld/")), syscall.ELOOP},
		{"Chmod", m.Chmod("/ld", 0), syscall.ELOOP},
		{"Symlink exists", m.Symlink("x", "/ld"), syscall.EEXIST},
		{"Symlink empty", m.Symlink("", "/new"), syscall.ENOENT},
		{"Symlink slash", m.Symlink("x", "/new/"), syscall.ENOENT},
		{"Rename", m.Rename("/d/lf", "/d/lf2"), 0},
		{"Remove", m.Remove("/ld"), 0},
	}
	for _, tt := range tests {
		wantErrno(t, tt.what, tt.err, tt.want)
	}
	var le *os.LinkError
	if err := m.Symlink("x", "/d/f"); !errors.As(err, &le) || le.Op != "symlink" {
		t.Errorf("Symlink error = %#v, want a *os.LinkError", err)
	}
}

func TestMemPermissions(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/ro")     // 0o500 below
	mustMkdir(t, m, "/nox")    // 0o600 below
	mustMkdir(t, m, "/noread") // 0o300 below
	create(t, m, "/ro/f", "", false)
	create(t, m, "/nox/f", "", false)
	create(t, m, "/none", "", false)
	create(t, m, "/wo", "", false)
	mustMkdir(t, m, "/ro/sub")
	mustMkdir(t, m, "/dir")
	for name, mode := range map[string]fs.FileMode{
		"/ro": 0o500, "/nox": 0o600, "/noread": 0o300, "/none": 0, "/wo": 0o200, "/dir": 0o500,
	} {
		if err := m.Chmod(name, mode|fs.ModeDir); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		what string
		err  error
		want syscall.Errno
	}{
		{"Open mode 000", second(m.Open("/none")), syscall.EACCES},
		{"Open write-only", second(m.Open("/wo")), syscall.EACCES},
		{"OpenLock write-only", second(m.OpenLock("/wo", 0o644)), syscall.EACCES},
		{"Lstat mode 000", second(m.Lstat("/none")), 0},
		{"Create existing in read-only dir", second(m.Create("/ro/f", 0o644)), syscall.EEXIST},
		{"Create in read-only dir", second(m.Create("/ro/g", 0o644)), syscall.EACCES},
		{"OpenLock new in read-only dir", second(m.OpenLock("/ro/lock", 0o644)), syscall.EACCES},
		{"OpenLock existing in read-only dir", second(m.OpenLock("/ro/f", 0o644)), 0},
		{"Mkdir in read-only dir", m.Mkdir("/ro/d", 0o755), syscall.EACCES},
		{"Remove in read-only dir", m.Remove("/ro/f"), syscall.EACCES},
		{"Remove dir in read-only dir", m.Remove("/ro/sub"), syscall.EACCES},
		{"Rename out of read-only dir", m.Rename("/ro/f", "/f"), syscall.EACCES},
		{"Rename into read-only dir", m.Rename("/wo", "/ro/wo"), syscall.EACCES},
		{"Rename dir without write bit", m.Rename("/dir", "/ro/sub/dir"), syscall.EACCES},
		{"Rename dir without write bit, same parent", m.Rename("/dir", "/dir2"), 0},
		{"Open in read-only dir", second(m.Open("/ro/f")), 0},
		{"Lstat in dir without x", second(m.Lstat("/nox/f")), syscall.EACCES},
		{"Open missing in dir without x", second(m.Open("/nox/missing")), syscall.EACCES},
		{"Create in dir without x", second(m.Create("/nox/g", 0o644)), syscall.EACCES},
		{"Lstat dir without x", second(m.Lstat("/nox")), 0},
		{"OpenDir without read", second(m.OpenDir("/noread")), syscall.EACCES},
		{"Create in dir without read", second(m.Create("/noread/f", 0o644)), 0},
		{"OpenAppend mode 000", second(m.OpenAppend("/none", 0o644)), syscall.EACCES},
		{"OpenAppend write-only", second(m.OpenAppend("/wo", 0o644)), 0},
		{"OpenAppend new in read-only dir", second(m.OpenAppend("/ro/new", 0o644)), syscall.EACCES},
		{"OpenAppend existing in read-only dir", second(m.OpenAppend("/ro/f", 0o644)), 0},
		{"OpenAppend in dir without x", second(m.OpenAppend("/nox/f", 0o644)), syscall.EACCES},
		{"OpenAppend new of mode 000", second(m.OpenAppend("/new000", 0)), 0},
		{"Truncate mode 000", m.Truncate("/none", 0), syscall.EACCES},
		{"Truncate write-only", m.Truncate("/wo", 0), 0},
		{"Truncate in read-only dir", m.Truncate("/ro/f", 0), 0},
		{"Truncate in dir without x", m.Truncate("/nox/f", 0), syscall.EACCES},
		{"Truncate read-only dir", m.Truncate("/ro", 0), syscall.EISDIR},
	}
	for _, tt := range tests {
		wantErrno(t, tt.what, tt.err, tt.want)
	}
	if err := m.Chmod("/none", 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open("/none"); err != nil {
		t.Errorf("Open after Chmod: %v", err)
	}
	fi, err := m.Lstat("/ro")
	if err != nil || fi.Mode() != fs.ModeDir|0o500 {
		t.Errorf("Lstat(/ro) = %v, %v", fi, err)
	}
}

func TestMemLock(t *testing.T) {
	m := NewMem()
	a, err := m.OpenLock("/lock", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.OpenLock("/lock", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := m.Lstat("/lock")
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v", fi, err)
	}
	steps := []struct {
		l    Lock
		op   string
		want bool
	}{
		{a, "try", true},
		{a, "try", true}, // again, by the holder
		{b, "try", false},
		{b, "unlock", false}, // by a non-holder: no effect
		{b, "try", false},
		{a, "unlock", false},
		{a, "unlock", false}, // not held: no effect
		{b, "try", true},
		{a, "try", false},
		{b, "close", false},
		{a, "try", true},
	}
	for i, s := range steps {
		var got bool
		var err error
		switch s.op {
		case "try":
			got, err = s.l.TryLock()
		case "unlock":
			err = s.l.Unlock()
		case "close":
			err = s.l.Close()
		}
		if err != nil || got != s.want {
			t.Errorf("step %d %s: %v, %v, want %v", i, s.op, got, err, s.want)
		}
	}
	// A lock file removed and created anew is another file, with its own
	// lock.
	if err := m.Remove("/lock"); err != nil {
		t.Fatal(err)
	}
	c, err := m.OpenLock("/lock", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.TryLock(); !ok || err != nil {
		t.Errorf("lock on the new file: %v, %v", ok, err)
	}
}

func TestMemPaths(t *testing.T) {
	var m Mem // the zero Mem is ready
	mustMkdir(t, &m, "d")
	create(t, &m, "d/./f", "x", false)
	names := []string{"/d/f", "d/f", "/../d/f", "/d/../d/f", "../../d/f"}
	if runtime.GOOS != "windows" { // where it is not a UNC name
		names = append(names, "//d//f")
	}
	for _, name := range names {
		if data, err := readFile(&m, name); err != nil || data != "x" {
			t.Errorf("read %q: %q, %v", name, data, err)
		}
	}
	tests := []struct {
		what string
		err  error
		want syscall.Errno
	}{
		{"Mkdir root", m.Mkdir("/", 0o755), syscall.EEXIST},
		{"Create root", second(m.Create("/", 0o644)), syscall.EEXIST},
		{"Remove root", m.Remove("/"), syscall.EBUSY},
		{"Rename root", m.Rename("/", "/x"), syscall.EBUSY},
		{"Rename onto root", m.Rename("/d", "/"), syscall.EEXIST},
		{"RenameNoReplace onto root", m.RenameNoReplace("/d", "/"), syscall.EEXIST},
		{"Rename onto /..", m.Rename("/d/f", "/.."), syscall.EEXIST},
		{"OpenDir /..", second(m.OpenDir("/..")), 0},
	}
	for _, tt := range tests {
		wantErrno(t, tt.what, tt.err, tt.want)
	}
}

// TestMemConcurrent runs every kind of call at once, for the race detector.
func TestMemConcurrent(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				name := fmt.Sprintf("/d/%d-%d", w, i)
				f, err := m.Create(name, 0o644)
				if err != nil {
					t.Error(err)
					return
				}
				io.WriteString(f, name)
				f.Sync()
				f.Close()
				if i%2 == 0 {
					m.Rename(name, name+".renamed")
				} else {
					m.Remove(name)
				}
				if l, err := m.OpenLock("/d/lock", 0o644); err == nil {
					l.TryLock()
					l.Close()
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			d, err := m.OpenDir("/d")
			if err != nil {
				t.Error(err)
				return
			}
			seen := map[string]bool{}
			for {
				entries, err := d.ReadDir(3)
				for _, e := range entries {
					if seen[e.Name()] {
						t.Errorf("%s listed twice", e.Name())
					}
					seen[e.Name()] = true
					e.Info()
				}
				if err != nil {
					break
				}
			}
			d.Sync()
			d.Close()
		}
	})
	wg.Go(func() {
		for i := range 50 {
			f, err := m.OpenAppend("/d/journal", 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			io.WriteString(f, "record\n")
			if i%10 == 9 {
				m.Truncate("/d/journal", 0)
			}
			f.Sync()
			f.Close()
		}
	})
	wg.Go(func() {
		for range 20 {
			c := m.CrashClone()
			dumpTree(c, self, "/")
			syncAll(t, m, "/")
		}
	})
	wg.Wait()
}

// appendFSes are the file systems the tests of OpenAppend and Truncate run
// on alike: each gives a fresh FS, an empty directory in it, and its
// Symlink.
var appendFSes = []struct {
	name  string
	setup func(t *testing.T) (fsys FS, dir string, symlink func(target, name string) error)
}{
	{"os", func(t *testing.T) (FS, string, func(string, string) error) {
		spooltest.NeedDisk(t)
		return OS, t.TempDir(), os.Symlink
	}},
	{"mem", func(t *testing.T) (FS, string, func(string, string) error) {
		m := NewMem()
		mustMkdir(t, m, "/d")
		return m, "/d", m.Symlink
	}},
}

// TestAppendAndTruncate runs the same steps on the OS and on Mem and checks
// the data they leave in the file j.
func TestAppendAndTruncate(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, fsys FS, j string)
		want string
	}{{
		name: "two Files interleave whole writes in order",
		run: func(t *testing.T, fsys FS, j string) {
			a, b := mustOpenAppend(t, fsys, j), mustOpenAppend(t, fsys, j)
			defer a.Close()
			defer b.Close()
			mustWrite(t, a, "a1 ")
			mustWrite(t, b, "b1 ")
			mustWrite(t, b, "b2 ")
			mustWrite(t, a, "a2 ")
		},
		want: "a1 b1 b2 a2 ",
	}, {
		name: "appends after the existing data",
		run: func(t *testing.T, fsys FS, j string) {
			writeFile(t, fsys, j, "hello")
			f := mustOpenAppend(t, fsys, j)
			defer f.Close()
			mustWrite(t, f, " world")
		},
		want: "hello world",
	}, {
		name: "creates with mode perm, writable whatever perm",
		run: func(t *testing.T, fsys FS, j string) {
			f, err := fsys.OpenAppend(j, 0o400)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mustWrite(t, f, "x")
			if fi, err := fsys.Lstat(j); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o400 {
				t.Errorf("Lstat = %v, %v; want a regular file of mode 0400", fi, err)
			}
		},
		want: "x",
	}, {
		name: "Read fails, Sync and Stat work",
		run: func(t *testing.T, fsys FS, j string) {
			f := mustOpenAppend(t, fsys, j)
			defer f.Close()
			mustWrite(t, f, "data")
			if _, err := f.Read(make([]byte, 1)); !errors.Is(err, syscall.EBADF) {
				t.Errorf("Read = %v, want EBADF", err)
			}
			mustSync(t, f)
			if fi, err := f.Stat(); err != nil || fi.Size() != 4 {
				t.Errorf("Stat = %v, %v; want size 4", fi, err)
			}
		},
		want: "data",
	}, {
		name: "each Write goes to the current end after a Truncate",
		run: func(t *testing.T, fsys FS, j string) {
			f := mustOpenAppend(t, fsys, j)
			defer f.Close()
			mustWrite(t, f, "abcdef")
			mustTruncate(t, fsys, j, 2)
			mustWrite(t, f, "X")
		},
		want: "abX",
	}, {
		name: "Truncate shrinks",
		run: func(t *testing.T, fsys FS, j string) {
			writeFile(t, fsys, j, "hello")
			mustTruncate(t, fsys, j, 2)
		},
		want: "he",
	}, {
		name: "Truncate to a larger size zero-fills",
		run: func(t *testing.T, fsys FS, j string) {
			writeFile(t, fsys, j, "ab")
			mustTruncate(t, fsys, j, 5)
		},
		want: "ab\x00\x00\x00",
	}, {
		name: "Truncate down and up zero-fills",
		run: func(t *testing.T, fsys FS, j string) {
			writeFile(t, fsys, j, "hello")
			mustTruncate(t, fsys, j, 1)
			mustTruncate(t, fsys, j, 3)
		},
		want: "h\x00\x00",
	}, {
		name: "a Write past the end after a Truncate leaves a hole",
		run: func(t *testing.T, fsys FS, j string) {
			f, err := fsys.Create(j, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mustWrite(t, f, "hello")
			mustTruncate(t, fsys, j, 2)
			mustWrite(t, f, "x")
		},
		want: "he\x00\x00\x00x",
	}, {
		name: "Overwrite writes in place, also through an appending File",
		run: func(t *testing.T, fsys FS, j string) {
			f := mustOpenAppend(t, fsys, j)
			defer f.Close()
			mustWrite(t, f, "abcdef")
			if err := fsys.Overwrite(j, 1, []byte("XY")); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Overwrite(j, 6, nil); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, f, "g")
		},
		want: "aXYdefg",
	}}
	for _, impl := range appendFSes {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) {
				fsys, dir, _ := impl.setup(t)
				j := dir + "/j"
				tt.run(t, fsys, j)
				if got, err := readFile(fsys, j); err != nil || got != tt.want {
					t.Errorf("j holds %q, %v; want %q", got, err, tt.want)
				}
			})
		}
	}
}

// TestAppendAndTruncateErrors checks the errors of OpenAppend, Truncate and
// Overwrite on the OS and on Mem, and that a failed call changes nothing.
func TestAppendAndTruncateErrors(t *testing.T) {
	tests := []struct {
		name  string
		call  func(fsys FS, dir string) error
		op    string // of the *fs.PathError
		errno syscall.Errno
	}{
		{"OpenAppend of a directory", func(fsys FS, dir string) error {
			return second(fsys.OpenAppend(dir+"/sub", 0o644))
		}, "open", syscall.EISDIR},
		{"OpenAppend of a symlink", func(fsys FS, dir string) error {
			return second(fsys.OpenAppend(dir+"/link", 0o644))
		}, "open", syscall.ELOOP},
		{"OpenAppend of a dangling symlink", func(fsys FS, dir string) error {
			return second(fsys.OpenAppend(dir+"/dangling", 0o644))
		}, "open", syscall.ELOOP},
		{"OpenAppend in a missing directory", func(fsys FS, dir string) error {
			return second(fsys.OpenAppend(dir+"/nope/j", 0o644))
		}, "open", syscall.ENOENT},
		{"Truncate of a missing name", func(fsys FS, dir string) error {
			return fsys.Truncate(dir+"/nope", 0)
		}, "truncate", syscall.ENOENT},
		{"Truncate of a directory", func(fsys FS, dir string) error {
			return fsys.Truncate(dir+"/sub", 0)
		}, "truncate", syscall.EISDIR},
		{"Truncate of a symlink", func(fsys FS, dir string) error {
			return fsys.Truncate(dir+"/link", 0)
		}, "truncate", syscall.ELOOP},
		{"Truncate of a dangling symlink", func(fsys FS, dir string) error {
			return fsys.Truncate(dir+"/dangling", 0)
		}, "truncate", syscall.ELOOP},
		{"Truncate to a negative size", func(fsys FS, dir string) error {
			return fsys.Truncate(dir+"/f", -1)
		}, "truncate", syscall.EINVAL},
		{"Overwrite of a missing name", func(fsys FS, dir string) error {
			return fsys.Overwrite(dir+"/nope", 0, []byte("x"))
		}, "pwrite", syscall.ENOENT},
		{"Overwrite of a directory", func(fsys FS, dir string) error {
			return fsys.Overwrite(dir+"/sub", 0, []byte("x"))
		}, "pwrite", syscall.EISDIR},
		{"Overwrite of a symlink", func(fsys FS, dir string) error {
			return fsys.Overwrite(dir+"/link", 0, []byte("x"))
		}, "pwrite", syscall.ELOOP},
		{"Overwrite past the end", func(fsys FS, dir string) error {
			return fsys.Overwrite(dir+"/f", 3, []byte("xy"))
		}, "pwrite", syscall.EINVAL},
		{"Overwrite at a negative offset", func(fsys FS, dir string) error {
			return fsys.Overwrite(dir+"/f", -1, []byte("x"))
		}, "pwrite", syscall.EINVAL},
	}
	for _, impl := range appendFSes {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) {
				fsys, dir, symlink := impl.setup(t)
				writeFile(t, fsys, dir+"/f", "data")
				mustMkdir(t, fsys, dir+"/sub")
				for name, target := range map[string]string{"link": "f", "dangling": "nowhere"} {
					if err := symlink(target, dir+"/"+name); err != nil {
						t.Fatal(err)
					}
				}
				before := dumpTree(fsys, self, dir)
				err := tt.call(fsys, dir)
				if !errors.Is(err, tt.errno) {
					t.Errorf("error %v, want %s", err, errnoName(tt.errno))
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Op != tt.op {
					t.Errorf("error %#v, want a *fs.PathError of Op %q", err, tt.op)
				}
				if after := dumpTree(fsys, self, dir); !slices.Equal(before, after) {
					t.Errorf("the failed call changed the tree: %q, was %q", after, before)
				}
			})
		}
	}
}

// TestAppendConcurrent appends records from several Files at once, on the
// OS and on Mem, and checks that each record is whole and each writer's
// records are in the order it wrote them.
func TestAppendConcurrent(t *testing.T) {
	const writers, records = 4, 200
	for _, impl := range appendFSes {
		t.Run(impl.name, func(t *testing.T) {
			fsys, dir, _ := impl.setup(t)
			j := dir + "/journal"
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					f, err := fsys.OpenAppend(j, 0o644)
					if err != nil {
						t.Error(err)
						return
					}
					defer f.Close()
					for i := range records {
						rec := fmt.Sprintf("writer %d record %04d %s\n", w, i, strings.Repeat("x", 100))
						if n, err := io.WriteString(f, rec); n != len(rec) || err != nil {
							t.Errorf("Write = %d, %v", n, err)
							return
						}
					}
				})
			}
			wg.Wait()
			data, err := readFile(fsys, j)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
			if len(lines) != writers*records {
				t.Fatalf("%d records, want %d", len(lines), writers*records)
			}
			next := make([]int, writers)
			for _, line := range lines {
				var w, i int
				var pad string
				if n, err := fmt.Sscanf(line, "writer %d record %d %s", &w, &i, &pad); n != 3 || err != nil ||
					w < 0 || w >= writers || pad != strings.Repeat("x", 100) {
					t.Fatalf("torn record %q", line)
				}
				if i != next[w] {
					t.Fatalf("writer %d: record %d after %d", w, i, next[w]-1)
				}
				next[w]++
			}
		})
	}
}

// syncAll calls fsys's SyncAll on the directory path, opened for the call.
func syncAll(t *testing.T, fsys FS, path string) error {
	t.Helper()
	d, err := fsys.OpenDir(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return fsys.(SyncFS).SyncAll(d)
}

// TestSyncAllNeedsOpenDir shows that Mem's SyncAll refuses what is not an
// open directory of its own.
func TestSyncAllNeedsOpenDir(t *testing.T) {
	m, other := NewMem(), NewMem()
	mustMkdir(t, m, "/d")
	create(t, m, "/d/f", "data", false)
	closed, err := m.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	file, err := m.Open("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	foreign, err := other.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	for _, tt := range []struct {
		what string
		dir  File
		want syscall.Errno
	}{
		{"a closed directory", closed, syscall.EBADF},
		{"a file", file, syscall.EBADF},
		{"another Mem's directory", foreign, syscall.EBADF},
	} {
		wantErrno(t, "SyncAll of "+tt.what, m.SyncAll(tt.dir), tt.want)
	}
}

// TestMemCrashCloneNames shows that the names image keeps every name as
// the program sees it, synced or not, and each file's data only as of its
// last Sync: a file renamed over another before its data was synced is
// found empty, as ext4's delayed allocation can leave it.
func TestMemCrashCloneNames(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	create(t, m, "/d/old", "durable", true)
	syncDir(t, m, "/d")
	syncDir(t, m, "/")
	create(t, m, "/d/tmp", "unsynced", false)
	if err := m.Exchange("/d/tmp", "/d/old"); err != nil {
		t.Fatal(err)
	}
	create(t, m, "/d/synced", "synced data", true)
	if err := m.Remove("/d/synced"); err != nil {
		t.Fatal(err)
	}
	create(t, m, "/d/new", "synced, name not", true)

	if got, want := dumpTree(m.CrashCloneNames(), self, "/"), []string{"/", "/d/", `/d/new "synced, name not"`, `/d/old ""`, `/d/tmp "durable"`}; !slices.Equal(got, want) {
		t.Errorf("names image: %q, want %q", got, want)
	}
	if got, want := dumpTree(m.CrashClone(), self, "/"), []string{"/", "/d/", `/d/old "durable"`}; !slices.Equal(got, want) {
		t.Errorf("synced image: %q, want %q", got, want)
	}
	c := NewCrasher(m, 1)
	if err := c.Remove("/d/tmp"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Remove at the crash point: %v", err)
	}
	img, ok := c.CrashedNames()
	if !ok {
		t.Fatal("CrashedNames reports no crash")
	}
	if got, want := dumpTree(img, self, "/"), []string{"/", "/d/", `/d/new "synced, name not"`, `/d/old ""`, `/d/tmp "durable"`}; !slices.Equal(got, want) {
		t.Errorf("Crasher's names image: %q, want %q", got, want)
	}
}

// TestLockShared shows that shared holds exclude an exclusive one and not
// each other, and that a holder converts its own hold, on Mem as flock(2)
// does on the OS file system.
func TestLockShared(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fsys FS
		dir  string
	}{
		{"mem", NewMem(), "/"},
		{"os", OS, t.TempDir()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "os" {
				spooltest.NeedDisk(t)
			}
			path := filepath.Join(tc.dir, "lock")
			var ls [3]Lock
			for i := range ls {
				l, err := tc.fsys.OpenLock(path, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				ls[i] = l
			}
			a, b, c := ls[0], ls[1], ls[2]
			steps := []struct {
				l    Lock
				op   string
				want bool
			}{
				{a, "shared", true},
				{b, "shared", true},
				{c, "try", false},
				{a, "try", false}, // b holds it shared
				{b, "unlock", false},
				{a, "try", true}, // converts a's shared hold
				{b, "shared", false},
				{a, "shared", true}, // converts back
				{b, "shared", true},
				{a, "close", false},
				{c, "try", false},
				{b, "unlock", false},
				{c, "try", true},
				{b, "shared", false},
			}
			for i, s := range steps {
				var got bool
				var err error
				switch s.op {
				case "try":
					got, err = s.l.TryLock()
				case "shared":
					got, err = s.l.TryLockShared()
				case "unlock":
					err = s.l.Unlock()
				case "close":
					err = s.l.Close()
				}
				if err != nil || got != s.want {
					t.Errorf("step %d %s: %v, %v, want %v", i, s.op, got, err, s.want)
				}
			}
		})
	}
}
