package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// stateEntries returns the names in every state directory of dir, as
// "state/name".
func stateEntries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, s := range metastorage.States() {
		ents, err := os.ReadDir(filepath.Join(dir, s.String()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			names = append(names, s.String()+"/"+e.Name())
		}
	}
	return names
}

// TestMoveIsOneRename shows that a move in every mode renames the
// message's file and nothing else: the same file (inode) lies in the new
// state, with the same bytes, no temp file is left, and its time is the
// new Updated that every read returns. Standard mode syncs the file once
// (none where metadata is journaled in order: TestStandardMoveSyncs);
// Hybrid mode syncs no file, and its journal's last record of the message
// is the whole new record, synced.
func TestMoveIsOneRename(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := openUnscanned(t, dir, mode)
			if !b.nanoTimes {
				t.Fatalf("the test directory's file system keeps no nanosecond times")
			}
			ctx := context.Background()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			before, err := b.GetMeta(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(dir, "incoming", "m.json")
			fi0, err := os.Lstat(src)
			if err != nil {
				t.Fatal(err)
			}
			data0, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			st0 := b.Stats()
			if err := b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive); err != nil {
				t.Fatal(err)
			}
			st1 := b.Stats()
			dst := filepath.Join(dir, "active", "m.json")
			fi1, err := os.Lstat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(fi0, fi1) {
				t.Errorf("the moved message's file is another file: the move wrote a new one")
			}
			if data1, err := os.ReadFile(dst); err != nil || !bytes.Equal(data1, data0) {
				t.Errorf("the moved file holds %q, %v; want its bytes unchanged %q", data1, err, data0)
			}
			if got := stateEntries(t, dir); !slices.Equal(got, []string{"active/m.json"}) {
				t.Errorf("state directories hold %v, want only active/m.json", got)
			}
			got, err := b.GetMeta(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != metastorage.StateActive || !got.Updated.After(before.Updated) || !got.Updated.Equal(fi1.ModTime()) {
				t.Errorf("GetMeta after the move = %+v; want it in active, Updated after %v and equal to the file's time %v", got, before.Updated, fi1.ModTime())
			}
			// Where metadata is journaled in order, Standard mode syncs
			// only the new directory (see TestStandardMoveSyncs).
			want := int64(0)
			if mode == Standard && !b.ordered {
				want = 1
			}
			if n := st1.FileSyncs - st0.FileSyncs; n != want {
				t.Errorf("the move synced %d files, want %d", n, want)
			}
			if mode != Hybrid {
				return
			}
			if st1.JournalSyncs == st0.JournalSyncs {
				t.Errorf("the move synced no journal")
			}
			buf, err := os.ReadFile(filepath.Join(dir, journalName))
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := wal.Parse(buf)
			i := slices.IndexFunc(recs, func(r wal.Record) bool { return r.File == "m.json" })
			if i < 0 {
				t.Fatalf("the journal holds no record of the message")
			}
			rec, err := codec.Decode(recs[i].Data)
			if err != nil {
				t.Fatal(err)
			}
			if r := recs[i]; r.Kind != wal.KindPut || r.State != metastorage.StateActive || rec.State != metastorage.StateActive || !rec.Updated.Equal(got.Updated) || rec.Attempts != 1 {
				t.Errorf("the journal's record of the message: kind %d in %s, %+v; want the whole new record put in active, Updated %v", r.Kind, r.State, rec, got.Updated)
			}
		})
	}
}

