package filesystem

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// faultSwitch lets calls through until it is armed, and then consults its
// Injector.
type faultSwitch struct {
	on  atomic.Bool
	inj vfs.Injector
}

func (f *faultSwitch) MaybeError(op vfs.Op, path string) error {
	if !f.on.Load() {
		return nil
	}
	return f.inj.MaybeError(op, path)
}

// faultKind is a file-system call made to fail.
type faultKind struct {
	name string
	inj  func(errno syscall.Errno) vfs.Injector
	// fsync reports whether the fault is a failed fsync, after which the
	// backend must refuse writes.
	fsync bool
}

func nthOn(n int, op vfs.Op, match func(string) bool, errno syscall.Errno) vfs.Injector {
	return vfs.Nth(n, vfs.And(vfs.OnOp(op), vfs.PathMatch(match), vfs.Always(errno)))
}

func anyPath(string) bool { return true }

func isTemp(p string) bool { return strings.Contains(p, sep+".tmp.") }

func isStateDir(p string) bool {
	for _, s := range metastorage.States() {
		if p == filepath.Join(crashDir, s.String()) {
			return true
		}
	}
	return false
}

var (
	faultWrite    = faultKind{name: "write", inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpWrite, anyPath, e) }}
	faultCreate   = faultKind{name: "create", inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpCreate, anyPath, e) }}
	faultRename   = faultKind{name: "rename", inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpRename, anyPath, e) }}
	faultRename2  = faultKind{name: "second-rename", inj: func(e syscall.Errno) vfs.Injector { return nthOn(2, vfs.OpRename, anyPath, e) }}
	faultOpen     = faultKind{name: "open", inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpOpen, anyPath, e) }}
	faultRemove   = faultKind{name: "remove", inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpRemove, anyPath, e) }}
	faultFileSync = faultKind{name: "file-fsync", fsync: true, inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpSync, isTemp, e) }}
	// The fsync of the message's file that a move by one rename makes
	// before the rename.
	faultMovedSync = faultKind{name: "moved-file-fsync", fsync: true, inj: func(e syscall.Errno) vfs.Injector {
		return nthOn(1, vfs.OpSync, func(p string) bool { return strings.HasSuffix(p, sep+"m.json") }, e)
	}}
	faultDirSync = faultKind{name: "dir-fsync", fsync: true, inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpSync, isStateDir, e) }}
	// In a relocation the first directory fsync is of the target
	// directory after the renames, the second of the directory the
	// message left.
	faultDirSync2 = faultKind{name: "second-dir-fsync", fsync: true, inj: func(e syscall.Errno) vfs.Injector { return nthOn(2, vfs.OpSync, isStateDir, e) }}
	// A write that runs out of space half way, and then the removal of
	// the torn temp file fails too: recovery must remove it.
	faultTornTemp = faultKind{name: "torn-temp", inj: func(e syscall.Errno) vfs.Injector {
		return eitherInj{vfs.ShortWrite(nthOn(1, vfs.OpWrite, isTemp, e)), nthOn(1, vfs.OpRemove, isTemp, syscall.EIO)}
	}}
	// Hybrid mode's journal: its fsync fails, or an append runs out of
	// space half way, leaving a torn record that later appends follow.
	faultJournalSync = faultKind{name: "journal-fsync", fsync: true, inj: func(e syscall.Errno) vfs.Injector { return nthOn(1, vfs.OpSync, isJournal, e) }}
	faultTornJournal = faultKind{name: "torn-journal", inj: func(e syscall.Errno) vfs.Injector {
		return vfs.ShortWrite(nthOn(1, vfs.OpWrite, isJournal, e))
	}}
)

func isJournal(p string) bool { return strings.HasSuffix(p, sep+journalName) }

// eitherInj fails a call with the error of the first of its Injectors
// that fails it; each is consulted on every call.
type eitherInj []vfs.Injector

func (e eitherInj) MaybeError(op vfs.Op, path string) error {
	var first error
	for _, inj := range e {
		if err := inj.MaybeError(op, path); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// faultOp is the call a fault hits, on message "m", which before the call
// is stored in incoming unless absent.
type faultOp struct {
	name     string
	op       string // as the backend names it
	absent   bool   // m does not exist before the call
	relocate bool   // the call moves m to another state directory
	call     func(ctx context.Context, b *Backend) error
}

var faultOps = []faultOp{
	{name: "store-new", op: "store", absent: true, call: func(ctx context.Context, b *Backend) error {
		return b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 9, LastError: "new"})
	}},
	{name: "store-replace", op: "store", call: func(ctx context.Context, b *Backend) error {
		return b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 9, LastError: "replaced"})
	}},
	{name: "store-relocate", op: "store", relocate: true, call: func(ctx context.Context, b *Backend) error {
		return b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 9, LastError: "relocated"})
	}},
	{name: "update-same-state", op: "update", call: func(ctx context.Context, b *Backend) error {
		return b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 9, LastError: "updated"})
	}},
	{name: "update-new-state", op: "update", relocate: true, call: func(ctx context.Context, b *Backend) error {
		return b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateHold, Attempts: 9, LastError: "updated"})
	}},
	{name: "move", op: "move", relocate: true, call: func(ctx context.Context, b *Backend) error {
		return b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive)
	}},
	{name: "delete", op: "delete", call: func(ctx context.Context, b *Backend) error {
		return b.DeleteMeta(ctx, "m")
	}},
}

