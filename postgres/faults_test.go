package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// writeCalls are the calls that change the message id, each of which the
// fault tests make while the message's row is locked.
func writeCalls(id string) []struct {
	op   string
	call func(context.Context, ms.Backend) error
} {
	m := ms.MessageMetadata{State: ms.StateHold, Attempts: 7, LastError: "changed"}
	return []struct {
		op   string
		call func(context.Context, ms.Backend) error
	}{
		{"MoveToState", func(ctx context.Context, b ms.Backend) error {
			return b.MoveToState(ctx, id, ms.StateIncoming, ms.StateActive)
		}},
		{"StoreMeta", func(ctx context.Context, b ms.Backend) error { return b.StoreMeta(ctx, id, m) }},
		{"UpdateMeta", func(ctx context.Context, b ms.Backend) error { return b.UpdateMeta(ctx, id, m) }},
		{"DeleteMeta", func(ctx context.Context, b ms.Backend) error { return b.DeleteMeta(ctx, id) }},
	}
}

// checkIntact checks that the message id is in incoming, unchanged since it
// was stored as want, and that the counts say one message in incoming.
func checkIntact(t *testing.T, b *postgres.Backend, id string, want ms.MessageMetadata, after string) {
	t.Helper()
	got, err := b.GetMeta(t.Context(), id)
	if err != nil {
		t.Fatalf("after %s: GetMeta %q: %v", after, id, err)
	}
	if got.State != ms.StateIncoming || got.Attempts != want.Attempts || got.LastError != want.LastError || !got.Updated.Equal(want.Updated) {
		t.Errorf("after %s: GetMeta %q: got %+v, want the record unchanged, %+v", after, id, got, want)
	}
	for _, s := range ms.States() {
		if n, w := b.GetStateCount(s), map[bool]int64{true: 1}[s == ms.StateIncoming]; n != w {
			t.Errorf("after %s: GetStateCount %s: got %d, want %d", after, s, n, w)
		}
	}
}

// faultFixture opens a Backend named app on a new schema, with params
// added to the DSN, and stores one message in incoming.
func faultFixture(t *testing.T, params ...string) (dsn, schema, app string, b *postgres.Backend, want ms.MessageMetadata) {
	dsn = testDSN(t)
	schema = newSchema(t, dsn)
	open(t, dsn, schema).Close() // migrate without the params
	app = schema
	bdsn := withParam(dsn, "application_name", app)
	for i := 0; i < len(params); i += 2 {
		bdsn = withParam(bdsn, params[i], params[i+1])
	}
	b = open(t, bdsn, schema)
	if err := b.StoreMeta(t.Context(), "msg-1", ms.MessageMetadata{State: ms.StateIncoming, Attempts: 1, LastError: "first"}); err != nil {
		t.Fatal(err)
	}
	want, err := b.GetMeta(t.Context(), "msg-1")
	if err != nil {
		t.Fatal(err)
	}
	return dsn, schema, app, b, want
}

// TestStatementTimeout checks that a write that runs into the server's
// statement_timeout fails with the server's error, which says so, changes
// nothing, and leaves the Backend working.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	dsn, schema, _, b, want := faultFixture(t, "statement_timeout", "300")
	const id = "msg-1"
	plain := open(t, dsn, schema) // checks without the timeout
	release := lockRow(t, dsn, schema, id)
	for _, c := range writeCalls(id) {
		err := c.call(t.Context(), b)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(err.Error(), "statement timeout") || !strings.Contains(err.Error(), id) {
			t.Errorf("%s on a locked row with a statement timeout: got %v, want the server's statement timeout error naming %q", c.op, err, id)
		}
		if errors.Is(err, postgres.ErrOutcomeUnknown) {
			t.Errorf("%s on a locked row with a statement timeout: got %v, want no ErrOutcomeUnknown: the server reported the failure", c.op, err)
		}
	}
	release()
	checkIntact(t, plain, id, want, "statement timeouts")
	if err := b.MoveToState(t.Context(), id, ms.StateIncoming, ms.StateActive); err != nil {
		t.Errorf("MoveToState after the timeouts: %v", err)
	}
}