// TestStandardMoveSyncs shows the fsyncs of Standard mode's changes of
// state: a move by one rename syncs the file and then the new directory
// before the old one, and a relocation its temp file and the new
// directory before the old one; where metadata is journaled in order, a
// move syncs the new directory alone, and a relocation its temp file and
// the new directory.
func TestStandardMoveSyncs(t *testing.T) {
	t.Parallel()
	inc, act, def := crashDir+sep+"incoming", crashDir+sep+"active", crashDir+sep+"deferred"
	for _, tc := range []struct {
		name           string
		wrap           func(vfs.FS) vfs.FS
		layout         func(testing.TB) *vfs.Mem
		move, relocate []string
	}{
		{"unordered", nil, crashLayout, []string{inc + sep + "m.json", act, inc}, []string{"temp", def, act}},
		{"ordered", asOrdered, crashLayoutOrdered, []string{act}, []string{"temp", def}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				syncs  []string
				record bool
			)
			var fsys vfs.FS = vfs.Inject(tc.layout(t), vfs.InjectorFunc(func(op vfs.Op, path string) error {
				mu.Lock()
				defer mu.Unlock()
				if record && op == vfs.OpSync {
					if isTemp(path) {
						path = "temp"
					}
					syncs = append(syncs, path)
				}
				return nil
			}))
			if tc.wrap != nil {
				fsys = tc.wrap(fsys)
			}
			b, err := open(quietConfig(fsys, Standard))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.ordered != (tc.wrap != nil) {
				t.Fatalf("the Backend takes its file system's metadata as ordered: %v", b.ordered)
			}
			take := func(call func() error) []string {
				mu.Lock()
				syncs, record = nil, true
				mu.Unlock()
				err := call()
				mu.Lock()
				defer mu.Unlock()
				record = false
				if err != nil {
					t.Fatal(err)
				}
				return syncs
			}
			ctx := context.Background()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
				t.Fatal(err)
			}
			got := take(func() error { return b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive) })
			if !slices.Equal(got, tc.move) {
				t.Errorf("the move synced %v, want %v", got, tc.move)
			}
			// Written anew where it lies, so that the update relocates.
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive}); err != nil {
				t.Fatal(err)
			}
			got = take(func() error {
				return b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateDeferred})
			})
			if !slices.Equal(got, tc.relocate) {
				t.Errorf("the update to another state synced %v, want %v", got, tc.relocate)
			}
		})
	}
}

// opCounter counts the calls of each kind on message files, and fails
// the SetModTime calls while failTime is set.
type opCounter struct {
	mu       sync.Mutex
	n        map[vfs.Op]int
	failTime bool
}

func (c *opCounter) MaybeError(op vfs.Op, path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[vfs.Op]int{}
	}
	if filepath.Base(path) == "m.json" || isTemp(path) {
		c.n[op]++
	}
	if op == vfs.OpSetModTime && c.failTime && filepath.Base(path) == "m.json" {
		return syscall.EPERM
	}
	return nil
}

func (c *opCounter) take() map[vfs.Op]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	return n
}

// coarseFS keeps modification times to the second, as FAT or ext4 with
// small inodes do.
type coarseFS struct{ wrapFS }

func (c coarseFS) SetModTimeIn(dir vfs.File, name string, t time.Time) error {
	return c.wrapFS.SetModTimeIn(dir, name, t.Truncate(time.Second))
}

