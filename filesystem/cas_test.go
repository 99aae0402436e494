package filesystem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func TestUpdateAndDeleteIn(t *testing.T) {
	spooltest.NeedDisk(t)
	b := openTest(t, t.TempDir())
	ctx := context.Background()
	held := metastorage.MessageMetadata{State: metastorage.StateHold, Attempts: 2, LastError: "x"}
	if err := b.StoreMeta(ctx, "m", held); err != nil {
		t.Fatal(err)
	}
	before, _ := b.GetMeta(ctx, "m")

	err := b.UpdateMetaIn(ctx, "m", metastorage.StateDeferred, metastorage.MessageMetadata{State: metastorage.StateIncoming})
	if !errors.Is(err, metastorage.ErrStateConflict) || !strings.Contains(err.Error(), "message is in state hold, expected deferred") {
		t.Errorf("UpdateMetaIn from the wrong state = %v, want a state conflict naming hold", err)
	}
	if err := b.DeleteMetaIn(ctx, "m", metastorage.StateActive); !errors.Is(err, metastorage.ErrStateConflict) {
		t.Errorf("DeleteMetaIn from the wrong state = %v, want ErrStateConflict", err)
	}
	if after, _ := b.GetMeta(ctx, "m"); !spooltest.SameRecord(after, before) {
		t.Errorf("failed compare-and-swaps changed the message: %+v, was %+v", after, before)
	}

	release := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 2, LastError: "released"}
	if err := b.UpdateMetaIn(ctx, "m", metastorage.StateHold, release); err != nil {
		t.Fatalf("UpdateMetaIn from hold: %v", err)
	}
	got, err := b.GetMeta(ctx, "m")
	if err != nil || got.State != metastorage.StateDeferred || got.LastError != "released" || !got.Created.Equal(before.Created) {
		t.Errorf("after UpdateMetaIn: %+v, %v; want deferred, released, Created kept", got, err)
	}
	if err := b.DeleteMetaIn(ctx, "m", metastorage.StateDeferred); err != nil {
		t.Fatalf("DeleteMetaIn from deferred: %v", err)
	}
	if err := b.DeleteMetaIn(ctx, "m", metastorage.StateDeferred); !errors.Is(err, metastorage.ErrStateConflict) || !strings.Contains(err.Error(), "not found in state deferred") {
		t.Errorf("DeleteMetaIn of a missing message = %v, want a state conflict saying not found", err)
	}
}

// TestUpdateInRacesMove shows that a tool's UpdateMetaIn and a worker's
// MoveToState from the same state never both win.
func TestUpdateInRacesMove(t *testing.T) {
	spooltest.NeedDisk(t)
	b := openTest(t, t.TempDir())
	ctx := context.Background()
	const n = 50
	for i := range n {
		if err := b.StoreMeta(ctx, fmt.Sprintf("r-%d", i), metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	won := make([][2]bool, n)
	for i := range n {
		id := fmt.Sprintf("r-%d", i)
		wg.Go(func() {
			err := b.UpdateMetaIn(ctx, id, metastorage.StateDeferred, metastorage.MessageMetadata{State: metastorage.StateHold, LastError: "held"})
			won[i][0] = err == nil
		})
		wg.Go(func() {
			err := b.MoveToState(ctx, id, metastorage.StateDeferred, metastorage.StateActive)
			won[i][1] = err == nil
		})
	}
	wg.Wait()
	for i, w := range won {
		md, err := b.GetMeta(ctx, fmt.Sprintf("r-%d", i))
		switch {
		case err != nil:
			t.Errorf("r-%d: %v", i, err)
		case w[0] == w[1]:
			t.Errorf("r-%d: update won %v, move won %v; want exactly one", i, w[0], w[1])
		case w[0] && (md.State != metastorage.StateHold || md.LastError != "held"):
			t.Errorf("r-%d: update won but message is %v %q", i, md.State, md.LastError)
		case w[1] && md.State != metastorage.StateActive:
			t.Errorf("r-%d: move won but message is in %v", i, md.State)
		}
	}
}

func TestCheckProgress(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := copyFixture(t, "crashed-spool")
	b, err := NewFactory(dir).WithBackgroundRecovery(false).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var calls []int
	if _, err := b.CheckProgress(context.Background(), false, func(n int) { calls = append(calls, n) }); err != nil {
		t.Fatal(err)
	}
	entries := 0
	for _, s := range metastorage.States() {
		ents, err := os.ReadDir(filepath.Join(dir, s.String()))
		if err != nil {
			t.Fatal(err)
		}
		entries += len(ents)
	}
	if len(calls) == 0 || calls[len(calls)-1] != 2*entries {
		t.Fatalf("progress calls %v, want a last one counting the %d entries of the state directories twice (temp files, then all)", calls, entries)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] {
			t.Errorf("progress went back: %v", calls)
		}
	}
}

// TestUpdateMetaIfStepsPastStoredUpdated shows that a compare-and-swap on a
// clock that has not moved still sets Updated past the record it replaced,
// so that a second swap expecting the replaced record conflicts.
func TestUpdateMetaIfStepsPastStoredUpdated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cfg := quietConfig(vfs.NewMem(), Standard)
	cfg.now = func() time.Time { return fixed }
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateHold}); err != nil {
		t.Fatal(err)
	}
	read, err := b.GetMeta(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UpdateMetaIf(ctx, "m", read, read); err != nil {
		t.Fatalf("first swap: %v", err)
	}
	if got, _ := b.GetMeta(ctx, "m"); !got.Updated.After(read.Updated) {
		t.Errorf("Updated after the swap: %v, want past %v", got.Updated, read.Updated)
	}
	if err := b.UpdateMetaIf(ctx, "m", read, read); !errors.Is(err, metastorage.ErrStateConflict) {
		t.Errorf("second swap expecting the replaced record: got %v, want ErrStateConflict", err)
	}
}
