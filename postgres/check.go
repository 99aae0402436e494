package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// StateCheck compares, for one state, the sum of the counter rows with the
// number of message rows.
type StateCheck struct {
	State    metastorage.QueueState
	Counters int64 // the sum of the state's counters, as GetStateCount reads it
	Rows     int64 // the number of message rows in the state
}

// Damaged reports whether the counters disagree with the rows.
func (c StateCheck) Damaged() bool { return c.Counters != c.Rows }

// CheckReport is what Check found in a schema.
type CheckReport struct {
	Version     int // the schema's version
	CounterRows int // the number of counter rows
	// MissingCounterRows is the number of counter rows missing among those
	// numbered from 0 to the larger of the highest number and the number
	// the Backend found when it opened, less one; 0 when there are none at
	// all. A write through a missing row changes its message but no
	// counter.
	MissingCounterRows int
	States             []StateCheck // one per state, in the order of metastorage.States
	// Repaired is set when Check was asked to repair, found damage and
	// set the counters to the numbers of rows.
	Repaired bool
}

// Damaged reports whether counter rows are missing or a state's counters
// disagree with its rows.
func (r CheckReport) Damaged() bool {
	if r.MissingCounterRows > 0 {
		return true
	}
	for _, c := range r.States {
		if c.Damaged() {
			return true
		}
	}
	return false
}

// Check compares the counter rows of every state with a count of the
// message rows, reports counter rows missing, and reports the schema
// version. The comparison is made on one snapshot, in which the two agree
// unless something outside the Backend changed a table (a hand's INSERT or
// DELETE, a restore of one table). With repair, it first takes an
// exclusive lock on the counts table, which waits for the writes in
// progress and holds back new ones until it commits, and when it finds
// damage creates the missing counter rows and sets the counters of every
// state to its number of rows, so that the counters are exact again; other
// Backends keep working meanwhile, their writes waiting for the lock.
// Without repair it changes nothing. Counting the rows reads the whole
// state index, a cost linear in the number of messages. It is safe for
// concurrent use.
func (b *Backend) Check(ctx context.Context, repair bool) (CheckReport, error) {
	const op = "check"
	if err := b.begin(ctx, op, ""); err != nil {
		return CheckReport{}, err
	}
	defer b.ops.RUnlock()
	var r CheckReport
	err := b.run(ctx, read, func() error {
		var err error
		r, err = b.check(ctx, repair)
		return err
	})
	if err != nil {
		return CheckReport{}, opError(op, "schema "+quote(b.schema), err)
	}
	return r, nil
}

// check runs Check in one transaction.
func (b *Backend) check(ctx context.Context, repair bool) (CheckReport, error) {
	s := pgx.Identifier{b.schema}.Sanitize()
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if repair {
		opts = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	tx, err := b.pool.BeginTx(ctx, opts)
	if err != nil {
		return CheckReport{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if repair {
		// Every write changes a counter row in the statement that changes
		// its message, so once this lock is held no write is half seen.
		if _, err := tx.Exec(ctx, "LOCK TABLE "+s+".counts IN EXCLUSIVE MODE"); err != nil {
			return CheckReport{}, fmt.Errorf("lock the counts: %w", err)
		}
	}
	var r CheckReport
	if err := tx.QueryRow(ctx, "SELECT version FROM "+s+".schema_version").Scan(&r.Version); err != nil {
		return CheckReport{}, fmt.Errorf("read the schema version: %w", err)
	}
	var counters [metastorage.NumStates]int64
	var want int
	// A schema made by an earlier release may have fewer rows than a new
	// one gets: those the Backend found at open are what it writes through.
	if err := tx.QueryRow(ctx, "SELECT count(*), greatest(coalesce(max(slot), -1) + 1, $1) FROM "+s+".counts",
		b.slots).Scan(&r.CounterRows, &want); err != nil {
		return CheckReport{}, fmt.Errorf("count the counter rows: %w", err)
	}
	if r.CounterRows > 0 {
		r.MissingCounterRows = want - r.CounterRows
	}
	if err := tx.QueryRow(ctx, b.q.counts).Scan(&counters[0], &counters[1], &counters[2], &counters[3], &counters[4], &counters[5]); err != nil {
		return CheckReport{}, fmt.Errorf("read the counters: %w", err)
	}
	var rows [metastorage.NumStates]int64
	res, err := tx.Query(ctx, "SELECT state, count(*) FROM "+s+".messages GROUP BY state")
	if err != nil {
		return CheckReport{}, fmt.Errorf("count the messages: %w", err)
	}
	var state int16
	var n int64
	_, err = pgx.ForEachRow(res, []any{&state, &n}, func() error {
		if !metastorage.QueueState(state).Valid() {
			return fmt.Errorf("a message row has state %d", state)
		}
		rows[state] = n
		return nil
	})
	if err != nil {
		return CheckReport{}, fmt.Errorf("count the messages: %w", err)
	}
	for _, st := range metastorage.States() {
		r.States = append(r.States, StateCheck{State: st, Counters: counters[st], Rows: rows[st]})
	}
	if !repair || !r.Damaged() || r.CounterRows == 0 {
		return r, nil
	}
	if r.MissingCounterRows > 0 {
		if _, err := tx.Exec(ctx, "INSERT INTO "+s+".counts (slot) SELECT generate_series(0, $1::int - 1) ON CONFLICT (slot) DO NOTHING", want); err != nil {
			return CheckReport{}, fmt.Errorf("create the missing counter rows: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, resetCounts(s), rowArgs(r.States)...); err != nil {
		return CheckReport{}, fmt.Errorf("set the counters: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return CheckReport{}, fmt.Errorf("commit the counters: %w", err)
	}
	r.Repaired = true
	return r, nil
}

// resetCounts is the statement that sets the counters of each state to
// $n (n the state's number plus one) on the first counter row, and to 0 on
// the others.
func resetCounts(schema string) string {
	var sets []string
	for _, st := range metastorage.States() {
		sets = append(sets, fmt.Sprintf("n%[1]d = CASE WHEN slot = (SELECT min(slot) FROM %[2]s.counts) THEN $%[3]d::bigint ELSE 0 END", int(st), schema, int(st)+1))
	}
	return "UPDATE " + schema + ".counts SET " + strings.Join(sets, ", ")
}

// rowArgs returns the number of rows of every state, in state order.
func rowArgs(states []StateCheck) []any {
	args := make([]any, metastorage.NumStates)
	for _, c := range states {
		args[c.State] = c.Rows
	}
	return args
}

// Identity returns a string that is the same for two Backends on the same
// schema of the same running server, and differs otherwise: the server's
// start time, the database and the schema's object ID. Tools use it to
// refuse to copy a schema onto itself under another spelling of its URL.
// It changes when the server restarts.
func (b *Backend) Identity(ctx context.Context) (string, error) {
	const op = "identity"
	if err := b.begin(ctx, op, ""); err != nil {
		return "", err
	}
	defer b.ops.RUnlock()
	var id string
	err := b.run(ctx, read, func() error {
		return b.pool.QueryRow(ctx, `SELECT pg_postmaster_start_time()::text || ' ' || current_database() || ' ' || oid::text
			FROM pg_namespace WHERE nspname = $1`, b.schema).Scan(&id)
	})
	if err != nil {
		return "", opError(op, "schema "+quote(b.schema), err)
	}
	return id, nil
}
