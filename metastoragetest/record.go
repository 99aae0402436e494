package metastoragetest

import (
	"fmt"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// opener opens a fresh, empty Backend for a test.
type opener = func(*testing.T) ms.Backend

// testEmpty checks a fresh backend: nothing listed or iterated, and the calls
// that need a message report it missing without creating it.
func testEmpty(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	for _, s := range ms.States() {
		res, err := b.ListMessages(ctx, s, ms.MessageListOptions{})
		if err != nil {
			t.Errorf("ListMessages %s: got %v, want nil", s, err)
		} else if res.MessageIDs == nil || len(res.MessageIDs) != 0 || res.Total != 0 || res.HasMore {
			t.Errorf("ListMessages %s on an empty backend: got %#v, want an empty non-nil page, Total 0, HasMore false", s, res)
		}
		if got := iterate(t, b, s, 0); len(got) != 0 {
			t.Errorf("iterating %s on an empty backend: got %d messages, want 0", s, len(got))
		}
	}
	const id = "msg-missing"
	_, err := b.GetMeta(ctx, id)
	wantErr(t, "GetMeta "+id, err, ms.ErrMessageNotFound)
	wantErr(t, "UpdateMeta "+id, b.UpdateMeta(ctx, id, sample(1, ms.StateIncoming)), ms.ErrMessageNotFound)
	wantErr(t, "DeleteMeta "+id, b.DeleteMeta(ctx, id), ms.ErrMessageNotFound)
	checkStates(t, b, nil, "calls on missing messages")
}

// roundTripRecords returns records that exercise every field: one per
// state, and records with nil, empty and many headers, zero and negative
// values, times before 1970, and times in UTC and other zones.
func roundTripRecords() map[string]ms.MessageMetadata {
	recs := make(map[string]ms.MessageMetadata)
	for i, s := range ms.States() {
		recs[fmt.Sprintf("rt-%s", s)] = sample(i, s)
	}
	nilHeaders := sample(10, ms.StateDeferred)
	nilHeaders.Headers = nil
	recs["rt-nil-headers"] = nilHeaders

	emptyHeaders := sample(11, ms.StateDeferred)
	emptyHeaders.Headers = map[string]string{}
	recs["rt-empty-headers"] = emptyHeaders

	manyHeaders := sample(12, ms.StateActive)
	manyHeaders.Headers = map[string]string{
		"":                     "empty key",
		"empty value":          "",
		"Message-ID":           "<abc@example.com>",
		"x-multi\nline":        "a\r\nb\tc",
		"unicode-ключ":         "значение ☃",
		"quote\"and\\slash":    "{\"json\": [1, 2]}",
		"ctl\x01":              "\x00nul",
		"received":             "from mx.example.com by relay; Fri, 1 Mar 2024 12:00:00 +0100",
		"list-unsubscribe-www": "<https://example.com/u?x=1&y=2>",
	}
	recs["rt-many-headers"] = manyHeaders

	zero := ms.MessageMetadata{State: ms.StateIncoming, Created: baseTime}
	recs["rt-zero-fields"] = zero

	odd := sample(13, ms.StateHold)
	odd.Attempts = -1
	odd.MaxAttempts = 0
	odd.Priority = -1 << 40
	odd.Size = -1
	odd.NextRetry = time.Date(1969, time.December, 31, 23, 59, 59, 999999999, zoneWest)
	odd.Created = time.Date(2262, time.January, 1, 0, 0, 0, 1, time.UTC)
	recs["rt-odd-values"] = odd

	utc := sample(14, ms.StateBounce)
	utc.NextRetry = utc.NextRetry.UTC()
	utc.Created = time.Date(2024, time.July, 4, 1, 2, 3, 1, zoneEast)
	recs["rt-utc"] = utc
	return recs
}

// testRoundTrip stores records that use every field and reads each back
// with GetMeta: every field round-trips, times to the nanosecond with their
// zone offset; ID and State are the ones given to StoreMeta; Updated is set
// by the backend.
func testRoundTrip(t *testing.T, open opener) {
	b := open(t)
	recs := roundTripRecords()
	want := make(map[string]ms.QueueState)
	updated := make(map[string]time.Time)
	for _, id := range sortedKeys(recs) {
		before := time.Now()
		mustStore(t, b, id, recs[id])
		after := time.Now()
		want[id] = recs[id].State
		got, ok := get(t, b, id)
		if !ok {
			continue
		}
		checkRecord(t, "GetMeta", id, got, expect(id, recs[id]))
		checkNow(t, fmt.Sprintf("GetMeta %q: Updated", id), got.Updated, before, after)
		updated[id] = got.Updated
	}
	// Reading again gives the same record: GetMeta changes nothing.
	for _, id := range sortedKeys(recs) {
		got, ok := get(t, b, id)
		if !ok {
			continue
		}
		checkRecord(t, "second GetMeta", id, got, expect(id, recs[id]))
		if s := diffTime(got.Updated, updated[id]); s != "" {
			t.Errorf("second GetMeta %q: Updated: %s", id, s)
		}
	}
	checkStates(t, b, want, "storing")
}

// testNoAliasing checks that the backend keeps no reference to the Headers
// maps it is given or returns.
func testNoAliasing(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id = "msg-alias"
	m := sample(1, ms.StateIncoming)
	m.Headers = map[string]string{"to": "a@example.com"}
	mustStore(t, b, id, m)
	m.Headers["to"] = "changed@example.com"
	m.Headers["new"] = "added"

	want := map[string]string{"to": "a@example.com"}
	got, ok := get(t, b, id)
	if !ok {
		return
	}
	if s := diffHeaders(got.Headers, want); s != "" {
		t.Errorf("GetMeta %q after changing the stored map: Headers: %s", id, s)
	}
	got.Headers["to"] = "changed again"
	if got, ok := get(t, b, id); ok {
		if s := diffHeaders(got.Headers, want); s != "" {
			t.Errorf("GetMeta %q after changing a returned map: Headers: %s", id, s)
		}
	}

	u := sample(2, ms.StateIncoming)
	u.Headers = map[string]string{"x": "1"}
	if err := b.UpdateMeta(ctx, id, u); err != nil {
		t.Fatalf("UpdateMeta %q: got %v, want nil", id, err)
	}
	u.Headers["x"] = "2"
	if got, ok := get(t, b, id); ok {
		if s := diffHeaders(got.Headers, map[string]string{"x": "1"}); s != "" {
			t.Errorf("GetMeta %q after changing the updated map: Headers: %s", id, s)
		}
	}
}

// testStoreSetsTimes checks that StoreMeta sets Created when it is zero, and
// Updated always, to the time of the call.
func testStoreSetsTimes(t *testing.T, open opener) {
	b := open(t)
	const id = "msg-times"
	m := sample(1, ms.StateIncoming)
	m.Created = time.Time{}
	before := time.Now()
	mustStore(t, b, id, m)
	after := time.Now()
	got, ok := get(t, b, id)
	if !ok {
		return
	}
	checkNow(t, fmt.Sprintf("GetMeta %q: Created stored as zero", id), got.Created, before, after)
	checkNow(t, fmt.Sprintf("GetMeta %q: Updated", id), got.Updated, before, after)
	m.Created = got.Created
	checkRecord(t, "GetMeta", id, got, expect(id, m))
}

// testStoreReplace checks that StoreMeta on an existing ID replaces the whole
// record, and moves it when the state differs, leaving exactly one copy.
func testStoreReplace(t *testing.T, open opener) {
	b := open(t)
	const id, other = "msg-replace", "msg-other"
	otherRec := sample(9, ms.StateIncoming)
	mustStore(t, b, other, otherRec)
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	prev, _ := get(t, b, id)

	for i, s := range append(ms.States(), ms.StateIncoming, ms.StateIncoming) {
		m := sample(i+2, s)
		if i%2 == 1 {
			m.Headers = map[string]string{"only": "this one"}
		}
		before := time.Now()
		mustStore(t, b, id, m)
		after := time.Now()
		step := fmt.Sprintf("StoreMeta %q again, into %s", id, s)
		got, ok := get(t, b, id)
		if ok {
			checkRecord(t, step+": GetMeta", id, got, expect(id, m))
			checkNow(t, step+": Updated", got.Updated, before, after)
			if got.Updated.Before(prev.Updated) {
				t.Errorf("%s: Updated: got %s, want not before the previous %s", step, fmtTime(got.Updated), fmtTime(prev.Updated))
			}
			prev = got
		}
		checkStates(t, b, map[string]ms.QueueState{id: s, other: ms.StateIncoming}, step)
	}
	if got, ok := get(t, b, other); ok {
		checkRecord(t, "GetMeta of an untouched message", other, got, expect(other, otherRec))
	}
}

// testStoreInvalid checks that StoreMeta refuses a state out of range with
// ErrInvalidState and changes nothing.
func testStoreInvalid(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id, fresh = "msg-valid", "msg-never"
	mustStore(t, b, id, sample(1, ms.StateActive))
	before, _ := get(t, b, id)
	for _, s := range []ms.QueueState{-1, ms.NumStates, 99} {
		m := sample(2, s)
		wantErr(t, fmt.Sprintf("StoreMeta %q with state %d", fresh, int(s)), safely(func() error { return b.StoreMeta(ctx, fresh, m) }), ms.ErrInvalidState)
		wantErr(t, fmt.Sprintf("StoreMeta %q with state %d", id, int(s)), safely(func() error { return b.StoreMeta(ctx, id, m) }), ms.ErrInvalidState)
	}
	checkUnchanged(t, b, id, before, "StoreMeta with invalid states")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateActive}, "StoreMeta with invalid states")
}

