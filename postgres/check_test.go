package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// TestCheckRepairsCounters damages the counters by hand and checks that
// Check reports it, changes nothing without repair, and repairs it.
func TestCheckRepairsCounters(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema)
	ctx := t.Context()
	for i := range 5 {
		if err := b.StoreMeta(ctx, fmt.Sprint("m", i), metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := b.Check(ctx, false)
	if err != nil || r.Damaged() || r.Version != postgres.SchemaVersion || r.CounterRows == 0 {
		t.Fatalf("Check on a sound schema = %+v, %v", r, err)
	}
	execIn(t, dsn, schema, fmt.Sprintf("UPDATE $s.counts SET n%d = n%d + 3, n%d = n%d - 1 WHERE slot = 1",
		metastorage.StateDeferred, metastorage.StateDeferred, metastorage.StateHold, metastorage.StateHold))
	for _, repair := range []bool{false, true} {
		r, err = b.Check(ctx, repair)
		if err != nil || !r.Damaged() || r.Repaired != repair {
			t.Fatalf("Check(%v) on damaged counters = %+v, %v", repair, r, err)
		}
		d, h := r.States[metastorage.StateDeferred], r.States[metastorage.StateHold]
		if d.Counters != 8 || d.Rows != 5 || h.Counters != -1 || h.Rows != 0 {
			t.Errorf("Check(%v): deferred %+v, hold %+v", repair, d, h)
		}
	}
	if r, err := b.Check(ctx, false); err != nil || r.Damaged() {
		t.Errorf("Check after the repair = %+v, %v; want sound", r, err)
	}
	if n := b.GetStateCount(metastorage.StateDeferred); n != 5 {
		t.Errorf("deferred count %d after the repair, want 5", n)
	}
}

// TestCheckFindsMissingCounterRows deletes counter rows by hand, the last
// one without counts and then the one with, and checks that Check reports them,
// and that its repair creates them again so that every connection's
// writes are counted.
func TestCheckFindsMissingCounterRows(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema, postgres.WithMaxConns(1))
	ctx := t.Context()
	if err := b.StoreMeta(ctx, "m0", metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
	r, err := b.Check(ctx, false)
	if err != nil || r.Damaged() || r.MissingCounterRows != 0 {
		t.Fatalf("Check on a sound schema = %+v, %v", r, err)
	}
	rows := r.CounterRows
	execIn(t, dsn, schema, fmt.Sprintf("DELETE FROM $s.counts WHERE slot = (SELECT max(slot) FROM $s.counts WHERE n%d = 0)", metastorage.StateDeferred))
	r, err = b.Check(ctx, false)
	if err != nil || !r.Damaged() || r.MissingCounterRows != 1 || r.CounterRows != rows-1 {
		t.Fatalf("Check after a counter row without counts was deleted = %+v, %v; want 1 missing", r, err)
	}
	execIn(t, dsn, schema, fmt.Sprintf("DELETE FROM $s.counts WHERE n%d <> 0", metastorage.StateDeferred))
	r, err = b.Check(ctx, false)
	if err != nil || r.MissingCounterRows != 2 || r.States[metastorage.StateDeferred].Counters != 0 || r.States[metastorage.StateDeferred].Rows != 1 {
		t.Fatalf("Check after the row of the count was deleted too = %+v, %v; want 2 missing and deferred 0 against 1", r, err)
	}
	if r, err = b.Check(ctx, true); err != nil || !r.Repaired {
		t.Fatalf("Check(repair) = %+v, %v", r, err)
	}
	if r, err = b.Check(ctx, false); err != nil || r.Damaged() || r.CounterRows != rows {
		t.Fatalf("Check after the repair = %+v, %v; want sound with %d counter rows", r, err, rows)
	}
	// The one connection writes through the row it wrote through before.
	if err := b.StoreMeta(ctx, "m1", metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
		t.Fatal(err)
	}
	if n := b.GetStateCount(metastorage.StateDeferred); n != 2 {
		t.Errorf("deferred count %d after a store following the repair, want 2", n)
	}
}

// TestExistingSchema checks that WithExistingSchema creates nothing and
// refuses a missing, older or newer schema with its sentinel.
func TestExistingSchema(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	opts := []postgres.Option{postgres.WithSchema(schema), postgres.WithLogger(quietLogger), postgres.WithExistingSchema()}
	if _, err := postgres.NewFactory(dsn, opts...).Open(t.Context()); !errors.Is(err, postgres.ErrNoSchema) {
		t.Fatalf("Open of a missing schema: %v, want ErrNoSchema", err)
	}
	if pgtest.SchemaExists(t, dsn, schema) {
		t.Fatalf("Open with WithExistingSchema created the schema")
	}
	open(t, dsn, schema).Close()
	b, err := postgres.NewFactory(dsn, opts...).Open(t.Context())
	if err != nil {
		t.Fatalf("Open of an up-to-date schema: %v", err)
	}
	b.Close()
	for v, want := range map[int]error{0: postgres.ErrSchemaOutdated, postgres.SchemaVersion + 1: postgres.ErrSchemaVersion} {
		execIn(t, dsn, schema, fmt.Sprintf("UPDATE $s.schema_version SET version = %d", v))
		if _, err := postgres.NewFactory(dsn, opts...).Open(t.Context()); !errors.Is(err, want) {
			t.Errorf("Open at version %d: %v, want %v", v, err, want)
		}
	}
}

// TestImportMeta checks that ImportMeta keeps every field, Created and
// Updated included, counts the message, and leaves an existing message
// alone.
func TestImportMeta(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	b := open(t, dsn, newSchema(t, dsn))
	ctx := t.Context()
	zone := time.FixedZone("", 5*3600+1800)
	md := metastorage.MessageMetadata{ID: "m", State: metastorage.StateDeferred, Attempts: 3, MaxAttempts: 7,
		NextRetry: time.Date(2030, 1, 2, 3, 4, 5, 999, zone),
		Created:   time.Date(2020, 1, 2, 3, 4, 5, 6, zone), Updated: time.Date(2021, 1, 2, 3, 4, 5, 7, zone),
		LastError: "x", Size: 9, Priority: -2, Headers: map[string]string{"to": "a@example.org"}, RetryPolicyName: "p"}
	if ok, err := b.ImportMeta(ctx, "m", md); err != nil || !ok {
		t.Fatalf("ImportMeta = %v, %v; want true, nil", ok, err)
	}
	got, err := b.GetMeta(ctx, "m")
	if err != nil || !metastorage.SameRecord(got, md) || !got.Updated.Equal(md.Updated) || got.Created.String() != md.Created.String() {
		t.Fatalf("GetMeta = %+v, %v; want %+v", got, err, md)
	}
	other := md
	other.State = metastorage.StateHold
	if ok, err := b.ImportMeta(ctx, "m", other); err != nil || ok {
		t.Fatalf("ImportMeta of an existing message = %v, %v; want false, nil", ok, err)
	}
	if got, _ := b.GetMeta(ctx, "m"); !metastorage.SameRecord(got, md) {
		t.Errorf("an import over an existing message changed it: %+v", got)
	}
	if d, h := b.GetStateCount(metastorage.StateDeferred), b.GetStateCount(metastorage.StateHold); d != 1 || h != 0 {
		t.Errorf("counts deferred %d, hold %d; want 1, 0", d, h)
	}
	if _, err := b.ImportMeta(ctx, "", md); !errors.Is(err, metastorage.ErrInvalidMessageID) {
		t.Errorf("ImportMeta of an empty ID: %v, want ErrInvalidMessageID", err)
	}
}

// TestIdentity checks that Identity is the same for two Backends on one
// schema and differs for another schema.
func TestIdentity(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	a, b := open(t, dsn, schema), open(t, withParam(dsn, "application_name", "other"), schema)
	c := open(t, dsn, newSchema(t, dsn))
	ia, err := a.Identity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Identity(t.Context())
	if err != nil || ib != ia {
		t.Errorf("Identity on the same schema: %q, %v; want %q", ib, err, ia)
	}
	if ic, err := c.Identity(t.Context()); err != nil || ic == ia {
		t.Errorf("Identity on another schema: %q, %v; want other than %q", ic, err, ia)
	}
}

// TestStateCounts checks that StateCounts gives every state's count as
// GetStateCount does, and an error once the Backend is closed.
func TestStateCounts(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	b := open(t, dsn, newSchema(t, dsn))
	ctx := t.Context()
	for i, s := range []metastorage.QueueState{metastorage.StateIncoming, metastorage.StateDeferred, metastorage.StateDeferred} {
		if err := b.StoreMeta(ctx, fmt.Sprint("m", i), metastorage.MessageMetadata{State: s}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.StateCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range metastorage.States() {
		if got := b.GetStateCount(s); n[s] != got {
			t.Errorf("StateCounts %s = %d, GetStateCount %d", s, n[s], got)
		}
	}
	if n[metastorage.StateIncoming] != 1 || n[metastorage.StateDeferred] != 2 {
		t.Errorf("StateCounts = %v, want 1 incoming and 2 deferred", n)
	}
	b.Close()
	if _, err := b.StateCounts(ctx); !errors.Is(err, metastorage.ErrBackendClosed) {
		t.Errorf("StateCounts after Close: %v, want ErrBackendClosed", err)
	}
}
