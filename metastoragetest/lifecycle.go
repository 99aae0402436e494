package metastoragetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// call is one call of a Backend method, made with ctx, for the tests that
// make every call.
type call struct {
	op string
	fn func(ctx context.Context, b ms.Backend) error
}

// everyCall returns one call of each Backend method that touches the
// message id, which is in incoming, or lists or iterates incoming.
func everyCall(id string) []call {
	return []call{
		{fmt.Sprintf("StoreMeta %q", id), func(ctx context.Context, b ms.Backend) error {
			return b.StoreMeta(ctx, id, sample(7, ms.StateHold))
		}},
		{"StoreMeta of a new message", func(ctx context.Context, b ms.Backend) error {
			return b.StoreMeta(ctx, "msg-new", sample(8, ms.StateIncoming))
		}},
		{fmt.Sprintf("GetMeta %q", id), func(ctx context.Context, b ms.Backend) error {
			_, err := b.GetMeta(ctx, id)
			return err
		}},
		{fmt.Sprintf("UpdateMeta %q", id), func(ctx context.Context, b ms.Backend) error {
			return b.UpdateMeta(ctx, id, sample(9, ms.StateActive))
		}},
		{fmt.Sprintf("DeleteMeta %q", id), func(ctx context.Context, b ms.Backend) error {
			return b.DeleteMeta(ctx, id)
		}},
		{fmt.Sprintf("MoveToState %q", id), func(ctx context.Context, b ms.Backend) error {
			return b.MoveToState(ctx, id, ms.StateIncoming, ms.StateActive)
		}},
		{"ListMessages incoming", func(ctx context.Context, b ms.Backend) error {
			_, err := b.ListMessages(ctx, ms.StateIncoming, ms.MessageListOptions{})
			return err
		}},
		{"NewMessageIterator incoming", func(ctx context.Context, b ms.Backend) error {
			it, err := b.NewMessageIterator(ctx, ms.StateIncoming, 0)
			if err == nil {
				it.Close()
			}
			return err
		}},
	}
}

// testContextDone checks that every call made with a canceled context, or
// one past its deadline, returns ctx.Err() and changes nothing.
func testContextDone(t *testing.T, open opener) {
	b := open(t)
	const id = "msg-ctx"
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	before, ok := get(t, b, id)
	if !ok {
		return
	}
	expired, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"a canceled context", canceled(t), context.Canceled},
		{"an expired deadline", expired, context.DeadlineExceeded},
	} {
		for _, call := range everyCall(id) {
			err := safely(func() error { return call.fn(c.ctx, b) })
			wantErr(t, call.op+" with "+c.name, err, c.want)
		}
	}
	checkUnchanged(t, b, id, before, "calls with a done context")
	checkStates(t, b, statesOf(ms.StateIncoming, id), "calls with a done context")
}

// testClose checks that Close is idempotent and that every call after it
// returns ErrBackendClosed.
func testClose(t *testing.T, open opener) {
	b := open(t)
	const id = "msg-close"
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	if err := b.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	for _, call := range everyCall(id) {
		err := safely(func() error { return call.fn(t.Context(), b) })
		wantErr(t, call.op+" after Close", err, ms.ErrBackendClosed)
	}
	for i := range 2 {
		if err := safely(b.Close); err != nil && !errors.Is(err, ms.ErrBackendClosed) {
			t.Errorf("Close #%d after Close: got %v, want nil or an error wrapping %q", i+2, err, ms.ErrBackendClosed)
		}
	}
	if c, ok := b.(ms.StateCounterBackend); ok {
		_ = safely(func() error { c.GetStateCount(ms.StateIncoming); return nil })
	}
}

