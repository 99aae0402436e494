package metastoragetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// HostileIDs returns message IDs that a backend must either store and
// return byte for byte or refuse with metastorage.ErrInvalidMessageID: the
// empty ID (which must be refused), path elements and separators, control
// and invalid UTF-8 bytes, names that look like escapes, temp or lock files
// or reserved device names, and long IDs.
func HostileIDs() []string {
	return []string{
		"", ".", "..", "../../etc/x", "a/b", `a\b`, "a\x00b", "ctl\x01",
		"/abs", "a/", "./a", "a b", "tab\there", "new\nline", "\x7f", "\xff\xfe", "ü-ñ-日本",
		"a%2Fb", "a%2fb", "a%5Cb", "a_b", "%", "%%", "%00",
		".tmp.x", ".tmp.0123abcd", ".locks", ".json", "x.json", "x.json.tmp.0a1b2c",
		"incoming", "corrupt", "CON", "nul.txt", "-rf", `*?<>|:"`,
		strings.Repeat("x", 250), strings.Repeat("y", 251), strings.Repeat("z", 300),
		strings.Repeat("../", 100),
	}
}

// idName is the subtest name for the i'th hostile ID: its index and its
// start, quoted, with '/' (which separates subtest names) shown as '∕'.
func idName(i int, id string) string {
	return strings.ReplaceAll(fmt.Sprintf("%d=%.24q", i, id), "/", "∕")
}

// testEmptyID checks that StoreMeta refuses the empty ID with
// ErrInvalidMessageID, and that the other calls refuse it or report it
// missing.
func testEmptyID(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	wantErr(t, `StoreMeta ""`, safely(func() error { return b.StoreMeta(ctx, "", sample(1, ms.StateIncoming)) }), ms.ErrInvalidMessageID)
	checkRefused(t, b, "")
	checkStates(t, b, nil, `calls with the ID ""`)
}

// checkRefused checks that calls with an ID that StoreMeta refused report it
// invalid or missing.
func checkRefused(t *testing.T, b ms.Backend, id string) {
	t.Helper()
	ctx := t.Context()
	err := safely(func() error { _, err := b.GetMeta(ctx, id); return err })
	wantAnyErr(t, fmt.Sprintf("GetMeta %q", id), err, ms.ErrInvalidMessageID, ms.ErrMessageNotFound)
	err = safely(func() error { return b.UpdateMeta(ctx, id, sample(2, ms.StateIncoming)) })
	wantAnyErr(t, fmt.Sprintf("UpdateMeta %q", id), err, ms.ErrInvalidMessageID, ms.ErrMessageNotFound)
	err = safely(func() error { return b.DeleteMeta(ctx, id) })
	wantAnyErr(t, fmt.Sprintf("DeleteMeta %q", id), err, ms.ErrInvalidMessageID, ms.ErrMessageNotFound)
	err = safely(func() error { return b.MoveToState(ctx, id, ms.StateIncoming, ms.StateActive) })
	wantAnyErr(t, fmt.Sprintf("MoveToState %q", id), err, ms.ErrInvalidMessageID, ms.ErrStateConflict)
}

// testHostileIDs takes each hostile ID in turn through every call: it is
// either refused with ErrInvalidMessageID or returned byte for byte by
// GetMeta, ListMessages and the iterator, and moved, updated and deleted
// like any other. The IDs share one backend, emptied before each.
func testHostileIDs(t *testing.T, open opener) {
	b := open(t)
	for i, id := range HostileIDs() {
		t.Run(idName(i, id), func(t *testing.T) {
			deleteAll(t, b)
			m := sample(i, ms.StateIncoming)
			err := safely(func() error { return b.StoreMeta(t.Context(), id, m) })
			if !stored(t, id, err) {
				checkRefused(t, b, id)
				checkStates(t, b, nil, fmt.Sprintf("StoreMeta %q was refused", id))
				return
			}
			roundTripID(t, b, id, m)
		})
	}
}

// deleteAll deletes every message in b, so that a failure in one subtest does
// not spill into the next.
func deleteAll(t *testing.T, b ms.Backend) {
	t.Helper()
	for _, s := range ms.States() {
		for _, id := range listAll(t, b, s) {
			if err := b.DeleteMeta(t.Context(), id); err != nil {
				t.Errorf("DeleteMeta %q, left over from an earlier subtest: got %v, want nil", id, err)
			}
		}
	}
}

// stored reports whether StoreMeta stored id, given its error: nil means it
// did, ErrInvalidMessageID that it refused id; anything else is a failure.
func stored(t *testing.T, id string, err error) bool {
	t.Helper()
	switch {
	case err == nil:
		if id == "" {
			t.Errorf(`StoreMeta "": got nil, want an error wrapping %q`, ms.ErrInvalidMessageID)
		}
		return true
	case errors.Is(err, ms.ErrInvalidMessageID):
		return false
	}
	t.Errorf("StoreMeta %q: got %v, want nil or an error wrapping %q", id, err, ms.ErrInvalidMessageID)
	return false
}

