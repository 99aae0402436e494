package filesystem

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestNewMessageNotLookedUpWhereAbsent shows that once a Backend has
// listed the state directories, storing a new message looks for its file
// in none of them, also after its own changes of the same stripes since,
// and that a store still finds a message that is there.
func TestNewMessageNotLookedUpWhereAbsent(t *testing.T) {
	for _, real := range []bool{false, true} {
		t.Run(fmt.Sprintf("real files %v", real), func(t *testing.T) {
			var watched atomic.Value // the file whose opens are counted
			watched.Store("")
			fsys, dir, opens := countingOpens(t, real, func(_, p string) bool {
				return path.Base(p) == watched.Load().(string)
			})
			cfg := quietConfig(fsys, Performance)
			cfg.dir = dir
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			inc := metastorage.MessageMetadata{State: metastorage.StateIncoming}
			for i := range 200 { // lists every directory, and changes every stripe since
				id := fmt.Sprintf("warm-%d", i)
				if err := b.StoreMeta(ctx, id, inc); err != nil {
					t.Fatal(err)
				}
				if err := b.MoveToState(ctx, id, metastorage.StateIncoming, metastorage.StateDeferred); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 20 {
				id := fmt.Sprintf("new-%d", i)
				watched.Store(fileOf(t, id))
				opens.Store(0)
				if err := b.StoreMeta(ctx, id, inc); err != nil {
					t.Fatal(err)
				}
				if n := opens.Load(); n != 0 {
					t.Errorf("storing new message %s opened its file %d times, want 0", id, n)
				}
			}
			watched.Store(fileOf(t, "warm-7"))
			opens.Store(0)
			if err := b.StoreMeta(ctx, "warm-7", metastorage.MessageMetadata{State: metastorage.StateHold}); err != nil {
				t.Fatal(err)
			}
			if opens.Load() == 0 {
				t.Errorf("storing message warm-7 again did not read its file")
			}
			for _, id := range []string{"warm-7", "new-3"} {
				if got := statesOf(t, b, id); len(got) != 1 {
					t.Errorf("message %s lies in states %v, want one", id, got)
				}
			}
		})
	}
}

// TestNamesSeeOtherChanges shows that what a Backend knows of the names
// in a state's directory does not outlive a change by another Backend, a
// listing that raced with one, or recentTTL for a file placed by hand:
// storing the message then finds it where it is and moves it, so that it
// lies in one state.
func TestNamesSeeOtherChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		// place puts message id in state deferred before b stores it;
		// placeDuringListing, just as b's listing of that directory ends.
		place, placeDuringListing func(t *testing.T, mem *vfs.Mem, b *Backend, id string)
	}{
		{name: "another Backend's store", place: storeByOther},
		{name: "another Backend's store during the listing", placeDuringListing: storeByOther},
		{name: "a file placed by hand, recentTTL ago", place: func(t *testing.T, mem *vfs.Mem, b *Backend, id string) {
			writeByHand(t, mem, metastorage.StateDeferred, id)
			clock := time.Now().Add(recentTTL)
			b.names.now = func() time.Time { return clock }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := crashLayout(t)
			var during atomic.Pointer[func()]
			fsys := &readDirHookFS{wrapFS{mem}, func(dir string) {
				if f := during.Load(); f != nil && path.Base(dir) == "deferred" {
					during.Store(nil)
					(*f)()
				}
			}}
			b, err := open(quietConfig(fsys, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.WaitCounts(context.Background()); err != nil {
				t.Fatal(err)
			}
			id := "m"
			other := func(i int) string { // a message of another stripe than id's
				for ; ; i++ {
					if o := fmt.Sprintf("o-%d", i); stripeOf(fileOf(t, o)) != stripeOf(fileOf(t, id)) {
						return o
					}
				}
			}
			ctx := context.Background()
			inc := metastorage.MessageMetadata{State: metastorage.StateIncoming}
			if tc.placeDuringListing != nil {
				// The stores before the one that lists.
				for i := range 3 {
					if err := b.StoreMeta(ctx, other(100*i), inc); err != nil {
						t.Fatal(err)
					}
				}
				f := func() { tc.placeDuringListing(t, mem, b, id) }
				during.Store(&f)
				if err := b.StoreMeta(ctx, other(300), inc); err != nil {
					t.Fatal(err)
				}
				if during.Load() != nil {
					t.Fatal("the fourth store did not list the deferred directory")
				}
			} else {
				for i := range 50 {
					if err := b.StoreMeta(ctx, other(100*i), inc); err != nil {
						t.Fatal(err)
					}
				}
				// b knows the names of id's stripe in every directory.
				if err := b.StoreMeta(ctx, neighbour(t, id), inc); err != nil {
					t.Fatal(err)
				}
				tc.place(t, mem, b, id)
			}
			if err := b.StoreMeta(ctx, id, inc); err != nil {
				t.Fatal(err)
			}
			if got := statesOf(t, b, id); len(got) != 1 || got[0] != metastorage.StateIncoming {
				t.Errorf("after the store, message %s lies in states %v, want [incoming]", id, got)
			}
		})
	}
}

// storeByOther stores message id in state deferred through another
// Backend on the directory.
func storeByOther(t *testing.T, mem *vfs.Mem, _ *Backend, id string) {
	w, err := open(quietConfig(mem, Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.StoreMeta(context.Background(), id, metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
}

// writeByHand writes the record of message id in state s's directory
// directly, as an operator's copy would, without any Backend.
func writeByHand(t *testing.T, mem *vfs.Mem, s metastorage.QueueState, id string) {
	t.Helper()
	md := metastorage.MessageMetadata{ID: id, State: s, Created: time.Now(), Updated: time.Now()}
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create(path.Join(crashDir, s.String(), fileOf(t, id)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// statesOf returns the states whose directories hold message id's file.
func statesOf(t *testing.T, b *Backend, id string) []metastorage.QueueState {
	t.Helper()
	var in []metastorage.QueueState
	for _, s := range metastorage.States() {
		_, err := b.fs.Lstat(b.path(s, fileOf(t, id)))
		switch {
		case err == nil:
			in = append(in, s)
		case !isNotExist(err):
			t.Fatal(err)
		}
	}
	return in
}

// readDirHookFS calls after with a directory's path each time a read of its
// entries has returned the end.
type readDirHookFS struct {
	wrapFS
	after func(dir string)
}

// OpenDirIn hooks the directories a Backend lists: those it opens anew
// from the ones it opened.
func (h *readDirHookFS) OpenDirIn(dir vfs.File, name string) (vfs.File, error) {
	f, err := h.wrapFS.OpenDirIn(unhooked(dir), name)
	if err != nil || name != "." {
		return f, err
	}
	return &readDirHookFile{f, dir.Name(), h.after}, nil
}

type readDirHookFile struct {
	vfs.File
	dir   string
	after func(dir string)
}

func (f *readDirHookFile) ReadDir(n int) ([]fs.DirEntry, error) {
	ents, err := f.File.ReadDir(n)
	if err == io.EOF {
		f.after(f.dir)
	}
	return ents, err
}

func (h *readDirHookFS) OpenIn(dir vfs.File, name string) (vfs.File, error) {
	return h.wrapFS.OpenIn(unhooked(dir), name)
}

func (h *readDirHookFS) LstatIn(dir vfs.File, name string) (fs.FileInfo, error) {
	return h.wrapFS.LstatIn(unhooked(dir), name)
}

// unhooked returns the directory that dir wraps, if it is one of
// readDirHookFS's.
func unhooked(dir vfs.File) vfs.File {
	if d, ok := dir.(*readDirHookFile); ok {
		return d.File
	}
	return dir
}

// TestLargeDirectoryNotListed shows that a Backend does not list a state
// directory of more than maxListed messages to learn which names it lacks,
// and still finds a message there.
func TestLargeDirectoryNotListed(t *testing.T) {
	mem := crashLayout(t)
	for i := range maxListed + 1 {
		writeByHand(t, mem, metastorage.StateDeferred, fmt.Sprintf("d-%d", i))
	}
	var lists atomic.Int64
	fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, p string) error {
		if op == vfs.OpOpenDir && path.Base(p) == "deferred" {
			lists.Add(1)
		}
		return nil
	}))
	b, err := open(quietConfig(fsys, Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	lists.Store(0)
	inc := metastorage.MessageMetadata{State: metastorage.StateIncoming}
	for i := range 100 {
		if err := b.StoreMeta(ctx, fmt.Sprintf("new-%d", i), inc); err != nil {
			t.Fatal(err)
		}
	}
	if n := lists.Load(); n != 0 {
		t.Errorf("100 stores listed the deferred directory of %d messages %d times, want 0", maxListed+1, n)
	}
	if err := b.StoreMeta(ctx, "d-7", inc); err != nil {
		t.Fatal(err)
	}
	if got := statesOf(t, b, "d-7"); len(got) != 1 {
		t.Errorf("message d-7 lies in states %v, want one", got)
	}
}
