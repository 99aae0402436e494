package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestIteratorReadsDirectoryOnce shows that iterating n messages costs
// O(n) directory reads in all (the directory is never read again from its
// start for each batch), and that the iterator holds at most one batch of
// entries and reads at most two ahead.
func TestIteratorReadsDirectoryOnce(t *testing.T) {
	const n, batch = 1000, 10
	var readDirs atomic.Int64
	deferred := filepath.Join(crashDir, "deferred")
	fsys := vfs.Inject(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpReadDir && path == deferred {
			readDirs.Add(1)
		}
		return nil
	}))
	cfg := crashConfig(fsys, Performance)
	cfg.noRecovery = true // the recovery scan would read the directory too
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for i := range n {
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%04d", i), metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	readDirs.Store(0)
	mi, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, batch)
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	it := mi.(*iterator)
	got := 0
	for {
		_, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(it.pending) > batch {
			t.Fatalf("iterator holds %d entries, batch is %d", len(it.pending), batch)
		}
		if q := it.ahead.queued(); q > 2*batch {
			t.Fatalf("iterator reads %d messages ahead, batch is %d", q, batch)
		}
		if !ok {
			break
		}
		got++
	}
	if got != n {
		t.Errorf("iterated %d messages, want %d", got, n)
	}
	if max := int64(n/batch + 2); readDirs.Load() > max {
		t.Errorf("%d directory reads for %d messages in batches of %d, want at most %d", readDirs.Load(), n, batch, max)
	}
}

// TestLockFilesBounded shows that the files under .locks are a fixed set,
// the stripes and the change counters, whatever the number of messages,
// and none is per message.
func TestLockFilesBounded(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b := openTest(t, dir)
	ctx := context.Background()
	for i := range 300 {
		id := fmt.Sprintf("lock-%d", i)
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{}); err != nil {
			t.Fatal(err)
		}
		if err := b.MoveToState(ctx, id, metastorage.StateIncoming, metastorage.StateActive); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, ".locks"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != numStripes+3 {
		t.Errorf(".locks holds %d files, want the %d stripes, the change counters and the two locks of open", len(ents), numStripes)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "stripe-") && e.Name() != changesName && e.Name() != openingName && e.Name() != backendsName {
			t.Errorf(".locks holds %s, neither a stripe, the change counters nor a lock of open", e.Name())
		}
	}
}

// TestRecoveryLeavesLiveWritersTemp shows that recovery does not touch a
// temp file whose writer is alive (holds its stripe's lock), and removes
// it once the writer is gone.
func TestRecoveryLeavesLiveWritersTemp(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b, err := NewFactory(dir).WithBackgroundRecovery(false).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	file, _ := name.Encode("msg-1")
	stripe := stripeOf(file)
	tmp := filepath.Join(dir, "incoming", fmt.Sprintf(".tmp.%02x-1234abcd", stripe))
	if err := os.WriteFile(tmp, []byte(`{"ID": "msg-1", "Sta`), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock, err := b.lock(context.Background(), stripe) // a writer in the middle of its write
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	testHookLockWait = cancel
	_, err = b.Check(ctx, true)
	testHookLockWait = nil
	unlock()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Check while the writer holds its lock = %v, want it to wait for the lock", err)
	}
	if _, err := os.Lstat(tmp); err != nil {
		t.Errorf("live writer's temp file: %v, want it left alone", err)
	}
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphaned temp file after its writer left: %v, want it removed", err)
	}
}

// gatedFile is a directory whose fsyncs block until released.
type gatedFile struct {
	vfs.File
	started chan struct{}
	release chan struct{}
	syncs   atomic.Int64 // the fsyncs that have ended
}

func (f *gatedFile) Sync() error {
	f.started <- struct{}{}
	<-f.release
	f.syncs.Add(1)
	return nil
}

