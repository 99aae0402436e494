package filesystem

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestListReadsOnlyChangedStripes shows that a listing reads again only
// the files of the stripes that changed since the last one, whether this
// Backend or another on the directory made the changes, and that its
// order and total follow the changes; and that without change counters
// every listing reads every file.
func TestListReadsOnlyChangedStripes(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		shared, counts, real bool
	}{
		{"counted, same backend", false, true, false},
		{"counted, another backend", true, true, false},
		{"counted, another backend, real files", true, true, true},
		{"uncounted, same backend", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, dir, opens := countingOpens(t, tc.real, inDeferred)
			if !tc.counts {
				fsys = noSharedMemory{fsys}
			}
			cfg := quietConfig(fsys, Performance)
			cfg.dir = dir
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			w := b
			if tc.shared {
				if w, err = open(cfg); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			ctx := context.Background()
			const n = 40
			for i := range n {
				md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: i}
				if err := b.StoreMeta(ctx, fmt.Sprintf("m-%02d", i), md); err != nil {
					t.Fatal(err)
				}
			}
			list := func() int64 {
				t.Helper()
				opens.Store(0)
				res := listByPriority(t, b)
				got := opens.Load()
				checkByPriority(t, b, res)
				return got
			}
			if got := list(); got != n {
				t.Fatalf("first listing opened %d files, want %d", got, n)
			}
			want := int64(0)
			if !tc.counts {
				want = n
			}
			if got := list(); got != want {
				t.Fatalf("second listing, nothing changed, opened %d files, want %d", got, want)
			}

			// Rewrite one message, move one out, delete one, store a new one.
			if err := w.UpdateMeta(ctx, "m-03", metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: 100}); err != nil {
				t.Fatal(err)
			}
			if err := w.MoveToState(ctx, "m-07", metastorage.StateDeferred, metastorage.StateHold); err != nil {
				t.Fatal(err)
			}
			if err := w.DeleteMeta(ctx, "m-11"); err != nil {
				t.Fatal(err)
			}
			if err := w.StoreMeta(ctx, "m-new", metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: -1}); err != nil {
				t.Fatal(err)
			}
			changed := map[int]bool{}
			for _, id := range []string{"m-03", "m-07", "m-11", "m-new"} {
				changed[stripeOf(fileOf(t, id))] = true
			}
			want = 0
			res, err := b.ListMessages(ctx, metastorage.StateDeferred, metastorage.MessageListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range res.MessageIDs {
				if !tc.counts || changed[stripeOf(fileOf(t, id))] {
					want++
				}
			}
			if got := list(); got != want {
				t.Fatalf("listing after changes in %d stripes opened %d files, want %d (those of the changed stripes)", len(changed), got, want)
			}
		})
	}
}