// TestContextDoneDuringCall checks that a write whose context ends while the
// server runs it fails with the context's error, is cancelled at the server
// (it does not run on after the call returned), and leaves the Backend
// working.
func TestContextDoneDuringCall(t *testing.T) {
	t.Parallel()
	dsn, schema, app, b, want := faultFixture(t)
	const id = "msg-1"
	release := lockRow(t, dsn, schema, id)
	for _, c := range writeCalls(id) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			if awaitLockWait(ctx, t, dsn, app) {
				cancel()
			}
		}()
		err := c.call(ctx, b)
		cancel()
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), id) {
			t.Errorf("%s on a locked row, its context canceled: got %v, want context.Canceled naming %q", c.op, err, id)
		}
		if errors.Is(err, postgres.ErrOutcomeUnknown) {
			t.Errorf("%s on a locked row, its context canceled: got %v, want no ErrOutcomeUnknown: the server cancelled the statement", c.op, err)
		}
	}
	release()
	checkIntact(t, b, id, want, "canceled calls")
	if err := b.MoveToState(t.Context(), id, ms.StateIncoming, ms.StateActive); err != nil {
		t.Errorf("MoveToState after the canceled calls: %v", err)
	}
}

// TestTerminatedConnection checks what a write does when
// pg_terminate_backend ends its session while the server runs it: a call
// that may not be repeated (MoveToState, DeleteMeta) fails with
// ErrOutcomeUnknown and the server's reason; one that may (StoreMeta,
// UpdateMeta) runs again on a new connection and succeeds. The Backend
// works on without being reopened.
func TestTerminatedConnection(t *testing.T) {
	t.Parallel()
	dsn, schema, app, b, want := faultFixture(t)
	const id = "msg-1"
	terminate := func(ctx context.Context) bool {
		if !awaitLockWait(ctx, t, dsn, app) {
			return false
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect: %v", err)
			return false
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", app)
		if err != nil && ctx.Err() == nil {
			t.Errorf("terminate: %v", err)
		}
		return err == nil
	}
	release := lockRow(t, dsn, schema, id)
	for _, c := range []int{0, 3} { // MoveToState, DeleteMeta
		call := writeCalls(id)[c]
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); terminate(ctx) }()
		err := call.call(t.Context(), b)
		cancel()
		<-done
		if !errors.Is(err, postgres.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "terminating connection") || !strings.Contains(err.Error(), id) {
			t.Errorf("%s on a locked row, its session terminated: got %v, want ErrOutcomeUnknown with the server's reason, naming %q", call.op, err, id)
		}
	}
	release()
	checkIntact(t, b, id, want, "terminated calls")

	for _, c := range []int{1, 2} { // StoreMeta, UpdateMeta
		call := writeCalls(id)[c]
		release := lockRow(t, dsn, schema, id)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if terminate(ctx) && awaitLockWait(ctx, t, dsn, app) { // the call, repeated
				release()
			}
		}()
		err := call.call(t.Context(), b)
		cancel()
		<-done
		release()
		if err != nil {
			t.Errorf("%s on a locked row, its session terminated once: got %v, want nil (repeated on a new connection)", call.op, err)
		}
		if got, err := b.GetMeta(t.Context(), id); err != nil || got.State != ms.StateHold || got.LastError != "changed" {
			t.Errorf("GetMeta after %s: got %+v, %v, want the record it wrote", call.op, got, err)
		}
	}
	if err := b.MoveToState(t.Context(), id, ms.StateHold, ms.StateActive); err != nil {
		t.Errorf("MoveToState after the terminated calls: %v", err)
	}
}

