package metastoragetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// iterState is the state the iterator tests iterate; iterOther is where
// they move messages out to.
const (
	iterState = ms.StateActive
	iterOther = ms.StateDeferred
)

// testIterate checks that an iterator returns each message of its state
// exactly once, as GetMeta returns it, whatever the batch size, and nothing
// from other states.
func testIterate(t *testing.T, open opener) {
	b := open(t)
	want := make(map[string]ms.MessageMetadata)
	for i, id := range ids("iter", 7) {
		mustStore(t, b, id, sample(i, iterState))
		want[id], _ = get(t, b, id)
	}
	for i, s := range []ms.QueueState{ms.StateIncoming, iterOther, ms.StateArchived} {
		mustStore(t, b, fmt.Sprintf("iter-decoy-%d", i), sample(i, s))
	}
	for _, batch := range []int{-1, 0, 1, 3, len(want), 100} {
		what := fmt.Sprintf("iterating %s with batch size %d", iterState, batch)
		seen := make(map[string]int)
		for _, m := range iterate(t, b, iterState, batch) {
			seen[m.ID]++
			w, ok := want[m.ID]
			if !ok {
				t.Errorf("%s: got %q (in %s), want only messages in %s", what, m.ID, m.State, iterState)
				continue
			}
			if seen[m.ID] > 1 {
				continue
			}
			for _, d := range diffRecord(m, w) {
				t.Errorf("%s: %q: %s", what, m.ID, d)
			}
			if s := diffTime(m.Updated, w.Updated); s != "" {
				t.Errorf("%s: %q: Updated: %s", what, m.ID, s)
			}
		}
		checkOnce(t, what, seen, sortedKeys(want))
	}
}

// checkOnce reports every one of ids that seen does not count exactly once.
func checkOnce(t *testing.T, what string, seen map[string]int, ids []string) {
	t.Helper()
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s: %q returned %d times, want exactly once", what, id, seen[id])
		}
	}
}

// testIterateEnd checks that Next reports the end with the zero record and
// hasMore false, again on every further call.
func testIterateEnd(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	for i, id := range ids("end", 2) {
		mustStore(t, b, id, sample(i, iterState))
	}
	for _, s := range []ms.QueueState{iterState, ms.StateBounce} {
		it, err := b.NewMessageIterator(ctx, s, 1)
		if err != nil {
			t.Fatalf("NewMessageIterator %s: got %v, want nil", s, err)
		}
		what := "iterating " + s.String()
		drain(t, it, what)
		for i := range 3 {
			m, ok, err := it.Next(ctx)
			if err != nil || ok || len(diffRecord(m, ms.MessageMetadata{})) > 0 || !m.Updated.IsZero() {
				t.Errorf("%s: Next #%d after the end: got (%+v, %t, %v), want (MessageMetadata{}, false, nil)", what, i+1, m, ok, err)
			}
		}
		if err := it.Close(); err != nil {
			t.Errorf("%s: Close: got %v, want nil", what, err)
		}
	}
}

// testIterateClose checks that Close is idempotent and that Next after it
// fails.
func testIterateClose(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	for i, id := range ids("close", 3) {
		mustStore(t, b, id, sample(i, iterState))
	}
	for _, reads := range []int{0, 1, 4} {
		what := fmt.Sprintf("iterator closed after %d calls of Next", reads)
		it, err := b.NewMessageIterator(ctx, iterState, 2)
		if err != nil {
			t.Fatalf("NewMessageIterator: got %v, want nil", err)
		}
		for range reads {
			if _, _, err := it.Next(ctx); err != nil {
				t.Fatalf("%s: Next: got %v, want nil", what, err)
			}
		}
		if err := it.Close(); err != nil {
			t.Errorf("%s: Close: got %v, want nil", what, err)
		}
		if m, ok, err := it.Next(ctx); err == nil {
			t.Errorf("%s: Next: got (%q, %t, nil), want an error", what, m.ID, ok)
		}
		if err := safely(it.Close); err != nil {
			t.Errorf("%s: second Close: got %v, want nil", what, err)
		}
	}
}

// testIterateBackendClose checks that Next fails with ErrBackendClosed after
// the backend's Close, in the middle of an iteration and after its end.
func testIterateBackendClose(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	for i, id := range ids("bclose", 4) {
		mustStore(t, b, id, sample(i, iterState))
	}
	middle, err := b.NewMessageIterator(ctx, iterState, 1)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	if _, ok, err := middle.Next(ctx); err != nil || !ok {
		t.Fatalf("Next: got (%t, %v), want (true, nil)", ok, err)
	}
	ended, err := b.NewMessageIterator(ctx, iterState, 0)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	drain(t, ended, "iterating "+iterState.String())

	if err := b.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	for _, c := range []struct {
		what string
		it   ms.MessageIterator
	}{{"in the middle", middle}, {"at the end", ended}} {
		what, it := c.what, c.it
		for range 2 {
			var err error
			_ = safely(func() error { _, _, err = it.Next(ctx); return nil })
			wantErr(t, "Next after the backend's Close, "+what, err, ms.ErrBackendClosed)
		}
		_ = safely(it.Close)
	}
}

