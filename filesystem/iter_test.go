package filesystem

import (
	"context"
	"fmt"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// noSharedMemory hides the shared memory of the file system it wraps: the
// Backends on it have no change counters.
type noSharedMemory struct{ vfs.FS }

// TestIteratorReadAheadIsCurrent shows that a message the iterator may
// have read ahead is returned as it is when Next returns it: rewritten,
// moved out, deleted, or moved out and back, between two calls of Next.
// The changes are made by the iterator's Backend or by another one on the
// same directory (another process), and Next knows of them by the change
// counters or, without them, by looking up the file again.
func TestIteratorReadAheadIsCurrent(t *testing.T) {
	for _, tc := range []struct {
		name           string
		shared, counts bool
	}{
		{"counted, same backend", false, true},
		{"counted, another backend", true, true},
		{"looked up, same backend", false, false},
		{"looked up, another backend", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMem()
			if !tc.counts {
				fsys = noSharedMemory{fsys}
			}
			b, err := open(crashConfig(fsys, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if (b.changes != nil) != tc.counts {
				t.Fatalf("change counters: %v, want them: %t", b.changes, tc.counts)
			}
			w := b
			if tc.shared {
				if w, err = open(crashConfig(fsys, Performance)); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			testReadAheadIsCurrent(t, b, w)
		})
	}
}

// testReadAheadIsCurrent iterates with b while w changes the messages.
func testReadAheadIsCurrent(t *testing.T, b, w *Backend) {
	const n, batch = 12, 4
	ctx := context.Background()
	id := func(i int) string { return fmt.Sprintf("m-%02d", i) }
	for i := range n {
		if err := b.StoreMeta(ctx, id(i), metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	it, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, batch)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	// Mem lists a directory in name order.
	first, ok, err := it.Next(ctx)
	if err != nil || !ok || first.ID != id(0) {
		t.Fatalf("first Next = %q, %t, %v; want %q", first.ID, ok, err, id(0))
	}
	// The next messages are read ahead, or being read, by now.
	md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 7}
	if err := w.UpdateMeta(ctx, id(1), md); err != nil {
		t.Fatal(err)
	}
	if err := w.MoveToState(ctx, id(2), metastorage.StateDeferred, metastorage.StateActive); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteMeta(ctx, id(3)); err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]metastorage.QueueState{
		{metastorage.StateDeferred, metastorage.StateHold}, {metastorage.StateHold, metastorage.StateDeferred},
	} {
		if err := w.MoveToState(ctx, id(4), mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	want4, err := b.GetMeta(ctx, id(4))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]metastorage.MessageMetadata{}
	for {
		m, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[m.ID] = m
	}
	if len(got) != n-3 {
		t.Errorf("iterated %d more messages, want %d", len(got), n-3)
	}
	if m := got[id(1)]; m.Attempts != 7 {
		t.Errorf("%s rewritten before Next returned it: Attempts %d, want 7", id(1), m.Attempts)
	}
	for _, i := range []int{2, 3} {
		if _, ok := got[id(i)]; ok {
			t.Errorf("%s left the state before Next reached it, and was returned", id(i))
		}
	}
	if m := got[id(4)]; !m.Updated.Equal(want4.Updated) {
		t.Errorf("%s moved out and back: Updated %v, want %v", id(4), m.Updated, want4.Updated)
	}
}