// TestCountsAcrossBackends checks that GetStateCount is exact through
// every Backend on a schema, whichever Backend wrote: after concurrent
// stores, moves, updates and deletes through several, each reports the
// number of rows in each state.
func TestCountsAcrossBackends(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	const backends, perBackend = 3, 40
	bs := make([]*postgres.Backend, backends)
	for i := range bs {
		bs[i] = open(t, dsn, schema)
	}
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			ctx := t.Context()
			for j := range perBackend {
				id := fmt.Sprintf("msg-%d-%d", i, j)
				s := ms.QueueState(j % ms.NumStates)
				if err := b.StoreMeta(ctx, id, ms.MessageMetadata{State: s}); err != nil {
					t.Error(err)
					return
				}
				var err error
				switch j % 4 {
				case 1:
					err = b.MoveToState(ctx, id, s, (s+1)%ms.NumStates)
				case 2:
					err = b.UpdateMeta(ctx, id, ms.MessageMetadata{State: (s + 2) % ms.NumStates})
				case 3:
					err = b.DeleteMeta(ctx, id)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	want := rowCounts(t, dsn, schema)
	for i, b := range bs {
		for _, s := range ms.States() {
			if got := b.GetStateCount(s); got != want[s] {
				t.Errorf("Backend %d: GetStateCount %s: got %d, want %d (rows in the table)", i, s, got, want[s])
			}
		}
	}
}

// rowCounts counts the rows of each state in schema.
func rowCounts(t testing.TB, dsn, schema string) [ms.NumStates]int64 {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, dsn)
	rows, err := conn.Query(ctx, "SELECT state, count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".messages GROUP BY state")
	if err != nil {
		t.Fatalf("count the rows: %v", err)
	}
	var n [ms.NumStates]int64
	for rows.Next() {
		var s int16
		var c int64
		if err := rows.Scan(&s, &c); err != nil {
			t.Fatalf("count the rows: %v", err)
		}
		n[s] = c
	}
	if rows.Err() != nil {
		t.Fatalf("count the rows: %v", rows.Err())
	}
	return n
}

// TestSchemaVersion checks that Backends opening at once on a new schema
// create it once, and that a schema of a newer version is refused with
// ErrSchemaVersion, naming both versions, and left as it is.
func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	f := postgres.NewFactory(dsn, postgres.WithSchema(schema), postgres.WithMaxConns(2), postgres.WithLogger(quietLogger))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			b, err := f.Open(t.Context())
			if err != nil {
				t.Errorf("Open of a new schema by 8 Backends at once: %v", err)
				return
			}
			b.Close()
		})
	}
	wg.Wait()
	var version, slots int
	ctx := t.Context()
	conn := pgtest.Connect(t, dsn)
	s := pgx.Identifier{schema}.Sanitize()
	if err := conn.QueryRow(ctx, "SELECT (SELECT version FROM "+s+".schema_version), (SELECT count(*) FROM "+s+".counts)").Scan(&version, &slots); err != nil {
		t.Fatal(err)
	}
	if version != postgres.SchemaVersion || slots != 128 {
		t.Errorf("after 8 Backends opened a new schema at once: version %d, %d counter rows; want %d and 128", version, slots, postgres.SchemaVersion)
	}

	newer := postgres.SchemaVersion + 1
	if _, err := conn.Exec(ctx, "UPDATE "+s+".schema_version SET version = $1", newer); err != nil {
		t.Fatal(err)
	}
	b, err := f.Open(ctx)
	if err == nil {
		b.Close()
	}
	if !errors.Is(err, postgres.ErrSchemaVersion) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", newer)) || !strings.Contains(err.Error(), schema) {
		t.Errorf("Open of a schema at version %d: got %v, want ErrSchemaVersion naming the schema and the version", newer, err)
	}
	if err := conn.QueryRow(ctx, "SELECT version FROM "+s+".schema_version").Scan(&version); err != nil || version != newer {
		t.Errorf("after the refused Open: version %d, %v; want %d, unchanged", version, err, newer)
	}
}

// TestOpenWithoutCreateRight checks that a role that may read and write
// the tables of a migrated schema, but not create anything, opens it.
func TestOpenWithoutCreateRight(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	open(t, dsn, schema).Close()
	role := pgx.Identifier{schema + "_app"}.Sanitize()
	s := pgx.Identifier{schema}.Sanitize()
	conn := pgtest.Connect(t, dsn)
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT USAGE ON SCHEMA " + s + " TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + role,
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		execIn(t, dsn, schema, "DROP SCHEMA IF EXISTS $s CASCADE") // and with it the role's rights
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP ROLE "+role)
			conn.Close(ctx)
		}
		if err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	b := open(t, withParam(dsn, "user", schema+"_app"), schema)
	if err := b.StoreMeta(t.Context(), "msg-1", ms.MessageMetadata{State: ms.StateIncoming}); err != nil {
		t.Errorf("StoreMeta through a role without the right to create: %v", err)
	}
}

