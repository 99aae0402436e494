package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// syncBuffer is a bytes.Buffer safe for the goroutines of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// unreadableEnv is a directory on an in-memory file system whose file
// hold/u.json cannot be opened (EACCES) once sw is armed, beside readable
// messages in hold and damage for recovery to repair.
type unreadableEnv struct {
	mem *vfs.Mem
	sw  *faultSwitch
	log *syncBuffer
	b   *Backend
}

var unreadablePath = filepath.Join(crashDir, "hold", "u.json")

func newUnreadableEnv(t *testing.T, mode Mode) *unreadableEnv {
	t.Helper()
	e := &unreadableEnv{mem: crashLayout(t), log: &syncBuffer{},
		sw: &faultSwitch{inj: vfs.And(vfs.OnOp(vfs.OpOpen), vfs.PathMatch(func(p string) bool { return p == unreadablePath }), vfs.Always(syscall.EACCES))}}
	cfg := quietConfig(vfs.Inject(e.mem, e.sw), mode)
	cfg.logger = slog.New(slog.NewTextHandler(e.log, nil))
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e.b = b
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i, id := range []string{"h1", "h2"} {
		md := metastorage.MessageMetadata{State: metastorage.StateHold, Created: base.Add(time.Duration(i) * time.Minute), Priority: i, Attempts: i}
		if err := b.StoreMeta(ctx, id, md); err != nil {
			t.Fatal(err)
		}
	}
	// u is written by hand, as by another user: no Backend knows its record.
	u := metastorage.MessageMetadata{ID: "u", State: metastorage.StateHold, Created: base, Updated: base}
	data, err := codec.Encode(&u)
	if err != nil {
		t.Fatal(err)
	}
	writeMem(t, e.mem, unreadablePath, data)
	writeMem(t, e.mem, filepath.Join(crashDir, "incoming", "bad.json"), []byte("{"))
	e.sw.on.Store(true)
	return e
}