// faultApplies reports whether the call makes the faulted file-system
// call in mode.
func faultApplies(f faultKind, o faultOp, mode Mode) bool {
	if f.fsync && mode == Performance {
		return false
	}
	hybrid := mode == Hybrid // the journal makes a change durable
	// A move is one rename of the message's file, synced first in
	// Standard mode, recorded whole first in the journal: no temp file.
	renamed := o.op == "move"
	switch f.name {
	case "journal-fsync", "torn-journal":
		return hybrid
	case "write":
		return hybrid || o.op != "delete" && !renamed // the journal's append
	case "rename":
		return o.op != "delete"
	case "create", "torn-temp":
		return o.op != "delete" && !renamed
	case "file-fsync":
		return o.op != "delete" && !hybrid && !renamed
	case "moved-file-fsync":
		return renamed && !hybrid
	case "dir-fsync":
		return !hybrid
	case "second-rename":
		return o.relocate && !renamed
	case "second-dir-fsync":
		return o.relocate && !hybrid
	case "remove":
		return o.op == "delete"
	}
	return true // open
}

// faultEnv is a backend on an injecting Mem with acknowledged messages.
type faultEnv struct {
	mem    *vfs.Mem
	sw     *faultSwitch
	inj    *vfs.Injecting
	b      *Backend
	before map[string]metastorage.MessageMetadata // acknowledged records, by ID
}

func newFaultEnv(t *testing.T, mode Mode, withM bool, inj vfs.Injector) *faultEnv {
	t.Helper()
	e := &faultEnv{mem: crashLayout(t), sw: &faultSwitch{inj: inj}, before: map[string]metastorage.MessageMetadata{}}
	e.inj = vfs.Inject(e.mem, e.sw)
	b, err := open(crashConfig(e.inj, mode))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e.b = b
	b.bg.Wait() // the background scan is done: it consults no injector later
	ctx := context.Background()
	seed := map[string]metastorage.MessageMetadata{
		"p1": {State: metastorage.StateIncoming, Attempts: 1, LastError: "first"},
		"p2": {State: metastorage.StateDeferred, Attempts: 2, LastError: "second", Headers: map[string]string{"From": "a@example.org"}},
	}
	if withM {
		seed["m"] = metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 3, LastError: "before", Priority: 2}
	}
	for id, md := range seed {
		if err := b.StoreMeta(ctx, id, md); err != nil {
			t.Fatal(err)
		}
		got, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		e.before[id] = got
	}
	return e
}

// forgetRecent drops the records b wrote, so that its next change of a
// message reads the message's file. No call of b may run meanwhile.
func forgetRecent(b *Backend) {
	for i := range b.recent.stripes {
		b.recent.stripes[i] = nil
	}
}

// checkIntact checks that every acknowledged message is as it was, in
// exactly one file, that m is absent if it was, and that no temp file is
// left; it returns the temp files found.
func (e *faultEnv) checkIntact(t *testing.T, b *Backend, what string) []string {
	t.Helper()
	ctx := context.Background()
	for id, want := range e.before {
		got, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Errorf("%s: GetMeta(%s): %v", what, id, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: message %s is\n%+v\nwant it as before\n%+v", what, id, got, want)
		}
	}
	if _, ok := e.before["m"]; !ok {
		if _, err := b.GetMeta(ctx, "m"); !errors.Is(err, metastorage.ErrMessageNotFound) {
			t.Errorf("%s: message m did not exist before the call; GetMeta: %v", what, err)
		}
	}
	img, err := readImage(e.mem)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, id := range img.ids() {
		es := img.msgs[id]
		if _, ok := e.before[id]; !ok {
			t.Errorf("%s: message %s found that was never acknowledged", what, id)
		}
		if len(es) != 1 {
			t.Errorf("%s: message %s has %d files", what, id, len(es))
		} else if want := e.before[id].State; es[0].state != want {
			t.Errorf("%s: message %s lies in %s, want %s", what, id, es[0].state, want)
		}
	}
	for _, p := range img.other {
		t.Errorf("%s: unexpected entry %s", what, p)
	}
	return img.temps
}

