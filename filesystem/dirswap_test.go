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

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestStateDirSwappedForSymlink swaps incoming for a symbolic link to a
// directory outside while goroutines store, move and delete messages in
// it, as `mv incoming incoming.real; ln -s ../outside incoming` does. The
// test defines the operator's fix as putting the real directory back.
// Then nothing has appeared outside; every call that returned nil is what
// a fresh open finds, every call that failed changed nothing, and the
// calls after the swap fail with an error that names incoming and wraps
// ErrDirReplaced.
func TestStateDirSwappedForSymlink(t *testing.T) {
	spooltest.NeedDisk(t)
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			root := t.TempDir()
			dir, outside := filepath.Join(root, "spool"), filepath.Join(root, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := crashConfig(vfs.OS, mode)
			cfg.dir = dir
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			const perWorker = 40
			in := metastorage.MessageMetadata{State: metastorage.StateIncoming}
			for i := range 2 * perWorker {
				for _, p := range []string{"move", "delete"} {
					if err := b.StoreMeta(ctx, fmt.Sprintf("%s-%d", p, i), in); err != nil {
						t.Fatal(err)
					}
				}
			}

			// Each worker makes perWorker calls, says so, and makes
			// perWorker more, whose first ones run during the swap.
			type result struct {
				op, id string
				err    error
			}
			var (
				mu      sync.Mutex
				results []result
				halfway sync.WaitGroup
				wg      sync.WaitGroup
			)
			calls := map[string]func(id string) error{
				"store": func(id string) error { return b.StoreMeta(ctx, id, in) },
				"move": func(id string) error {
					return b.MoveToState(ctx, id, metastorage.StateIncoming, metastorage.StateActive)
				},
				"delete": func(id string) error { return b.DeleteMetaIn(ctx, id, metastorage.StateIncoming) },
			}
			for op, call := range calls {
				halfway.Add(1)
				wg.Go(func() {
					for i := range 2 * perWorker {
						id := fmt.Sprintf("%s-%d", op, i)
						err := call(id)
						mu.Lock()
						results = append(results, result{op, id, err})
						mu.Unlock()
						if i == perWorker-1 {
							halfway.Done()
						}
					}
				})
			}
			halfway.Wait()
			incoming := filepath.Join(dir, "incoming")
			if err := os.Rename(incoming, incoming+".real"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../outside", incoming); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			// A store surely made after the swap.
			results = append(results, result{"store", "after-swap", b.StoreMeta(ctx, "after-swap", in)})
			err = b.Close()
			if err != nil {
				t.Logf("Close: %v", err)
			}

			ents, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				t.Errorf("outside holds %s, written through the swapped directory", e.Name())
			}

			// The operator puts the real directory back.
			if err := os.Remove(incoming); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(incoming+".real", incoming); err != nil {
				t.Fatal(err)
			}
			cfg.noRecovery = false
			fresh, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if err := fresh.RecoverFromCrash(); err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				md, err := fresh.GetMeta(ctx, r.id)
				where := "nowhere"
				if err == nil {
					where = md.State.String()
				} else if !errors.Is(err, metastorage.ErrMessageNotFound) {
					t.Fatalf("GetMeta %s: %v", r.id, err)
				}
				want := map[string][2]string{ // if acknowledged, if failed
					"store":  {"incoming", "nowhere"},
					"move":   {"active", "incoming"},
					"delete": {"nowhere", "incoming"},
				}[r.op]
				if r.err == nil && where != want[0] || r.err != nil && where != want[1] {
					t.Errorf("%s %s returned %v; a fresh open finds the message %s", r.op, r.id, r.err, where)
				}
				if (r.err != nil || r.id == "after-swap") && (!errors.Is(r.err, ErrDirReplaced) || !strings.Contains(r.err.Error(), incoming)) {
					t.Errorf("%s %s: %v, want an error wrapping ErrDirReplaced that names %s", r.op, r.id, r.err, incoming)
				}
			}
		})
	}
}

// TestReplacedDirDetected replaces one directory of the layout after open,
// by a symbolic link or by another directory, and checks that the next
// write to a state directory under it, and the recovery scan, fail with an
// error wrapping ErrDirReplaced that names it, and that the write left
// nothing in the replacement.
func TestReplacedDirDetected(t *testing.T) {
	spooltest.NeedDisk(t)
	tests := []struct {
		name    string
		replace string // relative to the metadata directory; "" for itself
		symlink bool
		write   bool // whether a write to incoming must fail too
	}{
		{"incoming by a link", "incoming", true, true},
		{"incoming by a directory", "incoming", false, true},
		{"the directory by a link", "", true, true},
		{"the directory by a directory", "", false, true},
		{".locks by a directory", ".locks", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			root := t.TempDir()
			dir := filepath.Join(root, "spool")
			cfg := crashConfig(vfs.OS, Standard)
			cfg.dir = dir
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// The open's recovery scan checks every directory; done before
			// the replacement, it leaves the first report to the write.
			b.bg.Wait()
			in := metastorage.MessageMetadata{State: metastorage.StateIncoming}
			if err := b.StoreMeta(ctx, "before", in); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tt.replace)
			repl := filepath.Join(root, "replacement")
			if err := os.Mkdir(repl, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.replace == "" || tt.replace == ".locks" {
				// A replacement a fresh open would accept.
				for _, s := range metastorage.States() {
					if err := os.Mkdir(filepath.Join(repl, s.String()), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.Rename(path, path+".real"); err != nil {
				t.Fatal(err)
			}
			if tt.symlink {
				err = os.Symlink(repl, path)
			} else {
				err = os.Rename(repl, path)
				repl = path
			}
			if err != nil {
				t.Fatal(err)
			}
			named := path
			if tt.replace == "" {
				named = filepath.Join(dir, "incoming")
			}
			if tt.write {
				err := b.StoreMeta(ctx, "after", in)
				if !errors.Is(err, ErrDirReplaced) || !strings.Contains(err.Error(), named) {
					t.Errorf("StoreMeta after the replacement: %v, want an error wrapping ErrDirReplaced that names %s", err, named)
				}
				if _, err := os.Lstat(filepath.Join(repl, "incoming", "after.json")); err == nil {
					t.Errorf("the store wrote into the replacement")
				}
				if _, err := os.Lstat(filepath.Join(repl, "after.json")); err == nil {
					t.Errorf("the store wrote into the replacement")
				}
			}
			err = b.RecoverFromCrash()
			if !errors.Is(err, ErrDirReplaced) || tt.replace != "" && !strings.Contains(err.Error(), path) {
				t.Errorf("RecoverFromCrash after the replacement: %v, want an error wrapping ErrDirReplaced that names %s", err, path)
			}
			if err := b.StoreMeta(ctx, "later", in); !errors.Is(err, ErrDirReplaced) {
				t.Errorf("StoreMeta after the scan: %v, want an error wrapping ErrDirReplaced", err)
			}
		})
	}
}
