package filesystem

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// temps returns the temp files in the state directories of the metadata
// directory on mem.
func temps(t *testing.T, mem *vfs.Mem) []string {
	t.Helper()
	img, err := readImage(mem)
	if err != nil {
		t.Fatal(err)
	}
	return img.temps
}

// TestDisplacedKeptUntilFlush shows that in Performance mode the record a
// change displaces stays until a flush has synced the file system, that a
// failed sync keeps them for the next flush, and that Close flushes; and
// that the durable modes remove it at once.
func TestDisplacedKeptUntilFlush(t *testing.T) {
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			mem := crashLayout(t)
			var failSync atomic.Bool
			fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
				if op == vfs.OpSyncAll && failSync.Load() {
					return syscall.EIO
				}
				return nil
			}))
			cfg := quietConfig(fsys, mode)
			cfg.flushEvery = -1
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
				t.Fatal(err)
			}
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			if err := b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive); err != nil {
				t.Fatal(err)
			}
			want := 0
			if mode == Performance {
				want = 2 // the first record, and the second, displaced by the move
			}
			if got := temps(t, mem); len(got) != want {
				t.Fatalf("after a replace and a move: temp files %v, want %d", got, want)
			}
			if mode != Performance {
				return
			}

			failSync.Store(true)
			if err := b.flushDisplaced(); !errors.Is(err, syscall.EIO) {
				t.Errorf("flush with a failing sync: %v, want EIO", err)
			}
			if got := temps(t, mem); len(got) != 2 {
				t.Errorf("after a failed flush: temp files %v, want the 2 displaced records kept", got)
			}
			failSync.Store(false)
			if err := b.flushDisplaced(); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 0 {
				t.Errorf("after a flush: temp files %v, want none", got)
			}
			if got := b.Stats().Flushes; got != 1 {
				t.Errorf("Stats().Flushes = %d, want 1", got)
			}

			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 2}); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 0 {
				t.Errorf("after Close: temp files %v, want none", got)
			}
		})
	}
}

// TestDisplacedFlushedWhenMany shows that the background flusher runs as
// soon as maxDisplaced records wait, long before its period.
func TestDisplacedFlushedWhenMany(t *testing.T) {
	mem := crashLayout(t)
	synced := make(chan struct{}, 1)
	fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSyncAll {
			select {
			case synced <- struct{}{}:
			default:
			}
		}
		return nil
	}))
	cfg := quietConfig(fsys, Performance)
	cfg.flushEvery = time.Hour
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for i := range maxDisplaced + 1 {
		id := fmt.Sprintf("m-%d", i)
		md := metastorage.MessageMetadata{State: metastorage.StateIncoming}
		if err := b.StoreMeta(ctx, id, md); err != nil {
			t.Fatal(err)
		}
		if err := b.StoreMeta(ctx, id, md); err != nil { // displaces the first
			t.Fatal(err)
		}
	}
	select {
	case <-synced:
	case <-time.After(time.Minute):
		t.Fatalf("no flush a minute after %d records were displaced", maxDisplaced)
	}
}
