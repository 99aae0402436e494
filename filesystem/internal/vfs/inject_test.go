package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestOpString(t *testing.T) {
	want := []string{"Create", "Open", "OpenDir", "Rename", "Remove", "Mkdir", "Lstat", "OpenLock",
		"Read", "Write", "Sync", "Stat", "ReadDir", "Close", "Lock", "SyncAll", "OpenAppend", "Truncate", "MapShared",
		"Overwrite", "SetModTime"}
	for i, w := range want {
		if got := (OpCreate + Op(i)).String(); got != w {
			t.Errorf("Op %d: %q, want %q", OpCreate+Op(i), got, w)
		}
	}
	for _, op := range []Op{0, -1, OpSetModTime + 1} {
		if got, want := op.String(), fmt.Sprintf("Op(%d)", int(op)); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", int(op), got, want)
		}
	}
}

// injectFixture returns a Mem holding the directory /d, the file /d/f and
// the lock file /d/lock.
func injectFixture(t *testing.T) *Mem {
	m := NewMem()
	mustMkdir(t, m, "/d")
	create(t, m, "/d/f", "hello", false)
	create(t, m, "/d/lock", "", false)
	return m
}

// TestInjectEveryOp fails each kind of call in turn and checks the error
// reaches the caller wrapped as the os package would wrap it, and that the
// failed call did nothing.
func TestInjectEveryOp(t *testing.T) {
	type call func(t *testing.T, fsys FS) error
	open := func(t *testing.T, fsys FS, name string) File {
		f, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	openDir := func(t *testing.T, fsys FS, name string) File {
		f, err := fsys.OpenDir(name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	appendTo := func(t *testing.T, fsys FS, name string) File {
		f, err := fsys.OpenAppend(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	lock := func(t *testing.T, fsys FS) Lock {
		l, err := fsys.OpenLock("/d/lock", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		op    Op
		call  call
		sysOp string // of the *fs.PathError, or "link " and that of the *os.LinkError
		path  string
	}{
		{OpCreate, func(t *testing.T, fsys FS) error { return second(fsys.Create("/d/new", 0o644)) }, "open", "/d/new"},
		{OpOpen, func(t *testing.T, fsys FS) error { return second(fsys.Open("/d/f")) }, "open", "/d/f"},
		{OpOpenDir, func(t *testing.T, fsys FS) error { return second(fsys.OpenDir("/d")) }, "open", "/d"},
		{OpRename, func(t *testing.T, fsys FS) error { return fsys.Rename("/d/f", "/d/g") }, "link rename", "/d/f"},
		{OpRename, func(t *testing.T, fsys FS) error { return fsys.RenameNoReplace("/d/f", "/d/g") }, "link renameat2", "/d/f"},
		{OpRemove, func(t *testing.T, fsys FS) error { return fsys.Remove("/d/f") }, "remove", "/d/f"},
		{OpMkdir, func(t *testing.T, fsys FS) error { return fsys.Mkdir("/d/dir", 0o755) }, "mkdir", "/d/dir"},
		{OpLstat, func(t *testing.T, fsys FS) error { return second(fsys.Lstat("/d/f")) }, "lstat", "/d/f"},
		{OpOpenLock, func(t *testing.T, fsys FS) error { return second(fsys.OpenLock("/d/newlock", 0o644)) }, "open", "/d/newlock"},
		{OpSyncAll, func(t *testing.T, fsys FS) error { return syncAll(t, fsys, "/d") }, "syncfs", "/d"},
		{OpOpenAppend, func(t *testing.T, fsys FS) error { return second(fsys.OpenAppend("/d/new", 0o644)) }, "open", "/d/new"},
		{OpOpenAppend, func(t *testing.T, fsys FS) error { return second(fsys.OpenAppend("/d/f", 0o644)) }, "open", "/d/f"},
		{OpTruncate, func(t *testing.T, fsys FS) error { return fsys.Truncate("/d/f", 1) }, "truncate", "/d/f"},
		{OpOverwrite, func(t *testing.T, fsys FS) error { return fsys.Overwrite("/d/f", 0, []byte("x")) }, "pwrite", "/d/f"},
		{OpSetModTime, func(t *testing.T, fsys FS) error {
			return fsys.(ModTimeSetter).SetModTimeIn(openDir(t, fsys, "/d"), "f", time.Unix(1, 1))
		}, "utimensat", "/d/f"},
		{OpWrite, func(t *testing.T, fsys FS) error {
			return second(appendTo(t, fsys, "/d/f").Write([]byte("data")))
		}, "write", "/d/f"},
		{OpSync, func(t *testing.T, fsys FS) error { return appendTo(t, fsys, "/d/f").Sync() }, "sync", "/d/f"},
		{OpClose, func(t *testing.T, fsys FS) error { return appendTo(t, fsys, "/d/f").Close() }, "close", "/d/f"},
		{OpRead, func(t *testing.T, fsys FS) error {
			return second(open(t, fsys, "/d/f").Read(make([]byte, 5)))
		}, "read", "/d/f"},
		{OpWrite, func(t *testing.T, fsys FS) error {
			f, err := fsys.Create("/d/new", 0o644)
			if err != nil {
				t.Fatal(err)
			}
			return second(f.Write([]byte("data")))
		}, "write", "/d/new"},
		{OpSync, func(t *testing.T, fsys FS) error { return open(t, fsys, "/d/f").Sync() }, "sync", "/d/f"},
		{OpStat, func(t *testing.T, fsys FS) error { return second(open(t, fsys, "/d/f").Stat()) }, "stat", "/d/f"},
		{OpReadDir, func(t *testing.T, fsys FS) error { return second(openDir(t, fsys, "/d").ReadDir(-1)) }, "readdirent", "/d"},
		{OpClose, func(t *testing.T, fsys FS) error { return open(t, fsys, "/d/f").Close() }, "close", "/d/f"},
		{OpClose, func(t *testing.T, fsys FS) error { return lock(t, fsys).Close() }, "close", "/d/lock"},
		{OpLock, func(t *testing.T, fsys FS) error { return second(lock(t, fsys).TryLock()) }, "flock", "/d/lock"},
		{OpLock, func(t *testing.T, fsys FS) error { return lock(t, fsys).Unlock() }, "flock", "/d/lock"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.op, " ", tt.sysOp), func(t *testing.T) {
			m := injectFixture(t)
			before := dumpTree(m, self, "/")
			fsys := Inject(m, And(OnOp(tt.op), Always(syscall.ENOSPC)))
			err := tt.call(t, fsys)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("error %v, want ENOSPC", err)
			}
			switch e := err.(type) {
			case *fs.PathError:
				if e.Op != tt.sysOp || e.Path != tt.path {
					t.Errorf("error %#v, want Op %q Path %q", e, tt.sysOp, tt.path)
				}
			case *os.LinkError:
				if "link "+e.Op != tt.sysOp || e.Old != tt.path {
					t.Errorf("error %#v, want Op %q Old %q", e, tt.sysOp, tt.path)
				}
			default:
				t.Errorf("error of type %T", err)
			}
			if got := fsys.Injected(); got != 1 {
				t.Errorf("Injected() = %d, want 1", got)
			}
			if tt.op != OpWrite && tt.op != OpClose && tt.op != OpLock {
				if after := dumpTree(m, self, "/"); !slices.Equal(before, after) {
					t.Errorf("the failed call changed the tree: %q, was %q", after, before)
				}
			}
		})
	}
}

func TestInjectCombinators(t *testing.T) {
	type call struct {
		op   Op
		path string
	}
	calls := []call{
		{OpWrite, "/base/incoming/a"},      // 1st write under incoming
		{OpWrite, "/base/done/a"},          //
		{OpSync, "/base/incoming/a"},       //
		{OpWrite, "/base/incoming/b"},      // 2nd
		{OpWrite, "/base/incoming/c"},      // 3rd
		{OpWrite, "/base/incoming/d"},      // 4th
		{OpRename, "/base/incoming/d"},     //
		{OpCreate, "/base/incoming/e"},     //
		{OpWrite, "/base/incomingX/e"},     //
		{OpRemove, "/base/elsewhere/x.js"}, //
	}
	enospc := Always(syscall.ENOSPC)
	tests := []struct {
		name string
		inj  Injector
		want []int // indexes of calls that fail
	}{
		{"nil", nil, nil},
		{"Always", enospc, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"Always(nil)", Always(nil), nil},
		{"OnOp", OnOp(OpSync, OpRename), []int{2, 6}},
		{"OnOp()", OnOp(), nil},
		{"PathContains", PathContains("/base/incoming/"), []int{0, 2, 3, 4, 5, 6, 7}},
		{"PathMatch", PathMatch(func(p string) bool { return strings.HasSuffix(p, ".js") }), []int{9}},
		{"PathMatch(nil)", PathMatch(nil), nil},
		{"And()", And(), nil},
		{"And", And(OnOp(OpWrite), PathContains("/base/incoming/"), enospc), []int{0, 3, 4, 5}},
		{"And with nil", And(OnOp(OpWrite), nil), nil},
		{"Nth", Nth(3, And(OnOp(OpWrite), PathContains("/base/incoming/"), enospc)), []int{4}},
		{"Nth inside And", And(OnOp(OpWrite), PathContains("/base/incoming/"), Nth(3, enospc)), []int{4}},
		{"Nth(1)", Nth(1, OnOp(OpCreate, OpRemove)), []int{7}},
		{"Nth past the end", Nth(11, enospc), nil},
		{"Nth(0)", Nth(0, enospc), nil},
		{"Nth(nil)", Nth(1, nil), nil},
		{"Random(p=0)", Random(1, 0, syscall.EIO), nil},
		{"Random(p=1)", Random(1, 1, syscall.EIO), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"InjectorFunc", InjectorFunc(func(op Op, path string) error {
			if op == OpCreate {
				return syscall.EDQUOT
			}
			return nil
		}), []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for i, c := range calls {
				if consult(tt.inj, c.op, c.path) != nil {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failed calls %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInjectErrorValues(t *testing.T) {
	tests := []struct {
		name string
		inj  Injector
		want error
	}{
		{"predicate", OnOp(OpWrite), syscall.EIO},
		{"And takes the last", And(Always(syscall.EIO), Always(syscall.ENOSPC)), syscall.ENOSPC},
		{"Nth", Nth(1, Always(syscall.EROFS)), syscall.EROFS},
		{"ShortWrite", ShortWrite(Always(syscall.ENOSPC)), syscall.ENOSPC},
	}
	for _, tt := range tests {
		if err := consult(tt.inj, OpWrite, "/x"); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestInjectRandom(t *testing.T) {
	run := func(seed int64) []bool {
		inj := Random(seed, 0.3, syscall.EIO)
		var failed []bool
		for range 1000 {
			failed = append(failed, inj.MaybeError(OpWrite, "/x") != nil)
		}
		return failed
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Error("the same seed failed different calls")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds failed the same calls")
	}
	if n := len(slices.DeleteFunc(a, func(f bool) bool { return !f })); n < 200 || n > 400 {
		t.Errorf("%d of 1000 calls failed with p = 0.3", n)
	}
}

func TestInjectShortWrite(t *testing.T) {
	m := NewMem()
	fsys := Inject(m, And(OnOp(OpWrite), Nth(2, ShortWrite(Always(syscall.ENOSPC)))))
	f, err := fsys.Create("/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write([]byte("first ")); n != 6 || err != nil {
		t.Fatalf("first Write = %d, %v", n, err)
	}
	n, err := f.Write([]byte("0123456789"))
	var pe *fs.PathError
	if n != 5 || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &pe) || pe.Op != "write" {
		t.Fatalf("short Write = %d, %v; want 5, *fs.PathError wrapping ENOSPC", n, err)
	}
	f.Close()
	if data, _ := readFile(m, "/a"); data != "first 01234" {
		t.Errorf("file holds %q", data)
	}
	// On other calls ShortWrite's error is a plain one.
	fsys = Inject(m, ShortWrite(OnOp(OpSync)))
	g, err := fsys.Open("/a")
	if err != nil {
		t.Fatal(err)
	}
	err = g.Sync()
	if !errors.As(err, &pe) || pe.Err != syscall.EIO {
		t.Errorf("Sync: %#v, want a *fs.PathError wrapping EIO", err)
	}
}

// TestInjectPassThrough checks calls that are not failed reach the wrapped
// file system, and that an injected *fs.PathError, io.EOF or *os.LinkError
// is returned as it is.
func TestInjectPassThrough(t *testing.T) {
	m := injectFixture(t)
	fsys := Inject(m, nil)
	if fsys.Unwrap() != FS(m) {
		t.Error("Unwrap does not return the wrapped FS")
	}
	create(t, fsys, "/d/g", "data", true)
	mustRename(t, fsys, "/d/g", "/d/h")
	if data, err := readFile(fsys, "/d/h"); data != "data" || err != nil {
		t.Errorf("read back %q, %v", data, err)
	}
	_, err := fsys.Open("/d/nope")
	wantErrno(t, "Open of a missing file", err, syscall.ENOENT)
	if fsys.Injected() != 0 {
		t.Errorf("Injected() = %d", fsys.Injected())
	}

	own := &fs.PathError{Op: "mine", Path: "/p", Err: syscall.EIO}
	fsys = Inject(m, Always(own))
	if _, err := fsys.Open("/d/f"); err != own {
		t.Errorf("injected %v, want it as is", err)
	}
	fsys = Inject(m, And(OnOp(OpRead), Always(io.EOF)))
	f, err := fsys.Open("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read: %v, want io.EOF itself", err)
	}
	link := &os.LinkError{Op: "mine", Old: "a", New: "b", Err: syscall.EXDEV}
	if err := Inject(m, Always(link)).Rename("/d/f", "/d/x"); err != link {
		t.Errorf("Rename: %v, want the injected *os.LinkError", err)
	}
}

// TestInjectClose checks that an injected Close error still closes.
func TestInjectClose(t *testing.T) {
	m := injectFixture(t)
	fsys := Inject(m, OnOp(OpClose))
	l, err := fsys.OpenLock("/d/lock", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	wantErrno(t, "Close", l.Close(), syscall.EIO)
	l2, err := m.OpenLock("/d/lock", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l2.TryLock(); !ok || err != nil {
		t.Errorf("lock still held after a failed Close: %v, %v", ok, err)
	}
	f, err := fsys.Open("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "File.Close", f.Close(), syscall.EIO)
	_, err = f.Read(make([]byte, 1))
	wantErrno(t, "Read after a failed Close", err, syscall.EBADF)
}

func TestInjectSyncAllUnsupported(t *testing.T) {
	noSync := struct{ FS }{NewMem()}
	err := syncAll(t, Inject(noSync, nil), "/")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyncAll on an FS without it: %v, want ErrUnsupported", err)
	}
	if err := syncAll(t, Inject(NewMem(), nil), "/"); err != nil {
		t.Errorf("SyncAll: %v", err)
	}
}

func TestInjectConcurrent(t *testing.T) {
	m := NewMem()
	mustMkdir(t, m, "/d")
	fsys := Inject(m, Random(7, 0.2, syscall.EIO))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				f, err := fsys.Create(fmt.Sprintf("/d/%d-%d", w, i), 0o644)
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				for range 3 {
					if _, err := f.Write([]byte("x")); err != nil {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
				if err := f.Close(); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failed == 0 || failed != fsys.Injected() {
		t.Errorf("%d calls failed, Injected() = %d", failed, fsys.Injected())
	}
}

// saveFile is a program under crash test: it replaces name's contents
// with data. If careful, it does so durably and atomically.
func saveFile(fsys FS, dir, name, data string, careful bool) error {
	tmp := dir + "/." + name + ".tmp"
	f, err := fsys.Create(tmp, 0o644)
	if err != nil {
		return err
	}
	half := len(data) / 2
	if _, err := io.WriteString(f, data[:half]); err != nil {
		f.Close()
		return err
	}
	if _, err := io.WriteString(f, data[half:]); err != nil {
		f.Close()
		return err
	}
	if careful {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, dir+"/"+name); err != nil {
		return err
	}
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// crashBase returns a Mem where /d/name durably holds "old".
func crashBase(t *testing.T) *Mem {
	m := NewMem()
	mustMkdir(t, m, "/d")
	create(t, m, "/d/name", "old", true)
	if err := syncAll(t, m, "/"); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCrasherExhaustive crashes saveFile at each of its mutating calls and
// checks what survives: with the careful version, either the old or the
// new contents, whole; with the careless one, some crash point leaves an
// empty file.
func TestCrasherExhaustive(t *testing.T) {
	for _, careful := range []bool{true, false} {
		t.Run(fmt.Sprint("careful=", careful), func(t *testing.T) {
			probe := NewCrasher(crashBase(t), 0)
			if err := saveFile(probe, "/d", "name", "new data", careful); err != nil {
				t.Fatal(err)
			}
			if _, ok := probe.Crashed(); ok {
				t.Fatal("k = 0 crashed")
			}
			total := probe.Calls()
			// Create, 2 Writes, [Sync], Rename, dir Sync.
			if want := map[bool]int{true: 6, false: 5}[careful]; total != want {
				t.Fatalf("Calls() = %d, want %d", total, want)
			}
			// Crash before each mutating call, and after the last.
			var seen []string
			for k := 1; k <= total+1; k++ {
				m := crashBase(t)
				c := NewCrasher(m, k)
				err := saveFile(c, "/d", "name", "new data", careful)
				image, ok := c.Crashed()
				if k > total {
					if ok || err != nil {
						t.Fatalf("k=%d: crashed %v, error %v", k, ok, err)
					}
					image = m.CrashClone()
				} else if !ok || !errors.Is(err, ErrCrashed) {
					t.Fatalf("k=%d: crashed %v, error %v; want ErrCrashed", k, ok, err)
				}
				data, err := readFile(image, "/d/name")
				if err != nil {
					t.Fatalf("k=%d: %v", k, err)
				}
				seen = append(seen, data)
			}
			bad := slices.ContainsFunc(seen, func(s string) bool { return s != "old" && s != "new data" })
			if careful && bad {
				t.Errorf("contents after each crash point: %q", seen)
			}
			if !careful && !bad {
				t.Errorf("no crash point found the careless save: %q", seen)
			}
		})
	}
}

// TestCrasherDead checks that after the crash point every call fails, that
// the image is the state at the crash, and that the Mem is left as it was
// at the crash.
func TestCrasherDead(t *testing.T) {
	m := crashBase(t)
	c := NewCrasher(m, 3)
	f, err := c.Create("/d/a", 0o644) // 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil { // 2
		t.Fatal(err)
	}
	l, err := c.OpenLock("/d/lock", 0o644) // not counted
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok := c.Crashed(); ok {
		t.Fatal("crashed before the crash point")
	}
	before := dumpTree(m, self, "/")
	d, err := c.OpenDir("/d")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]error{
		"Sync (the crash point)": f.Sync(), // 3
		"Write":                  second(f.Write([]byte("y"))),
		"Read":                   second(f.Read(nil)),
		"Stat":                   second(f.Stat()),
		"ReadDir":                second(d.ReadDir(-1)),
		"Create":                 second(c.Create("/d/b", 0o644)),
		"Open":                   second(c.Open("/d/name")),
		"OpenDir":                second(c.OpenDir("/d")),
		"Rename":                 c.Rename("/d/name", "/d/x"),
		"RenameNoReplace":        c.RenameNoReplace("/d/name", "/d/x"),
		"Remove":                 c.Remove("/d/name"),
		"Mkdir":                  c.Mkdir("/d/dir", 0o755),
		"Lstat":                  second(c.Lstat("/d/name")),
		"OpenAppend":             second(c.OpenAppend("/d/name", 0o644)),
		"Truncate":               c.Truncate("/d/name", 0),
		"Overwrite":              c.Overwrite("/d/name", 0, []byte("x")),
		"OpenLock":               second(c.OpenLock("/d/lock", 0o644)),
		"SyncAll":                c.SyncAll(d),
		"TryLock":                second(l.TryLock()),
		"Unlock":                 l.Unlock(),
		"Lock.Close":             l.Close(),
		"File.Close":             f.Close(),
		"dir Close":              d.Close(),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrCrashed) {
			t.Errorf("%s after the crash: %v, want ErrCrashed", name, err)
		}
		switch err.(type) {
		case *fs.PathError, *os.LinkError:
		default:
			t.Errorf("%s after the crash: error of type %T", name, err)
		}
	}
	if got := c.Calls(); got != 3+10 {
		t.Errorf("Calls() = %d, want 13", got)
	}
	if after := dumpTree(m, self, "/"); !slices.Equal(before, after) {
		t.Errorf("calls after the crash changed the Mem: %q, was %q", after, before)
	}
	image, ok := c.Crashed()
	if !ok {
		t.Fatal("no crash image")
	}
	if got, want := dumpTree(image, self, "/"), []string{"/", "/d/", `/d/name "old"`}; !slices.Equal(got, want) {
		t.Errorf("crash image %q, want %q", got, want)
	}
	// The dead process's lock was released by its Close.
	l2, err := m.OpenLock("/d/lock", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l2.TryLock(); !ok || err != nil {
		t.Errorf("lock of the dead process still held: %v, %v", ok, err)
	}
}

// appendJournal is a program under crash test: it creates the journal
// /d/j, durably, appends two records to it, durably, and cuts the second
// off again.
func appendJournal(fsys FS) error {
	j, err := fsys.OpenAppend("/d/j", 0o644) // 1
	if err != nil {
		return err
	}
	defer j.Close()
	d, err := fsys.OpenDir("/d")
	if err != nil {
		return err
	}
	defer d.Close()
	steps := []func() error{
		d.Sync, // 2
		func() error { return second(j.Write([]byte("r1;"))) }, // 3
		j.Sync, // 4
		func() error { return second(j.Write([]byte("r2;"))) }, // 5
		j.Sync, // 6
		func() error { return fsys.Truncate("/d/j", 3) }, // 7
		j.Sync, // 8
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// TestCrasherJournal crashes appendJournal at each of its mutating calls,
// OpenAppend and Truncate among them, and checks what survives each.
func TestCrasherJournal(t *testing.T) {
	probe := NewCrasher(crashBase(t), 0)
	if err := appendJournal(probe); err != nil {
		t.Fatal(err)
	}
	const total = 8
	if got := probe.Calls(); got != total {
		t.Fatalf("Calls() = %d, want %d", got, total)
	}
	// want[k-1] is the journal after a crash at the k-th call; the last
	// is after the run completes.
	want := []string{"ENOENT", "ENOENT", "", "", "r1;", "r1;", "r1;r2;", "r1;r2;", "r1;"}
	for k := 1; k <= total+1; k++ {
		t.Run(fmt.Sprint("k=", k), func(t *testing.T) {
			m := crashBase(t)
			c := NewCrasher(m, k)
			err := appendJournal(c)
			image, ok := c.Crashed()
			if k > total {
				if ok || err != nil {
					t.Fatalf("crashed %v, error %v", ok, err)
				}
				image = m.CrashClone()
			} else if !ok || !errors.Is(err, ErrCrashed) {
				t.Fatalf("crashed %v, error %v; want ErrCrashed", ok, err)
			}
			data, err := readFile(image, "/d/j")
			if err != nil {
				data = errClass(err)
			}
			if data != want[k-1] {
				t.Errorf("journal after the crash: %q, want %q", data, want[k-1])
			}
			if data, err := readFile(image, "/d/name"); data != "old" || err != nil {
				t.Errorf("/d/name after the crash: %q, %v", data, err)
			}
		})
	}
}

// TestWrappedAppendFiles checks that the Files OpenAppend gives through
// Injecting and Crasher are theirs, so that their calls are injected into
// and counted.
func TestWrappedAppendFiles(t *testing.T) {
	inj := Inject(injectFixture(t), nil)
	f, err := inj.OpenAppend("/d/f", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*injectingFile); !ok {
		t.Errorf("Injecting.OpenAppend returned a %T", f)
	}
	c := NewCrasher(injectFixture(t), 0)
	f, err = c.OpenAppend("/d/f", 0o644) // 1
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*crasherFile); !ok {
		t.Errorf("Crasher.OpenAppend returned a %T", f)
	}
	mustWrite(t, f, " world")         // 2
	mustSync(t, f)                    // 3
	mustTruncate(t, c, "/d/f", 5)     // 4
	if err := f.Close(); err != nil { // not counted
		t.Fatal(err)
	}
	if got := c.Calls(); got != 4 {
		t.Errorf("Calls() = %d, want 4", got)
	}
}

func TestCrasherConcurrent(t *testing.T) {
	c := NewCrasher(crashBase(t), 40)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				saveFile(c, "/d", fmt.Sprintf("f%d-%d", w, i), "data", true)
			}
		})
	}
	wg.Wait()
	if _, ok := c.Crashed(); !ok {
		t.Error("no crash")
	}
	if c.Calls() < 40 {
		t.Errorf("Calls() = %d", c.Calls())
	}
}

// TestWrappersPassThrough checks that an Injecting that injects nothing and
// a Crasher that never crashes behave exactly as the Mem they wrap.
func TestWrappersPassThrough(t *testing.T) {
	ops := slices.Clone(memOps)
	for _, p := range renamePairs {
		ops = append(ops, memOp{"rename", p[0], p[1]}, memOp{"renamenr", p[0], p[1]})
	}
	wrappers := map[string]func(m *Mem) FS{
		"Inject":     func(m *Mem) FS { return Inject(m, Nth(1, Always(nil))) },
		"NewCrasher": func(m *Mem) FS { return NewCrasher(m, 0) },
	}
	for name, wrap := range wrappers {
		t.Run(name, func(t *testing.T) {
			for _, c := range ops {
				plain, wrapped := NewMem(), NewMem()
				memFixture(t, plain, self, plain.Symlink)
				memFixture(t, wrapped, self, wrapped.Symlink)
				fsys := wrap(wrapped)
				want, got := c.apply(plain, self), c.apply(fsys, self)
				if got != want {
					t.Errorf("%v: got %s, want %s", c, got, want)
				}
				wantTree, gotTree := dumpTree(plain, self, "/"), dumpTree(fsys, self, "/")
				if !slices.Equal(gotTree, wantTree) {
					t.Errorf("%v: leaves %q, want %q", c, gotTree, wantTree)
				}
				l, err := fsys.OpenLock("/d/lock", 0o644)
				if err != nil {
					t.Fatal(err)
				}
				if err := errors.Join(second(l.TryLock()), l.Unlock(), l.Close(), syncAll(t, fsys, "/d")); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