// testIterateContext checks that a done context makes NewMessageIterator
// and Next return ctx.Err().
func testIterateContext(t *testing.T, open opener) {
	b := open(t)
	mustStore(t, b, "ctx-1", sample(1, iterState))
	_, err := b.NewMessageIterator(canceled(t), iterState, 0)
	wantErr(t, "NewMessageIterator with a canceled context", err, context.Canceled)

	it, err := b.NewMessageIterator(t.Context(), iterState, 0)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	defer it.Close()
	_, _, err = it.Next(canceled(t))
	wantErr(t, "Next with a canceled context", err, context.Canceled)
	past, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	_, _, err = it.Next(past)
	wantErr(t, "Next with an expired deadline", err, context.DeadlineExceeded)
}

// testIterateInvalidState checks that NewMessageIterator reports a state out
// of range with ErrInvalidState.
func testIterateInvalidState(t *testing.T, open opener) {
	b := open(t)
	for _, s := range []ms.QueueState{-1, ms.NumStates} {
		err := safely(func() error {
			it, err := b.NewMessageIterator(t.Context(), s, 0)
			if err == nil {
				it.Close()
			}
			return err
		})
		wantErr(t, fmt.Sprintf("NewMessageIterator state %d", int(s)), err, ms.ErrInvalidState)
	}
}

// moverFixture stores stayers in iterState, and movers alternately in
// iterState and iterOther. It returns the states.
func moverFixture(t *testing.T, b ms.Backend, stayers, movers []string) map[string]ms.QueueState {
	t.Helper()
	want := make(map[string]ms.QueueState)
	for i, id := range stayers {
		mustStore(t, b, id, sample(i, iterState))
		want[id] = iterState
	}
	for i, id := range movers {
		s := iterState
		if i%2 == 1 {
			s = iterOther
		}
		mustStore(t, b, id, sample(i, s))
		want[id] = s
	}
	return want
}

// toggle returns the state a mover in s moves to.
func toggle(s ms.QueueState) ms.QueueState {
	if s == iterState {
		return iterOther
	}
	return iterState
}

// interleaveSteps is the number of calls of Next in testIterateInterleaved
// before which messages change; later calls see no more changes, so that the
// iteration ends whatever order the backend returns messages in.
const interleaveSteps = 16

// testIterateInterleaved iterates while, between two calls of Next,
// messages are moved out of and into the state and created and deleted in
// it. The messages that stay in the state are returned exactly once, no
// record is returned with another State, and no message deleted before the
// iteration began is returned.
func testIterateInterleaved(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	stayers, movers := ids("stay", 10), ids("move", 8)
	want := moverFixture(t, b, stayers, movers)
	for i, id := range ids("gone", 2) {
		mustStore(t, b, id, sample(i, iterState))
		if err := b.DeleteMeta(ctx, id); err != nil {
			t.Fatalf("DeleteMeta %q: got %v, want nil", id, err)
		}
	}

	it, err := b.NewMessageIterator(ctx, iterState, 2)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	defer it.Close()
	what := "iterating " + iterState.String() + " while other messages change"
	seen := make(map[string]int)
	for k := 0; ; k++ {
		if k == maxIterations {
			t.Fatalf("%s: Next did not report the end after %d calls", what, k)
		}
		if k < interleaveSteps {
			interleave(t, b, k, movers, want)
		}
		m, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("%s: Next: got %v, want nil", what, err)
		}
		if !ok {
			break
		}
		seen[m.ID]++
		checkIteratedRecord(t, what, m)
	}
	checkOnce(t, what, seen, stayers)
	checkStates(t, b, want, what)
}

// checkIteratedRecord checks a record that an iterator over iterState
// returned while the test changed messages: it is in iterState, and it is
// one of the messages the test made and did not delete before the
// iteration.
func checkIteratedRecord(t *testing.T, what string, m ms.MessageMetadata) {
	t.Helper()
	if m.State != iterState {
		t.Errorf("%s: Next returned %q with State %s, want %s", what, m.ID, m.State, iterState)
	}
	known := false
	for _, prefix := range []string{"stay-", "move-", "new-", "churn-"} {
		known = known || strings.HasPrefix(m.ID, prefix)
	}
	if !known {
		t.Errorf("%s: Next returned %q, which was deleted before the iteration began or never stored", what, m.ID)
	}
}