// TestMoveConflictAfterWait checks the text of the conflict of a
// MoveToState that waited for another transaction to move the message: it
// names the state the message was moved to, not the one it was in when the
// call began.
func TestMoveConflictAfterWait(t *testing.T) {
	t.Parallel()
	dsn, schema, app, b, _ := faultFixture(t)
	const id = "msg-1"
	ctx := t.Context()
	tx := holdInOpenTx(t, dsn, schema, id)
	done := make(chan error)
	go func() { done <- b.MoveToState(ctx, id, ms.StateIncoming, ms.StateActive) }()
	commitAfterLockWait(t, dsn, app, tx, done)
	err := <-done
	if !errors.Is(err, ms.ErrStateConflict) || !strings.Contains(err.Error(), "in state hold") {
		t.Errorf("MoveToState from incoming after another transaction moved the message to hold: got %v, want a conflict naming hold", err)
	}
}

// TestUpdateAfterConcurrentMove checks an UpdateMeta that waited for
// another transaction to move the message to another state: it replaces
// the record, and the counters take the message out of the state it was
// moved to, not the one it was in when the call began.
func TestUpdateAfterConcurrentMove(t *testing.T) {
	t.Parallel()
	dsn, schema, app, b, want := faultFixture(t)
	const id = "msg-1"
	ctx := t.Context()
	tx := holdInOpenTx(t, dsn, schema, id)
	done := make(chan error)
	next := want
	next.State, next.Attempts = ms.StateDeferred, 2
	go func() { done <- b.UpdateMeta(ctx, id, next) }()
	commitAfterLockWait(t, dsn, app, tx, done)
	if err := <-done; err != nil {
		t.Fatalf("UpdateMeta after another transaction moved the message to hold: got %v, want nil", err)
	}
	if got, err := b.GetMeta(ctx, id); err != nil || got.State != ms.StateDeferred || got.Attempts != 2 {
		t.Errorf("GetMeta after UpdateMeta: got state %s, attempts %d, %v; want deferred, 2, nil", got.State, got.Attempts, err)
	}
	rows := rowCounts(t, dsn, schema)
	for _, st := range ms.States() {
		if got := b.GetStateCount(st); got != rows[st] {
			t.Errorf("GetStateCount %s: got %d, want %d (rows in the table)", st, got, rows[st])
		}
	}
}

// TestSchemaNameTooLong checks that Open refuses a schema name that
// PostgreSQL would cut short, so that two long names cannot share a schema.
func TestSchemaNameTooLong(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	name := strings.Repeat("s", 64)
	b, err := postgres.NewFactory(dsn, postgres.WithSchema(name), postgres.WithLogger(quietLogger)).Open(t.Context())
	if err == nil {
		b.Close()
		execIn(t, dsn, name[:63], "DROP SCHEMA IF EXISTS $s CASCADE")
		t.Fatalf("Open with a schema name of 64 bytes: got nil, want an error")
	}
	if !strings.Contains(err.Error(), "64 bytes") {
		t.Errorf("Open with a schema name of 64 bytes: got %v, want an error that says why", err)
	}
}

