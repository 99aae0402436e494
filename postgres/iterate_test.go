package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// iterateAll returns the messages of state that an iterator in pages of
// batch returns, and the error that ended it, if any.
func iterateAll(t *testing.T, b ms.Backend, state ms.QueueState, batch int) ([]ms.MessageMetadata, error) {
	t.Helper()
	ctx := context.Background()
	it, err := b.NewMessageIterator(ctx, state, batch)
	if err != nil {
		t.Fatalf("NewMessageIterator: %v", err)
	}
	defer it.Close()
	var got []ms.MessageMetadata
	for {
		md, ok, err := it.Next(ctx)
		if err != nil || !ok {
			return got, err
		}
		got = append(got, md)
	}
}

// sameExactly reports how a and b differ: in a field, or in the zone
// offset of a time.
func sameExactly(a, b ms.MessageMetadata) string {
	if a.ID != b.ID || !ms.SameRecord(a, b) {
		return fmt.Sprintf("records differ:\n%+v\n%+v", a, b)
	}
	for _, p := range [][2]time.Time{{a.NextRetry, b.NextRetry}, {a.Created, b.Created}, {a.Updated, b.Updated}} {
		_, x := p[0].Zone()
		_, y := p[1].Zone()
		if x != y {
			return fmt.Sprintf("zone offsets differ: %v and %v", p[0], p[1])
		}
	}
	if (a.Headers == nil) != (b.Headers == nil) {
		return fmt.Sprintf("headers %#v and %#v", a.Headers, b.Headers)
	}
	return ""
}

// TestIteratorReturnsWhatGetMetaReturns iterates records with every kind of
// field, in every query mode of pgx (prepared statements, whose rows come
// in the binary format, and the others, some in text), and compares each
// with GetMeta's.
func TestIteratorReturnsWhatGetMetaReturns(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	ctx := context.Background()
	b := open(t, dsn, schema)
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	records := []ms.MessageMetadata{
		{State: ms.StateDeferred},
		{State: ms.StateDeferred, Attempts: 3, MaxAttempts: 9, NextRetry: at, Created: at.In(time.FixedZone("", -7*3600)),
			LastError: "451 4.7.1 try later", Size: 1 << 40, Priority: -5,
			Headers: map[string]string{"from": "a@example.org", "subject": "é\x00", "": ""}, RetryPolicyName: "smtp"},
		{State: ms.StateDeferred, Headers: map[string]string{}, NextRetry: at.In(time.FixedZone("", 5*3600+1800)),
			LastError: strings.Repeat("x", 70000)},
		{State: ms.StateDeferred, Created: at.In(time.FixedZone("", 5*3600+1800)), Headers: map[string]string{"k": strings.Repeat("v", 300)}},
		{State: ms.StateActive, LastError: "not in deferred"},
	}
	for i, md := range records {
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%d", i), md); err != nil {
			t.Fatalf("StoreMeta: %v", err)
		}
	}
	for _, mode := range []string{"", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run("mode="+mode, func(t *testing.T) {
			b := b
			if mode != "" {
				b = open(t, withParam(dsn, "default_query_exec_mode", mode), schema)
			}
			for _, batch := range []int{1, 2, 100} {
				got, err := iterateAll(t, b, ms.StateDeferred, batch)
				if err != nil {
					t.Fatalf("batch %d: iterate: %v", batch, err)
				}
				if len(got) != len(records)-1 {
					t.Fatalf("batch %d: %d messages, want %d", batch, len(got), len(records)-1)
				}
				for _, md := range got {
					want, err := b.GetMeta(ctx, md.ID)
					if err != nil {
						t.Fatalf("GetMeta(%s): %v", md.ID, err)
					}
					if d := sameExactly(md, want); d != "" {
						t.Errorf("batch %d, %s: %s", batch, md.ID, d)
					}
				}
			}
		})
	}
}

// TestIteratorReportsCorruptRow damages the headers of the second of three
// messages by hand: the iterator returns the first, then an error naming
// the second.
func TestIteratorReportsCorruptRow(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	ctx := context.Background()
	b := open(t, dsn, schema)
	for _, id := range []string{"a", "b", "c"} {
		if err := b.StoreMeta(ctx, id, ms.MessageMetadata{State: ms.StateDeferred, Headers: map[string]string{"k": "v"}}); err != nil {
			t.Fatalf("StoreMeta: %v", err)
		}
	}
	execIn(t, dsn, schema, "UPDATE $s.messages SET headers = '\\x05'::bytea WHERE id = 'b'::bytea")
	got, err := iterateAll(t, b, ms.StateDeferred, 10)
	if len(got) != 1 || got[0].ID != "a" {
		t.Errorf("returned %v before the error, want the message a", got)
	}
	if err == nil || !strings.Contains(err.Error(), `"b"`) || errors.Is(err, ms.ErrMessageNotFound) {
		t.Errorf("error %v, want one naming the message b", err)
	}
}

// TestIteratorReadsColumnsChangedByHand shows that the iterator never
// misreads a row whose columns were changed by hand: a column of another
// type reads as GetMeta reads it, and a NULL where the schema has none
// fails the pass without being taken for a lost connection.
func TestIteratorReadsColumnsChangedByHand(t *testing.T) {
	tests := []struct {
		name  string
		alter string
		fails bool
	}{
		{"attempts of type double precision", "ALTER TABLE $s.messages ALTER COLUMN attempts TYPE double precision", false},
		{"a NULL size", "ALTER TABLE $s.messages ALTER COLUMN size DROP NOT NULL; UPDATE $s.messages SET size = NULL WHERE id = 'b'::bytea", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := testDSN(t)
			schema := newSchema(t, dsn)
			ctx := context.Background()
			b := open(t, dsn, schema)
			for _, id := range []string{"a", "b", "c"} {
				if err := b.StoreMeta(ctx, id, ms.MessageMetadata{State: ms.StateDeferred, Attempts: 3, Size: 7}); err != nil {
					t.Fatalf("StoreMeta: %v", err)
				}
			}
			b.Close()
			execIn(t, dsn, schema, tc.alter)
			var log strings.Builder
			logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b = open(t, dsn, schema, postgres.WithLogger(logger))
			got, err := iterateAll(t, b, ms.StateDeferred, 10)
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), `"b"`) {
					t.Errorf("iterator error %v, want one naming the message b", err)
				}
				if strings.Contains(log.String(), "connection failure") {
					t.Errorf("the damaged row was taken for a connection failure:\n%s", log.String())
				}
				return
			}
			if err != nil || len(got) != 3 {
				t.Fatalf("iterator returned %d messages, %v; want 3", len(got), err)
			}
			for _, md := range got {
				want, err := b.GetMeta(ctx, md.ID)
				if err != nil || !ms.SameRecord(md, want) {
					t.Errorf("iterator returned %+v, GetMeta %+v, %v", md, want, err)
				}
			}
		})
	}
}
