package filesystem

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// checkFS is a file system that checks, at each rename, exchange or
// removal of a message file in a state directory of crashDir, what the
// iterator relies on: the change counter of the file's state and stripe
// is odd (a change is under way), and the stripe's lock is held. It looks
// at the counters and locks on mem, the Mem under FS, so that a Crasher's
// count of calls does not see the checks.
type checkFS struct {
	wrapFS
	mem *vfs.Mem

	mu       sync.Mutex
	counters *changes // mapped at the first check
	checked  int
	errs     []string
}

func (f *checkFS) errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

// result returns what the checks found, and how many changes they checked.
func (f *checkFS) result() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errs), f.checked
}

func (f *checkFS) check(op string, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, path := range names {
		i := strings.LastIndexByte(path, filepath.Separator)
		dir, file := path[:i], path[i+1:]
		state := nowhere
		for _, s := range metastorage.States() {
			if dir == filepath.Join(crashDir, s.String()) {
				state = s
			}
		}
		if _, ok := name.Decode(file); state == nowhere || !ok {
			continue // not a message file: not counted
		}
		if f.counters == nil {
			c, err := mapChanges(f.mem, filepath.Join(crashDir, ".locks"), 0o644, false)
			if err != nil || c == nil {
				f.errorf("%s %s: cannot map the change counters: %v", op, path, err)
				return
			}
			f.counters = c
		}
		stripe := stripeOf(file)
		if _, even := f.counters.snapshot(state, stripe); even {
			f.errorf("%s %s: the counter of %s, stripe %d, is even: the change is not counted", op, path, state, stripe)
		}
		l, err := f.mem.OpenLock(filepath.Join(crashDir, ".locks", fmt.Sprintf("stripe-%02d", stripe)), 0o644)
		if err != nil {
			f.errorf("%s %s: %v", op, path, err)
			continue
		}
		if free, _ := l.TryLock(); free {
			f.errorf("%s %s: made without the lock of stripe %d", op, path, stripe)
		}
		l.Close()
		f.checked++
	}
}

func (f *checkFS) Rename(oldname, newname string) error {
	f.check("rename", oldname, newname)
	return f.FS.Rename(oldname, newname)
}

func (f *checkFS) RenameNoReplace(oldname, newname string) error {
	f.check("rename", oldname, newname)
	return f.FS.RenameNoReplace(oldname, newname)
}

func (f *checkFS) Exchange(oldname, newname string) error {
	f.check("exchange", oldname, newname)
	return f.FS.Exchange(oldname, newname)
}

func (f *checkFS) Remove(name string) error {
	f.check("remove", name)
	return f.FS.Remove(name)
}

func (f *checkFS) RenameIn(oldDir vfs.File, oldname string, newDir vfs.File, newname string, how vfs.RenameHow) error {
	f.check("rename", oldDir.Name()+sep+oldname, newDir.Name()+sep+newname)
	return f.FS.RenameIn(oldDir, oldname, newDir, newname, how)
}

func (f *checkFS) RemoveIn(dir vfs.File, name string) error {
	f.check("remove", dir.Name()+sep+name)
	return f.FS.RemoveIn(dir, name)
}

// TestChangesCountOnlyMessageFiles shows that removing temp files moves no
// counter: a temp file is changed under the lock of its message's stripe,
// which, for another implementation's "<id>.json.tmp.<hex>", is not the
// stripe of its own name, so counting it would write a counter whose lock
// the writer does not hold.
func TestChangesCountOnlyMessageFiles(t *testing.T) {
	mem := vfs.NewMem()
	cfg := quietConfig(mem, Performance)
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	temps := []string{"x.json.tmp.1a2b", ".tmp.1a-dead"}
	for _, tmp := range temps {
		if stripeOf(tmp) == stripeOf("x.json") {
			t.Fatalf("%s is on the stripe of x.json: the test needs another", tmp)
		}
		f, err := mem.Create(filepath.Join(crashDir, "deferred", tmp), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("{not json"))
		f.Close()
	}
	var before [numStripes]uint64
	for i := range before {
		before[i], _ = b.changes.snapshot(metastorage.StateDeferred, i)
	}
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	for _, tmp := range temps {
		if _, err := mem.Lstat(filepath.Join(crashDir, "deferred", tmp)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("recovery left %s: %v", tmp, err)
		}
	}
	for i := range before {
		if n, _ := b.changes.snapshot(metastorage.StateDeferred, i); n != before[i] {
			t.Errorf("the counter of deferred, stripe %d, moved from %d to %d", i, before[i], n)
		}
	}
}

