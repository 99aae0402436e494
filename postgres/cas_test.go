package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestCompareAndSwapMatch checks what the compare-and-swap statements take
// as the stored record: nil and empty Headers alike, a conflict that says
// whether the message is missing, in another state or changed, and an
// expected record no row can hold refused without an error of its own.
func TestCompareAndSwapMatch(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	b := open(t, dsn, newSchema(t, dsn))
	ctx := t.Context()
	base := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 2, MaxAttempts: 5,
		NextRetry: time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600)), LastError: "boom", Size: 10}
	tests := []struct {
		name   string
		stored map[string]string
		expect func(*metastorage.MessageMetadata)
		want   string // the text of the conflict; empty when the swap succeeds
	}{
		{"stored nil headers, expected empty", nil, func(m *metastorage.MessageMetadata) { m.Headers = map[string]string{} }, ""},
		{"stored empty headers, expected nil", map[string]string{}, func(m *metastorage.MessageMetadata) { m.Headers = nil }, ""},
		{"same instants in UTC", map[string]string{"a": "b"}, func(m *metastorage.MessageMetadata) {
			m.NextRetry, m.Created, m.Updated = m.NextRetry.UTC(), m.Created.UTC(), m.Updated.UTC()
		}, ""},
		{"headers differ", map[string]string{"a": "b"}, func(m *metastorage.MessageMetadata) { m.Headers = map[string]string{"a": "c"} }, "record changed since it was read"},
		{"empty headers, stored some", map[string]string{"a": "b"}, func(m *metastorage.MessageMetadata) { m.Headers = nil }, "record changed since it was read"},
		{"another state", nil, func(m *metastorage.MessageMetadata) { m.State = metastorage.StateHold }, "message is in state deferred, expected hold"},
		{"state out of range", nil, func(m *metastorage.MessageMetadata) { m.State = metastorage.NumStates + 65536 }, "expected"},
		{"year out of range", nil, func(m *metastorage.MessageMetadata) { m.NextRetry = time.Date(1e9, 1, 1, 0, 0, 0, 0, time.UTC) }, "record changed since it was read"},
	}
	for _, tt := range tests {
		for _, del := range []bool{false, true} {
			id := tt.name
			if del {
				id += " (delete)"
			}
			md := base
			md.Headers = tt.stored
			if err := b.StoreMeta(ctx, id, md); err != nil {
				t.Fatalf("StoreMeta %q: %v", id, err)
			}
			cur, err := b.GetMeta(ctx, id)
			if err != nil {
				t.Fatalf("GetMeta %q: %v", id, err)
			}
			expected := cur
			tt.expect(&expected)
			next := cur
			next.State = metastorage.StateActive
			if del {
				err = b.DeleteMetaIf(ctx, id, expected)
			} else {
				err = b.UpdateMetaIf(ctx, id, expected, next)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("%s: got %v, want nil", id, err)
			case tt.want != "" && (!errors.Is(err, metastorage.ErrStateConflict) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("%s: got %v, want an error wrapping %q that says %q", id, err, metastorage.ErrStateConflict, tt.want)
			}
		}
	}
	const missing = "missing"
	for _, err := range []error{
		b.UpdateMetaIf(ctx, missing, base, base),
		b.DeleteMetaIf(ctx, missing, base),
	} {
		if !errors.Is(err, metastorage.ErrStateConflict) || !strings.Contains(err.Error(), "not found") {
			t.Errorf("compare-and-swap of %q: got %v, want an error wrapping %q that says not found", missing, err, metastorage.ErrStateConflict)
		}
	}
}

// TestUpdateMetaIfAfterStoredUpdated checks that UpdateMetaIf sets Updated
// past a stored Updated that is ahead of the clock, so that the record
// replaced never matches again.
func TestUpdateMetaIfAfterStoredUpdated(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema)
	ctx := t.Context()
	const id = "msg-future"
	if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
		t.Fatalf("StoreMeta %q: %v", id, err)
	}
	future := time.Now().Add(time.Hour)
	setUpdated(ctx, t, dsn, schema, id, future)
	cur, err := b.GetMeta(ctx, id)
	if err != nil {
		t.Fatalf("GetMeta %q: %v", id, err)
	}
	next := cur
	next.Attempts++
	if err := b.UpdateMetaIf(ctx, id, cur, next); err != nil {
		t.Fatalf("UpdateMetaIf %q: got %v, want nil", id, err)
	}
	got, err := b.GetMeta(ctx, id)
	if err != nil {
		t.Fatalf("GetMeta %q: %v", id, err)
	}
	if !got.Updated.After(cur.Updated) {
		t.Errorf("Updated of %q after UpdateMetaIf: %s, want after the stored %s", id, got.Updated.Format(time.RFC3339Nano), cur.Updated.Format(time.RFC3339Nano))
	}
	if err := b.UpdateMetaIf(ctx, id, cur, next); !errors.Is(err, metastorage.ErrStateConflict) {
		t.Errorf("UpdateMetaIf %q with the replaced record: got %v, want an error wrapping %q", id, err, metastorage.ErrStateConflict)
	}
}

// setUpdated sets the Updated of the message id in schema to t, in UTC.
func setUpdated(ctx context.Context, tb testing.TB, dsn, schema, id string, t time.Time) {
	tb.Helper()
	conn := pgtest.Connect(tb, dsn)
	us, ns := t.UnixMicro(), t.Nanosecond()%1000
	if _, err := conn.Exec(ctx, "UPDATE "+pgx.Identifier{schema}.Sanitize()+".messages SET updated_us = $1, updated_ns = $2, updated_off = 0 WHERE id = $3",
		us, int16(ns), []byte(id)); err != nil {
		tb.Fatalf("set Updated of %q: %v", id, err)
	}
}