// TestCountsUnderRacingWrites races stores, updates, moves and deletes of
// the same few messages through several Backends, so that stores meet
// concurrent creations and deletions of their message: afterwards the
// counts match the rows.
func TestCountsUnderRacingWrites(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	const backends, goroutines, calls, messages = 4, 8, 150, 5
	bs := make([]*postgres.Backend, backends)
	for i := range bs {
		bs[i] = open(t, dsn, schema)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			b := bs[g%backends]
			for n := range calls {
				id := fmt.Sprintf("msg-%d", (n*7+g)%messages)
				s := ms.QueueState((n + g) % ms.NumStates)
				var err error
				switch (n + g) % 4 {
				case 0, 1:
					err = b.StoreMeta(t.Context(), id, ms.MessageMetadata{State: s})
				case 2:
					err = b.UpdateMeta(t.Context(), id, ms.MessageMetadata{State: s})
				case 3:
					if n%2 == 0 {
						err = b.DeleteMeta(t.Context(), id)
					} else {
						err = b.MoveToState(t.Context(), id, s, (s+1)%ms.NumStates)
					}
				}
				if err != nil && !errors.Is(err, ms.ErrMessageNotFound) && !errors.Is(err, ms.ErrStateConflict) {
					t.Errorf("%s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	want := rowCounts(t, dsn, schema)
	for _, s := range ms.States() {
		if got := bs[0].GetStateCount(s); got != want[s] {
			t.Errorf("GetStateCount %s: got %d, want %d (rows in the table)", s, got, want[s])
		}
	}
}

// TestCounterRowPerConnection stores messages from as many goroutines as
// the Backend has connections: the counts change in one counter row per
// connection at most, rows of consecutive numbers (modulo the rows), and
// they add up to the messages stored.
func TestCounterRowPerConnection(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	const conns, perConn = 4, 50
	b := open(t, dsn, schema, postgres.WithMaxConns(conns))
	var wg sync.WaitGroup
	for g := range conns {
		wg.Go(func() {
			for n := range perConn {
				if err := b.StoreMeta(t.Context(), fmt.Sprintf("msg-%d-%d", g, n), ms.MessageMetadata{State: ms.StateIncoming}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	conn := pgtest.Connect(t, dsn)
	s := pgx.Identifier{schema}.Sanitize()
	var slots, total int64
	var used []int64
	if err := conn.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM "+s+".counts), (SELECT sum(n0) FROM "+s+".counts)::bigint, ARRAY(SELECT slot::bigint FROM "+s+".counts WHERE n0 <> 0 ORDER BY slot)").Scan(&slots, &total, &used); err != nil {
		t.Fatal(err)
	}
	if total != conns*perConn {
		t.Errorf("counters of incoming add up to %d, want %d", total, conns*perConn)
	}
	if len(used) == 0 || len(used) > conns {
		t.Fatalf("%d counter rows changed (%v), want 1 to %d", len(used), used, conns)
	}
	// The rows, in a circle of slots rows, lie within conns consecutive
	// ones: some gap between used rows is at least slots-conns+1.
	gap := used[0] + slots - used[len(used)-1]
	for i := 1; i < len(used); i++ {
		gap = max(gap, used[i]-used[i-1])
	}
	if gap < slots-conns+1 {
		t.Errorf("counter rows %v of %d are not consecutive: the connections do not each have one", used, slots)
	}
}

// holdInOpenTx moves the message id, in incoming, to hold with its count,
// in a transaction left open for the caller to commit; it is rolled back
// when t ends otherwise.
func holdInOpenTx(t *testing.T, dsn, schema, id string) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	tx, err := pgtest.Connect(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "UPDATE "+s+".messages SET state = $1 WHERE id = $2", int16(ms.StateHold), []byte(id)); err != nil {
		t.Fatal(err)
	}
	moveCount := fmt.Sprintf("UPDATE %[1]s.counts SET n%[2]d = n%[2]d - 1, n%[3]d = n%[3]d + 1 WHERE slot = 0", s, ms.StateIncoming, ms.StateHold)
	if _, err := tx.Exec(ctx, moveCount); err != nil {
		t.Fatal(err)
	}
	return tx
}

// commitAfterLockWait commits tx once the session app waits for its lock.
// If it never does, it rolls tx back, waits for the call to end on done,
// and fails t, rather than leave the call waiting.
func commitAfterLockWait(t *testing.T, dsn, app string, tx pgx.Tx, done <-chan error) {
	t.Helper()
	ctx := t.Context()
	if !awaitLockWait(ctx, t, dsn, app) {
		tx.Rollback(context.Background())
		<-done
		t.Fatal("the call never waited for the other transaction's lock")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