// TestChangesUnmappable shows what a Backend does when the change counters
// cannot be mapped: where the file system cannot map files (for every
// process alike) it opens without them, and checks records read ahead by
// name; any other failure fails the open, since its writes would go
// uncounted beside other processes that trust the counters.
func TestChangesUnmappable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		openErr bool
	}{
		{"unsupported", fmt.Errorf("%w: %w", errors.ErrUnsupported, syscall.ENODEV), false},
		{"permission denied", syscall.EACCES, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := vfs.Inject(crashLayout(t), vfs.InjectorFunc(func(op vfs.Op, _ string) error {
				if op == vfs.OpMapShared {
					return tc.err
				}
				return nil
			}))
			b, err := open(crashConfig(fsys, Performance))
			if tc.openErr {
				if err == nil {
					b.Close()
					t.Fatal("open succeeded without its change counters")
				}
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), filepath.Join(".locks", "changes")) {
					t.Errorf("open: %v; want %v, naming .locks/changes", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.changes != nil {
				t.Error("change counters mapped where the file system cannot map files")
			}
			testReadAheadIsCurrent(t, b, b, false)
		})
	}
}

// putStrayTemp puts in deferred a temp file named tmp, whose name does not
// say its stripe, holding a record of id one nanosecond newer than its
// current one: what recovery takes for a change a crash cut off.
func putStrayTemp(t *testing.T, mem *vfs.Mem, b *Backend, id, tmp string) {
	t.Helper()
	md, err := b.GetMeta(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	md.Attempts = 99
	md.Updated = md.Updated.Add(time.Nanosecond)
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create(filepath.Join(crashDir, "deferred", tmp), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverStrayTempUnderLock shows that recovery puts in place a temp
// file whose name does not say its stripe only under the lock of the
// stripe of the message it holds, so that no writer of the message can
// change it meanwhile: checkFS finds the lock held, and the counter odd, at
// the rename.
func TestRecoverStrayTempUnderLock(t *testing.T) {
	mem := vfs.NewMem()
	cf := &checkFS{wrapFS: wrapFS{mem}, mem: mem}
	b, err := open(quietConfig(cf, Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	putStrayTemp(t, mem, b, "m", ".tmp.zz-1")
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	errs, checked := cf.result()
	if len(errs) > 0 || checked == 0 {
		t.Fatalf("checked %d changes: %q", checked, errs)
	}
	if md, err := b.GetMeta(ctx, "m"); err != nil || md.Attempts != 99 {
		t.Fatalf("m after recovery: %+v, %v; want the temp file's record put in place", md, err)
	}
}

// TestChangesForeignFileLeftAlone shows that a .locks/changes of another
// format is refused without being changed: not extended to the counters'
// size, as mapping it would.
func TestChangesForeignFileLeftAlone(t *testing.T) {
	spooltest.NeedDisk(t)
	for _, content := range []string{"not counters", "x"} {
		dir := t.TempDir()
		if err := openTest(t, dir).Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, ".locks", changesName)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := NewBackend(dir); err == nil {
			b.Close()
			t.Fatalf("open accepted a counters file holding %q", content)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("the error does not name %s: %v", path, err)
		}
		if data, err := os.ReadFile(path); err != nil || string(data) != content {
			t.Errorf("the refused file holds %d bytes (%v), want the %d of %q it held", len(data), err, len(content), content)
		}
	}
}

// TestChangesTakesOverPreviousLayout shows that a counters file of a
// previous layout (before the sync counts, before the message counts) or
// of the version before moves by one rename (the same layout) is taken
// over by a Backend alone on the directory, with its counters, and is then
// marked so that Backends of those versions refuse it. The message counts
// are counted afresh.
func TestChangesTakesOverPreviousLayout(t *testing.T) {
	spooltest.NeedDisk(t)
	for _, old := range []uint64{counters.Magic1, counters.Magic2, counters.Magic3} {
		t.Run(fmt.Sprintf("%#x", old), func(t *testing.T) {
			dir := t.TempDir()
			b := openTest(t, dir)
			if err := b.StoreMeta(context.Background(), "m", metastorage.MessageMetadata{State: metastorage.StateHold}); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, ".locks", changesName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if old != counters.Magic3 {
				data = data[:counters.CountsAt] // the counters of the previous layouts
			}
			binary.NativeEndian.PutUint64(data, old)
			binary.NativeEndian.PutUint64(data[counters.Header:], 42) // a counter of that version
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			b, err = NewBackend(dir)
			if err != nil {
				t.Fatalf("open refused a counters file of a previous layout: %v", err)
			}
			if got := b.changes.Counter(0, 0).Load(); got != 42 {
				t.Errorf("counter after the takeover: %d, want the 42 it held", got)
			}
			if n := b.GetStateCount(metastorage.StateHold); n != 1 {
				t.Errorf("GetStateCount(hold) after the takeover = %d, want 1", n)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			data, err = os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.NativeEndian.Uint64(data); got != counters.Magic {
				t.Errorf("magic after the takeover: %#x, want %#x", got, uint64(counters.Magic))
			}
		})
	}
}

// TestChangesPreviousLayoutInUse shows that a counters file of a previous
// layout or version is refused, and left as it is, while another Backend
// has the directory open: its processes must stop first. A read-only
// Backend opens the directory whatever the file holds.
func TestChangesPreviousLayoutInUse(t *testing.T) {
	spooltest.NeedDisk(t)
	for _, old := range []uint64{counters.Magic2, counters.Magic3} {
		t.Run(fmt.Sprintf("%#x", old), func(t *testing.T) {
			dir := t.TempDir()
			if err := openTest(t, dir).Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, ".locks", changesName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			binary.NativeEndian.PutUint64(data, old)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			other, err := vfs.OS.OpenLock(filepath.Join(dir, ".locks", backendsName), 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if ok, err := other.TryLockShared(); !ok || err != nil {
				t.Fatalf("TryLockShared: %v, %v", ok, err)
			}
			if b, err := NewBackend(dir); err == nil {
				b.Close()
				t.Fatal("open took over a counters file of a previous layout while another Backend had the directory open")
			} else if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "stop the processes of the older version") {
				t.Errorf("the error does not name %s and say to stop the older processes: %v", path, err)
			}
			ro, err := NewFactory(dir).WithReadOnly(true).Open()
			if err != nil {
				t.Errorf("read-only open of a directory whose counters file is of a previous version: %v", err)
			} else {
				ro.Close()
			}
			if got, err := os.ReadFile(path); err != nil || binary.NativeEndian.Uint64(got) != old || len(got) != len(data) {
				t.Errorf("the refused file changed: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestChangesMarkDurable shows that a directory opened writable carries
// the magic word of this version on stable storage before the open
// returns, whether its counters file is new or of the version before: a
// power loss must not leave a file of zeros, which an older version would
// take over.
func TestChangesMarkDurable(t *testing.T) {
	for _, old := range []uint64{0, counters.Magic3} {
		t.Run(fmt.Sprintf("%#x", old), func(t *testing.T) {
			mem := crashLayout(t)
			path := filepath.Join(crashDir, ".locks", changesName)
			if err := mem.Remove(path); err != nil && !isNotExist(err) {
				t.Fatal(err)
			}
			if old != 0 {
				data := make([]byte, counters.Size)
				binary.NativeEndian.PutUint64(data, old)
				writeMem(t, mem, path, data)
				if err := syncFile(mem, path); err != nil {
					t.Fatal(err)
				}
			}
			if err := syncPath(mem, filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
			b, err := open(quietConfig(mem, Standard))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			img := mem.CrashClone()
			f, err := img.Open(path)
			if err != nil {
				t.Fatalf("the counters file is not durable: %v", err)
			}
			defer f.Close()
			var word [8]byte
			if _, err := io.ReadFull(f, word[:]); err != nil || binary.NativeEndian.Uint64(word[:]) != counters.Magic {
				t.Errorf("the crash image's magic word: %#x, %v; want %#x", binary.NativeEndian.Uint64(word[:]), err, uint64(counters.Magic))
			}
		})
	}
}