// TestMoveFallsBackToWholeRecord shows, in every mode, the moves that
// write the whole record: on a file system that keeps coarser
// times than a nanosecond (found at open), when the file's time cannot be
// set, and out of a state the file's record was not written in (a file
// moved before), also back into the one it was. The others are one
// rename: no temp file created, one SetModTime.
func TestMoveFallsBackToWholeRecord(t *testing.T) {
	t.Parallel()
	inc, act, def := metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred
	for _, tc := range []struct {
		name     string
		coarse   bool
		failTime bool
		moves    [][2]metastorage.QueueState
		renamed  []bool // which moves are one rename
	}{
		{name: "nanosecond times", moves: [][2]metastorage.QueueState{{inc, act}, {act, def}, {def, inc}, {inc, def}}, renamed: []bool{true, false, true, false}},
		{name: "coarse times", coarse: true, moves: [][2]metastorage.QueueState{{inc, act}, {act, def}}, renamed: []bool{false, false}},
		{name: "time not set", failTime: true, moves: [][2]metastorage.QueueState{{inc, act}, {act, def}}, renamed: []bool{false, false}},
	} {
		for _, mode := range []Mode{Standard, Performance, Hybrid} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				mem := crashLayout(t)
				count := &opCounter{failTime: tc.failTime}
				var fsys vfs.FS = vfs.Inject(mem, count)
				if tc.coarse {
					fsys = coarseFS{wrapFS{fsys}}
				}
				b, err := open(quietConfig(fsys, mode))
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				if b.nanoTimes == tc.coarse {
					t.Fatalf("nanoTimes = %v on a file system that keeps coarse times: %v", b.nanoTimes, tc.coarse)
				}
				ctx := context.Background()
				if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 4}); err != nil {
					t.Fatal(err)
				}
				for i, mv := range tc.moves {
					prev, err := b.GetMeta(ctx, "m")
					if err != nil {
						t.Fatal(err)
					}
					fi0, err := mem.Lstat(b.path(mv[0], "m.json"))
					if err != nil {
						t.Fatal(err)
					}
					f0, err := mem.Open(b.path(mv[0], "m.json"))
					if err != nil {
						t.Fatal(err)
					}
					rec0, err := readRecordRaw(f0)
					if err != nil {
						t.Fatal(err)
					}
					// A move into the state a stale State field names first
					// writes the record anew where it lies (see put).
					creates := 1
					if rec0.State != mv[0] && rec0.State == mv[1] {
						creates = 2
					}
					count.take()
					if err := b.MoveToState(ctx, "m", mv[0], mv[1]); err != nil {
						t.Fatalf("move %v: %v", mv, err)
					}
					n := count.take()
					path := b.path(mv[1], "m.json")
					fi1, err := mem.Lstat(path)
					if err != nil {
						t.Fatal(err)
					}
					f, err := mem.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					rec, err := readRecordRaw(f)
					if err != nil {
						t.Fatal(err)
					}
					got, err := b.GetMeta(ctx, "m")
					if err != nil {
						t.Fatal(err)
					}
					if got.State != mv[1] || !got.Updated.After(prev.Updated) || got.Attempts != 4 {
						t.Errorf("move %d %v: GetMeta = %+v, want it in %s, Updated after %v", i, mv, got, mv[1], prev.Updated)
					}
					if tc.renamed[i] {
						if !vfs.SameFile(fi0, fi1) || n[vfs.OpCreate] != 0 || n[vfs.OpRename] != 1 || n[vfs.OpSetModTime] != 1 {
							t.Errorf("move %d %v: same file %v, calls %v; want one rename of the same file, one SetModTime, no create", i, mv, vfs.SameFile(fi0, fi1), n)
						}
						if rec.State == mv[1] || !got.Updated.Equal(fi1.ModTime()) {
							t.Errorf("move %d %v: State field %s, Updated %v, file time %v; want the field left, Updated the file's time", i, mv, rec.State, got.Updated, fi1.ModTime())
						}
						continue
					}
					if vfs.SameFile(fi0, fi1) || n[vfs.OpCreate] != creates {
						t.Errorf("move %d %v: same file %v, calls %v; want a new file, written whole (%d creates)", i, mv, vfs.SameFile(fi0, fi1), n, creates)
					}
					if rec.State != mv[1] || !rec.Updated.Equal(got.Updated) {
						t.Errorf("move %d %v: the file's record %+v, want it naming %s with Updated %v", i, mv, rec, mv[1], got.Updated)
					}
				}
			})
		}
	}
}

// readRecordRaw returns the record f holds as its fields say, and closes
// f.
func readRecordRaw(f vfs.File) (metastorage.MessageMetadata, error) {
	var buf []byte
	md, _, _, err := readOpenData(f, "", nowhere, &buf)
	return md, err
}

