package metastoragetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// testMove moves a message through every state and checks that each move
// changes its state and Updated and keeps every other field.
func testMove(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id = "msg-move"
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	prev, ok := get(t, b, id)
	if !ok {
		return
	}
	from := ms.StateIncoming
	for _, to := range append(ms.States()[1:], ms.StateIncoming) {
		step := fmt.Sprintf("MoveToState %q from %s to %s", id, from, to)
		before := time.Now()
		if err := b.MoveToState(ctx, id, from, to); err != nil {
			t.Fatalf("%s: got %v, want nil", step, err)
		}
		after := time.Now()
		from = to
		got, ok := get(t, b, id)
		if ok {
			w := prev
			w.State = to
			checkRecord(t, step+": GetMeta", id, got, w)
			checkNow(t, step+": Updated", got.Updated, before, after)
			if got.Updated.Before(prev.Updated) {
				t.Errorf("%s: Updated: got %s, want not before the previous %s", step, fmtTime(got.Updated), fmtTime(prev.Updated))
			}
			prev = got
		}
		checkStates(t, b, map[string]ms.QueueState{id: to}, step)
	}
}

// testMoveConflict checks that MoveToState on a message in another state, or
// on a missing message, fails with ErrStateConflict, says which case it is,
// and changes nothing.
func testMoveConflict(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id, missing, gone = "msg-conflict", "msg-missing", "msg-deleted"
	mustStore(t, b, id, sample(1, ms.StateDeferred))
	mustStore(t, b, gone, sample(2, ms.StateIncoming))
	if err := b.DeleteMeta(ctx, gone); err != nil {
		t.Fatalf("DeleteMeta %q: got %v, want nil", gone, err)
	}
	before, ok := get(t, b, id)
	if !ok {
		return
	}
	for _, from := range ms.States() {
		if from == ms.StateDeferred {
			continue
		}
		to := ms.StateActive
		if from == to {
			to = ms.StateHold
		}
		op := fmt.Sprintf("MoveToState %q from %s to %s (it is in deferred)", id, from, to)
		checkConflict(t, op, b.MoveToState(ctx, id, from, to), "deferred")
		for _, m := range []string{missing, gone} {
			op := fmt.Sprintf("MoveToState %q from %s to %s (it does not exist)", m, from, to)
			checkConflict(t, op, b.MoveToState(ctx, m, from, to), "not found")
		}
	}
	checkUnchanged(t, b, id, before, "conflicting moves")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateDeferred}, "conflicting moves")
}

// checkConflict checks that err wraps ErrStateConflict and its text contains
// which, the name of the message's actual state or "not found".
func checkConflict(t *testing.T, op string, err error, which string) {
	t.Helper()
	if !wantErr(t, op, err, ms.ErrStateConflict) {
		return
	}
	if !strings.Contains(err.Error(), which) {
		t.Errorf("%s: got error %q, want one that says %q", op, err, which)
	}
}

// testMoveSameState checks MoveToState with fromState == toState: nil when
// the message is in that state, ErrStateConflict otherwise, and no change
// but possibly Updated.
func testMoveSameState(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id, missing = "msg-same", "msg-missing"
	mustStore(t, b, id, sample(1, ms.StateHold))
	before, ok := get(t, b, id)
	if !ok {
		return
	}
	op := fmt.Sprintf("MoveToState %q from hold to hold", id)
	if err := b.MoveToState(ctx, id, ms.StateHold, ms.StateHold); err != nil {
		t.Errorf("%s: got %v, want nil", op, err)
	}
	if got, ok := get(t, b, id); ok {
		checkRecord(t, op+": GetMeta", id, got, before)
		if got.Updated.Before(before.Updated) {
			t.Errorf("%s: Updated: got %s, want not before the previous %s", op, fmtTime(got.Updated), fmtTime(before.Updated))
		}
		before = got
	}
	op = fmt.Sprintf("MoveToState %q from incoming to incoming (it is in hold)", id)
	checkConflict(t, op, b.MoveToState(ctx, id, ms.StateIncoming, ms.StateIncoming), "hold")
	op = fmt.Sprintf("MoveToState %q from hold to hold (it does not exist)", missing)
	checkConflict(t, op, b.MoveToState(ctx, missing, ms.StateHold, ms.StateHold), "not found")
	checkUnchanged(t, b, id, before, "conflicting moves")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateHold}, "moves to the same state")
}

// testMoveInvalidState checks that MoveToState with a state out of range
// fails with ErrInvalidState and changes nothing.
func testMoveInvalidState(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id = "msg-invalid-move"
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	before, ok := get(t, b, id)
	if !ok {
		return
	}
	for _, c := range [][2]ms.QueueState{
		{-1, ms.StateActive},
		{ms.NumStates, ms.StateActive},
		{ms.StateIncoming, -1},
		{ms.StateIncoming, ms.NumStates},
		{ms.StateIncoming, 1 << 20},
		{-1, -1},
	} {
		op := fmt.Sprintf("MoveToState %q from %d to %d", id, int(c[0]), int(c[1]))
		err := safely(func() error { return b.MoveToState(ctx, id, c[0], c[1]) })
		wantErr(t, op, err, ms.ErrInvalidState)
	}
	checkUnchanged(t, b, id, before, "moves with invalid states")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateIncoming}, "moves with invalid states")
}
