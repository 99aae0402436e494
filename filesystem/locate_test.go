package filesystem

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestStoreFindsMessageWhereItIs shows that storing a message that another
// Backend, or an operator's copy by hand, has just placed in another state
// finds it there and moves it, so that it lies in one state, whatever
// this Backend did in the directories before.
func TestStoreFindsMessageWhereItIs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		place func(t *testing.T, mem *vfs.Mem, id string)
	}{
		{"another Backend's store", storeByOther},
		{"a file placed by hand", func(t *testing.T, mem *vfs.Mem, id string) {
			writeByHand(t, mem, metastorage.StateDeferred, id)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := crashLayout(t)
			b, err := open(quietConfig(mem, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			if err := b.WaitCounts(ctx); err != nil {
				t.Fatal(err)
			}
			id := "m"
			inc := metastorage.MessageMetadata{State: metastorage.StateIncoming}
			// Changes of id's stripe in every directory, before the placing.
			if err := b.StoreMeta(ctx, neighbour(t, id), inc); err != nil {
				t.Fatal(err)
			}
			for _, mv := range [][2]metastorage.QueueState{
				{metastorage.StateIncoming, metastorage.StateActive}, {metastorage.StateActive, metastorage.StateDeferred},
			} {
				if err := b.MoveToState(ctx, neighbour(t, id), mv[0], mv[1]); err != nil {
					t.Fatal(err)
				}
			}
			tc.place(t, mem, id)
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
func storeByOther(t *testing.T, mem *vfs.Mem, id string) {
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
	writeMem(t, mem, filepath.Join(crashDir, s.String(), fileOf(t, id)), data)
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