// TestDirSyncGroupCommit shows the rule of shared directory fsyncs: a
// caller that arrives while an fsync runs is not covered by it (that fsync
// may have started before the caller's change) and waits for the next one,
// which serves every caller that waited.
func TestDirSyncGroupCommit(t *testing.T) {
	f := &gatedFile{started: make(chan struct{}), release: make(chan struct{})}
	d := newGroupSync(f, "dir")
	earlyDone := make(chan int64)
	go func() {
		d.sync()
		earlyDone <- f.syncs.Load()
	}()
	<-f.started // fsync 1 runs
	const lateCallers = 3
	var late sync.WaitGroup
	for range lateCallers {
		late.Go(func() { d.sync() })
	}
	for { // until all late callers wait, without sleeping
		d.mu.Lock()
		w := d.waiting
		d.mu.Unlock()
		if w == lateCallers {
			break
		}
		runtime.Gosched()
	}
	lateDone := make(chan struct{})
	go func() {
		late.Wait()
		close(lateDone)
	}()
	f.release <- struct{}{} // fsync 1 ends
	if n := <-earlyDone; n != 1 {
		t.Errorf("early caller returned after %d fsyncs, want 1", n)
	}
	select {
	case <-f.started: // fsync 2, for the late callers
		f.release <- struct{}{}
	case <-lateDone:
		t.Fatal("late callers returned on the fsync that was running when they came")
	}
	<-lateDone
	if got := f.syncs.Load(); got != 2 {
		t.Errorf("%d fsyncs for 1 early and %d late callers, want 2", got, lateCallers)
	}
}

// TestFIFOUnderMessageName shows that a FIFO named like a message file is
// neither waited on nor read: calls on that ID fail at once with its path,
// the scan reports it, recovery sets it aside, and no count goes wrong.
func TestFIFOUnderMessageName(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b, err := NewFactory(dir).WithBackgroundRecovery(false).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.StoreMeta(ctx, "ok", metastorage.MessageMetadata{State: metastorage.StateHold}); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "hold", "x.json")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetMeta(ctx, "x"); err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("GetMeta of a FIFO = %v, want an error naming %s", err, fifo)
	}
	if err := b.StoreMeta(ctx, "x", metastorage.MessageMetadata{}); err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("StoreMeta over a FIFO = %v, want an error naming %s", err, fifo)
	}
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	findings, err := b.Check(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || findings[0].Kind != NotRegular || findings[0].Path != fifo || !findings[0].Repaired {
		t.Errorf("Check found %+v, want the FIFO set aside as not-regular", findings)
	}
	if n := b.GetStateCount(metastorage.StateHold); n != 1 {
		t.Errorf("hold count %d after the FIFO was set aside, want 1", n)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "corrupt", "hold", "x.json")); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("corrupt/hold/x.json: %v, %v; want the FIFO moved there", fi, err)
	}
}

// TestStatsOutcomes shows that Stats counts calls by kind and outcome.
func TestStatsOutcomes(t *testing.T) {
	spooltest.NeedDisk(t)
	b := openTest(t, t.TempDir())
	ctx := context.Background()
	b.StoreMeta(ctx, "a", metastorage.MessageMetadata{})
	b.StoreMeta(ctx, "", metastorage.MessageMetadata{})
	b.GetMeta(ctx, "a")
	b.GetMeta(ctx, "missing")
	b.MoveToState(ctx, "a", metastorage.StateIncoming, metastorage.StateActive)
	b.MoveToState(ctx, "a", metastorage.StateIncoming, metastorage.StateActive)
	b.UpdateMeta(ctx, "missing", metastorage.MessageMetadata{})
	b.DeleteMeta(ctx, "a")
	b.ListMessages(ctx, metastorage.StateActive, metastorage.MessageListOptions{})
	st := b.Stats()
	want := Stats{
		Store:  Outcomes{OK: 1, Error: 1},
		Get:    Outcomes{OK: 1, NotFound: 1},
		Move:   Outcomes{OK: 1, Conflict: 1},
		Update: Outcomes{NotFound: 1},
		Delete: Outcomes{OK: 1},
		List:   Outcomes{OK: 1},
	}
	if st.Store != want.Store || st.Get != want.Get || st.Move != want.Move || st.Update != want.Update || st.Delete != want.Delete || st.List != want.List {
		t.Errorf("Stats outcomes:\n got %+v\nwant %+v", st, want)
	}
	if st.DirSyncs == 0 || st.MeanGroupCommit() < 1 {
		t.Errorf("DirSyncs %d, mean group commit %v; want fsyncs, each serving at least one call", st.DirSyncs, st.MeanGroupCommit())
	}
}

