package filesystem

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// hybridOnMem opens a Hybrid-mode backend on a fresh Mem layout.
func hybridOnMem(t *testing.T, limit int64, onCheckpoint func()) (*Backend, *vfs.Mem) {
	t.Helper()
	m := crashLayout(t)
	cfg := crashConfig(m, Hybrid)
	cfg.journalLimit, cfg.onCheckpoint = limit, onCheckpoint
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, m
}

func journalSize(t *testing.T, fsys vfs.FS) int64 {
	t.Helper()
	fi, err := fsys.Lstat(filepath.Join(crashDir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestJournalReplayAfterPowerLoss(t *testing.T) {
	ctx := context.Background()
	b, m := hybridOnMem(t, 0, nil)
	for _, id := range []string{"a", "b", "c"} {
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: stIncoming, LastError: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.MoveToState(ctx, "a", stIncoming, stActive); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMeta(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.FileSyncs != 0 || st.DirSyncs != 0 {
		t.Errorf("Hybrid mode synced message files: %+v", st)
	}
	if st.JournalSyncs == 0 || st.JournalSyncRequests != 5 || st.JournalBytes == 0 {
		t.Errorf("journal counters: %d syncs for %d requests, %d bytes; want 5 requests", st.JournalSyncs, st.JournalSyncRequests, st.JournalBytes)
	}

	// Power loss: the message files were never synced, the journal was.
	img := m.CrashClone()
	before, err := readImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.msgs) != 0 {
		t.Fatalf("the crash image holds message files before replay: %v", before.ids())
	}
	// A torn append after the last acknowledged record is skipped.
	jf, err := img.OpenAppend(filepath.Join(crashDir, journalName), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	torn := wal.Append(nil, wal.KindPut, stHold, "c.json", []byte(`{"ID":"c","State":3}`))
	if _, err := jf.Write(torn[:len(torn)-4]); err != nil {
		t.Fatal(err)
	}
	jf.Close()

	b2, err := open(crashConfig(img, Performance)) // any mode replays
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	want := map[string]metastorage.QueueState{"a": stActive, "c": stIncoming}
	for _, id := range []string{"a", "b", "c"} {
		md, err := b2.GetMeta(ctx, id)
		s, ok := want[id]
		switch {
		case !ok && err == nil:
			t.Errorf("deleted message %s is back", id)
		case ok && err != nil:
			t.Errorf("GetMeta %s after replay: %v", id, err)
		case ok && (md.State != s || md.LastError != id):
			t.Errorf("message %s after replay is %+v, want state %s", id, md, s)
		}
	}
	if n := journalSize(t, img); n != 0 {
		t.Errorf("journal holds %d bytes after the replay's checkpoint, want 0", n)
	}
}

func TestJournalCheckpointAtLimit(t *testing.T) {
	ctx := context.Background()
	done := make(chan struct{}, 1)
	b, m := hybridOnMem(t, 2048, func() {
		select {
		case done <- struct{}{}:
		default:
		}
	})
	for i := range 20 {
		id := string(rune('a' + i))
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: stDeferred, LastError: "timeout"}); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if n := b.Stats().Checkpoints; n < 1 {
		t.Fatalf("Checkpoints = %d after a checkpoint ran", n)
	}
	if n, total := journalSize(t, m), b.Stats().JournalBytes; n >= total {
		t.Errorf("journal holds %d of the %d bytes appended; a checkpoint empties it", n, total)
	}
	// What the checkpoint took out of the journal is durable in the files.
	img, err := readImage(m.CrashClone())
	if err != nil {
		t.Fatal(err)
	}
	if len(img.msgs) == 0 {
		t.Error("no message file is durable after a checkpoint")
	}
}

func TestJournalEmptiedByClose(t *testing.T) {
	spooltest.NeedDisk(t)
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewBackendWithOptions(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{}); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, journalName)
	if fi, err := os.Stat(journal); err != nil || fi.Size() == 0 {
		t.Fatalf("journal after a Hybrid store: %v, %v", fi, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(journal); err != nil || fi.Size() != 0 {
		t.Fatalf("journal after Close: %v, %v; want it empty", fi, err)
	}

	// A Standard-mode backend on the directory writes through its journal,
	// and syncs no message file.
	b2, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.MoveToState(ctx, "m", stIncoming, stActive); err != nil {
		t.Fatal(err)
	}
	st := b2.Stats()
	if st.JournalBytes == 0 || st.JournalSyncRequests != 1 || st.FileSyncs != 0 || st.DirSyncRequests != 0 {
		t.Errorf("Standard mode on a journaled directory: %d journal bytes, %d journal syncs asked, %d file syncs, %d directory syncs asked; want the journal only",
			st.JournalBytes, st.JournalSyncRequests, st.FileSyncs, st.DirSyncRequests)
	}
}

// TestJournalNotARegularFile checks that a journal that is not a regular
// file is refused, with an error naming it, in every mode: it is never
// followed, read or written through.
func TestJournalNotARegularFile(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	makers := map[string]func(path string) error{
		"symlink":   func(path string) error { return os.Symlink("elsewhere", path) },
		"directory": func(path string) error { return os.Mkdir(path, 0o755) },
		"fifo":      func(path string) error { return mkfifo(path) },
	}
	for kind, mk := range makers {
		for _, mode := range crashModes {
			t.Run(kind+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				journal := filepath.Join(dir, journalName)
				if err := mk(journal); err != nil {
					t.Fatal(err)
				}
				b, err := NewBackendWithOptions(dir, mode == Performance, mode == Hybrid)
				if err == nil {
					b.Close()
					t.Fatalf("open succeeded with a %s as journal", kind)
				}
				if !strings.Contains(err.Error(), journal) {
					t.Errorf("error %q does not name %s", err, journal)
				}
				if fi, err := os.Lstat(journal); err != nil || fi.Mode().IsRegular() {
					t.Errorf("the %s was replaced: %v, %v", kind, fi, err)
				}
			})
		}
	}
}

// TestJournalReadOnly checks that a read-only backend opens a directory
// whose journal holds records without replaying or emptying it: it changes
// nothing, and the next writer replays.
func TestJournalReadOnly(t *testing.T) {
	ctx := context.Background()
	b, m := hybridOnMem(t, 0, nil)
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: stHold}); err != nil {
		t.Fatal(err)
	}
	img := m.CrashClone() // the journal holds the record, the files nothing
	size := journalSize(t, img)
	cfg := crashConfig(img, Standard)
	cfg.readOnly = true
	ro, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.GetMeta(ctx, "m"); !errors.Is(err, metastorage.ErrMessageNotFound) {
		t.Errorf("read-only GetMeta before any replay: %v, want not found", err)
	}
	ro.Close()
	if n := journalSize(t, img); n != size || n == 0 {
		t.Fatalf("journal holds %d bytes after a read-only open, want the %d it held", n, size)
	}
	w, err := open(crashConfig(img, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if md, err := w.GetMeta(ctx, "m"); err != nil || md.State != stHold {
		t.Errorf("GetMeta after a writer's replay: %+v, %v", md, err)
	}
}

// TestJournalCheckpointSyncfs shows what a failed syncfs does to a
// checkpoint: an unsupported one (ENOSYS) keeps the journal and the
// Backend writing; any other error (EIO) keeps the journal and makes the
// Backend refuse writes, as nothing can be known durable after it.
func TestJournalCheckpointSyncfs(t *testing.T) {
	for _, tc := range []struct {
		errno  syscall.Errno
		failed bool
	}{
		{syscall.ENOSYS, false},
		{syscall.EIO, true},
	} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			ctx := context.Background()
			m := crashLayout(t)
			fsys := vfs.Inject(m, vfs.InjectorFunc(func(op vfs.Op, _ string) error {
				if op == vfs.OpSyncAll {
					return tc.errno
				}
				return nil
			}))
			b, err := open(crashConfig(fsys, Hybrid))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.StoreMeta(ctx, "a", metastorage.MessageMetadata{State: stIncoming}); err != nil {
				t.Fatal(err)
			}
			before := journalSize(t, m)
			err = b.checkpoint(ctx)
			if !errors.Is(err, tc.errno) {
				t.Errorf("checkpoint: %v, want %v", err, tc.errno)
			}
			if n := journalSize(t, m); n != before {
				t.Errorf("journal %d bytes after the failed checkpoint, want the %d before it", n, before)
			}
			err = b.StoreMeta(ctx, "b", metastorage.MessageMetadata{State: stIncoming})
			if failed := err != nil; failed != tc.failed {
				t.Errorf("a write after the failed checkpoint: %v; want it refused: %t", err, tc.failed)
			}
		})
	}
}

// diesAtFirstTemp returns an Injector that, once armed is true, fails the
// first creation of a temp file, and every call after it, with
// ErrCrashed: a process killed there.
func diesAtFirstTemp(armed *atomic.Bool) vfs.Injector {
	var dead atomic.Bool
	return vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if dead.Load() || (armed.Load() && op == vfs.OpCreate && isTemp(path)) {
			dead.Store(true)
			return vfs.ErrCrashed
		}
		return nil
	})
}

