package metastoragetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// Sizes of the races: small enough for a backend that syncs every write.
const (
	raceMessages   = 50
	raceGoroutines = 8
)

// raceTargets are the states the racing goroutines move messages to, one
// per goroutine in turn, so that some goroutines race for the same target.
var raceTargets = []ms.QueueState{ms.StateActive, ms.StateDeferred, ms.StateHold, ms.StateBounce, ms.StateArchived}

// raceMoves stores raceMessages messages in incoming through backends[0],
// then starts raceGoroutines goroutines at once, goroutine g calling
// backends[g%len(backends)], that each try to move every message from
// incoming to their own target. It checks that each message has exactly one
// winner and that the losers got ErrStateConflict, and returns where the
// messages must be: in their winner's target.
func raceMoves(t *testing.T, backends []ms.Backend) map[string]ms.QueueState {
	t.Helper()
	msgs := ids("race", raceMessages)
	for i, id := range msgs {
		mustStore(t, backends[0], id, sample(i, ms.StateIncoming))
	}
	ctx := t.Context()
	var wins [raceGoroutines][raceMessages]bool
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range raceGoroutines {
		b := backends[g%len(backends)]
		to := raceTargets[g%len(raceTargets)]
		wg.Go(func() {
			<-start
			for k := range raceMessages {
				// Goroutines start at different messages and half of
				// them go backwards, so that they meet.
				i := (k + g*raceMessages/raceGoroutines) % raceMessages
				if g%2 == 1 {
					i = raceMessages - 1 - i
				}
				err := b.MoveToState(ctx, msgs[i], ms.StateIncoming, to)
				switch {
				case err == nil:
					wins[g][i] = true
				case !errors.Is(err, ms.ErrStateConflict):
					t.Errorf("MoveToState %q from incoming to %s: got %v, want nil or an error wrapping %q", msgs[i], to, err, ms.ErrStateConflict)
				}
			}
		})
	}
	close(start)
	wg.Wait()

	want := make(map[string]ms.QueueState)
	for i, id := range msgs {
		var winners []int
		for g := range raceGoroutines {
			if wins[g][i] {
				winners = append(winners, g)
			}
		}
		if len(winners) != 1 {
			t.Errorf("MoveToState %q raced by %d goroutines: got %d winners (goroutines %v), want exactly 1", id, raceGoroutines, len(winners), winners)
		}
		if len(winners) > 0 {
			want[id] = raceTargets[winners[len(winners)-1]%len(raceTargets)]
		} else {
			want[id] = ms.StateIncoming
		}
	}
	return want
}

// testConcurrentMove races goroutines moving the same messages to different
// states: exactly one wins each message, which ends in the winner's target.
func testConcurrentMove(t *testing.T, open opener) {
	b := open(t)
	want := raceMoves(t, []ms.Backend{b})
	checkStates(t, b, want, fmt.Sprintf("%d goroutines raced MoveToState", raceGoroutines))
}

// testConcurrentWriters has goroutines store, update, move and delete
// distinct messages at once while another lists every state, and checks
// that every message ends as its goroutine left it.
func testConcurrentWriters(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const perGoroutine = 6
	finals := make([]map[string]ms.QueueState, raceGoroutines)

	reader := func() bool {
		for _, s := range ms.States() {
			res, err := b.ListMessages(ctx, s, ms.MessageListOptions{})
			if err != nil {
				t.Errorf("ListMessages %s during writes: got %v, want nil", s, err)
				return false
			}
			seen := make(map[string]bool)
			for _, id := range res.MessageIDs {
				if seen[id] {
					t.Errorf("ListMessages %s during writes: %q listed twice", s, id)
				}
				seen[id] = true
			}
		}
		return true
	}
	stopReader := churn(reader)
	defer stopReader()

	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range raceGoroutines {
		final := make(map[string]ms.QueueState)
		finals[g] = final
		wg.Go(func() {
			<-start
			for i := range perGoroutine {
				id := fmt.Sprintf("w%d-%d", g, i)
				if s, ok := writeOne(t, b, id, g*perGoroutine+i); ok {
					final[id] = s
				}
			}
		})
	}
	close(start)
	wg.Wait()
	stopReader()

	want := make(map[string]ms.QueueState)
	for _, final := range finals {
		for id, s := range final {
			want[id] = s
		}
	}
	checkStates(t, b, want, fmt.Sprintf("%d goroutines wrote at once", raceGoroutines))
}

// writeOne stores, reads, updates, moves and, for every third n, deletes the
// message id, reporting failures. It returns the state the message is left
// in, and false if it was deleted.
func writeOne(t *testing.T, b ms.Backend, id string, n int) (ms.QueueState, bool) {
	ctx := t.Context()
	s1 := ms.QueueState(n % ms.NumStates)
	s2 := ms.QueueState((n + 1) % ms.NumStates)
	s3 := ms.QueueState((n + 2) % ms.NumStates)
	m := sample(n, s1)
	if err := b.StoreMeta(ctx, id, m); err != nil {
		t.Errorf("StoreMeta %q: got %v, want nil", id, err)
		return 0, false
	}
	if got, err := b.GetMeta(ctx, id); err != nil {
		t.Errorf("GetMeta %q: got %v, want nil", id, err)
	} else {
		checkRecord(t, "GetMeta", id, got, expect(id, m))
	}
	u := sample(n+1000, s2)
	if err := b.UpdateMeta(ctx, id, u); err != nil {
		t.Errorf("UpdateMeta %q: got %v, want nil", id, err)
		return s1, true
	}
	if err := b.MoveToState(ctx, id, s2, s3); err != nil {
		t.Errorf("MoveToState %q from %s to %s: got %v, want nil", id, s2, s3, err)
		return s2, true
	}
	if got, err := b.GetMeta(ctx, id); err != nil {
		t.Errorf("GetMeta %q: got %v, want nil", id, err)
	} else {
		u.State = s3
		u.Created = m.Created
		checkRecord(t, "GetMeta after UpdateMeta and MoveToState", id, got, expect(id, u))
	}
	if n%3 != 0 {
		return s3, true
	}
	if err := b.DeleteMeta(ctx, id); err != nil {
		t.Errorf("DeleteMeta %q: got %v, want nil", id, err)
		return s3, true
	}
	return 0, false
}
