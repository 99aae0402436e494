package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestSourceSyncKeepsMovedMessage shows the order moveOrder keeps: when
// another call fsyncs the directory a message was just renamed out of,
// before the rename's own fsync of the target directory, a power loss at
// that moment still finds the message in its new directory, never in none.
func TestSourceSyncKeepsMovedMessage(t *testing.T) {
	mem := crashLayout(t)
	b, err := open(crashConfig(mem, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.StoreMeta(context.Background(), "x", metastorage.MessageMetadata{}); err != nil {
		t.Fatal(err)
	}
	src, dst := b.path(metastorage.StateIncoming, "x.json"), b.path(metastorage.StateActive, "x.json")
	err = b.order.rename(metastorage.StateIncoming, metastorage.StateActive, func() (bool, error) {
		return true, mem.RenameNoReplace(src, dst)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Another call's fsync of the source directory, before the target's.
	if err := b.syncDirs(metastorage.StateIncoming); err != nil {
		t.Fatal(err)
	}
	img, err := readImage(mem.CrashClone())
	if err != nil {
		t.Fatal(err)
	}
	copies := img.msgs["x"]
	if len(copies) != 1 || copies[0].state != metastorage.StateActive {
		t.Errorf("after a power loss the message lies in %v, want exactly active", copies)
	}
}

// TestRecoveryDoesNotResurrect shows that a complete temp file of a
// message that lies in no state (a change a crash cut off before its
// renames, the message deleted since) is removed, not put in place.
func TestRecoveryDoesNotResurrect(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b, err := NewFactory(dir).WithBackgroundRecovery(false).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	md := metastorage.MessageMetadata{ID: "gone", State: metastorage.StateActive}
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := b.writeTemp(metastorage.StateActive, "gone.json", data, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetMeta(context.Background(), "gone"); !errors.Is(err, metastorage.ErrMessageNotFound) {
		t.Errorf("GetMeta of a deleted message after recovery = %v, want ErrMessageNotFound", err)
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp file %s: %v, want it removed", tmp, err)
	}
}

// removeHook is a file system that calls before with each name it is
// asked to remove, before removing it.
type removeHook struct {
	wrapFS
	before func(name string)
}

func (h removeHook) Remove(name string) error {
	h.before(name)
	return h.FS.Remove(name)
}

func (h removeHook) RemoveIn(dir vfs.File, name string) error {
	h.before(filepath.Join(dir.Name(), name))
	return h.FS.RemoveIn(dir, name)
}

// TestFailedDirSyncIsFinal shows that an fsync of a directory that fails
// while it is made for another directory's sake (a move's destination,
// synced before its source) fails every call whose change in it came
// before, as one made for the directory itself does: the kernel reports a
// lost write-back to one fsync only, so the next one would succeed.
//
// A replace in incoming is held after its change, before its fsync; a
// move from active into incoming then syncs incoming before active, and
// that fsync fails. The replace must not be acknowledged.
func TestFailedDirSyncIsFinal(t *testing.T) {
	ctx := context.Background()
	var x, y string // on distinct stripes
	for i := 0; y == ""; i++ {
		id := fmt.Sprintf("m-%d", i)
		switch {
		case x == "":
			x = id
		case stripeOf(id+".json") != stripeOf(x+".json"):
			y = id
		}
	}
	incoming := filepath.Join(crashDir, stIncoming.String())
	var armed, failNow, failed, held atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && path == incoming && failNow.Load() && failed.CompareAndSwap(false, true) {
			return syscall.EIO
		}
		return nil
	})
	paused, release := make(chan struct{}), make(chan struct{})
	fsys := removeHook{wrapFS: wrapFS{vfs.Inject(crashLayout(t), inj)}, before: func(name string) {
		// The replace removes the old record's file, left at its temp
		// name by the exchange, before it syncs incoming.
		if armed.Load() && strings.HasPrefix(name, incoming+sep+".tmp.") && held.CompareAndSwap(false, true) {
			close(paused)
			<-release
		}
	}}
	cfg := quietConfig(fsys, Standard)
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.bg.Wait() // the count, which would wait for the held call
	if err := b.StoreMeta(ctx, y, metastorage.MessageMetadata{State: stIncoming, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.StoreMeta(ctx, x, metastorage.MessageMetadata{State: stActive, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	replaced := make(chan error, 1)
	go func() {
		replaced <- b.StoreMeta(ctx, y, metastorage.MessageMetadata{State: stIncoming, Attempts: 2})
	}()
	<-paused
	failNow.Store(true)
	if err := b.MoveToState(ctx, x, stActive, stIncoming); err == nil || !failed.Load() {
		t.Fatalf("the move's fsync of incoming did not fail: %v", err)
	}
	close(release)
	if err := <-replaced; !errors.Is(err, syscall.EIO) {
		t.Fatalf("the replace, whose change preceded a failed fsync of its directory, returned %v; want EIO", err)
	}
}
