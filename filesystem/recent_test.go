package filesystem

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestChangeReadsTheFile shows that each change of a message reads the
// message's file once, also one the Backend itself wrote last, and keeps
// what the file held, as GetMeta then shows: another Backend's update
// included.
func TestChangeReadsTheFile(t *testing.T) {
	for _, mode := range crashModes {
		for _, tc := range []struct {
			name         string
			counts, real bool
		}{
			{"counted", true, false},
			{"counted, real files", true, true},
			{"uncounted", false, false},
		} {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				file := fileOf(t, "m")
				fsys, dir, opens := countingOpens(t, tc.real, func(_, path string) bool {
					return strings.HasSuffix(path, sep+file)
				})
				if !tc.counts {
					fsys = noSharedMemory{fsys}
				}
				cfg := quietConfig(fsys, mode)
				cfg.dir = dir
				b, err := open(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				w, err := open(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()

				ctx := context.Background()
				// step runs one change by b and checks how many times it
				// opened the message's file and what the message is then:
				// once to read it, and in Standard mode once more to sync
				// it if the change is a move by one rename, unless the
				// file system journals metadata in order.
				step := func(what string, renamed bool, change func() error, want metastorage.MessageMetadata) {
					t.Helper()
					reads := int64(1)
					if renamed && mode == Standard && b.nanoTimes && !b.ordered {
						reads = 2
					}
					opens.Store(0)
					if err := change(); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if got := opens.Load(); got != reads {
						t.Errorf("%s opened the message's file %d times, want %d", what, got, reads)
					}
					got, err := b.GetMeta(ctx, "m")
					if err != nil {
						t.Fatal(err)
					}
					if got.State != want.State || got.Attempts != want.Attempts || got.LastError != want.LastError || got.Headers["From"] != want.Headers["From"] {
						t.Errorf("after %s the message is %+v, want %+v", what, got, want)
					}
				}

				headers := map[string]string{"From": "a@example.org"}
				if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 1, Headers: headers}); err != nil {
					t.Fatal(err)
				}
				headers["From"] = "changed by the caller after the call"
				step("a move of the message b stored", true, func() error {
					return b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive)
				}, metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 1, Headers: map[string]string{"From": "a@example.org"}})

				if err := w.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 5, LastError: "by w", Headers: map[string]string{"From": "w@example.org"}}); err != nil {
					t.Fatal(err)
				}
				step("a move after another Backend's update", true, func() error {
					return b.MoveToState(ctx, "m", metastorage.StateActive, metastorage.StateDeferred)
				}, metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 5, LastError: "by w", Headers: map[string]string{"From": "w@example.org"}})

				// Back into the state its record was written in: written whole.
				step("a move after b's own", false, func() error {
					return b.MoveToState(ctx, "m", metastorage.StateDeferred, metastorage.StateActive)
				}, metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 5, LastError: "by w", Headers: map[string]string{"From": "w@example.org"}})

				if err := w.MoveToState(ctx, "m", metastorage.StateActive, metastorage.StateBounce); err != nil {
					t.Fatal(err)
				}
				opens.Store(0)
				err = b.MoveToState(ctx, "m", metastorage.StateActive, metastorage.StateDeferred)
				if !errors.Is(err, metastorage.ErrStateConflict) {
					t.Errorf("a move from active after another Backend moved the message to bounce: %v, want a state conflict", err)
				}
				if got := opens.Load(); tc.counts && got == 0 {
					t.Errorf("the conflicting move did not look at the message's file")
				}
			})
		}
	}
}

// TestRecentKeepsWithinBound shows that a stripe keeps at most
// recentPerStripe records, the newest, and drops first those of no more
// use: written before a sync began.
func TestRecentKeepsWithinBound(t *testing.T) {
	b := unflushed(t, vfs.NewMem())
	clock := time.Now()
	b.recent.now = func() time.Time { return clock }
	ctx := context.Background()
	var ids []string
	for i := 0; len(ids) < recentPerStripe+10; i++ {
		id := fmt.Sprintf("m-%d", i)
		if stripeOf(fileOf(t, id)) == 0 {
			ids = append(ids, id)
		}
	}
	late, later := ids[len(ids)-2], ids[len(ids)-1]
	ids = ids[:len(ids)-2]
	store := func(id string) {
		t.Helper()
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		store(id)
		clock = clock.Add(time.Nanosecond)
	}
	kept := b.recent.stripes[0]
	if len(kept) != recentPerStripe {
		t.Errorf("stripe 0 keeps %d records after %d writes, want %d", len(kept), len(ids), recentPerStripe)
	}
	for i, id := range ids {
		if _, ok := kept[fileOf(t, id)]; ok != (i >= len(ids)-recentPerStripe) {
			t.Errorf("record %d of %d written kept: %v, want only the last %d", i+1, len(ids), ok, recentPerStripe)
		}
	}
	// Until a sync begins, each still tells whether a file is the one
	// written since the last: only the oldest goes.
	store(late)
	if len(kept) != recentPerStripe {
		t.Errorf("stripe 0 keeps %d records after a write to a full stripe, want %d", len(kept), recentPerStripe)
	}
	if _, ok := kept[fileOf(t, ids[len(ids)-recentPerStripe])]; ok {
		t.Errorf("the oldest record is still kept after a write to a full stripe")
	}
	// Once a sync has begun, they are of no more use.
	mustSyncAll(t, b)
	store(later)
	if len(kept) != 1 {
		t.Errorf("stripe 0 keeps %d records after a write once a sync had begun, want 1", len(kept))
	}
	if _, ok := kept[fileOf(t, later)]; !ok {
		t.Errorf("record of %s, written after the sync began, is not kept", later)
	}
}
