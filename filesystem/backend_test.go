package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func openTest(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestNeedDiskWhereOpenRefuses shows that the tests needing a directory on
// disk skip exactly where open refuses one.
func TestNeedDiskWhereOpenRefuses(t *testing.T) {
	if spooltest.DiskBackend != platformSupported {
		t.Fatalf("spooltest.DiskBackend = %v, but open on disk is supported here: %v", spooltest.DiskBackend, platformSupported)
	}
}

// TestHostileIDsStayInside stores every hostile ID and checks, on disk,
// that each became one file directly inside a state directory, under a
// name that decodes back to it, and that nothing was created elsewhere.
func TestHostileIDsStayInside(t *testing.T) {
	spooltest.NeedDisk(t)
	root := t.TempDir()
	dir := filepath.Join(root, "spool")
	b := openTest(t, dir)
	ctx := context.Background()
	stored := map[string]bool{}
	ids := []string{"", ".", "..", "../../etc/x", "../x", "a/b", `a\b`, "a\x00b", "ctl\x01\x7f", "100%", "%2E",
		".tmp.00-1", ".locks", "x.json.tmp.1", strings.Repeat("a", 250), strings.Repeat("a", 251), strings.Repeat("é", 150)}
	for _, id := range ids {
		err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: metastorage.StateHold})
		_, encErr := name.Encode(id)
		switch {
		case encErr != nil:
			if !errors.Is(err, metastorage.ErrInvalidMessageID) {
				t.Errorf("StoreMeta(%q) = %v, want ErrInvalidMessageID", id, err)
			}
		case err != nil:
			t.Errorf("StoreMeta(%q) = %v", id, err)
		default:
			stored[id] = true
			md, err := b.GetMeta(ctx, id)
			if err != nil || md.ID != id {
				t.Errorf("GetMeta(%q) = %q, %v", id, md.ID, err)
			}
		}
	}
	if !stored[".."] || !stored["a/b"] || stored[""] {
		t.Errorf("stored %v: want '..' and 'a/b' stored by escaping, '' refused", stored)
	}
	ents, err := os.ReadDir(root)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s holds %v, %v: want only the spool directory", root, ents, err)
	}
	found := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		parts := strings.Split(rel, string(filepath.Separator))
		if parts[0] == ".locks" {
			return nil
		}
		id, ok := name.Decode(parts[len(parts)-1])
		if len(parts) != 2 || parts[0] != "hold" || !ok {
			t.Errorf("unexpected file %s", rel)
		}
		found[id] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range stored {
		if !found[id] {
			t.Errorf("no file for %q", id)
		}
	}
}

// TestLockWaitEndsWithContext shows that a call waiting for a message's
// lock gives up when its context ends.
func TestLockWaitEndsWithContext(t *testing.T) {
	spooltest.NeedDisk(t)
	b := openTest(t, t.TempDir())
	file, _ := name.Encode("msg-1")
	unlock, err := b.lock(context.Background(), stripeOf(file))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	testHookLockWait = cancel
	err = b.StoreMeta(ctx, "msg-1", metastorage.MessageMetadata{})
	testHookLockWait = nil
	unlock()
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "failed to acquire message lock") {
		t.Errorf("StoreMeta while the lock is held = %v, want failed to acquire message lock: context canceled", err)
	}
	if _, err := b.GetMeta(context.Background(), "msg-1"); !errors.Is(err, metastorage.ErrMessageNotFound) {
		t.Errorf("GetMeta after the abandoned store = %v, want ErrMessageNotFound", err)
	}
}

// TestRefusesSymlinkedStateDir shows that a state directory replaced by a
// symbolic link is refused at open, not followed.
func TestRefusesSymlinkedStateDir(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "hold")); err != nil {
		t.Fatal(err)
	}
	_, err := NewBackend(dir)
	if err == nil || !strings.Contains(err.Error(), "hold") {
		t.Errorf("NewBackend with hold/ a symlink = %v, want an error naming it", err)
	}
}

func TestFactory(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	tests := []struct {
		f    *Factory
		mode Mode
	}{
		{NewFactory(dir), Standard},
		{NewFactory(dir).WithDisableSync(true), Performance},
		{NewFactory(dir).WithBatchSync(true), Hybrid},
		{NewFactoryWithPerformanceOptions(dir, true, false), Performance},
		{NewFactoryWithPerformanceOptions(dir, false, true), Hybrid},
		{NewFactoryWithPerformanceOptions(dir, true, true), Performance},
	}
	for _, tt := range tests {
		if tt.f.Mode() != tt.mode || tt.f.Name() != "filesystem-meta" {
			t.Errorf("factory mode %v name %q, want %v filesystem-meta", tt.f.Mode(), tt.f.Name(), tt.mode)
		}
		b, err := tt.f.Create()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		if err := b.StoreMeta(context.Background(), "x", metastorage.MessageMetadata{}); !errors.Is(err, metastorage.ErrBackendClosed) {
			t.Errorf("StoreMeta after Close = %v, want ErrBackendClosed", err)
		}
	}
}