// listByPriority lists deferred by priority, highest first.
func listByPriority(t *testing.T, b *Backend) metastorage.MessageListResult {
	t.Helper()
	res, err := b.ListMessages(context.Background(), metastorage.StateDeferred, metastorage.MessageListOptions{SortBy: metastorage.SortByPriority, SortOrder: metastorage.SortDesc})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkByPriority checks res, a listing of deferred by priority, highest
// first, against the records GetMeta returns.
func checkByPriority(t *testing.T, b *Backend, res metastorage.MessageListResult) {
	t.Helper()
	ctx := context.Background()
	ids, err := b.ListMessages(ctx, metastorage.StateDeferred, metastorage.MessageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(ids.MessageIDs)
	prio := map[string]int{}
	for _, id := range want {
		md, err := b.GetMeta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		prio[id] = md.Priority
	}
	slices.SortFunc(want, func(x, y string) int { return cmp.Or(cmp.Compare(prio[y], prio[x]), strings.Compare(x, y)) })
	if !slices.Equal(res.MessageIDs, want) || res.Total != len(want) {
		t.Fatalf("listed by priority %q (total %d), want %q (total %d)", res.MessageIDs, res.Total, want, len(want))
	}
}

func fileOf(t *testing.T, id string) string {
	t.Helper()
	f, err := name.Encode(id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestListSeesUncountedFiles shows that a file put in a state's directory
// by hand, which no change counter counts, is listed with its own keys by
// the next listing, and one taken out is no longer listed.
func TestListSeesUncountedFiles(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b := openTest(t, dir)
	ctx := context.Background()
	for i := range 5 {
		md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: 10 + i}
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%d", i), md); err != nil {
			t.Fatal(err)
		}
	}
	checkByPriority(t, b, listByPriority(t, b))
	md := metastorage.MessageMetadata{ID: "by-hand", State: metastorage.StateDeferred, Priority: 99}
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deferred", fileOf(t, "by-hand")), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "deferred", fileOf(t, "m-2"))); err != nil {
		t.Fatal(err)
	}
	res := listByPriority(t, b)
	want := []string{"by-hand", "m-4", "m-3", "m-1", "m-0"}
	if !slices.Equal(res.MessageIDs, want) {
		t.Fatalf("listed %q, want %q", res.MessageIDs, want)
	}
}

// TestListKeyReadDuringChange shows that keys read from a file that is
// replaced just after it was opened are not taken for current by the next
// listing: another Backend rewrites a message with a new priority between
// the open and the read of its file.
func TestListKeyReadDuringChange(t *testing.T) {
	b, rewritten := rewriteAfterOpen(t, func(i int) metastorage.MessageMetadata {
		return metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: i}
	}, metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: 100})
	listByPriority(t, b) // reads m-5's old record, opened before it was replaced
	if err := rewritten(); err != nil {
		t.Fatal(err)
	}
	checkByPriority(t, b, listByPriority(t, b))
}