// roundTripID takes the stored message id, stored as m, through every call.
func roundTripID(t *testing.T, b ms.Backend, id string, m ms.MessageMetadata) {
	ctx := t.Context()
	if got, ok := get(t, b, id); ok {
		checkRecord(t, "GetMeta", id, got, expect(id, m))
	}
	checkList(t, b, ms.StateIncoming, []string{id})
	checkIterated(t, b, ms.StateIncoming, []string{id})

	if err := b.MoveToState(ctx, id, ms.StateIncoming, ms.StateHold); err != nil {
		t.Errorf("MoveToState %q from incoming to hold: got %v, want nil", id, err)
	}
	checkStates(t, b, statesOf(ms.StateHold, id), fmt.Sprintf("MoveToState %q", id))
	checkIterated(t, b, ms.StateHold, []string{id})

	u := sample(99, ms.StateDeferred)
	if err := b.UpdateMeta(ctx, id, u); err != nil {
		t.Errorf("UpdateMeta %q: got %v, want nil", id, err)
	} else if got, ok := get(t, b, id); ok {
		u.Created = m.Created
		checkRecord(t, "GetMeta after UpdateMeta", id, got, expect(id, u))
	}
	checkStates(t, b, statesOf(ms.StateDeferred, id), fmt.Sprintf("UpdateMeta %q", id))

	mustStore(t, b, id, m)
	checkStates(t, b, statesOf(ms.StateIncoming, id), fmt.Sprintf("StoreMeta %q again", id))

	if err := b.DeleteMeta(ctx, id); err != nil {
		t.Errorf("DeleteMeta %q: got %v, want nil", id, err)
	}
	_, err := b.GetMeta(ctx, id)
	wantErr(t, fmt.Sprintf("GetMeta %q after DeleteMeta", id), err, ms.ErrMessageNotFound)
	checkStates(t, b, nil, fmt.Sprintf("DeleteMeta %q", id))
}

// checkList checks that state lists exactly want, in any order.
func checkList(t *testing.T, b ms.Backend, state ms.QueueState, want []string) {
	t.Helper()
	got := slices.Sorted(slices.Values(listAll(t, b, state)))
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("ListMessages %s: got %q, want %q", state, got, want)
	}
}

// checkIterated checks that iterating state returns exactly want, in any
// order.
func checkIterated(t *testing.T, b ms.Backend, state ms.QueueState, want []string) {
	t.Helper()
	var got []string
	for _, m := range iterate(t, b, state, 2) {
		got = append(got, m.ID)
		if m.State != state {
			t.Errorf("iterating %s: %q has State %s, want %s", state, m.ID, m.State, state)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("iterating %s: got %q, want %q", state, got, want)
	}
}

// testHostileIDsTogether stores every hostile ID in one backend, so that
// two IDs that the backend confuses (say "a/b" and "a%2Fb") show up: each
// accepted ID keeps its own record through listing, iterating, moving and
// deleting.
func testHostileIDsTogether(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	recs := make(map[string]ms.MessageMetadata)
	for i, id := range HostileIDs() {
		m := sample(i, ms.StateIncoming)
		err := safely(func() error { return b.StoreMeta(ctx, id, m) })
		if stored(t, id, err) {
			recs[id] = m
		}
	}
	accepted := sortedKeys(recs)
	checkRecords(t, b, recs, "storing every hostile ID")
	checkList(t, b, ms.StateIncoming, accepted)
	checkIterated(t, b, ms.StateIncoming, accepted)

	for _, id := range accepted {
		if err := b.MoveToState(ctx, id, ms.StateIncoming, ms.StateBounce); err != nil {
			t.Errorf("MoveToState %q: got %v, want nil", id, err)
		}
		m := recs[id]
		m.State = ms.StateBounce
		recs[id] = m
	}
	checkRecords(t, b, recs, "moving every hostile ID")
	checkStates(t, b, statesOf(ms.StateBounce, accepted...), "moving every hostile ID")

	for i, id := range accepted {
		if i%2 == 0 {
			continue
		}
		if err := b.DeleteMeta(ctx, id); err != nil {
			t.Errorf("DeleteMeta %q: got %v, want nil", id, err)
		}
		delete(recs, id)
	}
	checkRecords(t, b, recs, "deleting every other hostile ID")
	checkStates(t, b, statesOf(ms.StateBounce, sortedKeys(recs)...), "deleting every other hostile ID")
}

// checkRecords checks that GetMeta returns each of recs for its ID.
func checkRecords(t *testing.T, b ms.Backend, recs map[string]ms.MessageMetadata, after string) {
	t.Helper()
	for _, id := range sortedKeys(recs) {
		got, err := b.GetMeta(t.Context(), id)
		if err != nil {
			t.Errorf("after %s: GetMeta %q: got %v, want nil", after, id, err)
			continue
		}
		for _, d := range diffRecord(got, expect(id, recs[id])) {
			t.Errorf("after %s: GetMeta %q: %s", after, id, d)
		}
	}
}
