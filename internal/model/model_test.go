package model

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func TestMoveConflictTexts(t *testing.T) {
	ctx := t.Context()
	b := New()
	if err := b.StoreMeta(ctx, "msg-1", metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want string
	}{
		{"msg-1", "move msg-1: message is in state deferred, expected incoming: state conflict"},
		{"msg-2", "move msg-2: message not found in state incoming: state conflict"},
	} {
		err := b.MoveToState(ctx, tc.id, metastorage.StateIncoming, metastorage.StateActive)
		if !errors.Is(err, metastorage.ErrStateConflict) || err.Error() != tc.want {
			t.Errorf("MoveToState %s: got %v, want %q", tc.id, err, tc.want)
		}
	}
}

func TestUpdatedOnlyGrows(t *testing.T) {
	ctx := t.Context()
	b := New()
	future := time.Now().Add(time.Hour)
	if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{}); err != nil {
		t.Fatal(err)
	}
	// Pretend the clock went back by an hour relative to the stored record.
	b.mu.Lock()
	rec := b.msgs["m"]
	rec.Updated = future
	b.msgs["m"] = rec
	b.mu.Unlock()

	steps := []func() error{
		func() error { return b.StoreMeta(ctx, "m", metastorage.MessageMetadata{}) },
		func() error {
			return b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive})
		},
		func() error { return b.MoveToState(ctx, "m", metastorage.StateActive, metastorage.StateHold) },
	}
	prev := future
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := b.GetMeta(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if want := prev.Add(time.Nanosecond); !got.Updated.Equal(want) {
			t.Errorf("step %d: Updated: got %v, want %v", i, got.Updated, want)
		}
		prev = got.Updated
	}
}

func TestListTiesAscendingInBothOrders(t *testing.T) {
	ctx := t.Context()
	b := New()
	for _, id := range []string{"c", "a", "d", "b"} {
		p := 1
		if id == "d" {
			p = 2
		}
		if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	for order, want := range map[string][]string{
		"asc":  {"a", "b", "c", "d"},
		"desc": {"d", "a", "b", "c"},
	} {
		res, err := b.ListMessages(ctx, metastorage.StateIncoming, metastorage.MessageListOptions{SortBy: "priority", SortOrder: order})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.MessageIDs, want) {
			t.Errorf("ListMessages priority %s: got %q, want %q", order, res.MessageIDs, want)
		}
	}
}

func TestListRejectsUnknownOrder(t *testing.T) {
	_, err := New().ListMessages(t.Context(), metastorage.StateIncoming, metastorage.MessageListOptions{SortOrder: "up"})
	if err == nil {
		t.Error("ListMessages with SortOrder \"up\": got nil error, want an error")
	}
}

func TestHeadersCopied(t *testing.T) {
	ctx := t.Context()
	b := New()
	h := map[string]string{"k": "v"}
	if err := b.StoreMeta(ctx, "full", metastorage.MessageMetadata{Headers: h}); err != nil {
		t.Fatal(err)
	}
	h["k"] = "changed"
	got, _ := b.GetMeta(ctx, "full")
	got.Headers["k"] = "changed again"
	got, _ = b.GetMeta(ctx, "full")
	if got.Headers["k"] != "v" {
		t.Errorf("Headers[k]: got %q, want %q", got.Headers["k"], "v")
	}

	if err := b.StoreMeta(ctx, "empty", metastorage.MessageMetadata{Headers: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if err := b.StoreMeta(ctx, "nil", metastorage.MessageMetadata{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetMeta(ctx, "empty"); got.Headers == nil {
		t.Error("stored empty Headers: got nil, want empty non-nil map")
	}
	if got, _ := b.GetMeta(ctx, "nil"); got.Headers != nil {
		t.Errorf("stored nil Headers: got %v, want nil", got.Headers)
	}
}

func TestCanceledContextIsReturned(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := New().StoreMeta(ctx, "m", metastorage.MessageMetadata{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("StoreMeta with canceled context: got %v, want context.Canceled", err)
	}
}