// testCounts checks GetStateCount after every kind of call, successful or
// not, when the backend is a StateCounterBackend.
func testCounts(t *testing.T, open opener) {
	b := open(t)
	c, ok := b.(ms.StateCounterBackend)
	if !ok {
		t.Skip("the backend does not implement metastorage.StateCounterBackend")
	}
	for _, s := range []ms.QueueState{-1, ms.NumStates, 1 << 20} {
		var n int64
		if err := safely(func() error { n = c.GetStateCount(s); return nil }); err != nil || n != 0 {
			t.Errorf("GetStateCount %d: got (%d, %v), want 0", int(s), n, err)
		}
	}
	ctx := t.Context()
	want := make(map[string]ms.QueueState)
	type step struct {
		what    string
		do      func() error
		wantErr error // nil: the call must succeed
		apply   func()
	}
	set := func(id string, s ms.QueueState) func() { return func() { want[id] = s } }
	unset := func(id string) func() { return func() { delete(want, id) } }
	bad := sample(5, -1)
	steps := []step{
		{"StoreMeta a into incoming", func() error { return b.StoreMeta(ctx, "a", sample(1, ms.StateIncoming)) }, nil, set("a", ms.StateIncoming)},
		{"StoreMeta b into incoming", func() error { return b.StoreMeta(ctx, "b", sample(2, ms.StateIncoming)) }, nil, set("b", ms.StateIncoming)},
		{"StoreMeta c into hold", func() error { return b.StoreMeta(ctx, "c", sample(3, ms.StateHold)) }, nil, set("c", ms.StateHold)},
		{"StoreMeta a again into incoming", func() error { return b.StoreMeta(ctx, "a", sample(4, ms.StateIncoming)) }, nil, nil},
		{"StoreMeta b again into deferred", func() error { return b.StoreMeta(ctx, "b", sample(5, ms.StateDeferred)) }, nil, set("b", ms.StateDeferred)},
		{"UpdateMeta c in hold", func() error { return b.UpdateMeta(ctx, "c", sample(6, ms.StateHold)) }, nil, nil},
		{"UpdateMeta c into bounce", func() error { return b.UpdateMeta(ctx, "c", sample(7, ms.StateBounce)) }, nil, set("c", ms.StateBounce)},
		{"MoveToState a from incoming to active", func() error { return b.MoveToState(ctx, "a", ms.StateIncoming, ms.StateActive) }, nil, set("a", ms.StateActive)},
		{"MoveToState a from active to active", func() error { return b.MoveToState(ctx, "a", ms.StateActive, ms.StateActive) }, nil, nil},
		{"MoveToState a from incoming (it is in active)", func() error { return b.MoveToState(ctx, "a", ms.StateIncoming, ms.StateHold) }, ms.ErrStateConflict, nil},
		{"MoveToState of a missing message", func() error { return b.MoveToState(ctx, "z", ms.StateIncoming, ms.StateHold) }, ms.ErrStateConflict, nil},
		{"MoveToState a to an invalid state", func() error { return b.MoveToState(ctx, "a", ms.StateActive, -1) }, ms.ErrInvalidState, nil},
		{"UpdateMeta of a missing message", func() error { return b.UpdateMeta(ctx, "z", sample(8, ms.StateIncoming)) }, ms.ErrMessageNotFound, nil},
		{"UpdateMeta a into an invalid state", func() error { return b.UpdateMeta(ctx, "a", bad) }, ms.ErrInvalidState, nil},
		{"DeleteMeta of a missing message", func() error { return b.DeleteMeta(ctx, "z") }, ms.ErrMessageNotFound, nil},
		{"StoreMeta of a new message into an invalid state", func() error { return b.StoreMeta(ctx, "z", bad) }, ms.ErrInvalidState, nil},
		{"StoreMeta a into an invalid state", func() error { return b.StoreMeta(ctx, "a", bad) }, ms.ErrInvalidState, nil},
		{`StoreMeta ""`, func() error { return b.StoreMeta(ctx, "", sample(9, ms.StateIncoming)) }, ms.ErrInvalidMessageID, nil},
		{"StoreMeta with a canceled context", func() error { return b.StoreMeta(canceled(t), "z", sample(9, ms.StateIncoming)) }, context.Canceled, nil},
		{"DeleteMeta a with a canceled context", func() error { return b.DeleteMeta(canceled(t), "a") }, context.Canceled, nil},
		{"MoveToState a with a canceled context", func() error { return b.MoveToState(canceled(t), "a", ms.StateActive, ms.StateHold) }, context.Canceled, nil},
		{"DeleteMeta b from deferred", func() error { return b.DeleteMeta(ctx, "b") }, nil, unset("b")},
		{"MoveToState c from bounce to incoming", func() error { return b.MoveToState(ctx, "c", ms.StateBounce, ms.StateIncoming) }, nil, set("c", ms.StateIncoming)},
		{"DeleteMeta c from incoming", func() error { return b.DeleteMeta(ctx, "c") }, nil, unset("c")},
		{"DeleteMeta a from active", func() error { return b.DeleteMeta(ctx, "a") }, nil, unset("a")},
	}
	for _, s := range steps {
		err := safely(s.do)
		if s.wantErr == nil {
			if err != nil {
				t.Errorf("%s: got %v, want nil", s.what, err)
				continue
			}
		} else if !wantErr(t, s.what, err, s.wantErr) {
			continue
		}
		if s.apply != nil {
			s.apply()
		}
		checkCounts(t, b, want, s.what)
	}
	checkStates(t, b, want, "every kind of call")
}
