package filesystem

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// copyFixture copies the shared fixture name into a new temporary
// directory and returns the copy's path: recovery changes what it opens.
func copyFixture(t *testing.T, name string) string { return spooltest.Fixture(t, name) }

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadCleanFixture(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := copyFixture(t, "clean-spool")
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	zero := mustTime(t, "0001-01-01T00:00:00Z")
	want := []metastorage.MessageMetadata{
		{ID: "0f8fad5b-d9cb-469f-a165-70867728950e", State: metastorage.StateIncoming, MaxAttempts: 5,
			NextRetry: zero, Created: mustTime(t, "2026-11-20T09:30:00.123456789+01:00"),
			Updated: mustTime(t, "2026-11-25T19:32:02.124629291Z"), Size: 2048, Priority: 5,
			Headers: map[string]string{"from": "billing@example.org", "subject": "Invoice 2026-11", "to": "alice@example.com"}},
		{ID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", State: metastorage.StateActive, Attempts: 1, MaxAttempts: 5,
			NextRetry: zero, Created: mustTime(t, "2026-11-20T09:31:00.123456789+01:00"),
			Updated: mustTime(t, "2026-11-25T19:32:02.125618649Z"), Size: 512, Priority: 1,
			Headers: map[string]string{"to": "bob@example.net"}},
		{ID: "msg-123", State: metastorage.StateDeferred, Attempts: 2, MaxAttempts: 3,
			NextRetry: mustTime(t, "2026-11-20T11:30:00.123456789+01:00"), Created: mustTime(t, "2026-11-20T08:30:00.123456789+01:00"),
			Updated: mustTime(t, "2026-11-25T19:32:02.126292778Z"), LastError: "451 4.7.1 greylisted, try again later",
			Size: 1024, Priority: 5, Headers: map[string]string{"from": "sender@example.com", "to": "user@example.com"},
			RetryPolicyName: "smtp-default"},
		{ID: "held-42", State: metastorage.StateHold, MaxAttempts: 3, NextRetry: zero,
			Created: mustTime(t, "2026-11-19T09:30:00.123456789+01:00"), Updated: mustTime(t, "2026-11-25T19:32:02.127091009Z"),
			Size: 99, Headers: map[string]string{}},
		{ID: "bounce-7", State: metastorage.StateBounce, Attempts: 3, MaxAttempts: 3, NextRetry: zero,
			Created: mustTime(t, "2026-11-18T09:30:00.123456789+01:00"), Updated: mustTime(t, "2026-11-25T19:32:02.127677954Z"),
			LastError: "550 5.1.1 user unknown", Size: 4096, Priority: 9, Headers: map[string]string{"to": "nobody@example.com"}},
		{ID: "archived-1", State: metastorage.StateArchived, Attempts: 1, MaxAttempts: 3, NextRetry: zero,
			Created: mustTime(t, "2026-11-17T09:30:00.123456789+01:00"), Updated: mustTime(t, "2026-11-25T19:32:02.128509255Z"),
			Size: 10},
	}
	for _, w := range want {
		got, err := b.GetMeta(context.Background(), w.ID)
		if err != nil {
			t.Errorf("GetMeta(%s): %v", w.ID, err)
			continue
		}
		if !spooltest.SameRecord(got, w) {
			t.Errorf("GetMeta(%s):\n got %+v\nwant %+v", w.ID, got, w)
		}
		if got.Headers == nil && w.Headers != nil {
			t.Errorf("GetMeta(%s): Headers nil, want empty non-nil map", w.ID)
		}
	}
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitCounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range metastorage.States() {
		if n := b.GetStateCount(s); n != 1 {
			t.Errorf("GetStateCount(%s) = %d, want 1", s, n)
		}
	}
}

func TestRecoverCrashedFixture(t *testing.T) {
	spooltest.NeedDisk(t)
	dir := copyFixture(t, "crashed-spool")
	heldBefore, err := os.ReadFile(filepath.Join(dir, "hold", "held-42.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitCounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	states := map[string]metastorage.QueueState{
		"0f8fad5b-d9cb-469f-a165-70867728950e": metastorage.StateActive, // the newer copy
		"7c9e6679-7425-40de-944b-e07fc1f90ae7": metastorage.StateActive,
		"msg-123":                              metastorage.StateDeferred,
		"held-42":                              metastorage.StateHold,
		"bounce-7":                             metastorage.StateBounce,
		"archived-1":                           metastorage.StateArchived,
	}
	for id, want := range states {
		md, err := b.GetMeta(ctx, id)
		if err != nil || md.State != want {
			t.Errorf("GetMeta(%s) = state %v, %v; want %v", id, md.State, err, want)
		}
	}
	dup, _ := b.GetMeta(ctx, "0f8fad5b-d9cb-469f-a165-70867728950e")
	if !dup.Updated.Equal(mustTime(t, "2026-11-25T19:40:00.5Z")) {
		t.Errorf("kept copy has Updated %v, want the newer 2026-11-25T19:40:00.5Z", dup.Updated)
	}
	for _, id := range []string{"truncated-9", "empty-3"} {
		if _, err := b.GetMeta(ctx, id); !errors.Is(err, metastorage.ErrMessageNotFound) {
			t.Errorf("GetMeta(%s) = %v, want ErrMessageNotFound after it was set aside", id, err)
		}
	}
	exist := []string{
		"corrupt/deferred/truncated-9.json",
		"corrupt/incoming/empty-3.json",
		"corrupt/incoming/0f8fad5b-d9cb-469f-a165-70867728950e.json",
	}
	for _, p := range exist {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v, want the file set aside there", p, err)
		}
	}
	gone := []string{"incoming/.tmp.abc123", "deferred/msg-123.json.tmp.1a2b3c4d",
		"incoming/0f8fad5b-d9cb-469f-a165-70867728950e.json", "deferred/truncated-9.json", "incoming/empty-3.json"}
	for _, p := range gone {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it gone", p, err)
		}
	}
	// held-42's State field names incoming: it is in hold, its Updated
	// its file's time, and recovery leaves the file as it was.
	held := filepath.Join(dir, "hold", "held-42.json")
	raw, err := os.ReadFile(held)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, heldBefore) {
		t.Errorf("%s = %q after recovery, want it unchanged %q", held, raw, heldBefore)
	}
	fi, err := os.Lstat(held)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := b.GetMeta(ctx, "held-42"); err != nil || md.State != metastorage.StateHold || !md.Updated.Equal(fi.ModTime()) {
		t.Errorf("GetMeta(held-42) = %+v, %v; want it in hold, Updated %v (its file's time)", md, err, fi.ModTime())
	}
	for s, want := range map[metastorage.QueueState]int64{
		metastorage.StateIncoming: 0, metastorage.StateActive: 2, metastorage.StateDeferred: 1,
		metastorage.StateHold: 1, metastorage.StateBounce: 1, metastorage.StateArchived: 1,
	} {
		if n := b.GetStateCount(s); n != want {
			t.Errorf("GetStateCount(%s) = %d, want %d", s, n, want)
		}
	}
	// A second scan finds nothing left to do.
	findings, err := b.Check(ctx, false)
	if err != nil || len(findings) != 0 {
		t.Errorf("Check after recovery = %v, %v; want nothing", findings, err)
	}
}
