package filesystem

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// openUnscanned opens dir in mode without the background recovery scan,
// so that a test's Check sees everything left on disk.
func openUnscanned(t *testing.T, dir string, mode Mode) *Backend {
	t.Helper()
	b, err := NewFactoryWithPerformanceOptions(dir, mode == Performance, mode == Hybrid).
		WithBackgroundRecovery(false).WithLogger(slog.New(slog.DiscardHandler)).Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// reported is a Finding without what a repair did.
type reported struct {
	Kind         FindingKind
	Path, Detail string
}

// whatFound returns the findings without their actions, in a fixed order.
func whatFound(findings []Finding) []reported {
	out := make([]reported, 0, len(findings))
	for _, f := range findings {
		out = append(out, reported{f.Kind, f.Path, f.Detail})
	}
	slices.SortFunc(out, func(a, b reported) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Detail, b.Detail))
	})
	return out
}

// checkThenRepair runs Check without repair and then with it, and fails
// the test unless both found the same.
func checkThenRepair(t *testing.T, b *Backend) []Finding {
	t.Helper()
	ctx := context.Background()
	dry, err := b.Check(ctx, false)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	done, err := b.Check(ctx, true)
	if err != nil {
		t.Fatalf("Check with repair: %v", err)
	}
	if d, r := whatFound(dry), whatFound(done); !slices.Equal(d, r) {
		t.Errorf("the check without repair found\n%v\nthe repair found\n%v", d, r)
	}
	return done
}

// TestCheckDuplicateTie shows that of the copies of a message with the same
// Updated, by the format's rule, the repair keeps the one that the check
// without repair said it would, by keepCopy's rule: never one that
// releases a message from hold, then the first state; that a copy made by
// hand later, whose State field does not name its directory, reads as the
// newer (as a move would leave it); and that the kept file is left as it
// was.
func TestCheckDuplicateTie(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	tests := []struct {
		name   string
		stored metastorage.QueueState // where the message is stored
		field  metastorage.QueueState // what the copy's State field then says
		copyTo metastorage.QueueState // where a byte copy is placed
		later  bool                   // the copy's time is after the field's Updated, as when made later
		kept   metastorage.QueueState
	}{
		{"hold copied to active", metastorage.StateHold, metastorage.StateHold, metastorage.StateActive, false, metastorage.StateHold},
		{"hold copied to incoming", metastorage.StateHold, metastorage.StateHold, metastorage.StateIncoming, false, metastorage.StateHold},
		{"active copied to hold", metastorage.StateActive, metastorage.StateActive, metastorage.StateHold, false, metastorage.StateHold},
		{"deferred copied to incoming", metastorage.StateDeferred, metastorage.StateDeferred, metastorage.StateIncoming, false, metastorage.StateIncoming},
		{"deferred copied to archived", metastorage.StateDeferred, metastorage.StateDeferred, metastorage.StateArchived, false, metastorage.StateDeferred},
		{"neither field matches", metastorage.StateArchived, metastorage.StateBounce, metastorage.StateActive, false, metastorage.StateActive},
		{"hold copied to active later", metastorage.StateHold, metastorage.StateHold, metastorage.StateActive, true, metastorage.StateActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := openUnscanned(t, dir, Standard)
			ctx := context.Background()
			if err := b.StoreMeta(ctx, "msg-3", metastorage.MessageMetadata{State: tc.stored, Attempts: 2}); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(dir, tc.stored.String(), "msg-3.json")
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if tc.field != tc.stored {
				md, err := codec.Decode(data)
				if err != nil {
					t.Fatal(err)
				}
				md.State = tc.field
				if data, err = codec.Encode(&md); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(src, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dst := filepath.Join(dir, tc.copyTo.String(), "msg-3.json")
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
			// A copy whose State field does not name its directory reads
			// its Updated from its time: the same, or, for a copy made
			// later, a millisecond after. That time is set, not left to the
			// kernel, whose coarse clock may give a time before the field's.
			md, err := codec.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{src, dst} {
				at := md.Updated
				if tc.later && p == dst {
					at = at.Add(time.Millisecond)
				}
				if err := os.Chtimes(p, time.Time{}, at); err != nil {
					t.Fatal(err)
				}
			}
			findings := checkThenRepair(t, b)
			set := 0
			for _, f := range findings {
				if f.Kind == Duplicate {
					set++
				}
			}
			if set != 1 {
				t.Errorf("%d duplicate findings, want 1: %v", set, findings)
			}
			md, err = b.GetMeta(ctx, "msg-3")
			if err != nil || md.State != tc.kept {
				t.Fatalf("after repair msg-3 is in %v (%v), want %v; findings %v", md.State, err, tc.kept, findings)
			}
			lost := tc.stored
			if lost == tc.kept {
				lost = tc.copyTo
			}
			if _, err := os.Stat(filepath.Join(dir, "corrupt", lost.String(), "msg-3.json")); err != nil {
				t.Errorf("the copy in %s is not in corrupt/: %v", lost, err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tc.kept.String(), "msg-3.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, data) {
				t.Errorf("kept copy = %q, want it unchanged %q", raw, data)
			}
			if again, err := b.Check(ctx, false); err != nil || len(again) != 0 {
				t.Errorf("Check after repair = %v, %v; want nothing", again, err)
			}
		})
	}
}

// TestCheckDryRunMatchesRepair shows that a check without repair of the
// crashed fixture reports what the repair then does.
func TestCheckDryRunMatchesRepair(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t, "crashed-spool")
			b := openUnscanned(t, dir, mode)
			// held-42's State field names incoming: not damage.
			if findings := checkThenRepair(t, b); len(findings) != 5 {
				t.Errorf("%d findings, want 5: %v", len(findings), findings)
			}
			if _, err := os.Lstat(filepath.Join(dir, "hold", "held-42.json")); errors.Is(err, fs.ErrNotExist) {
				t.Error("held-42 left hold")
			}
		})
	}
}

