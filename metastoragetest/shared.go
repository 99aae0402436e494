package metastoragetest

import (
	"fmt"
	"testing"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// sharedBackends is the number of Backends the shared tests open on one
// store.
const sharedBackends = 4

// testSharedVisibility checks that what one Backend writes, another reads:
// stores, updates, moves and deletes, through GetMeta, ListMessages and
// iterators.
func testSharedVisibility(t *testing.T, open func() ms.Backend) {
	a, b := open(), open()
	ctx := t.Context()
	const id = "msg-shared"

	m := sample(1, ms.StateIncoming)
	mustStore(t, a, id, m)
	if got, ok := get(t, b, id); ok {
		checkRecord(t, "GetMeta through the second Backend after StoreMeta through the first", id, got, expect(id, m))
	}

	u := sample(2, ms.StateDeferred)
	if err := b.UpdateMeta(ctx, id, u); err != nil {
		t.Fatalf("UpdateMeta %q through the second Backend: got %v, want nil", id, err)
	}
	u.Created = m.Created
	if got, ok := get(t, a, id); ok {
		checkRecord(t, "GetMeta through the first Backend after UpdateMeta through the second", id, got, expect(id, u))
	}

	if err := a.MoveToState(ctx, id, ms.StateDeferred, ms.StateHold); err != nil {
		t.Fatalf("MoveToState %q through the first Backend: got %v, want nil", id, err)
	}
	checkConflict(t, fmt.Sprintf("MoveToState %q from deferred through the second Backend after the first moved it to hold", id),
		b.MoveToState(ctx, id, ms.StateDeferred, ms.StateActive), "hold")
	u.State = ms.StateHold
	if got, ok := get(t, b, id); ok {
		checkRecord(t, "GetMeta through the second Backend after MoveToState through the first", id, got, expect(id, u))
	}
	checkList(t, b, ms.StateHold, []string{id})
	checkList(t, b, ms.StateDeferred, nil)
	checkIterated(t, b, ms.StateHold, []string{id})

	if err := b.DeleteMeta(ctx, id); err != nil {
		t.Fatalf("DeleteMeta %q through the second Backend: got %v, want nil", id, err)
	}
	_, err := a.GetMeta(ctx, id)
	wantErr(t, fmt.Sprintf("GetMeta %q through the first Backend after DeleteMeta through the second", id), err, ms.ErrMessageNotFound)
	wantErr(t, fmt.Sprintf("DeleteMeta %q through the first Backend after DeleteMeta through the second", id), a.DeleteMeta(ctx, id), ms.ErrMessageNotFound)
	checkPlaces(t, a, nil, "deleting the only message")
}

// testSharedMoveRace races goroutines moving the same messages through
// several Backends: exactly one wins each message, and every Backend sees it
// in the winner's target.
func testSharedMoveRace(t *testing.T, open func() ms.Backend) {
	backends := make([]ms.Backend, sharedBackends)
	for i := range backends {
		backends[i] = open()
	}
	want := raceMoves(t, backends)
	for i, b := range backends {
		checkPlaces(t, b, want, fmt.Sprintf("%d goroutines on %d Backends raced MoveToState (seen through Backend %d)", raceGoroutines, sharedBackends, i))
	}
}

// testSharedClose checks that closing one Backend leaves another on the same
// store working, its open iterators included, and that a Backend opened
// afterwards sees what the other wrote.
func testSharedClose(t *testing.T, open func() ms.Backend) {
	a, b := open(), open()
	ctx := t.Context()
	first := ids("close", 3)
	for i, id := range first {
		mustStore(t, a, id, sample(i, ms.StateIncoming))
	}
	it, err := b.NewMessageIterator(ctx, ms.StateIncoming, 1)
	if err != nil {
		t.Fatalf("NewMessageIterator: got %v, want nil", err)
	}
	defer it.Close()
	if err := a.Close(); err != nil {
		t.Fatalf("Close of the first Backend: got %v, want nil", err)
	}
	_, err = a.GetMeta(ctx, first[0])
	wantErr(t, "GetMeta through the closed Backend", err, ms.ErrBackendClosed)

	seen := make(map[string]int)
	for _, m := range drain(t, it, "iterating through the second Backend after the first was closed") {
		seen[m.ID]++
	}
	checkOnce(t, "iterating through the second Backend after the first was closed", seen, first)

	const id = "msg-after-close"
	mustStore(t, b, id, sample(9, ms.StateIncoming))
	if err := b.MoveToState(ctx, id, ms.StateIncoming, ms.StateActive); err != nil {
		t.Errorf("MoveToState %q through the second Backend: got %v, want nil", id, err)
	}
	if err := b.DeleteMeta(ctx, first[0]); err != nil {
		t.Errorf("DeleteMeta %q through the second Backend: got %v, want nil", first[0], err)
	}
	want := statesOf(ms.StateIncoming, first[1:]...)
	want[id] = ms.StateActive
	checkPlaces(t, b, want, "closing the first Backend and writing through the second")
	checkPlaces(t, open(), want, "closing the first Backend and writing through the second (seen through a third)")
}

// testSharedReopen checks that records, the hostile IDs that the backend
// accepts included, read the same through a Backend opened after the one
// that wrote them was closed.
func testSharedReopen(t *testing.T, open func() ms.Backend) {
	a := open()
	recs := make(map[string]ms.MessageMetadata)
	for id, m := range roundTripRecords() {
		mustStore(t, a, id, m)
	}
	for i, id := range HostileIDs() {
		m := sample(i, ms.QueueState(i%ms.NumStates))
		err := safely(func() error { return a.StoreMeta(t.Context(), id, m) })
		if stored(t, id, err) {
			recs[id] = m
		}
	}
	for id := range roundTripRecords() {
		if m, ok := get(t, a, id); ok {
			recs[id] = m
		}
	}
	want := make(map[string]ms.QueueState)
	for id, m := range recs {
		want[id] = m.State
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	b := open()
	checkRecords(t, b, recs, "reopening")
	checkPlaces(t, b, want, "reopening")
}