func TestFaultWritePath(t *testing.T) {
	t.Parallel()
	type fault struct {
		kind  faultKind
		errno syscall.Errno
	}
	var faults []fault
	for _, k := range []faultKind{faultWrite, faultCreate, faultRename, faultRename2, faultFileSync, faultMovedSync, faultDirSync, faultDirSync2, faultTornTemp, faultOpen, faultJournalSync, faultTornJournal} {
		faults = append(faults, fault{k, syscall.ENOSPC}, fault{k, syscall.EIO})
	}
	for _, k := range []faultKind{faultCreate, faultRename, faultOpen, faultRemove} {
		faults = append(faults, fault{k, syscall.EACCES})
	}
	faults = append(faults, fault{faultRemove, syscall.EIO})
	ctx := context.Background()
	for _, mode := range crashModes {
		for _, f := range faults {
			for _, o := range faultOps {
				if !faultApplies(f.kind, o, mode) {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s-%s/%s", mode, f.kind.name, f.errno, o.name), func(t *testing.T) {
					t.Parallel()
					e := newFaultEnv(t, mode, !o.absent, f.kind.inj(f.errno))
					if f.kind.name == faultOpen.name {
						forgetRecent(e.b) // the call reads the file, as in a Backend that did not write it
					}
					e.sw.on.Store(true)
					err := o.call(ctx, e.b)
					e.sw.on.Store(false)
					t.Logf("the call returned: %v", err)
					if e.inj.Injected() == 0 {
						t.Fatalf("the fault was never injected; the call returned %v", err)
					}
					if err == nil {
						t.Fatalf("%s returned nil after an injected %v", o.name, f.errno)
					}
					if !errors.Is(err, f.errno) {
						t.Errorf("errors.Is(%v, %v) = false", err, f.errno)
					}
					if !strings.Contains(err.Error(), o.op+" m") {
						t.Errorf("error %q does not name the operation %q and the message", err, o.op)
					}
					if !strings.Contains(err.Error(), crashDir+string(filepath.Separator)) {
						t.Errorf("error %q names no path", err)
					}
					temps := e.checkIntact(t, e.b, "after the faulted call")
					if f.kind.name == "torn-temp" && (e.inj.Injected() != 2 || len(temps) != 1) {
						t.Errorf("torn temp: %d errors injected, temp files %v; want 2 and the torn temp file", e.inj.Injected(), temps)
					}

					// After a failed fsync, writes are refused; otherwise
					// they go on.
					werr := e.b.StoreMeta(ctx, "after", metastorage.MessageMetadata{State: metastorage.StateActive})
					if f.kind.fsync {
						if werr == nil || !strings.Contains(werr.Error(), "refuses writes") || !errors.Is(werr, f.errno) {
							t.Errorf("a write after a failed fsync returned %v, want a refusal naming the fsync error", werr)
						}
					} else if werr != nil {
						t.Errorf("a write after the fault returned %v", werr)
					} else {
						after, err := e.b.GetMeta(ctx, "after")
						if err != nil {
							t.Fatal(err)
						}
						e.before["after"] = after
					}

					// A reopened backend recovers and works.
					if err := e.b.Close(); err != nil && !f.kind.fsync {
						t.Errorf("Close: %v", err)
					}
					b2, err := open(crashConfig(e.mem, mode))
					if err != nil {
						t.Fatal(err)
					}
					defer b2.Close()
					if err := b2.RecoverFromCrash(); err != nil {
						t.Fatalf("recovery after the fault: %v", err)
					}
					if left := e.checkIntact(t, b2, "after reopening and recovery"); len(left) > 0 {
						t.Errorf("temp files left after recovery: %v (before: %v)", left, temps)
					}
					if err := b2.StoreMeta(ctx, "reopened", metastorage.MessageMetadata{State: metastorage.StateActive}); err != nil {
						t.Errorf("a write on the reopened backend: %v", err)
					}
					if err := o.call(ctx, b2); err != nil {
						t.Errorf("the call again on the reopened backend: %v", err)
					}
				})
			}
		}
	}
}