// TestReplayCutOffLeavesMessage shows that a replay killed midway never
// leaves a message in no state, even when a Backend that stayed open then
// empties the journal: a Hybrid-mode process is killed after its record
// of a move is durable and before it changes a file; a second one, killed
// while replaying that record, must not have removed the message's old
// copy before writing its new one.
func TestReplayCutOffLeavesMessage(t *testing.T) {
	ctx := context.Background()
	m := crashLayout(t)
	live, err := open(crashConfig(m, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	if err := live.StoreMeta(ctx, "x", metastorage.MessageMetadata{State: stActive, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	live.bg.Wait()

	var armed, always atomic.Bool
	always.Store(true)
	cfg := quietConfig(vfs.Inject(m, diesAtFirstTemp(&armed)), Hybrid)
	mover, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	// A change of state written whole (a move is one rename, with no temp).
	if err := mover.UpdateMetaIn(ctx, "x", stActive, metastorage.MessageMetadata{State: stDeferred, Attempts: 1}); !isCrashed(err) {
		t.Fatalf("the move was not cut off after its journal record: %v", err)
	}
	mover.closeFiles() // the kernel releases a dead process's locks

	if _, err := open(crashConfig(vfs.Inject(m, diesAtFirstTemp(&always)), Hybrid)); !isCrashed(err) {
		t.Fatalf("the replay was not cut off: %v", err)
	}
	if err := live.Close(); err != nil { // its checkpoint empties the journal
		t.Fatal(err)
	}
	after, err := open(crashConfig(m.CrashClone(), Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if err := after.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	md, err := after.GetMeta(ctx, "x")
	if err != nil {
		t.Fatalf("x after the cut-off replay: %v", err)
	}
	if md.State != stActive && md.State != stDeferred {
		t.Fatalf("x is in %s", md.State)
	}
}

// syncAllRecorder is a file system that records the directories SyncAll
// is given.
type syncAllRecorder struct {
	wrapFS
	mu   sync.Mutex
	dirs []vfs.File
}

func (r *syncAllRecorder) SyncAll(dir vfs.File) error {
	r.mu.Lock()
	r.dirs = append(r.dirs, dir)
	r.mu.Unlock()
	return r.wrapFS.SyncAll(dir)
}

// TestCheckpointSyncsOneOpenDirectory shows that every checkpoint of a
// Backend makes its syncfs through the same directory, opened with the
// Backend: syncfs reports a write-back failure only to descriptors opened
// before it, and one opened afresh for each checkpoint would miss a
// failure that another process's syncfs was told of first.
func TestCheckpointSyncsOneOpenDirectory(t *testing.T) {
	ctx := context.Background()
	fsys := &syncAllRecorder{wrapFS: wrapFS{crashLayout(t)}}
	b, err := open(crashConfig(fsys, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, id := range []string{"a", "b"} {
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: stIncoming}); err != nil {
			t.Fatal(err)
		}
		if err := b.checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if len(fsys.dirs) != 2 || fsys.dirs[0] != fsys.dirs[1] || !slices.ContainsFunc(b.dirs[:], func(d *groupSync) bool { return d.f == fsys.dirs[0] }) {
		t.Fatalf("the checkpoints synced through %v; want twice one of the directories the Backend opened", fsys.dirs)
	}
}

// TestUndoNotRecordedIsReported shows that when the record undoing a
// failed change cannot be made durable (the journal's fsync fails), the
// call's error says that a replay may yet apply the change.
func TestUndoNotRecordedIsReported(t *testing.T) {
	ctx := context.Background()
	var on atomic.Bool
	fsys := vfs.Inject(crashLayout(t), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if on.Load() && op == vfs.OpSync && path == filepath.Join(crashDir, journalName) {
			return syscall.EIO
		}
		return nil
	}))
	b, err := open(crashConfig(fsys, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: stIncoming}); err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	err = b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: stIncoming, Attempts: 2})
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "a replay may yet apply the change") {
		t.Fatalf("the update returned %v; want EIO, saying a replay may yet apply it", err)
	}
	if err := b.StoreMeta(ctx, "n", metastorage.MessageMetadata{State: stIncoming}); err == nil {
		t.Fatal("the Backend accepted a write after the journal's fsync failed")
	}
}

// fullDisk returns an Injector that fails with ENOSPC every change of a
// message file (temp file writes, renames, removals) and every append to
// the journal but, if recordFits, the first: a disk that fills up just
// after a change's record was appended.
func fullDisk(recordFits bool) vfs.Injector {
	appends := 0 // an Injecting consults its Injector serially
	return vfs.InjectorFunc(func(op vfs.Op, path string) error {
		switch {
		case op == vfs.OpWrite && isJournal(path):
			appends++
			if recordFits && appends == 1 {
				return nil
			}
			return syscall.ENOSPC
		case op == vfs.OpWrite && isTemp(path), op == vfs.OpRename, op == vfs.OpRemove && !isTemp(path):
			return syscall.ENOSPC
		}
		return nil
	})
}

// TestFailedHybridCallChangesNothing shows that a Hybrid-mode call that
// returns an error has changed nothing, also once the journal is replayed
// after a power loss right after the call, or after Close; that every call
// that returned nil is there; and that Close returns an error, saying that
// the next open replays it, whenever it leaves the journal non-empty.
func TestFailedHybridCallChangesNothing(t *testing.T) {
	ctx := context.Background()
	f0 := metastorage.MessageMetadata{State: stIncoming, Attempts: 1}
	calls := []struct {
		name string
		call func(b *Backend) error
	}{
		{"move", func(b *Backend) error { return b.MoveToState(ctx, "f0", stIncoming, stActive) }},
		{"update", func(b *Backend) error {
			return b.UpdateMeta(ctx, "f0", metastorage.MessageMetadata{State: stIncoming, Attempts: 2})
		}},
		{"delete", func(b *Backend) error { return b.DeleteMeta(ctx, "f0") }},
		{"store-new", func(b *Backend) error {
			return b.StoreMeta(ctx, "new", metastorage.MessageMetadata{State: stActive})
		}},
	}
	faults := []struct {
		name string
		inj  func() vfs.Injector
		// refuses: the Backend refuses writes after the call, and the
		// call's error says a replay may yet apply its change, as one
		// does if applied: its record could not be voided at all.
		refuses, applied bool
	}{
		{name: "disk full after the record", inj: func() vfs.Injector { return fullDisk(true) }},
		{name: "disk full at the record", inj: func() vfs.Injector { return vfs.ShortWrite(fullDisk(false)) }},
		// The record and its voiding are never durable: on Mem the
		// replay finds it void, or not at all.
		{name: "journal fsync fails", refuses: true, inj: func() vfs.Injector {
			return vfs.And(vfs.OnOp(vfs.OpSync), vfs.PathMatch(isJournal))
		}},
		{name: "record cannot be voided", refuses: true, applied: true, inj: func() vfs.Injector {
			return eitherInj{fullDisk(true), vfs.OnOp(vfs.OpOverwrite)}
		}},
	}
	for _, fault := range faults {
		for _, c := range calls {
			t.Run(fault.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				m := crashLayout(t)
				sw := &faultSwitch{inj: fault.inj()}
				b, err := open(quietConfig(vfs.Inject(m, sw), Hybrid))
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				if err := b.StoreMeta(ctx, "f0", f0); err != nil {
					t.Fatal(err)
				}
				if err := b.StoreMeta(ctx, "kept", metastorage.MessageMetadata{State: stActive}); err != nil {
					t.Fatal(err)
				}
				acked := map[string]metastorage.QueueState{"kept": stActive}

				sw.on.Store(true)
				err = c.call(b)
				sw.on.Store(false)
				if err == nil {
					t.Fatal("the call succeeded on a failing disk")
				}
				if got := strings.Contains(err.Error(), "a replay may yet apply the change"); got != fault.refuses {
					t.Errorf("the call's error %q; says a replay may apply it: %v, want %v", err, got, fault.refuses)
				}
				// What a power loss right after the call leaves.
				lost, ackedLost := m.CrashClone(), maps.Clone(acked)

				err = b.StoreMeta(ctx, "after", f0)
				if fault.refuses != (err != nil) {
					t.Errorf("a store after the failed call returned %v; want the Backend to refuse writes: %v", err, fault.refuses)
				}
				if err == nil {
					acked["after"] = f0.State
				}
				err = b.Close()
				if size := journalSize(t, m); size > 0 != (err != nil) || (err != nil && !strings.Contains(err.Error(), "the next open replays it")) {
					t.Errorf("Close left %d bytes in the journal and returned %v; want an error saying the next open replays them exactly when some are left", size, err)
				}
				if fault.refuses && err == nil {
					t.Error("Close returned nil after the Backend refused writes")
				}

				images := []struct {
					what  string
					img   *vfs.Mem
					acked map[string]metastorage.QueueState
				}{
					{"power loss after the call", lost, ackedLost},
					{"reopened after Close", m, acked},
					{"power loss after Close", m.CrashClone(), acked},
				}
				for _, img := range images {
					what := img.what
					after, err := open(crashConfig(img.img, Hybrid))
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					for id, s := range img.acked {
						if md, err := after.GetMeta(ctx, id); err != nil || md.State != s {
							t.Errorf("%s: acknowledged %s reads %v, %v; want it in %s", what, id, md.State, err, s)
						}
					}
					if !fault.applied {
						md, err := after.GetMeta(ctx, "f0")
						if err != nil || md.State != f0.State || md.Attempts != f0.Attempts {
							t.Errorf("%s: f0 reads state %s, attempts %d, %v; want it as before the failed call, in %s, attempts %d", what, md.State, md.Attempts, err, f0.State, f0.Attempts)
						}
						if _, err := after.GetMeta(ctx, "new"); !errors.Is(err, metastorage.ErrMessageNotFound) {
							t.Errorf("%s: the failed store left new: %v", what, err)
						}
					}
					if err := after.Close(); err != nil {
						t.Errorf("%s: Close: %v", what, err)
					}
				}
			})
		}
	}
}

// TestPerformanceUndoSyncsNothing shows that a Performance-mode call that
// fails beside a journal voids its record without an fsync: the mode syncs
// no call.
func TestPerformanceUndoSyncsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := crashLayout(t)
	h, err := open(quietConfig(m, Hybrid)) // the directory's journal
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.StoreMeta(ctx, "f0", metastorage.MessageMetadata{State: stIncoming}); err != nil {
		t.Fatal(err)
	}
	sw := &faultSwitch{inj: fullDisk(true)}
	p, err := open(quietConfig(vfs.Inject(m, sw), Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sw.on.Store(true)
	err = p.MoveToState(ctx, "f0", stIncoming, stActive)
	sw.on.Store(false)
	if err == nil {
		t.Fatal("the move succeeded on a full disk")
	}
	if n := p.Stats().JournalSyncRequests; n != 0 {
		t.Errorf("the failed call asked for %d journal fsyncs, want none in Performance mode", n)
	}
	if md, err := h.GetMeta(ctx, "f0"); err != nil || md.State != stIncoming {
		t.Errorf("f0 after the failed move: %v, %v; want in incoming", md.State, err)
	}
}
