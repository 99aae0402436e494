package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

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
	dir := t.TempDir()
	b, err := NewFactory(dir).WithBackgroundRecovery(false).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	md := metastorage.MessageMetadata{ID: "gone", State: metastorage.StateActive}
	data, err := encode(&md)
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