// TestFactoryMode shows that the mode options set one durability mode, the
// last call winning, and that a backend opens in the Factory's mode.
func TestFactoryMode(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	f := func() *Factory { return NewFactory(t.TempDir()) }
	tests := []struct {
		name string
		f    *Factory
		want Mode
	}{
		{"default", f(), Standard},
		{"WithMode(Standard)", f().WithMode(Standard), Standard},
		{"WithMode(Hybrid)", f().WithMode(Hybrid), Hybrid},
		{"WithMode(Performance)", f().WithMode(Performance), Performance},
		{"disable then batch", f().WithDisableSync(true).WithBatchSync(true), Hybrid},
		{"batch then disable", f().WithBatchSync(true).WithDisableSync(true), Performance},
		{"disable then WithMode", f().WithDisableSync(true).WithMode(Standard), Standard},
		{"WithMode then batch", f().WithMode(Performance).WithBatchSync(true), Hybrid},
		{"disable off from Performance", f().WithDisableSync(true).WithDisableSync(false), Standard},
		{"disable off from Hybrid", f().WithBatchSync(true).WithDisableSync(false), Hybrid},
		{"batch off from Hybrid", f().WithMode(Hybrid).WithBatchSync(false), Standard},
		{"batch off from Performance", f().WithDisableSync(true).WithBatchSync(false), Performance},
		{"options false, false", NewFactoryWithPerformanceOptions(t.TempDir(), false, false), Standard},
		{"options true, false", NewFactoryWithPerformanceOptions(t.TempDir(), true, false), Performance},
		{"options false, true", NewFactoryWithPerformanceOptions(t.TempDir(), false, true), Hybrid},
		{"options true, true", NewFactoryWithPerformanceOptions(t.TempDir(), true, true), Performance},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.f.Mode(); got != tt.want {
				t.Fatalf("Factory.Mode() = %v, want %v", got, tt.want)
			}
			b, err := tt.f.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := b.Mode(); got != tt.want {
				t.Errorf("Backend.Mode() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFactoryModeUnknown shows that Open refuses a mode that is none of the
// three, and says so.
func TestFactoryModeUnknown(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "meta")
	b, err := NewFactory(dir).WithMode(Mode(7)).Open()
	if err == nil {
		b.Close()
		t.Fatal("Open with Mode(7) = nil error, want one")
	}
	if !strings.Contains(err.Error(), "mode 7") || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open with Mode(7) = %v, want an error naming the mode and the directory", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open with Mode(7) left %s behind (Stat = %v)", dir, err)
	}
}

// TestFileMode shows that the file mode option reaches message files.
func TestFileMode(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	b, err := NewFactory(dir).WithFileMode(0o600).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.StoreMeta(context.Background(), "m", metastorage.MessageMetadata{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "incoming", "m.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("message file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestOpenCreatesMissingParents shows that open creates the missing
// parents of its directory, in each mode, and that in the durable modes a
// power loss right after open keeps them, with the layout under them.
func TestOpenCreatesMissingParents(t *testing.T) {
	spooltest.NeedDisk(t)
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data", "nested", "metadata")
			cfg := crashConfig(nil, mode)
			cfg.dir = dir
			b, err := open(cfg)
			if err != nil {
				t.Fatalf("open %s: %v", dir, err)
			}
			if err := b.StoreMeta(context.Background(), "x", metastorage.MessageMetadata{}); err != nil {
				t.Error(err)
			}
			if err := b.Close(); err != nil {
				t.Error(err)
			}

			m := vfs.NewMem()
			cfg = crashConfig(m, mode)
			cfg.dir = "/data/nested/metadata"
			b, err = open(cfg)
			if err != nil {
				t.Fatalf("open %s on Mem: %v", cfg.dir, err)
			}
			defer b.Close()
			if mode == Performance {
				return // nothing is synced at open
			}
			lost := m.CrashClone()
			for _, s := range metastorage.States() {
				if fi, err := lost.Lstat(filepath.Join(cfg.dir, s.String())); err != nil || !fi.IsDir() {
					t.Errorf("after a power loss right after open, %s/%s: %v, %v; want a directory", cfg.dir, s, fi, err)
				}
			}
		})
	}
}

// TestGetMetaMissTakesNoLock shows that GetMeta of a message that is in no
// state answers without waiting for the message's lock when no change of
// its stripe ran meanwhile, and takes the lock when the counters cannot
// tell.
func TestGetMetaMissTakesNoLock(t *testing.T) {
	for _, counted := range []bool{true, false} {
		t.Run(fmt.Sprintf("counted=%t", counted), func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMem()
			if !counted {
				fsys = noSharedMemory{fsys}
			}
			b, err := open(quietConfig(fsys, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			file, _ := name.Encode("missing")
			unlock, err := b.lock(context.Background(), stripeOf(file))
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			waited := false
			testHookLockWait = func() { waited = true; cancel() }
			_, err = b.GetMeta(ctx, "missing")
			testHookLockWait = nil
			if counted && (waited || !errors.Is(err, metastorage.ErrMessageNotFound)) {
				t.Errorf("GetMeta of a missing message = %v, waited for its lock: %t; want ErrMessageNotFound without waiting", err, waited)
			}
			if !counted && (!waited || !errors.Is(err, context.Canceled)) {
				t.Errorf("GetMeta of a missing message without counters = %v, waited for its lock: %t; want to wait", err, waited)
			}
		})
	}
}
