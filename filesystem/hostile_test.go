package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// outsideRecord is valid metadata, so that a backend that followed a link
// to it would take it for a message.
const outsideRecord = `{"ID":"secret","State":3,"Size":42,"LastError":"OUTSIDE THE BASE DIRECTORY","Headers":{"k":"v"}}`

// hostileCase plants one hostile entry in a metadata directory that was
// created and closed, and says how the backend must treat it.
type hostileCase struct {
	name string
	// entry is the planted entry's path relative to the base directory.
	entry string
	// plant creates it; outside is a directory outside the base one
	// holding secret.json (a file) and secretdir/ (a directory).
	plant func(t *testing.T, entry, outside string)
	// openErr: opening must fail with an error naming the entry.
	openErr bool
	// id is the message ID the entry's name stands for, if any.
	id string
	// kind is what the recovery scan must report for the entry, "" for
	// nothing.
	kind FindingKind
	// after is what recovery must do with it: "moved" to corrupt/,
	// "removed", "left" alone, or "" when it is a message.
	after string
}

func symlinkTo(target string) func(t *testing.T, entry, outside string) {
	return func(t *testing.T, entry, outside string) {
		t.Helper()
		if err := os.Symlink(filepath.Join(outside, target), entry); err != nil {
			t.Fatal(err)
		}
	}
}