// TestStandardSyncsPerCall pins what each Standard-mode call syncs: one
// fsync of its new file's data, and one directory fsync asked for, also
// for a change of state, whose fsync of the old directory first makes the
// new one durable (moveOrder; the power-loss test shows it is enough).
// Nothing is synced twice.
func TestStandardSyncsPerCall(t *testing.T) {
	ctx := context.Background()
	b, err := open(crashConfig(crashLayout(t), Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	md := func(s metastorage.QueueState) metastorage.MessageMetadata {
		return metastorage.MessageMetadata{State: s}
	}
	calls := []struct {
		name            string
		call            func() error
		fileSyncs, dirs int64
	}{
		{"store new", func() error { return b.StoreMeta(ctx, "m", md(stIncoming)) }, 1, 1},
		{"store over", func() error { return b.StoreMeta(ctx, "m", md(stIncoming)) }, 1, 1},
		{"move", func() error { return b.MoveToState(ctx, "m", stIncoming, stActive) }, 1, 1},
		{"update to another state", func() error { return b.UpdateMeta(ctx, "m", md(stDeferred)) }, 1, 1},
		{"update in place", func() error { return b.UpdateMeta(ctx, "m", md(stDeferred)) }, 1, 1},
		{"delete", func() error { return b.DeleteMeta(ctx, "m") }, 0, 1},
	}
	for _, c := range calls {
		before := b.Stats()
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after := b.Stats()
		if f, d := after.FileSyncs-before.FileSyncs, after.DirSyncRequests-before.DirSyncRequests; f != c.fileSyncs || d != c.dirs {
			t.Errorf("%s: %d file fsyncs and %d directory fsyncs asked for, want %d and %d", c.name, f, d, c.fileSyncs, c.dirs)
		}
	}
}

// TestSharedBackendsKeepOneState shows that three Backends sharing a
// directory, each called by several goroutines with random changes of a
// few messages (stores, moves, updates and deletes, plain and
// compare-and-swap, reads, and a repairing check now and then), leave
// every message in one state at most, where GetMeta finds it, and fail
// only with the errors those calls may give.
func TestSharedBackendsKeepOneState(t *testing.T) {
	t.Parallel()
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			mem := crashLayout(t)
			var bs [3]*Backend
			for i := range bs {
				b, err := open(quietConfig(mem, mode))
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				bs[i] = b
			}
			ids := make([]string, 24)
			for i := range ids {
				ids[i] = fmt.Sprintf("m-%d", i)
			}
			states := metastorage.States()
			ctx := context.Background()
			var wg sync.WaitGroup
			for g := range 9 {
				wg.Go(func() {
					b := bs[g%len(bs)]
					r := rand.New(rand.NewPCG(uint64(g), 1))
					for range 300 {
						id := ids[r.IntN(len(ids))]
						s, s2 := states[r.IntN(len(states))], states[r.IntN(len(states))]
						var err error
						switch r.IntN(8) {
						case 0, 1:
							err = b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: s})
						case 2:
							err = b.MoveToState(ctx, id, s, s2)
						case 3:
							err = b.UpdateMeta(ctx, id, metastorage.MessageMetadata{State: s2})
						case 4:
							err = b.UpdateMetaIn(ctx, id, s, metastorage.MessageMetadata{State: s2})
						case 5:
							err = b.DeleteMeta(ctx, id)
						case 6:
							err = b.DeleteMetaIn(ctx, id, s)
						case 7:
							_, err = b.GetMeta(ctx, id)
						}
						if err != nil && !errors.Is(err, metastorage.ErrMessageNotFound) && !errors.Is(err, metastorage.ErrStateConflict) {
							t.Errorf("goroutine %d: %v", g, err)
						}
						if g == 0 && r.IntN(100) == 0 {
							if _, err := b.Check(ctx, true); err != nil {
								t.Errorf("check: %v", err)
							}
						}
					}
				})
			}
			wg.Wait()
			for _, id := range ids {
				in := statesOf(t, bs[0], id)
				md, err := bs[1].GetMeta(ctx, id)
				switch {
				case len(in) > 1:
					t.Errorf("message %s lies in states %v", id, in)
				case len(in) == 0 && !errors.Is(err, metastorage.ErrMessageNotFound):
					t.Errorf("message %s lies in no state, and GetMeta returns %v", id, err)
				case len(in) == 1 && (err != nil || md.State != in[0]):
					t.Errorf("message %s lies in state %s, and GetMeta returns %v, %v", id, in[0], md.State, err)
				}
			}
		})
	}
}