// TestUnreadableMessageFile shows that a message file that cannot be
// opened (EACCES) is skipped, logged and counted by recovery, Check, every
// sorted listing and the iterator, which list, iterate and repair all the
// rest; that it is never moved to corrupt/; and that the calls on its
// message fail with an error that names the file.
func TestUnreadableMessageFile(t *testing.T) {
	t.Parallel()
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newUnreadableEnv(t, mode)
			b := e.b
			ctx := context.Background()

			t.Run("check", func(t *testing.T) {
				findings, err := b.Check(ctx, false)
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				kinds := map[FindingKind]string{}
				for _, f := range findings {
					kinds[f.Kind] = f.Path
				}
				if kinds[Unreadable] != unreadablePath || kinds[Corrupt] != filepath.Join(crashDir, "incoming", "bad.json") || len(findings) != 2 {
					t.Errorf("Check found %v, want the unreadable file and the corrupt one", findings)
				}
				for _, f := range findings {
					if f.Kind == Unreadable && (f.Repaired || f.Severity() != Damage || !strings.Contains(f.Detail, "permission denied")) {
						t.Errorf("unreadable finding %+v", f)
					}
				}
			})

			t.Run("recover", func(t *testing.T) {
				if err := b.RecoverFromCrash(); err != nil {
					t.Fatalf("RecoverFromCrash: %v", err)
				}
				if _, err := e.mem.Lstat(filepath.Join(crashDir, "corrupt", "incoming", "bad.json")); err != nil {
					t.Errorf("the corrupt file beside the unreadable one was not set aside: %v", err)
				}
				if _, err := e.mem.Lstat(unreadablePath); err != nil {
					t.Errorf("the unreadable file moved: %v", err)
				}
				if _, err := e.mem.Lstat(filepath.Join(crashDir, "corrupt", "hold", "u.json")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the unreadable file is in corrupt/: %v", err)
				}
			})

			t.Run("list", func(t *testing.T) {
				for _, by := range []string{metastorage.SortByID, metastorage.SortByCreated, metastorage.SortByUpdated, metastorage.SortByPriority, metastorage.SortByAttempts} {
					for _, since := range []time.Time{{}, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)} {
						res, err := b.ListMessages(ctx, metastorage.StateHold, metastorage.MessageListOptions{SortBy: by, Since: since})
						if err != nil {
							t.Errorf("ListMessages(%q, since %v): %v", by, since, err)
							continue
						}
						want := []string{"h1", "h2"}
						if by == metastorage.SortByID && since.IsZero() {
							want = append(want, "u") // named by the directory alone
						}
						if got := res.MessageIDs; !slices.Equal(got, want) {
							t.Errorf("ListMessages(%q, since %v) = %v, want %v", by, since, got, want)
						}
					}
				}
			})

			t.Run("iterate", func(t *testing.T) {
				for _, batch := range []int{1, 2, 50} {
					before := b.Stats().UnreadableFiles
					it, err := b.NewMessageIterator(ctx, metastorage.StateHold, batch)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for {
						md, ok, err := it.Next(ctx)
						if err != nil {
							t.Fatalf("batch %d: Next: %v after %v", batch, err, got)
						}
						if !ok {
							break
						}
						got = append(got, md.ID)
					}
					it.Close()
					slices.Sort(got)
					if !slices.Equal(got, []string{"h1", "h2"}) {
						t.Errorf("batch %d: iterated %v, want [h1 h2]", batch, got)
					}
					if n := b.Stats().UnreadableFiles - before; n != 1 {
						t.Errorf("batch %d: Stats().UnreadableFiles grew by %d, want 1", batch, n)
					}
				}
			})

			t.Run("calls", func(t *testing.T) {
				md := metastorage.MessageMetadata{State: metastorage.StateHold}
				hold, act := metastorage.StateHold, metastorage.StateActive
				calls := map[string]func() error{
					"GetMeta":      func() error { _, err := b.GetMeta(ctx, "u"); return err },
					"StoreMeta":    func() error { return b.StoreMeta(ctx, "u", md) },
					"UpdateMeta":   func() error { return b.UpdateMeta(ctx, "u", md) },
					"UpdateMetaIn": func() error { return b.UpdateMetaIn(ctx, "u", hold, md) },
					"MoveToState":  func() error { return b.MoveToState(ctx, "u", hold, act) },
					"DeleteMeta":   func() error { return b.DeleteMeta(ctx, "u") },
					"DeleteMetaIn": func() error { return b.DeleteMetaIn(ctx, "u", hold) },
				}
				for name, call := range calls {
					err := call()
					if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), unreadablePath) {
						t.Errorf("%s(u) = %v, want a permission error naming %s", name, err, unreadablePath)
					}
				}
				if _, err := e.mem.Lstat(unreadablePath); err != nil {
					t.Errorf("the calls changed the unreadable file: %v", err)
				}
			})

			if n := b.Stats().UnreadableFiles; n == 0 {
				t.Error("Stats().UnreadableFiles = 0")
			}
			if !strings.Contains(e.log.String(), "level=WARN") || !strings.Contains(e.log.String(), unreadablePath) {
				t.Errorf("no warning naming the file logged:\n%s", e.log.String())
			}
		})
	}
}

// TestUnreadableBesideCopies shows that a recovery scan goes on when the
// message whose file cannot be read also has a copy in another state and
// a temp file holding a record of it: it keeps all of them, since it
// cannot tell which is current, and reports the copy.
func TestUnreadableBesideCopies(t *testing.T) {
	t.Parallel()
	for _, repair := range []bool{false, true} {
		e := newUnreadableEnv(t, Standard)
		u := metastorage.MessageMetadata{ID: "u", State: metastorage.StateActive, Updated: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
		data, err := codec.Encode(&u)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(crashDir, "active", "u.json")
		tmpPath := fmt.Sprintf("%s/hold/.tmp.%02x-abcdef", crashDir, stripeOf("u.json"))
		writeMem(t, e.mem, copyPath, data)
		writeMem(t, e.mem, tmpPath, data)
		findings, err := e.b.Check(context.Background(), repair)
		if err != nil {
			t.Fatalf("Check(repair %v): %v", repair, err)
		}
		var dup bool
		for _, f := range findings {
			if f.Kind == Duplicate && f.Path == copyPath && !f.Repaired && f.Severity() == Damage {
				dup = true
			}
		}
		if !dup {
			t.Errorf("Check(repair %v) found %v, want the copy in active reported, not resolved", repair, findings)
		}
		for _, p := range []string{unreadablePath, copyPath, tmpPath} {
			if _, err := e.mem.Lstat(p); err != nil {
				t.Errorf("Check(repair %v): %s: %v", repair, p, err)
			}
		}
	}
}