// checkUnchanged checks that GetMeta of id still returns before, Updated
// included.
func checkUnchanged(t *testing.T, b ms.Backend, id string, before ms.MessageMetadata, after string) {
	t.Helper()
	got, err := b.GetMeta(t.Context(), id)
	if err != nil {
		t.Errorf("after %s: GetMeta %q: got %v, want nil", after, id, err)
		return
	}
	for _, d := range diffRecord(got, before) {
		t.Errorf("after %s: GetMeta %q: %s (want the message unchanged)", after, id, d)
	}
	if s := diffTime(got.Updated, before.Updated); s != "" {
		t.Errorf("after %s: GetMeta %q: Updated: %s (want the message unchanged)", after, id, s)
	}
}

// testUpdate checks that UpdateMeta replaces the whole record, keeps
// Created, sets Updated, moves the message with its content, reports a
// missing message with ErrMessageNotFound and an invalid state with
// ErrInvalidState.
func testUpdate(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id = "msg-update"
	mustStore(t, b, id, sample(1, ms.StateIncoming))
	orig, _ := get(t, b, id)
	prev := orig

	steps := []ms.MessageMetadata{
		sample(5, ms.StateIncoming),
		sample(6, ms.StateDeferred),
		sample(7, ms.StateDeferred),
		sample(8, ms.StateArchived),
	}
	steps[0].Headers = map[string]string{"only": "this one"}
	steps[2].Headers = map[string]string{}
	steps[3].Created = time.Time{}
	for i, m := range steps {
		step := fmt.Sprintf("UpdateMeta %q #%d into %s", id, i, m.State)
		before := time.Now()
		if err := b.UpdateMeta(ctx, id, m); err != nil {
			t.Errorf("%s: got %v, want nil", step, err)
			continue
		}
		after := time.Now()
		got, ok := get(t, b, id)
		if ok {
			w := expect(id, m)
			w.Created = orig.Created
			checkRecord(t, step+": GetMeta", id, got, w)
			checkNow(t, step+": Updated", got.Updated, before, after)
			if got.Updated.Before(prev.Updated) {
				t.Errorf("%s: Updated: got %s, want not before the previous %s", step, fmtTime(got.Updated), fmtTime(prev.Updated))
			}
			prev = got
		}
		checkStates(t, b, map[string]ms.QueueState{id: m.State}, step)
	}

	const missing = "msg-update-missing"
	wantErr(t, "UpdateMeta "+missing, b.UpdateMeta(ctx, missing, sample(2, ms.StateIncoming)), ms.ErrMessageNotFound)
	for _, s := range []ms.QueueState{-1, ms.NumStates} {
		err := safely(func() error { return b.UpdateMeta(ctx, id, sample(3, s)) })
		wantErr(t, fmt.Sprintf("UpdateMeta %q with state %d", id, int(s)), err, ms.ErrInvalidState)
	}
	checkUnchanged(t, b, id, prev, "failed UpdateMeta calls")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateArchived}, "failed UpdateMeta calls")
}