func writeEntry(data string, perm fs.FileMode) func(t *testing.T, entry, outside string) {
	return func(t *testing.T, entry, outside string) {
		t.Helper()
		if err := os.WriteFile(entry, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(entry, perm); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
}

func mkdirEntry() func(t *testing.T, entry, outside string) {
	return func(t *testing.T, entry, outside string) {
		t.Helper()
		if err := os.Mkdir(entry, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func mkfifoEntry() func(t *testing.T, entry, outside string) {
	return func(t *testing.T, entry, outside string) {
		t.Helper()
		if err := mkfifo(entry); err != nil {
			t.Fatal(err)
		}
	}
}

func replaceDir(with func(t *testing.T, entry, outside string)) func(t *testing.T, entry, outside string) {
	return func(t *testing.T, entry, outside string) {
		t.Helper()
		if err := os.Remove(entry); err != nil {
			t.Fatal(err)
		}
		with(t, entry, outside)
	}
}

var hostileCases = []hostileCase{
	{name: "symlink to a file outside", entry: "hold/x.json", plant: symlinkTo("secret.json"),
		id: "x", kind: NotRegular, after: "moved"},
	{name: "symlink to a directory outside", entry: "deferred/x.json", plant: symlinkTo("secretdir"),
		id: "x", kind: NotRegular, after: "moved"},
	{name: "dangling symlink", entry: "incoming/x.json", plant: symlinkTo("does-not-exist.json"),
		id: "x", kind: NotRegular, after: "moved"},
	{name: "symlink with an escaped message name", entry: "active/%2E..json", plant: symlinkTo("secret.json"),
		id: "..", kind: NotRegular, after: "moved"},
	{name: "subdirectory named like a message file", entry: "hold/x.json",
		plant: func(t *testing.T, entry, outside string) {
			if err := os.Mkdir(entry, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(entry, "inner.json"), []byte(outsideRecord), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		id: "x", kind: NotRegular, after: "moved"},
	{name: "symlink named like a temp file", entry: "hold/.tmp.00-dead", plant: symlinkTo("secret.json"),
		kind: OrphanTemp, after: "removed"},
	{name: "symlink named like another writer's temp file", entry: "hold/x.json.tmp.1a2b", plant: symlinkTo("secret.json"),
		kind: OrphanTemp, after: "removed"},
	{name: "message file with mode 000", entry: "hold/locked.json",
		plant: writeEntry(`{"ID":"locked","State":3,"Size":7,"Headers":{}}`, 0)},
	{name: "state directory replaced by a file", entry: "hold",
		plant: replaceDir(writeEntry("not a directory", 0o644)), openErr: true},
	{name: "state directory replaced by a symlink to a directory outside", entry: "hold",
		plant: replaceDir(symlinkTo("secretdir")), openErr: true},
	{name: "stray file in .locks", entry: ".locks/README", plant: writeEntry("hello", 0o644),
		kind: StrayLock, after: "left"},
	{name: "stray symlink in .locks", entry: ".locks/stripe-x", plant: symlinkTo("secret.json"),
		kind: StrayLock, after: "left"},
	{name: "lock stripe replaced by a symlink outside", entry: ".locks/stripe-07",
		plant: replaceDir(symlinkTo("secret.json")), openErr: true},
	{name: "change counters replaced by a symlink outside", entry: ".locks/changes",
		plant: replaceDir(symlinkTo("secret.json")), openErr: true},
	{name: "change counters replaced by a directory", entry: ".locks/changes",
		plant: replaceDir(mkdirEntry()), openErr: true},
	{name: "change counters replaced by a FIFO", entry: ".locks/changes",
		plant: replaceDir(mkfifoEntry()), openErr: true},
	{name: "change counters of another format", entry: ".locks/changes",
		plant: replaceDir(writeEntry("not counters", 0o644)), openErr: true},
	{name: "unknown file name in a state directory", entry: "hold/README", plant: writeEntry("hello", 0o644),
		kind: UnknownEntry, after: "left"},
	{name: "unknown name with the .json suffix", entry: "hold/.x.json", plant: writeEntry(outsideRecord, 0o644),
		kind: UnknownEntry, after: "left"},
}

// TestHostileDirectories plants each hostile entry in a metadata
// directory and checks that nothing outside the base directory is read,
// written or followed, that reads and writes behave sanely around it, and
// that recovery reports it with its path and sets aside, removes or leaves
// it as its kind says.
func TestHostileDirectories(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testHostile(t, tc)
		})
	}
}

func testHostile(t *testing.T, tc hostileCase) {
	ctx := context.Background()
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.json"), []byte(outsideRecord), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "secretdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secretdir", "inner.json"), []byte(outsideRecord), 0o644); err != nil {
		t.Fatal(err)
	}

	// The entry's state, where two messages are stored first.
	state, err := metastorage.ParseQueueState(strings.Split(tc.entry, "/")[0])
	if err != nil {
		state = nowhere // under .locks
	}
	okState := state
	if !state.Valid() || tc.openErr {
		okState = metastorage.StateIncoming
	}
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	okRec := metastorage.MessageMetadata{State: okState, Size: 1}
	for _, id := range []string{"ok-1", "ok-2"} {
		if err := b.StoreMeta(ctx, id, okRec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	entry := filepath.Join(dir, tc.entry)
	tc.plant(t, entry, outside)
	before := spooltest.Snapshot(t, outside)
	defer func() {
		if t.Failed() {
			return
		}
		spooltest.SameSnapshot(t, before, spooltest.Snapshot(t, outside))
	}()

	quiet := slog.New(slog.DiscardHandler)
	if tc.openErr {
		for _, f := range []*Factory{NewFactory(dir), NewFactory(dir).WithReadOnly(true)} {
			b, err := f.WithLogger(quiet).Open()
			if err == nil {
				b.Close()
				if f.cfg.readOnly && strings.HasPrefix(tc.entry, ".locks") {
					continue // a read-only backend opens no lock files
				}
				t.Fatalf("open (read-only %v) with %s planted succeeded, want an error naming it", f.cfg.readOnly, tc.entry)
			}
			if !strings.Contains(err.Error(), entry) {
				t.Errorf("open (read-only %v) = %v, want an error naming %s", f.cfg.readOnly, err, entry)
			}
		}
		return
	}

	b, err = NewFactory(dir).WithBackgroundRecovery(false).WithLogger(quiet).Open()
	if err != nil {
		t.Fatalf("open with %s planted: %v", tc.entry, err)
	}
	defer b.Close()

	// What is a message in the planted entry's state: the two stored, and
	// the planted file if it is a readable message file.
	wantIDs := []string{"ok-1", "ok-2"}
	readable := tc.kind == "" && canRead(entry)
	if tc.kind == "" && os.Geteuid() == 0 && !readable {
		t.Fatalf("%s cannot be read as root", entry)
	}
	if readable {
		wantIDs = append(wantIDs, strings.TrimSuffix(filepath.Base(tc.entry), ".json"))
		slices.Sort(wantIDs)
	}

	// Reads around the entry.
	for _, id := range []string{"ok-1", "ok-2"} {
		if md, err := b.GetMeta(ctx, id); err != nil || md.State != okState {
			t.Errorf("GetMeta(%s) = %+v, %v", id, md, err)
		}
	}
	msgID := tc.id
	if tc.kind == "" {
		msgID = strings.TrimSuffix(filepath.Base(tc.entry), ".json")
	}
	if msgID != "" {
		md, err := b.GetMeta(ctx, msgID)
		switch {
		case readable:
			if err != nil || md.ID != msgID || md.State != state || md.Size != 7 {
				t.Errorf("GetMeta(%q) of the readable file = %+v, %v", msgID, md, err)
			}
		case err == nil:
			t.Errorf("GetMeta(%q) = %+v, nil; want an error for %s", msgID, md, entry)
		case !strings.Contains(err.Error(), entry) && !errors.Is(err, metastorage.ErrMessageNotFound):
			t.Errorf("GetMeta(%q) = %v, want an error naming %s", msgID, err, entry)
		}
		if strings.Contains(md.LastError, "OUTSIDE") {
			t.Errorf("GetMeta(%q) returned the record outside the base directory", msgID)
		}
	}
	if state.Valid() && !strings.HasPrefix(tc.entry, ".locks") {
		for _, by := range []string{metastorage.SortByID, metastorage.SortByUpdated, metastorage.SortByPriority} {
			res, err := b.ListMessages(ctx, state, metastorage.MessageListOptions{SortBy: by})
			got := slices.Sorted(slices.Values(res.MessageIDs))
			if err != nil || !slices.Equal(got, wantIDs) || res.Total != len(wantIDs) {
				t.Errorf("ListMessages(%v, by %q) = %q total %d, %v; want %q", state, by, res.MessageIDs, res.Total, err, wantIDs)
			}
		}
		it, err := b.NewMessageIterator(ctx, state, 1)
		if err != nil {
			t.Fatal(err)
		}
		mds, err := drain(ctx, it)
		if err != nil || !slices.Equal(idsOf(mds), wantIDs) {
			t.Errorf("iterate(%v) = %q, %v; want %q", state, idsOf(mds), err, wantIDs)
		}
		for _, md := range mds {
			if strings.Contains(md.LastError, "OUTSIDE") {
				t.Errorf("iterator returned the record outside the base directory as %q", md.ID)
			}
		}
	}

	// Writes to the message whose name the entry takes are refused, with
	// an error naming it: the backend cannot know what is there.
	if tc.kind == NotRegular {
		md := metastorage.MessageMetadata{State: state, LastError: "written"}
		for what, err := range map[string]error{
			"StoreMeta":   b.StoreMeta(ctx, tc.id, md),
			"UpdateMeta":  b.UpdateMeta(ctx, tc.id, md),
			"MoveToState": b.MoveToState(ctx, tc.id, state, metastorage.StateArchived),
			"DeleteMeta":  b.DeleteMeta(ctx, tc.id),
		} {
			if err == nil || !strings.Contains(err.Error(), entry) {
				t.Errorf("%s(%q) over %s = %v, want an error naming it", what, tc.id, tc.entry, err)
			}
		}
	}

	// The scan without repair reports the entry and changes nothing.
	findings, err := b.Check(ctx, false)
	switch {
	case tc.kind == "" && !readable:
		// Not root, mode 000: the scan cannot read the file; it must say
		// which.
		if err == nil && !hasFinding(findings, "", entry) {
			t.Errorf("Check = %+v, nil; want an error or finding naming unreadable %s", findings, entry)
		} else if err != nil && !strings.Contains(err.Error(), entry) {
			t.Errorf("Check = %v, want an error naming %s", err, entry)
		}
		return
	case err != nil:
		t.Fatalf("Check: %v", err)
	case tc.kind == "" && len(findings) != 0:
		t.Errorf("Check = %+v, want nothing", findings)
	case tc.kind != "" && (len(findings) != 1 || !hasFinding(findings, tc.kind, entry)):
		t.Errorf("Check = %+v, want one %s finding for %s", findings, tc.kind, entry)
	}
	checkCount(t, b, state, len(wantIDs), "before recovery")
	typ := entryType(t, entry)
	var link string
	if typ == fs.ModeSymlink {
		link, _ = os.Readlink(entry)
	}

	if err := b.RecoverFromCrash(); err != nil {
		t.Fatalf("RecoverFromCrash: %v", err)
	}
	aside := filepath.Join(dir, "corrupt", tc.entry)
	_, err = os.Lstat(entry)
	switch tc.after {
	case "moved":
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after recovery: %v, want it moved to corrupt/", tc.entry, err)
		}
		if got := entryType(t, aside); got != typ {
			t.Errorf("%s after recovery has type %v, want %v as planted", aside, got, typ)
		}
		if typ == fs.ModeSymlink {
			if got, _ := os.Readlink(aside); got != link {
				t.Errorf("%s points to %q, want %q", aside, got, link)
			}
		}
		if typ == fs.ModeDir {
			if data, err := os.ReadFile(filepath.Join(aside, "inner.json")); err != nil || string(data) != outsideRecord {
				t.Errorf("the subdirectory's file after recovery: %q, %v", data, err)
			}
		}
	case "removed":
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after recovery: %v, want it removed", tc.entry, err)
		}
	case "left", "":
		if got := entryType(t, entry); got != typ {
			t.Errorf("%s after recovery has type %v, want it left alone (%v)", tc.entry, got, typ)
		}
	}
	findings, err = b.Check(ctx, false)
	if tc.after == "left" {
		if err != nil || len(findings) != 1 || !hasFinding(findings, tc.kind, entry) {
			t.Errorf("Check after recovery = %+v, %v; want %s reported again", findings, err, entry)
		}
	} else if err != nil || len(findings) != 0 {
		t.Errorf("Check after recovery = %+v, %v; want nothing", findings, err)
	}

	// The message name is free again, for a regular file.
	if tc.after == "moved" {
		md := metastorage.MessageMetadata{State: state, LastError: "inside"}
		if err := b.StoreMeta(ctx, tc.id, md); err != nil {
			t.Fatalf("StoreMeta(%q) after recovery: %v", tc.id, err)
		}
		if got, err := b.GetMeta(ctx, tc.id); err != nil || got.LastError != "inside" {
			t.Errorf("GetMeta(%q) after recovery = %+v, %v", tc.id, got, err)
		}
		if typ := entryType(t, entry); typ != 0 {
			t.Errorf("%s is %v, want a regular file", entry, typ)
		}
	}
	// GetStateCount after recovery set aside a symbolic link or directory
	// is not checked: it is one too low (the initial count never counted
	// the entry, and setting it aside subtracts it).
	if tc.after != "moved" {
		checkCount(t, b, state, len(wantIDs), "after recovery")
	}
}

// checkCount checks GetStateCount(state) unless state is not one.
func checkCount(t *testing.T, b *Backend, state metastorage.QueueState, want int, when string) {
	t.Helper()
	if !state.Valid() {
		return
	}
	if err := b.WaitCounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := b.GetStateCount(state); n != int64(want) {
		t.Errorf("GetStateCount(%v) %s = %d, want %d", state, when, n, want)
	}
}

// canRead reports whether this process can read path: root reads a file
// with mode 000.
func canRead(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func entryType(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fi.Mode().Type()
}

// hasFinding reports whether findings hold one of kind (any kind if "")
// for path.
func hasFinding(findings []Finding, kind FindingKind, path string) bool {
	for _, f := range findings {
		if (kind == "" || f.Kind == kind) && f.Path == path {
			return true
		}
	}
	return false
}
