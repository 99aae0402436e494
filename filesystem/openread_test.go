package filesystem

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// openedHook calls after with the name of each file opened in a
// directory, once it is open, and only if it is.
type openedHook struct {
	wrapFS
	after func(file string)
}

func (h openedHook) OpenIn(dir vfs.File, name string) (vfs.File, error) {
	f, err := h.FS.OpenIn(dir, name)
	if err == nil {
		h.after(name)
	}
	return f, err
}

// TestGetMetaOpenFileKeepsItsRecord shows that a reader, which takes no
// lock, reads a record of its own message from a file it opened, whatever
// writers do before it reads: the message is deleted and other messages
// are stored and changed meanwhile. The library never writes into a file
// that has been under a message's name, so an open file keeps the record
// it was opened for. (Files reused in place, as the spare files measured
// for issue 19, fail here: the reader returns another message's record.)
func TestGetMetaOpenFileKeepsItsRecord(t *testing.T) {
	for _, mode := range []Mode{Standard, Hybrid, Performance} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			var armed atomic.Bool
			paused, release := make(chan struct{}), make(chan struct{})
			fsys := openedHook{wrapFS: wrapFS{crashLayout(t)}, after: func(name string) {
				if name == "x.json" && armed.CompareAndSwap(true, false) {
					close(paused)
					<-release
				}
			}}
			b, err := open(quietConfig(fsys, mode))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			want := metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 1, LastError: "x's record"}
			if err := b.StoreMeta(ctx, "x", want); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			type result struct {
				md  metastorage.MessageMetadata
				err error
			}
			got := make(chan result, 1)
			go func() {
				md, err := b.GetMeta(ctx, "x")
				got <- result{md, err}
			}()
			<-paused
			if err := b.DeleteMeta(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				id := fmt.Sprintf("other-%d", i)
				other := metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 9, LastError: "another message's record"}
				if err := b.StoreMeta(ctx, id, other); err != nil {
					t.Fatal(err)
				}
				other.State = metastorage.StateDeferred
				if err := b.UpdateMeta(ctx, id, other); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			r := <-got
			switch {
			case errors.Is(r.err, metastorage.ErrMessageNotFound):
			case r.err != nil:
				t.Fatalf("GetMeta of a message deleted after it opened the file: %v; want its record or not found", r.err)
			case r.md.Attempts != want.Attempts || r.md.LastError != want.LastError:
				t.Fatalf("GetMeta returned Attempts %d, LastError %q; want x's record (Attempts %d, LastError %q)",
					r.md.Attempts, r.md.LastError, want.Attempts, want.LastError)
			}
		})
	}
}
