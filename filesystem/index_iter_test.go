package filesystem

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// indexedBackend opens a Performance-mode Backend on a fresh directory,
// real or in memory, whose index's clock is an hour ahead, so that no
// directory stamp is too recent to trust. It returns the Backend with the
// counts of the message files it opens in deferred and of the reads of
// deferred's directory.
func indexedBackend(t *testing.T, real bool) (b *Backend, dir string, opens, dirReads *atomic.Int64) {
	t.Helper()
	var under vfs.FS = vfs.NewMem()
	dir = crashDir
	if real {
		spooltest.NeedDisk(t)
		under, dir = vfs.OS, t.TempDir()
	}
	deferred := filepath.Join(dir, "deferred")
	opens, dirReads = new(atomic.Int64), new(atomic.Int64)
	fsys := vfs.Inject(under, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		switch {
		case op == vfs.OpOpen && filepath.Dir(path) == deferred:
			opens.Add(1)
		case op == vfs.OpReadDir && path == deferred:
			dirReads.Add(1)
		}
		return nil
	}))
	cfg := quietConfig(fsys, Performance)
	cfg.dir = dir
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.idx.now = func() time.Time { return time.Now().Add(time.Hour) }
	return b, dir, opens, dirReads
}

// iterateAll iterates state with b and returns the messages by ID.
func iterateAll(t *testing.T, b *Backend, s metastorage.QueueState) map[string]metastorage.MessageMetadata {
	t.Helper()
	ctx := context.Background()
	it, err := b.NewMessageIterator(ctx, s, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := map[string]metastorage.MessageMetadata{}
	for {
		md, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		if _, dup := got[md.ID]; dup {
			t.Fatalf("%s returned twice in one pass", md.ID)
		}
		got[md.ID] = md
	}
}

// checkPass checks that got holds exactly the messages of state s, each
// as GetMeta returns it.
func checkPass(t *testing.T, b *Backend, s metastorage.QueueState, got map[string]metastorage.MessageMetadata) {
	t.Helper()
	ctx := context.Background()
	res, err := b.ListMessages(ctx, s, metastorage.MessageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(res.MessageIDs) {
		t.Errorf("pass returned %d messages, the state holds %d", len(got), len(res.MessageIDs))
	}
	for _, id := range res.MessageIDs {
		want, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if md, ok := got[id]; !ok || !metastorage.SameRecord(md, want) || md.ID != id {
			t.Errorf("pass returned %s as %+v, want %+v", id, md, want)
		}
	}
}

func storeDeferred(t *testing.T, b *Backend, n int) {
	t.Helper()
	for i := range n {
		md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: i,
			NextRetry: time.Now().Add(time.Hour), Headers: map[string]string{"To": fmt.Sprint("rcpt-", i)}}
		if err := b.StoreMeta(context.Background(), fmt.Sprintf("m-%02d", i), md); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIteratorPassOverUnchangedMessages shows that a pass over messages
// that have not changed since the last pass opens no file and reads no
// directory, and that the records it returns are the caller's to change.
func TestIteratorPassOverUnchangedMessages(t *testing.T) {
	t.Parallel()
	for _, real := range []bool{false, true} {
		t.Run(fmt.Sprint("real files ", real), func(t *testing.T) {
			t.Parallel()
			b, _, opens, dirReads := indexedBackend(t, real)
			const n = 30
			storeDeferred(t, b, n)
			opens.Store(0)
			first := iterateAll(t, b, metastorage.StateDeferred)
			if got := opens.Load(); got != n {
				t.Fatalf("first pass opened %d files, want %d", got, n)
			}
			checkPass(t, b, metastorage.StateDeferred, first)
			for id, md := range first {
				md.Headers["To"] = "changed by the caller"
				first[id] = md
			}
			for i := range 3 {
				opens.Store(0)
				dirReads.Store(0)
				got := iterateAll(t, b, metastorage.StateDeferred)
				if opens.Load() != 0 || dirReads.Load() != 0 {
					t.Fatalf("pass %d over unchanged messages opened %d files and read the directory %d times, want none", i+2, opens.Load(), dirReads.Load())
				}
				checkPass(t, b, metastorage.StateDeferred, got)
			}
		})
	}
}

// TestIteratorPassAfterChanges shows that a pass after changes returns
// every message as it is, whoever made the changes: the same Backend,
// another one, or a program outside the library that adds, removes or
// replaces files. Counted changes make it read only the files of the
// stripes they changed.
func TestIteratorPassAfterChanges(t *testing.T) {
	t.Parallel()
	const n = 40
	put := func(t *testing.T, dir, id string, attempts int) {
		t.Helper()
		md := metastorage.MessageMetadata{ID: id, State: metastorage.StateDeferred, Attempts: attempts,
			Created: time.Now().Round(0), Updated: time.Now().Round(0)}
		data, err := codec.Encode(&md)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "by-hand.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "deferred", fileOf(t, id))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, b, other *Backend, dir string) []string // the IDs it changed
		counted bool
	}{
		{"same backend", func(t *testing.T, b, _ *Backend, _ string) []string {
			return changeThrough(t, b)
		}, true},
		{"another backend", func(t *testing.T, _, other *Backend, _ string) []string {
			return changeThrough(t, other)
		}, true},
		{"outside the library: added", func(t *testing.T, _, _ *Backend, dir string) []string {
			put(t, dir, "by-hand", 5)
			return nil
		}, false},
		{"outside the library: replaced", func(t *testing.T, _, _ *Backend, dir string) []string {
			put(t, dir, "m-07", 99)
			return nil
		}, false},
		{"outside the library: moved out", func(t *testing.T, _, _ *Backend, dir string) []string {
			if err := os.Rename(filepath.Join(dir, "deferred", fileOf(t, "m-08")), filepath.Join(dir, "hold", fileOf(t, "m-08"))); err != nil {
				t.Fatal(err)
			}
			return nil
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, dir, opens, _ := indexedBackend(t, true)
			other, err := NewBackendWithOptions(dir, true, false)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			storeDeferred(t, b, n)
			// A change by hand in the clock tick of the library's last
			// one could leave the directory's times as they were.
			hourAgo := time.Now().Add(-time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "deferred"), hourAgo, hourAgo); err != nil {
				t.Fatal(err)
			}
			checkPass(t, b, metastorage.StateDeferred, iterateAll(t, b, metastorage.StateDeferred))
			changed := tc.change(t, b, other, dir)
			opens.Store(0)
			got := iterateAll(t, b, metastorage.StateDeferred)
			opened := opens.Load()
			checkPass(t, b, metastorage.StateDeferred, got)
			if !tc.counted {
				return
			}
			stripes := map[int]bool{}
			for _, id := range changed {
				stripes[stripeOf(fileOf(t, id))] = true
			}
			want := int64(0)
			for id := range got {
				if stripes[stripeOf(fileOf(t, id))] {
					want++
				}
			}
			if opened != want {
				t.Errorf("pass after changes in %d stripes opened %d files, want %d", len(stripes), opened, want)
			}
		})
	}
}

// changeThrough rewrites, moves out, deletes and adds a message of
// deferred through b, and returns their IDs.
func changeThrough(t *testing.T, b *Backend) []string {
	t.Helper()
	ctx := context.Background()
	if err := b.UpdateMeta(ctx, "m-03", metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 100}); err != nil {
		t.Fatal(err)
	}
	if err := b.MoveToState(ctx, "m-05", metastorage.StateDeferred, metastorage.StateActive); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMeta(ctx, "m-11"); err != nil {
		t.Fatal(err)
	}
	if err := b.StoreMeta(ctx, "m-new", metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
	return []string{"m-03", "m-05", "m-11", "m-new"}
}

// TestIteratorSeesRewriteInPlace shows that a file rewritten in place by a
// program outside the library, which changes neither a counter nor its
// directory, is read again once its record is older than indexMaxAge.
func TestIteratorSeesRewriteInPlace(t *testing.T) {
	t.Parallel()
	b, dir, _, _ := indexedBackend(t, true)
	clock := time.Now().Add(time.Hour)
	b.idx.now = func() time.Time { return clock }
	storeDeferred(t, b, 3)
	iterateAll(t, b, metastorage.StateDeferred)
	md, err := b.GetMeta(context.Background(), "m-01")
	if err != nil {
		t.Fatal(err)
	}
	md.Attempts = 42
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deferred", fileOf(t, "m-01")), data, 0o644); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(indexMaxAge)
	if got := iterateAll(t, b, metastorage.StateDeferred)["m-01"]; got.Attempts != 42 {
		t.Fatalf("m-01 rewritten in place %v ago: Attempts %d, want 42", indexMaxAge, got.Attempts)
	}
}

// TestIteratorIndexBudget shows that an iteration keeps no more records
// than the budget holds, and reads the others at each pass.
func TestIteratorIndexBudget(t *testing.T) {
	t.Parallel()
	b, _, opens, _ := indexedBackend(t, false)
	storeDeferred(t, b, 10)
	md, err := b.GetMeta(context.Background(), "m-00")
	if err != nil {
		t.Fatal(err)
	}
	one := recordBytes("m-00", fileOf(t, "m-00"), &md)
	b.idx.budget = 6*one + one/2
	for i := range 3 {
		opens.Store(0)
		got := iterateAll(t, b, metastorage.StateDeferred)
		opened := opens.Load()
		checkPass(t, b, metastorage.StateDeferred, got)
		want := int64(4)
		if i == 0 {
			want = 10
		}
		if opened != want {
			t.Errorf("pass %d opened %d files, want %d", i+1, opened, want)
		}
		if used := b.idx.used.Load(); used > b.idx.budget {
			t.Errorf("pass %d: index holds %d bytes, budget %d", i+1, used, b.idx.budget)
		}
	}
}
