package metastoragetest

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// Sizes of the compare-and-swap race: casGoroutines goroutines each add
// casIncrements to one message's Attempts.
const (
	casGoroutines = 8
	casIncrements = 25
)

// casBackend returns b as a CompareAndSwapBackend, or skips the test.
func casBackend(t *testing.T, b ms.Backend) ms.CompareAndSwapBackend {
	t.Helper()
	cb, ok := b.(ms.CompareAndSwapBackend)
	if !ok {
		t.Skip("the Backend does not implement metastorage.CompareAndSwapBackend")
	}
	return cb
}

// testCompareAndSwap checks UpdateMetaIf and DeleteMetaIf one call at a
// time: a record that differs from expected in any one field, or a missing
// message, gives ErrStateConflict and changes nothing; the record read last
// lets the change through.
func testCompareAndSwap(t *testing.T, open opener) {
	b := casBackend(t, open(t))
	ctx := t.Context()
	const id, missing = "msg-cas", "msg-cas-missing"
	mustStore(t, b, id, sample(1, ms.StateDeferred))
	stale, ok := get(t, b, id)
	if !ok {
		return
	}
	// A worker's acknowledged update after the read.
	worker := stale
	worker.Attempts++
	if err := b.UpdateMeta(ctx, id, worker); err != nil {
		t.Fatalf("UpdateMeta %q: got %v, want nil", id, err)
	}
	current, ok := get(t, b, id)
	if !ok {
		return
	}
	change := sample(2, ms.StateHold)
	checkConflict(t, fmt.Sprintf("UpdateMetaIf %q with the record read before an UpdateMeta", id), b.UpdateMetaIf(ctx, id, stale, change), "")
	checkConflict(t, fmt.Sprintf("DeleteMetaIf %q with the record read before an UpdateMeta", id), b.DeleteMetaIf(ctx, id, stale), "")
	for _, d := range []struct {
		field  string
		modify func(*ms.MessageMetadata)
	}{
		{"State", func(m *ms.MessageMetadata) { m.State = ms.StateIncoming }},
		{"Attempts", func(m *ms.MessageMetadata) { m.Attempts++ }},
		{"MaxAttempts", func(m *ms.MessageMetadata) { m.MaxAttempts++ }},
		{"NextRetry", func(m *ms.MessageMetadata) { m.NextRetry = m.NextRetry.Add(time.Nanosecond) }},
		{"Created", func(m *ms.MessageMetadata) { m.Created = m.Created.Add(time.Nanosecond) }},
		{"Updated", func(m *ms.MessageMetadata) { m.Updated = m.Updated.Add(-time.Nanosecond) }},
		{"LastError", func(m *ms.MessageMetadata) { m.LastError += "." }},
		{"Size", func(m *ms.MessageMetadata) { m.Size++ }},
		{"Priority", func(m *ms.MessageMetadata) { m.Priority++ }},
		{"Headers", func(m *ms.MessageMetadata) { m.Headers = map[string]string{"to": "other@example.com"} }},
		{"RetryPolicyName", func(m *ms.MessageMetadata) { m.RetryPolicyName += "-x" }},
	} {
		expected := current
		expected.Headers = maps.Clone(current.Headers)
		d.modify(&expected)
		op := fmt.Sprintf("UpdateMetaIf %q with an expected record whose %s differs", id, d.field)
		checkConflict(t, op, b.UpdateMetaIf(ctx, id, expected, change), "")
		op = fmt.Sprintf("DeleteMetaIf %q with an expected record whose %s differs", id, d.field)
		checkConflict(t, op, b.DeleteMetaIf(ctx, id, expected), "")
	}
	for _, from := range []ms.QueueState{ms.StateDeferred, ms.StateActive} {
		expected := current
		expected.State = from
		checkConflict(t, fmt.Sprintf("UpdateMetaIf %q expecting it in %s, where it is missing", missing, from), b.UpdateMetaIf(ctx, missing, expected, change), "not found")
		checkConflict(t, fmt.Sprintf("DeleteMetaIf %q expecting it in %s, where it is missing", missing, from), b.DeleteMetaIf(ctx, missing, expected), "not found")
	}
	checkUnchanged(t, b, id, current, "conflicting compare-and-swaps")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateDeferred}, "conflicting compare-and-swaps")

	// The same instants in another zone match.
	expected := current
	expected.NextRetry, expected.Created, expected.Updated = current.NextRetry.UTC(), current.Created.UTC(), current.Updated.UTC()
	before := time.Now()
	if err := b.UpdateMetaIf(ctx, id, expected, change); err != nil {
		t.Fatalf("UpdateMetaIf %q with the record GetMeta returned: got %v, want nil", id, err)
	}
	after := time.Now()
	got, ok := get(t, b, id)
	if ok {
		want := expect(id, change)
		want.Created = current.Created
		checkRecord(t, fmt.Sprintf("GetMeta %q after UpdateMetaIf", id), id, got, want)
		checkNow(t, fmt.Sprintf("Updated of %q after UpdateMetaIf", id), got.Updated, before, after)
		if !got.Updated.After(current.Updated) {
			t.Errorf("GetMeta %q after UpdateMetaIf: Updated %s, want it after the replaced record's %s", id, fmtTime(got.Updated), fmtTime(current.Updated))
		}
	}
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateHold}, "UpdateMetaIf into another state")
	checkConflict(t, fmt.Sprintf("DeleteMetaIf %q with the record it had before UpdateMetaIf", id), b.DeleteMetaIf(ctx, id, current), "")
	if err := b.DeleteMetaIf(ctx, id, got); err != nil {
		t.Fatalf("DeleteMetaIf %q with the record GetMeta returned: got %v, want nil", id, err)
	}
	if _, err := b.GetMeta(ctx, id); !errors.Is(err, ms.ErrMessageNotFound) {
		t.Errorf("GetMeta %q after DeleteMetaIf: got %v, want an error wrapping %q", id, err, ms.ErrMessageNotFound)
	}
	checkStates(t, b, nil, "DeleteMetaIf")
}