// TestFaultReadDir makes the directory calls of listing and of the
// recovery scan fail.
func TestFaultReadDir(t *testing.T) {
	ctx := context.Background()
	inc := filepath.Join(crashDir, metastorage.StateIncoming.String())
	isInc := func(p string) bool { return p == inc }
	for _, op := range []vfs.Op{vfs.OpOpenDir, vfs.OpReadDir} {
		for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EACCES} {
			if op == vfs.OpReadDir && errno == syscall.EACCES {
				continue // permission is checked when the directory is opened
			}
			t.Run(fmt.Sprintf("%s-%s", op, errno), func(t *testing.T) {
				t.Parallel()
				calls := map[string]func(b *Backend) error{
					"list": func(b *Backend) error {
						_, err := b.ListMessages(ctx, metastorage.StateIncoming, metastorage.MessageListOptions{})
						return err
					},
					"recover": func(b *Backend) error { return b.RecoverFromCrash() },
				}
				for name, call := range calls {
					e := newFaultEnv(t, Standard, true, nthOn(1, op, isInc, errno))
					e.sw.on.Store(true)
					err := call(e.b)
					e.sw.on.Store(false)
					if e.inj.Injected() == 0 {
						t.Fatalf("%s: the fault was never injected; the call returned %v", name, err)
					}
					switch {
					case err == nil:
						t.Errorf("%s returned nil after an injected %v", name, errno)
					case !errors.Is(err, errno):
						t.Errorf("%s: errors.Is(%v, %v) = false", name, err, errno)
					case !strings.Contains(err.Error(), inc):
						t.Errorf("%s: error %q does not name %s", name, err, inc)
					case !strings.HasPrefix(err.Error(), name):
						t.Errorf("%s: error %q does not name the operation", name, err)
					}
					e.checkIntact(t, e.b, name)
					if err := e.b.StoreMeta(ctx, "after", metastorage.MessageMetadata{}); err != nil {
						t.Errorf("%s: a write after the fault: %v", name, err)
					}
				}
			})
		}
	}
}

// TestFailedChangeLeavesNoTemp shows that a call whose placement fails
// leaves nothing recovery could finish, even after a power loss: its temp
// file, whose complete record was synced, is removed, and the removal is
// synced before the call returns, although another call's fsync made the
// temp file's name durable meanwhile. Its directory's fsync for the
// relocation case comes first, so the message moved back is kept.
func TestFailedChangeLeavesNoTemp(t *testing.T) {
	for _, tc := range []struct {
		name string
		from metastorage.QueueState
	}{
		{"replace", stIncoming},
		{"relocation", stActive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := crashLayout(t)
			incoming := filepath.Join(crashDir, stIncoming.String())
			var on atomic.Bool
			inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
				if on.Load() && op == vfs.OpRename && isTemp(path) {
					on.Store(false)
					// Another call's fsync of incoming, meanwhile.
					d, err := mem.OpenDir(incoming)
					if err == nil {
						err = errors.Join(d.Sync(), d.Close())
					}
					if err != nil {
						t.Error(err)
					}
					return syscall.EIO
				}
				return nil
			})
			cfg := quietConfig(vfs.Inject(mem, inj), Standard)
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: tc.from, LastError: "before"}); err != nil {
				t.Fatal(err)
			}
			on.Store(true)
			err = b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: stIncoming, LastError: "failed"})
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("the update returned %v, want EIO", err)
			}
			after, err := open(crashConfig(mem.CrashClone(), Standard)) // a power loss now
			if err != nil {
				t.Fatal(err)
			}
			defer after.Close()
			if err := after.RecoverFromCrash(); err != nil {
				t.Fatal(err)
			}
			md, err := after.GetMeta(ctx, "m")
			if err != nil || md.LastError != "before" || md.State != tc.from {
				t.Fatalf("after a power loss and recovery, m is %s %q (%v); want %s %q: a call that failed took effect", md.State, md.LastError, err, tc.from, "before")
			}
		})
	}
}

// TestFailedChangeTempNotRemovable shows that when a failed call's temp
// file cannot be removed, the call's error says that recovery may yet
// apply it, and the Backend refuses further writes.
func TestFailedChangeTempNotRemovable(t *testing.T) {
	for _, mode := range []Mode{Standard, Hybrid, Performance} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			var on atomic.Bool
			var renames, removes atomic.Int32
			inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
				switch {
				case !on.Load():
				case op == vfs.OpRename && renames.Add(1) == 1:
					return syscall.EIO
				case op == vfs.OpRemove && isTemp(path) && removes.Add(1) == 1:
					return syscall.EIO
				}
				return nil
			})
			cfg := quietConfig(vfs.Inject(crashLayout(t), inj), mode)
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: stIncoming, LastError: "before"}); err != nil {
				t.Fatal(err)
			}
			on.Store(true)
			err = b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: stIncoming, LastError: "failed"})
			on.Store(false)
			if err == nil || !strings.Contains(err.Error(), "recovery may yet apply the change") {
				t.Fatalf("the update returned %v; want an error saying recovery may yet apply it", err)
			}
			if err := b.StoreMeta(ctx, "n", metastorage.MessageMetadata{State: stIncoming}); err == nil {
				t.Fatal("the Backend accepted a write after a failed call's temp file was left")
			}
		})
	}
}