// interleave makes the changes of step k of testIterateInterleaved and
// records them in want: it moves a mover to the other state, creates a
// message in iterState and deletes the one the step before created.
func interleave(t *testing.T, b ms.Backend, k int, movers []string, want map[string]ms.QueueState) {
	t.Helper()
	ctx := t.Context()
	mover := movers[k%len(movers)]
	if err := b.MoveToState(ctx, mover, want[mover], toggle(want[mover])); err != nil {
		t.Fatalf("MoveToState %q: got %v, want nil", mover, err)
	}
	want[mover] = toggle(want[mover])

	id := fmt.Sprintf("new-%03d", k)
	mustStore(t, b, id, sample(k, iterState))
	want[id] = iterState
	if k > 0 {
		prev := fmt.Sprintf("new-%03d", k-1)
		if err := b.DeleteMeta(ctx, prev); err != nil {
			t.Fatalf("DeleteMeta %q: got %v, want nil", prev, err)
		}
		delete(want, prev)
	}
}

// testIterateWhileUpdating iterates while, between two calls of Next, the
// messages being iterated are rewritten in place by UpdateMeta and StoreMeta
// without leaving the state. Each stays in the state for the whole
// iteration, so each is returned exactly once.
func testIterateWhileUpdating(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	stayers := ids("stay", 10)
	for i, id := range stayers {
		mustStore(t, b, id, sample(i, iterState))
	}
	it, err := b.NewMessageIterator(ctx, iterState, 2)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	defer it.Close()
	what := "iterating " + iterState.String() + " while its messages are rewritten in it"
	seen := make(map[string]int)
	for k := 0; ; k++ {
		if k == maxIterations {
			t.Fatalf("%s: Next did not report the end after %d calls", what, k)
		}
		if k < interleaveSteps {
			id := stayers[k%len(stayers)]
			if err := b.UpdateMeta(ctx, id, sample(k+100, iterState)); err != nil {
				t.Fatalf("UpdateMeta %q: got %v, want nil", id, err)
			}
			id = stayers[(k+len(stayers)/2)%len(stayers)]
			mustStore(t, b, id, sample(k+200, iterState))
		}
		m, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("%s: Next: got %v, want nil", what, err)
		}
		if !ok {
			break
		}
		seen[m.ID]++
		checkIteratedRecord(t, what, m)
	}
	checkOnce(t, what, seen, stayers)
	checkStates(t, b, statesOf(iterState, stayers...), what)
}

// churn runs each round in its own goroutine, again and again until the
// returned stop is called or the round returns false. churn returns once
// every round has completed once; stop returns once every goroutine has
// ended, and may be called more than once.
func churn(rounds ...func() bool) (stop func()) {
	quit := make(chan struct{})
	var ready, done sync.WaitGroup
	for _, round := range rounds {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ok := round()
			ready.Done()
			for ok {
				select {
				case <-quit:
					return
				default:
				}
				ok = round()
			}
		}()
	}
	ready.Wait()
	return sync.OnceFunc(func() {
		close(quit)
		done.Wait()
	})
}

// testIterateConcurrent iterates while other goroutines move messages out
// of and into the state and create and delete messages in it. The messages that stay in the state are returned
// exactly once, and no record is returned whose state is another one.
func testIterateConcurrent(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	stayers, movers := ids("stay", 30), ids("move", 16)
	want := moverFixture(t, b, stayers, movers)

	const moverGoroutines = 4
	var rounds []func() bool
	states := make([]map[string]ms.QueueState, moverGoroutines)
	for g := range moverGoroutines {
		mine := make(map[string]ms.QueueState)
		for i, id := range movers {
			if i%moverGoroutines == g {
				mine[id] = want[id]
			}
		}
		states[g] = mine
		rounds = append(rounds, func() bool {
			for id, s := range mine {
				if err := b.MoveToState(ctx, id, s, toggle(s)); err != nil {
					t.Errorf("MoveToState %q from %s: got %v, want nil", id, s, err)
					return false
				}
				mine[id] = toggle(s)
			}
			return true
		})
	}
	var k int
	rounds = append(rounds, func() bool {
		id := fmt.Sprintf("churn-%04d", k)
		k++
		if err := b.StoreMeta(ctx, id, sample(k, iterState)); err != nil {
			t.Errorf("StoreMeta %q: got %v, want nil", id, err)
			return false
		}
		if err := b.DeleteMeta(ctx, id); err != nil {
			t.Errorf("DeleteMeta %q: got %v, want nil", id, err)
			return false
		}
		return true
	})
	stop := churn(rounds...)
	defer stop()
	got := iterate(t, b, iterState, 4)
	stop()

	what := "iterating " + iterState.String() + " while other goroutines change other messages"
	seen := make(map[string]int)
	for _, m := range got {
		seen[m.ID]++
		checkIteratedRecord(t, what, m)
	}
	checkOnce(t, what, seen, stayers)
	for _, mine := range states {
		for id, s := range mine {
			want[id] = s
		}
	}
	checkStates(t, b, want, what)
}