// testCompareAndSwapInvalid checks that UpdateMetaIf refuses what UpdateMeta
// refuses, with nothing changed.
func testCompareAndSwapInvalid(t *testing.T, open opener) {
	b := casBackend(t, open(t))
	ctx := t.Context()
	const id = "msg-cas-invalid"
	mustStore(t, b, id, sample(3, ms.StateIncoming))
	current, ok := get(t, b, id)
	if !ok {
		return
	}
	badState := current
	badState.State = ms.NumStates
	wantErr(t, fmt.Sprintf("UpdateMetaIf %q to state %d", id, int(ms.NumStates)), b.UpdateMetaIf(ctx, id, current, badState), ms.ErrInvalidState)
	badUTF8 := current
	badUTF8.LastError = "bad \xff"
	wantErr(t, fmt.Sprintf("UpdateMetaIf %q with an invalid LastError", id), b.UpdateMetaIf(ctx, id, current, badUTF8), ms.ErrInvalidRecord)
	checkUnchanged(t, b, id, current, "refused compare-and-swaps")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateIncoming}, "refused compare-and-swaps")
}

// testCompareAndSwapRace has goroutines add to one message's Attempts, each
// by reading the record and swapping in its successor until the swap
// succeeds. A compare-and-swap that is not atomic loses increments.
func testCompareAndSwapRace(t *testing.T, open opener) {
	casRace(t, []ms.Backend{open(t)})
}

// testSharedCompareAndSwapRace is testCompareAndSwapRace with the
// goroutines spread over several Backends on one store.
func testSharedCompareAndSwapRace(t *testing.T, open func() ms.Backend) {
	backends := make([]ms.Backend, sharedBackends)
	for i := range backends {
		backends[i] = open()
	}
	casRace(t, backends)
}

// casRace runs the race of testCompareAndSwapRace, goroutine g calling
// backends[g%len(backends)].
func casRace(t *testing.T, backends []ms.Backend) {
	t.Helper()
	cbs := make([]ms.CompareAndSwapBackend, len(backends))
	for i, b := range backends {
		cbs[i] = casBackend(t, b)
	}
	b := cbs[0]
	ctx := t.Context()
	const id = "msg-cas-race"
	start := sample(4, ms.StateActive)
	start.Attempts = 0
	mustStore(t, b, id, start)
	var wins [casGoroutines]int
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for g := range casGoroutines {
		b := cbs[g%len(cbs)]
		wg.Go(func() {
			<-begin
			// Each conflict of an atomic compare-and-swap is caused by
			// another goroutine's swap since the read, so a goroutine
			// has at most that many.
			conflicts := 0
			for wins[g] < casIncrements {
				if conflicts > (casGoroutines-1)*casIncrements {
					t.Errorf("UpdateMetaIf %q with the record GetMeta returned: %d conflicts, more than the %d swaps of the other goroutines", id, conflicts, (casGoroutines-1)*casIncrements)
					return
				}
				cur, err := b.GetMeta(ctx, id)
				if err != nil {
					t.Errorf("GetMeta %q: got %v, want nil", id, err)
					return
				}
				next := cur
				next.Attempts++
				err = b.UpdateMetaIf(ctx, id, cur, next)
				switch {
				case err == nil:
					wins[g]++
				case errors.Is(err, ms.ErrStateConflict):
					conflicts++
				default:
					t.Errorf("UpdateMetaIf %q: got %v, want nil or an error wrapping %q", id, err, ms.ErrStateConflict)
					return
				}
			}
		})
	}
	close(begin)
	wg.Wait()
	total := 0
	for _, n := range wins {
		total += n
	}
	if got, ok := get(t, b, id); ok && got.Attempts != total {
		t.Errorf("%d goroutines made %d successful UpdateMetaIf calls, each adding 1 to Attempts: got Attempts %d, want %d", casGoroutines, total, got.Attempts, total)
	}
}
