package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestRecordSizeBoundary stores records of MaxRecordBytes-1, MaxRecordBytes
// and MaxRecordBytes+1 bytes in each mode: the first two are stored, read
// back, and survive a crash and the recovery after it, never set aside as
// corrupt; the last is refused with ErrTooLarge and stores nothing.
func TestRecordSizeBoundary(t *testing.T) {
	t.Parallel()
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 123456788, time.UTC) // nine digits, also one ns later: Updated's length is known
	record := func(id string, size int) metastorage.MessageMetadata {
		md := metastorage.MessageMetadata{ID: id, State: metastorage.StateDeferred, Created: fixed, Updated: fixed}
		base, err := codec.Encode(&md)
		if err != nil {
			t.Fatal(err)
		}
		md.LastError = strings.Repeat("e", size-len(base))
		md.Updated = time.Time{}
		return md
	}
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			mem := crashLayout(t)
			cfg := quietConfig(mem, mode)
			cfg.now = func() time.Time { return fixed }
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sizes := map[string]int{"fits-1": MaxRecordBytes - 1, "fits-0": MaxRecordBytes}
			for id, size := range sizes {
				if err := b.StoreMeta(ctx, id, record(id, size)); err != nil {
					t.Fatalf("store %s: %v", id, err)
				}
				if fi, err := mem.Lstat(filepath.Join(crashDir, "deferred", id+".json")); err != nil {
					t.Fatal(err)
				} else if fi.Size() != int64(size) {
					t.Fatalf("%s: file of %d bytes, want %d", id, fi.Size(), size)
				}
			}
			err = b.StoreMeta(ctx, "over", record("over", MaxRecordBytes+1))
			if !errors.Is(err, metastorage.ErrTooLarge) || !strings.Contains(err.Error(), "store over: record takes 16777217 bytes") {
				t.Errorf("store over: got %v, want ErrTooLarge saying the size", err)
			}
			if err := b.UpdateMeta(ctx, "fits-1", record("fits-1", MaxRecordBytes+1)); !errors.Is(err, metastorage.ErrTooLarge) {
				t.Errorf("update fits-1 to a record too large: got %v, want ErrTooLarge", err)
			}
			img := mem.CrashClone()
			if mode != Performance {
				b.Close()
			}
			// What a power loss left, recovered: in the durable modes every
			// message; in any mode nothing set aside as corrupt.
			rb, err := open(crashConfig(img, Standard))
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Close()
			if err := rb.RecoverFromCrash(); err != nil {
				t.Fatal(err)
			}
			for id, size := range sizes {
				md, err := rb.GetMeta(ctx, id)
				switch {
				case err == nil && md.LastError != record(id, size).LastError:
					t.Errorf("%s after recovery: LastError of %d bytes", id, len(md.LastError))
				case err != nil && (mode != Performance || !errors.Is(err, metastorage.ErrMessageNotFound)):
					t.Errorf("%s after recovery: %v", id, err)
				}
			}
			if _, err := rb.GetMeta(ctx, "over"); !errors.Is(err, metastorage.ErrMessageNotFound) {
				t.Errorf("over after recovery: got %v, want not found", err)
			}
			if d, err := img.OpenDir(filepath.Join(crashDir, "corrupt", "deferred")); err == nil {
				ents, _ := d.ReadDir(-1)
				d.Close()
				if len(ents) > 0 {
					t.Errorf("corrupt/deferred after recovery: %d entries, want none", len(ents))
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Error(err)
			}
			if mode == Performance {
				b.Close()
			}
		})
	}
}
