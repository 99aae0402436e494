package metastoragetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// Zones whose offsets RFC 3339 cannot write: a contract-keeping backend
// returns times in them in UTC, at the same instant.
var (
	zoneSeconds = time.FixedZone("LMT", 19*60+32) // Europe/Amsterdam in 1900
	zoneTooFar  = time.FixedZone("", 25*3600)
)

// storedOffset returns the zone offset, in seconds, that a time stored with
// offset off comes back with: off itself, or 0 (UTC) where RFC 3339 cannot
// write it.
func storedOffset(off int) int {
	if off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return 0
	}
	return off
}

// invalidRecords returns records that CheckRecord refuses, by the field
// the error must name.
func invalidRecords() map[string]ms.MessageMetadata {
	recs := make(map[string]ms.MessageMetadata)
	set := func(field string, change func(*ms.MessageMetadata)) {
		m := sample(3, ms.StateDeferred)
		change(&m)
		recs[field] = m
	}
	set("LastError", func(m *ms.MessageMetadata) { m.LastError = "bad\xff\xfeutf8" })
	set("RetryPolicyName", func(m *ms.MessageMetadata) { m.RetryPolicyName = "\xc3" })
	set("Headers key", func(m *ms.MessageMetadata) { m.Headers = map[string]string{"\xff": "one", "\xfe": "two"} })
	set(`Headers["to"]`, func(m *ms.MessageMetadata) { m.Headers = map[string]string{"to": "a\xedb"} })
	set("NextRetry", func(m *ms.MessageMetadata) { m.NextRetry = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	set("Created", func(m *ms.MessageMetadata) { m.Created = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })
	return recs
}

// testStoreInvalidRecord checks that StoreMeta and UpdateMeta refuse a
// record with invalid UTF-8 or a time out of range with ErrInvalidRecord,
// naming the field, and change nothing.
func testStoreInvalidRecord(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id, fresh = "msg-valid", "msg-never"
	mustStore(t, b, id, sample(1, ms.StateActive))
	before, _ := get(t, b, id)
	for _, field := range sortedKeys(invalidRecords()) {
		m := invalidRecords()[field]
		if err := ms.CheckRecord(&m); !errors.Is(err, ms.ErrInvalidRecord) {
			t.Errorf("CheckRecord with an invalid %s: got %v, want ErrInvalidRecord", field, err)
		}
		for _, c := range []struct {
			op   string
			call func() error
		}{
			{"StoreMeta " + fresh, func() error { return b.StoreMeta(ctx, fresh, m) }},
			{"StoreMeta " + id, func() error { return b.StoreMeta(ctx, id, m) }},
			{"UpdateMeta " + id, func() error { return b.UpdateMeta(ctx, id, m) }},
		} {
			err := safely(c.call)
			if wantErr(t, fmt.Sprintf("%s with an invalid %s", c.op, field), err, ms.ErrInvalidRecord) && !strings.Contains(err.Error(), field) {
				t.Errorf("%s with an invalid %s: error %q does not name the field", c.op, field, err)
			}
		}
	}
	checkUnchanged(t, b, id, before, "calls with invalid records")
	checkStates(t, b, map[string]ms.QueueState{id: ms.StateActive}, "calls with invalid records")
}

// testZoneOffsets checks that times in zones whose offsets RFC 3339 cannot
// write come back at the same instant, in UTC, and others with their
// offset.
func testZoneOffsets(t *testing.T, open opener) {
	b := open(t)
	for i, zone := range []*time.Location{zoneSeconds, zoneTooFar, time.FixedZone("", -(9*3600 + 30*60)), time.UTC} {
		id := fmt.Sprintf("msg-zone-%d", i)
		m := sample(i, ms.StateDeferred)
		m.NextRetry = m.NextRetry.In(zone)
		m.Created = time.Date(1900, time.May, 1, 12, 0, 0, 5, zone)
		mustStore(t, b, id, m)
		got, ok := get(t, b, id)
		if !ok {
			continue
		}
		checkRecord(t, "GetMeta", id, got, expect(id, m)) // diffTime applies storedOffset
	}
}

// testRecordSize checks that a record whose strings total
// StringBytesAlwaysStored, made of what costs the most to store, is stored
// and round-trips, and that a record of 20 MB of headers either round-trips
// or is refused with ErrTooLarge and changes nothing.
func testRecordSize(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	const id, big = "msg-fits", "msg-big"
	m := sample(1, ms.StateIncoming)
	m.LastError = strings.Repeat("\x01", ms.StringBytesAlwaysStored/4) // escaped, one byte may take six
	m.RetryPolicyName = strings.Repeat("\u2028", ms.StringBytesAlwaysStored/4/3)
	m.Headers = make(map[string]string)
	left := ms.StringBytesAlwaysStored - len(m.LastError) - len(m.RetryPolicyName)
	for i := 0; left >= 3; i++ { // many tiny headers, each with its quotes and separators
		k := fmt.Sprintf("%x", i)
		m.Headers[k] = "<"
		left -= len(k) + 1
	}
	if err := b.StoreMeta(ctx, id, m); err != nil {
		t.Fatalf("StoreMeta %q with strings totalling %d bytes: got %v, want nil", id, ms.StringBytesAlwaysStored-left, err)
	}
	if got, ok := get(t, b, id); ok {
		checkRecord(t, "GetMeta", id, got, expect(id, m))
	}

	mustStore(t, b, big, sample(2, ms.StateDeferred))
	before, _ := get(t, b, big)
	huge := sample(3, ms.StateActive)
	huge.Headers = map[string]string{"x-huge": strings.Repeat("h", 10<<20), "x-huge-2": strings.Repeat("\"", 10<<20)}
	for _, c := range []struct {
		op   string
		call func() error
	}{
		{"UpdateMeta", func() error { return b.UpdateMeta(ctx, big, huge) }},
		{"StoreMeta", func() error { return b.StoreMeta(ctx, big, huge) }},
	} {
		err := safely(c.call)
		if errors.Is(err, ms.ErrTooLarge) {
			checkUnchanged(t, b, big, before, c.op+" of a record refused as too large")
			checkStates(t, b, map[string]ms.QueueState{id: ms.StateIncoming, big: ms.StateDeferred}, c.op+" of a record refused as too large")
			continue
		}
		if err != nil {
			t.Errorf("%s %q with 20 MB of headers: got %v, want nil or ErrTooLarge", c.op, big, err)
			continue
		}
		want := expect(big, huge)
		want.Created = before.Created // UpdateMeta keeps it
		if got, ok := get(t, b, big); ok {
			checkRecord(t, "GetMeta after "+c.op+" with 20 MB of headers", big, got, want)
		}
		return // stored: the StoreMeta case would only store it again
	}
}