// TestMoveReadersAgree shows that after moves by one rename every reader
// takes the same Updated: GetMeta, an iteration read from the files and
// one served by the index, a listing by updated with and without Since,
// and the write path's locate, which a compare-and-swap on the record
// GetMeta returned passes, while one on the record before the move fails.
func TestMoveReadersAgree(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b := openUnscanned(t, dir, Standard)
	ctx := context.Background()
	inc, act, def := metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred
	ids := []string{"m1", "m2", "m3", "m4"}
	stale := map[string]metastorage.MessageMetadata{}
	for i, id := range ids {
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: inc, Attempts: i}); err != nil {
			t.Fatal(err)
		}
		md, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		stale[id] = md
	}
	// m3 is stored in deferred, and moved into it last; m4 stays a record
	// written there.
	moves := []struct {
		id       string
		from, to metastorage.QueueState
	}{{"m1", inc, act}, {"m2", inc, def}, {"m3", inc, act}, {"m1", act, def}, {"m3", act, def}}
	if err := b.UpdateMeta(ctx, "m4", metastorage.MessageMetadata{State: def, Attempts: 3}); err != nil {
		t.Fatal(err)
	}
	for _, mv := range moves {
		if err := b.MoveToState(ctx, mv.id, mv.from, mv.to); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]time.Time{}
	for _, id := range ids {
		md, err := b.GetMeta(ctx, id)
		if err != nil || md.State != def {
			t.Fatalf("GetMeta(%s) = %+v, %v; want it in deferred", id, md, err)
		}
		want[id] = md.Updated
	}
	for pass := range 2 { // from the files, then from the index
		it, err := b.NewMessageIterator(ctx, def, 2)
		if err != nil {
			t.Fatal(err)
		}
		mds, err := drain(ctx, it)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]time.Time{}
		for _, md := range mds {
			got[md.ID] = md.Updated
		}
		for _, id := range ids {
			if !got[id].Equal(want[id]) {
				t.Errorf("iteration %d: %s Updated %v, GetMeta says %v", pass, id, got[id], want[id])
			}
		}
	}
	byUpdated := slices.Clone(ids)
	slices.SortFunc(byUpdated, func(a, b string) int { return want[a].Compare(want[b]) })
	for _, since := range []time.Time{{}, want[byUpdated[2]]} {
		res, err := b.ListMessages(ctx, def, metastorage.MessageListOptions{SortBy: "updated", Since: since})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs := byUpdated
		if !since.IsZero() {
			wantIDs = byUpdated[2:]
		}
		if !slices.Equal(res.MessageIDs, wantIDs) {
			t.Errorf("ListMessages by updated since %v = %v, want %v (Updated %v)", since, res.MessageIDs, wantIDs, want)
		}
	}
	for _, id := range ids {
		if err := b.UpdateMetaIf(ctx, id, stale[id], metastorage.MessageMetadata{State: def, Attempts: 9}); !errors.Is(err, metastorage.ErrStateConflict) {
			t.Errorf("UpdateMetaIf(%s) on the record before the moves = %v, want a conflict", id, err)
		}
		cur, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.UpdateMetaIf(ctx, id, cur, metastorage.MessageMetadata{State: def, Attempts: 9}); err != nil {
			t.Errorf("UpdateMetaIf(%s) on the record GetMeta returned = %v, want nil", id, err)
		}
	}
}

// moveClock is a clock for a Backend that returns a later time of an odd
// nanosecond at each call, and remembers them.
type moveClock struct {
	mu    sync.Mutex
	t     time.Time
	given []time.Time
}

func (c *moveClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second + 1)
	c.given = append(c.given, c.t)
	return c.t
}

func (c *moveClock) since(n int) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.given[n:])
}

func (c *moveClock) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.given)
}

// moveRec is what TestMoveCrashAtEveryCall checks of a message.
type moveRec struct {
	present  bool
	state    metastorage.QueueState
	updated  time.Time
	attempts int
}

func (r moveRec) String() string {
	if !r.present {
		return "absent"
	}
	return fmt.Sprintf("{%s %s attempts=%d}", r.state, r.updated.Format(time.RFC3339Nano), r.attempts)
}

func (r moveRec) same(o moveRec) bool {
	return r.present == o.present && r.state == o.state && r.updated.Equal(o.updated) && r.attempts == o.attempts
}