// writeMem writes data to the file name of mem.
func writeMem(t *testing.T, mem *vfs.Mem, name string, data []byte) {
	t.Helper()
	f, err := mem.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckSeverity shows that a check of a directory beside a live
// Performance-mode writer reports the records the writer keeps on purpose
// as expected, entries that are not the backend's as unknown, and only
// damage as damage.
func TestCheckSeverity(t *testing.T) {
	t.Parallel()
	mem := crashLayout(t)
	a := unflushed(t, mem)
	ctx := context.Background()
	storeSynced(t, a, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, LastError: "r0"})
	if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, LastError: "r1"}); err != nil {
		t.Fatal(err)
	}
	writeMem(t, mem, filepath.Join(crashDir, "deferred", "README.txt"), []byte("notes\n"))
	writeMem(t, mem, filepath.Join(crashDir, ".locks", "notes"), nil)
	writeMem(t, mem, filepath.Join(crashDir, "hold", "bad.json"), []byte("{"))
	r, err := open(quietConfig(mem, Performance))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	findings, err := r.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[FindingKind]Severity{Displaced: Expected, UnknownEntry: Unknown, StrayLock: Unknown, Corrupt: Damage}
	got := map[FindingKind]Severity{}
	for _, f := range findings {
		got[f.Kind] = f.Severity()
	}
	if !maps.Equal(got, want) {
		t.Errorf("severities found %v, want %v; findings %v", got, want, findings)
	}
	for kind, want := range map[FindingKind]Severity{
		OrphanTemp: Damage, InterruptedPut: Damage, Corrupt: Damage, NotRegular: Damage,
		StateMismatch: Damage, Duplicate: Damage, Displaced: Expected, UnknownEntry: Unknown, StrayLock: Unknown,
	} {
		if got := kind.Severity(); got != want {
			t.Errorf("%s.Severity() = %v, want %v", kind, got, want)
		}
	}
}