// rewriteAfterOpen stores m-0 to m-7 in deferred, record(i) for m-i, and
// returns a Backend on the directory whose file system, just after it
// first opens m-5's file, has another Backend rewrite m-5 with md.
// rewritten reports whether that happened.
func rewriteAfterOpen(t *testing.T, record func(i int) metastorage.MessageMetadata, md metastorage.MessageMetadata) (b *Backend, rewritten func() error) {
	t.Helper()
	mem := vfs.NewMem()
	w, err := open(quietConfig(mem, Performance))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ctx := context.Background()
	for i := range 8 {
		if err := w.StoreMeta(ctx, fmt.Sprintf("m-%d", i), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	target := fileOf(t, "m-5")
	var armed atomic.Bool
	armed.Store(true)
	var changeErr error
	fsys := openHook{wrapFS: wrapFS{mem}, after: func(file string) {
		if file == target && armed.CompareAndSwap(true, false) {
			changeErr = w.UpdateMeta(ctx, "m-5", md)
		}
	}}
	if b, err = open(quietConfig(fsys, Performance)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, func() error {
		if armed.Load() {
			return errors.New("m-5 was not opened, so not rewritten")
		}
		if changeErr != nil {
			return fmt.Errorf("rewriting m-5: %w", changeErr)
		}
		return nil
	}
}

// openHook is a file system that calls after with the name of each file
// opened in a directory, once it is open.
type openHook struct {
	wrapFS
	after func(file string)
}

func (h openHook) OpenIn(dir vfs.File, name string) (vfs.File, error) {
	f, err := h.FS.OpenIn(dir, name)
	h.after(name)
	return f, err
}

// inDeferred reports whether path lies in the deferred directory of the
// metadata directory dir.
func inDeferred(dir, path string) bool {
	return strings.HasPrefix(path, filepath.Join(dir, "deferred")+string(filepath.Separator))
}

// countingBackend opens a Backend in Performance mode on a fresh Mem, and
// returns it with the count of the message files it opens in deferred.
func countingBackend(t *testing.T) (*Backend, *atomic.Int64) {
	t.Helper()
	fsys, _, opens := countingOpens(t, false, inDeferred)
	b, err := open(quietConfig(fsys, Performance))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, opens
}

// TestListSinceWithKeptKeys shows that Since filters by the keys kept from
// an earlier listing as by those read from the files.
func TestListSinceWithKeptKeys(t *testing.T) {
	b, opens := countingBackend(t)
	ctx := context.Background()
	// Updated is set by each write, to now; Created is the caller's.
	base := time.Now().Add(time.Hour).Round(0)
	for i := range 10 {
		md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Created: base.Add(time.Duration(i) * time.Minute)}
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%d", i), md); err != nil {
			t.Fatal(err)
		}
	}
	opts := metastorage.MessageListOptions{SortBy: metastorage.SortByCreated, Since: base.Add(6 * time.Minute)}
	want := []string{"m-6", "m-7", "m-8", "m-9"}
	for _, kept := range []bool{false, true} {
		opens.Store(0)
		res, err := b.ListMessages(ctx, metastorage.StateDeferred, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.MessageIDs, want) || res.Total != len(want) {
			t.Fatalf("keys kept %t: listed %q (total %d), want %q", kept, res.MessageIDs, res.Total, want)
		}
		if read := opens.Load() > 0; read == kept {
			t.Fatalf("keys kept %t: the listing opened %d files", kept, opens.Load())
		}
	}
}

// TestIndexWithinBudget shows that a Backend keeps no more records than
// its budget holds: what does not fit is read again at every listing, and
// the record of a message that left its state makes room once a pass has
// read the whole directory.
func TestIndexWithinBudget(t *testing.T) {
	fsys, _, opens := countingOpens(t, false, func(dir, path string) bool {
		return strings.HasPrefix(path, dir+sep+"deferred"+sep) || strings.HasPrefix(path, dir+sep+"hold"+sep)
	})
	b, err := open(quietConfig(fsys, Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	store := func(s metastorage.QueueState, prefix string, n int) {
		for i := range n {
			if err := b.StoreMeta(ctx, fmt.Sprintf("%s-%d", prefix, i), metastorage.MessageMetadata{State: s}); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := func(s metastorage.QueueState, want int64, what string) {
		t.Helper()
		opens.Store(0)
		if _, err := b.ListMessages(ctx, s, metastorage.MessageListOptions{SortBy: metastorage.SortByCreated}); err != nil {
			t.Fatal(err)
		}
		if got := opens.Load(); got != want {
			t.Fatalf("%s: opened %d files, want %d", what, got, want)
		}
	}
	store(metastorage.StateDeferred, "big", 11)
	md, err := b.GetMeta(ctx, "big-0")
	if err != nil {
		t.Fatal(err)
	}
	one := recordBytes("big-0", fileOf(t, "big-0"), &md)
	b.idx.budget = 10*one + one/2 // ten records, not eleven
	list(metastorage.StateDeferred, 11, "first listing of 11")
	list(metastorage.StateDeferred, 1, "second listing of 11, 10 records kept")
	store(metastorage.StateHold, "h", 1)
	list(metastorage.StateHold, 1, "first listing of hold, no room")
	list(metastorage.StateHold, 1, "second listing of hold, no room")
	snap := b.idx.states[metastorage.StateDeferred].Load()
	if got := b.idx.used.Load(); got > b.idx.budget || len(snap.entries) != 10 || b.idx.states[metastorage.StateHold].Load() != nil && len(b.idx.states[metastorage.StateHold].Load().entries) != 0 {
		t.Fatalf("%d bytes held of %d, %d records of deferred; want 10 records, none of hold", got, b.idx.budget, len(snap.entries))
	}
	if err := b.DeleteMeta(ctx, snap.id(0)); err != nil {
		t.Fatal(err)
	}
	list(metastorage.StateDeferred, 1, "listing after a kept message left")
	list(metastorage.StateDeferred, 0, "listing with every record kept")
}

// TestListReadsAgainWhileChangeUnderWay shows that keys read while their
// stripe's counter is odd (a writer died mid-change) are not kept, and are
// kept once a later change makes it even again.
func TestListReadsAgainWhileChangeUnderWay(t *testing.T) {
	b, opens := countingBackend(t)
	ctx := context.Background()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
	stripe := stripeOf(fileOf(t, "m"))
	b.changes.Begin(metastorage.StateDeferred, stripe) // and no end: the writer died
	list := func() int64 {
		opens.Store(0)
		listByPriority(t, b)
		return opens.Load()
	}
	for i := range 2 {
		if got := list(); got != 1 {
			t.Fatalf("listing %d with a change under way opened %d files, want 1", i, got)
		}
	}
	if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: 3}); err != nil {
		t.Fatal(err) // steps over the odd value
	}
	list()
	if got := list(); got != 0 {
		t.Fatalf("listing after the change ended opened %d files, want 0", got)
	}
}

// TestSnapshotRecordAsAdded shows that an entry gives back the record it
// was made of: each time at its instant and zone offset, strings, nil or
// empty Headers, and Headers that are the caller's own.
func TestSnapshotRecordAsAdded(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456789, time.UTC)
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800)}
	var n snapshot
	var want []metastorage.MessageMetadata
	for i, loc := range zones {
		for _, h := range []map[string]string{nil, {}, {"From": "a@example.org", "": "", "Subject": "ünïcode"}} {
			md := metastorage.MessageMetadata{ID: fmt.Sprint("m-", len(want)), State: metastorage.StateDeferred,
				Attempts: i, MaxAttempts: 10, NextRetry: at.In(loc), Created: at.Add(-time.Hour).In(loc),
				LastError: fmt.Sprint("error ", i), Size: int64(i) << 40, Priority: -i, Headers: h,
				RetryPolicyName: "policy"}
			if i == 0 {
				md.Updated, md.LastError, md.RetryPolicyName = time.Time{}, "", ""
			} else {
				md.Updated = at.In(loc)
			}
			if !n.add(md.ID, md.ID+".json", uint64(i), 0, &md, stringBytes(md.ID, md.ID+".json", &md)) {
				t.Fatalf("%s not added", md.ID)
			}
			want = append(want, md)
		}
	}
	// A record larger than a quarter page gets a page of its own; the
	// next small one goes on filling the page before it.
	for _, size := range []int{pageSize, 10, pageSize / 8, 10} {
		md := metastorage.MessageMetadata{ID: fmt.Sprint("m-", len(want)), State: metastorage.StateDeferred, LastError: strings.Repeat("x", size)}
		if !n.add(md.ID, md.ID+".json", 0, 0, &md, stringBytes(md.ID, md.ID+".json", &md)) {
			t.Fatalf("%s not added", md.ID)
		}
		want = append(want, md)
	}
	if len(n.pages) != 2 {
		t.Errorf("%d pages, want 2: one filled, one for the large record", len(n.pages))
	}
	for i, w := range want {
		got := n.record(i, metastorage.StateDeferred)
		if !metastorage.SameRecord(got, w) || got.ID != w.ID || (got.Headers == nil) != (w.Headers == nil) {
			t.Errorf("entry %d: got %+v, want %+v", i, got, w)
		}
		for _, p := range [][2]time.Time{{got.NextRetry, w.NextRetry}, {got.Created, w.Created}, {got.Updated, w.Updated}} {
			gn, goff := p[0].Zone()
			wn, woff := p[1].Zone()
			if gn != wn || goff != woff || p[0].Location().String() != p[1].Location().String() {
				t.Errorf("entry %d: time %v, want %v", i, p[0], p[1])
			}
		}
		if got.Headers != nil {
			got.Headers["From"] = "changed by the caller"
			if again := n.record(i, metastorage.StateDeferred); again.Headers["From"] == "changed by the caller" {
				t.Errorf("entry %d: a change to a returned record's Headers reached the index", i)
			}
		}
		if f, ok := n.find(w.ID + ".json"); !ok || f != i {
			t.Errorf("find(%s) = %d, %t; want %d", w.ID, f, ok, i)
		}
	}
	if _, ok := n.find("absent.json"); ok {
		t.Error("find of a name never added succeeded")
	}
	named := metastorage.MessageMetadata{Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))}
	if n.add("named", "named.json", 0, 0, &named, stringBytes("named", "named.json", &named)) {
		t.Error("a record with a time in a named zone was added; it would come back in another")
	}
}