// TestMoveCrashAtEveryCall crashes a Standard-mode Backend (also one on a
// file system that journals metadata in order) and a Hybrid-mode Backend
// (also one that syncs through a Tracker, as on macOS) at each
// mutating call of a store, of moves by one rename and written whole, and
// of a checkpoint between them, and checks the message in both crash
// images, the one of only what was synced and the one where every change
// of names was committed (as ext4's journal may commit a rename before any
// fsync): it is as the last acknowledged call left it, or as the call in
// flight left it, in its new state with the Updated the call stamped.
func TestMoveCrashAtEveryCall(t *testing.T) {
	t.Parallel()
	inc, act, def := metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred
	type step struct {
		from, to metastorage.QueueState // a move; a store in to if from is -1, a checkpoint if -2
	}
	steps := []step{{-1, inc}, {inc, act}, {-2, 0}, {act, def}, {def, inc}, {inc, def}}
	for _, tc := range []struct {
		name   string
		mode   Mode
		wrap   func(vfs.FS) vfs.FS
		layout func(testing.TB) *vfs.Mem
	}{
		{"Standard", Standard, nil, crashLayout},
		{"Standard/ordered", Standard, asOrdered, crashLayoutOrdered},
		{"Hybrid", Hybrid, nil, crashLayout},
		{"Hybrid/tracked", Hybrid, asMac(false), crashLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsysOf := func(fsys vfs.FS) vfs.FS {
				if tc.wrap == nil {
					return fsys
				}
				return tc.wrap(fsys)
			}
			// run runs the steps on a Crasher crashing at call k (never
			// if 0), and returns the allowed outcomes.
			run := func(mem *vfs.Mem, k int) (*vfs.Crasher, []moveRec, string) {
				c := vfs.NewCrasher(mem, k)
				clock := &moveClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
				cfg := quietConfig(fsysOf(c), tc.mode)
				cfg.now = clock.now
				b, err := open(cfg)
				if err != nil {
					if !isCrashed(err) {
						t.Fatalf("open: %v", err)
					}
					return c, []moveRec{{}}, "open"
				}
				defer b.Close()
				ctx := context.Background()
				acked := moveRec{}
				for _, s := range steps {
					n := clock.calls()
					var err error
					switch s.from {
					case -1:
						err = b.StoreMeta(ctx, "a", metastorage.MessageMetadata{State: s.to, Attempts: 2})
					case -2:
						err = b.checkpoint(ctx)
					default:
						err = b.MoveToState(ctx, "a", s.from, s.to)
					}
					if isCrashed(err) {
						allowed := []moveRec{acked}
						if s.from != -2 {
							for _, u := range clock.since(n) {
								allowed = append(allowed, moveRec{true, s.to, u, 2})
							}
						}
						return c, allowed, fmt.Sprintf("%v", s)
					}
					if err != nil {
						t.Fatalf("%v: %v", s, err)
					}
					if s.from == -2 {
						continue
					}
					md, err := b.GetMeta(ctx, "a")
					if err != nil {
						t.Fatal(err)
					}
					acked = moveRec{true, md.State, md.Updated, md.Attempts}
				}
				return c, []moveRec{acked}, ""
			}
			counter, _, _ := run(tc.layout(t), 0)
			n := counter.Calls()
			checked := 0
			for k := 1; k <= n; k++ {
				c, allowed, inflight := run(tc.layout(t), k)
				for _, image := range []struct {
					name string
					get  func() (*vfs.Mem, bool)
				}{{"synced", c.Crashed}, {"names committed", c.CrashedNames}} {
					img, ok := image.get()
					if !ok {
						t.Fatalf("crash point %d of %d not reached", k, n)
					}
					b, err := open(quietConfig(fsysOf(img), tc.mode))
					if err != nil {
						t.Fatalf("crash at %d (%s), %s image: open: %v", k, inflight, image.name, err)
					}
					if err := b.RecoverFromCrash(); err != nil {
						t.Errorf("crash at %d (%s), %s image: recovery: %v", k, inflight, image.name, err)
					}
					got := moveRec{}
					md, err := b.GetMeta(context.Background(), "a")
					switch {
					case err == nil:
						got = moveRec{true, md.State, md.Updated, md.Attempts}
					case !errors.Is(err, metastorage.ErrMessageNotFound):
						t.Errorf("crash at %d (%s), %s image: GetMeta: %v", k, inflight, image.name, err)
					}
					b.Close()
					disk, err := readImage(img)
					if err != nil {
						t.Fatal(err)
					}
					if len(disk.msgs["a"]) > 1 || len(disk.temps) > 0 {
						t.Errorf("crash at %d (%s), %s image: after recovery %d files of the message, temp files %v", k, inflight, image.name, len(disk.msgs["a"]), disk.temps)
					}
					if !slices.ContainsFunc(allowed, got.same) {
						t.Errorf("crash at %d of %d in %s, %s image: the message is %v, allowed %v", k, n, inflight, image.name, got, allowed)
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("no crash point checked")
			}
			t.Logf("%d crash points", n)
		})
	}
}

// TestMovedFileLeftByRecovery shows that a file found where its
// State field does not say, as a move leaves it, is in its directory's
// state with its file's time as Updated, and that a check reports nothing
// and a repair leaves it as it is.
func TestMovedFileLeftByRecovery(t *testing.T) {
	t.Parallel()
	mem := crashLayout(t)
	b, err := open(quietConfig(mem, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
		t.Fatal(err)
	}
	if err := b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateHold); err != nil {
		t.Fatal(err)
	}
	path := b.path(metastorage.StateHold, "m.json")
	before := dumpFile(t, mem, path)
	for _, repair := range []bool{false, true} {
		findings, err := b.Check(ctx, repair)
		if err != nil || len(findings) != 0 {
			t.Errorf("Check(repair %v) = %v, %v; want nothing", repair, findings, err)
		}
	}
	if after := dumpFile(t, mem, path); after != before {
		t.Errorf("the moved file after recovery: %s, want it as before: %s", after, before)
	}
}

// dumpFile returns the bytes and the modification time of the file at
// path.
func dumpFile(t *testing.T, fsys vfs.FS, path string) string {
	t.Helper()
	fi, err := fsys.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	data, err := codec.ReadFile(f, nil, &buf)
	f.Close()
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		t.Fatal(err)
	}
	return fmt.Sprintf("%q at %s", data, fi.ModTime().Format(time.RFC3339Nano))
}