// testDelete checks that DeleteMeta removes a message from whatever state it
// is in, and reports a missing one with ErrMessageNotFound.
func testDelete(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const keep = "msg-keep"
	keepRec := sample(0, ms.StateHold)
	mustStore(t, b, keep, keepRec)
	want := map[string]ms.QueueState{keep: ms.StateHold}
	for i, s := range ms.States() {
		id := "msg-delete-" + s.String()
		mustStore(t, b, id, sample(i, s))
		want[id] = s
	}
	for _, s := range ms.States() {
		id := "msg-delete-" + s.String()
		if err := b.DeleteMeta(ctx, id); err != nil {
			t.Errorf("DeleteMeta %q in %s: got %v, want nil", id, s, err)
			continue
		}
		delete(want, id)
		_, err := b.GetMeta(ctx, id)
		wantErr(t, "GetMeta after DeleteMeta "+id, err, ms.ErrMessageNotFound)
		wantErr(t, "second DeleteMeta "+id, b.DeleteMeta(ctx, id), ms.ErrMessageNotFound)
		wantErr(t, "UpdateMeta after DeleteMeta "+id, b.UpdateMeta(ctx, id, sample(1, s)), ms.ErrMessageNotFound)
		checkStates(t, b, want, "DeleteMeta "+id)
	}
	if got, ok := get(t, b, keep); ok {
		checkRecord(t, "GetMeta of an untouched message", keep, got, expect(keep, keepRec))
	}
}