// uncountedTimes hides the shared memory of the file system it wraps, as
// noSharedMemory does, but not its setting of times: a Backend on it moves
// by one rename, with no change counters to tell readers of a move.
type uncountedTimes struct{ vfs.FS }

func (u uncountedTimes) SetModTimeIn(dir vfs.File, name string, t time.Time) error {
	return u.FS.(vfs.ModTimeSetter).SetModTimeIn(dir, name, t)
}

// TestIterateAfterTouch shows that an iteration without change counters
// does not return a record read ahead once the time of a moved message's
// file, its Updated, changed since (here by hand, as touch does): the file
// is the same, its record is not.
func TestIterateAfterTouch(t *testing.T) {
	t.Parallel()
	mem := crashLayout(t)
	b, err := open(quietConfig(uncountedTimes{mem}, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.changes != nil || !b.nanoTimes {
		t.Fatalf("counters %v, nanosecond times %v; want none and set", b.changes != nil, b.nanoTimes)
	}
	ctx := context.Background()
	inc, def := metastorage.StateIncoming, metastorage.StateDeferred
	for _, id := range []string{"a", "b"} {
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: inc}); err != nil {
			t.Fatal(err)
		}
		if err := b.MoveToState(ctx, id, inc, def); err != nil {
			t.Fatal(err)
		}
	}
	it, err := b.NewMessageIterator(ctx, def, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	first, ok, err := it.Next(ctx) // reads both ahead
	if err != nil || !ok {
		t.Fatalf("Next = %v, %v", ok, err)
	}
	other := "b"
	if first.ID == "b" {
		other = "a"
	}
	d, err := mem.OpenDir(b.states[def])
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := mem.SetModTimeIn(d, other+".json", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want, err := b.GetMeta(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := it.Next(ctx)
	if err != nil || !ok || got.ID != other || !got.Updated.Equal(want.Updated) {
		t.Errorf("Next = %+v, %v, %v; want %s with Updated %v, as it is now", got, ok, err, other, want.Updated)
	}
}

// TestJournaledMoveRenameFails fails the rename of a Hybrid-mode move by
// one rename, which comes after the move's record is durable in the
// journal: the call returns the error, the message is in its old state
// with its old record, the record is voided for good, so that a replay
// after a power loss now leaves the message as it was, and the Backend
// goes on.
func TestJournaledMoveRenameFails(t *testing.T) {
	t.Parallel()
	inc, act := metastorage.StateIncoming, metastorage.StateActive
	mem := crashLayout(t)
	var failRename atomic.Bool
	fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpRename && failRename.Load() && filepath.Base(path) == "m.json" {
			return syscall.EIO
		}
		return nil
	}))
	b, err := open(quietConfig(fsys, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.nanoTimes {
		t.Fatal("no nanosecond times")
	}
	ctx := context.Background()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 3}); err != nil {
		t.Fatal(err)
	}
	before, err := b.GetMeta(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	syncs := b.Stats().JournalSyncs
	failRename.Store(true)
	err = b.MoveToState(ctx, "m", inc, act)
	failRename.Store(false)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("MoveToState with its rename failing = %v, want EIO", err)
	}
	// The record's sync, then the voiding's.
	if n := b.Stats().JournalSyncs - syncs; n != 2 {
		t.Errorf("the failed move synced the journal %d times, want 2", n)
	}
	if got, err := b.GetMeta(ctx, "m"); err != nil || !metastorage.SameRecord(got, before) {
		t.Errorf("GetMeta after the failed move = %+v, %v; want it as before, %+v", got, err, before)
	}
	buf, err := b.readJournal(filepath.Join(crashDir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := wal.Parse(buf)
	for _, r := range recs {
		if r.File == "m.json" && r.State != inc {
			t.Errorf("the journal's last record of the message puts it in %s; want the move's voided", r.State)
		}
	}
	// A power loss now: the replay at open leaves the message as it was.
	img := mem.CrashClone()
	b2, err := open(quietConfig(img, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.GetMeta(ctx, "m")
	b2.Close()
	if err != nil || !metastorage.SameRecord(got, before) {
		t.Errorf("after a power loss and the replay, GetMeta = %+v, %v; want it as before, %+v", got, err, before)
	}
	if err := b.MoveToState(ctx, "m", inc, act); err != nil {
		t.Errorf("a move after the failed one = %v, want nil", err)
	}
	if got, err := b.GetMeta(ctx, "m"); err != nil || got.State != act || !got.Updated.After(before.Updated) {
		t.Errorf("GetMeta after the second move = %+v, %v; want it in %s", got, err, act)
	}
}

// TestMoveBackReadersSeeMove: a change that relocates a file moved by one
// rename into the state its stale State field names (a move back, or an
// update naming that state) never lets a reader, between its renames, see
// the stale field's older Updated in place of the move's.
func TestMoveBackReadersSeeMove(t *testing.T) {
	inc, act := metastorage.StateIncoming, metastorage.StateActive
	changes := map[string]func(b *Backend) error{
		"move back": func(b *Backend) error { return b.MoveToState(context.Background(), "m", act, inc) },
		"update naming the field's state": func(b *Backend) error {
			return b.UpdateMeta(context.Background(), "m", metastorage.MessageMetadata{State: inc, Attempts: 1})
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			mem := crashLayout(t)
			var b *Backend
			var mu sync.Mutex
			var seen []metastorage.MessageMetadata
			// Set only while the change runs; the injector is also
			// consulted by the Backend's background work.
			var armed atomic.Bool
			// Reads m in the target state at each rename or exchange of a
			// temp file: where the relocated file lies before the new
			// record is put.
			inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
				if armed.Load() && op == vfs.OpRename && isTemp(path) {
					if md, err := readRecord(mem, b.path(inc, "m.json"), inc); err == nil {
						mu.Lock()
						seen = append(seen, md)
						mu.Unlock()
					} else if !isNotExist(err) {
						t.Errorf("reading m in %s: %v", inc, err)
					}
				}
				return nil
			})
			var err error
			b, err = open(quietConfig(vfs.Inject(mem, inj), Standard))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc}); err != nil {
				t.Fatal(err)
			}
			if err := b.MoveToState(ctx, "m", inc, act); err != nil {
				t.Fatal(err)
			}
			moved, err := b.GetMeta(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			if err := change(b); err != nil {
				t.Fatal(err)
			}
			armed.Store(false)
			mu.Lock()
			defer mu.Unlock()
			for _, md := range seen {
				if md.Updated.Before(moved.Updated) {
					t.Errorf("a reader saw m in %s with Updated %v, before the acknowledged move's %v (the stale field)", md.State, md.Updated, moved.Updated)
				}
			}
		})
	}
}

// TestMoveBackPowerLoss: in Performance mode, a synced move by one rename
// and then an unsynced move back into the state the file's stale State
// field names, cut off by a power loss that keeps names but not data,
// leave after recovery a record no older than the synced move's.
func TestMoveBackPowerLoss(t *testing.T) {
	moved, got := movedThenLost(t, func(b *Backend) error {
		return b.MoveToState(context.Background(), "m", metastorage.StateActive, metastorage.StateIncoming)
	})
	if got.Updated.Before(moved.Updated) {
		t.Errorf("after recovery m is in %s with Updated %v, before the synced move's %v", got.State, got.Updated, moved.Updated)
	}
}

// movedThenLost stores m in incoming and moves it to active by one rename,
// both synced, in Performance mode; then runs change unsynced, cuts it off
// by a power loss that keeps names but not data, and recovers. It returns
// m as the synced move left it and as recovery leaves it.
func movedThenLost(t *testing.T, change func(b *Backend) error) (moved, got metastorage.MessageMetadata) {
	t.Helper()
	inc, act := metastorage.StateIncoming, metastorage.StateActive
	mem := crashLayout(t)
	b := unflushed(t, mem)
	ctx := context.Background()
	storeSynced(t, b, "m", metastorage.MessageMetadata{State: inc, LastError: "synced"})
	if err := b.MoveToState(ctx, "m", inc, act); err != nil {
		t.Fatal(err)
	}
	mustSyncAll(t, b)
	moved, err := b.GetMeta(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := change(b); err != nil {
		t.Fatal(err)
	}
	r, err := open(quietConfig(mem.CrashCloneNames(), Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	got, err = r.GetMeta(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	return moved, got
}
