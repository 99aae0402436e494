package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolmeta/spoolmeta/metastorage"
	metapg "github.com/spoolmeta/spoolmeta/postgres"
)

// The modes of the rows of a bench on a database.
const (
	pgModeSQL     = "sql"      // calibrate: the lifecycle's statements through pgx alone
	pgModeBackend = "postgres" // lifecycle: through the postgres Backend
)

// pgDefaultWorkers are the worker counts a bench on a database runs at,
// unless --workers gives one.
var pgDefaultWorkers = []int{16, 64}

// pgDefaultMessages is the number of lifecycles of each row.
const pgDefaultMessages = 2000

// pgBenchPlan returns the rows of a bench on a database: for each number
// of workers, the calibration and then the lifecycle.
func pgBenchPlan(o benchOptions) ([]benchRun, error) {
	switch {
	case o.keepDir() != "":
		return nil, usagef("--keep keeps a spool in a directory: not with a database")
	case *o.modes != "":
		return nil, usagef("--mode chooses a mode of the filesystem backend: not with a database")
	case o.diskLoad != nil && *o.diskLoad != 0:
		return nil, usagef("--disk-load writes beside a directory: not with a database")
	case *o.workers < 0 || *o.messages < 0:
		return nil, usagef("--workers and --messages must not be negative")
	case *o.rounds < 1:
		return nil, usagef("--rounds must be at least 1")
	}
	names, err := splitList(*o.workloads, "workload", func(n string) bool { return specOf(n) != nil })
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n != "calibrate" && n != "lifecycle" {
			return nil, usagef("workload %s runs on a directory only; on a database: calibrate, lifecycle", n)
		}
	}
	workers := pgDefaultWorkers
	if *o.workers > 0 {
		workers = []int{*o.workers}
	}
	messages := pgDefaultMessages
	if *o.messages > 0 {
		messages = *o.messages
	}
	var plan []benchRun
	for _, w := range workers {
		w = max(1, min(w, messages))
		for _, r := range []benchRun{{workload: "calibrate", mode: pgModeSQL}, {workload: "lifecycle", mode: pgModeBackend}} {
			if len(names) == 0 || slices.Contains(names, r.workload) {
				r.workers, r.messages = w, messages
				plan = append(plan, r)
			}
		}
	}
	return plan, nil
}

// runBenchPG runs the bench on the database that *o.dir names, in a schema
// of its own that it drops at the end or on an interrupt.
func runBenchPG(e *env, o benchOptions) error {
	plan, err := pgBenchPlan(o)
	if err != nil {
		return err
	}
	// Bench works in a schema of its own: a schema parameter is dropped.
	dsn, _, err := splitSchema(*o.dir)
	if err != nil {
		return usagef("--dir %s: %v", redact(*o.dir), err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "spoolmeta_bench_" + hex.EncodeToString(rnd[:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Open once to create the schema; each row opens its own connections.
	b, err := metapg.NewFactory(dsn, metapg.WithSchema(schema), metapg.WithLogger(logger(io.Discard))).Open(ctx)
	if err != nil {
		return fmt.Errorf("bench: %w", redactErr(err, dsn))
	}
	defer dropBenchSchema(e, dsn, schema)
	b.Close()

	rounds := *o.rounds
	fmt.Fprintf(e.stderr, "bench: %d runs in schema %s\n", len(plan)*rounds, schema)
	all, err := runRounds(ctx, e, plan, rounds, setRatiosPG, func(_, _ int, r benchRun) (benchResult, error) {
		res, err := runOnePG(ctx, dsn, schema, r)
		return res, redactErr(err, dsn)
	})
	if err != nil {
		return err
	}
	return printResults(e, *o.json, medians(all), writePGTable)
}

// openPG opens a Backend on schema and a pool for the calibration, each with
// n connections, and opens them: n calls at once through the Backend, n
// connections of the pool held at once.
func openPG(ctx context.Context, dsn, schema string, n int, backend bool) (*metapg.Backend, *pgxpool.Pool, error) {
	if backend {
		b, err := metapg.NewFactory(dsn, metapg.WithSchema(schema), metapg.WithMaxConns(n),
			metapg.WithLogger(logger(io.Discard))).Open(ctx)
		if err != nil {
			return nil, nil, err
		}
		err = parallel(n, func(int) error {
			_, err := b.GetMeta(ctx, "warm")
			if errors.Is(err, metastorage.ErrMessageNotFound) {
				err = nil
			}
			return err
		})
		if err != nil {
			b.Close()
			return nil, nil, err
		}
		return b, nil, nil
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	pc.MaxConns = int32(n)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, nil, err
	}
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	return nil, pool, nil
}

// dropBenchSchema drops the bench's schema; it reports a failure on stderr.
func dropBenchSchema(e *env, dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "bench: drop schema %s: %v\n", schema, err)
	}
}

// runOnePG measures one row.
func runOnePG(ctx context.Context, dsn, schema string, r benchRun) (benchResult, error) {
	res := benchResult{Workload: r.workload, Mode: r.mode, Workers: r.workers, Messages: r.messages}
	b, pool, err := openPG(ctx, dsn, schema, r.workers, r.workload != "calibrate")
	if err != nil {
		return res, fmt.Errorf("open: %w", err)
	}
	if b != nil {
		defer b.Close()
	} else {
		defer pool.Close()
	}
	var lat latencies
	var ops int
	heap := startHeap()
	start := time.Now()
	if r.workload == "calibrate" {
		ops, err = newSQLCalibration(pool, schema).lifecycle(ctx, r, &lat)
	} else {
		ops, err = benchLifecycle(ctx, b, r, &lat)
	}
	elapsed := time.Since(start)
	res.PeakHeap = heap.peak()
	if err != nil {
		return res, err
	}
	res.Seconds = elapsed.Seconds()
	res.OpsPerSec = float64(ops) / elapsed.Seconds()
	res.MsgPerSec = float64(r.messages) / elapsed.Seconds()
	p50, p99 := lat.percentiles()
	res.P50Micros, res.P99Micros = float64(p50)/1e3, float64(p99)/1e3
	return res, nil
}

// setRatiosPG sets the ratio of each lifecycle row to the calibration with
// the same number of workers; calibration rows get 1.
func setRatiosPG(results []benchResult) {
	calib := map[int]float64{}
	for _, r := range results {
		if r.Workload == "calibrate" {
			calib[r.Workers] = r.MsgPerSec
		}
	}
	for i := range results {
		r := &results[i]
		if base := calib[r.Workers]; base > 0 {
			v := r.MsgPerSec / base
			r.Ratio = &v
		}
	}
}

func writePGTable(w io.Writer, results []benchResult) error {
	if err := writeRates(w, results, rates); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "\nMSG/S: lifecycles per second. OPS/S: calls (statements) per second. P50, P99: latency of one.\n"+
		"RATIO: the lifecycle's rate over calibrate sql's at the same workers: 1.00 is as fast as the\n"+
		"same six statements prepared through the driver without the library. See spoolmeta help bench.\n")
	return err
}

// sqlCalibration runs the lifecycle as bare statements through pgx, on the
// Backend's tables (the same columns and indexes) but without the library:
// no checks, no decoding of the record. Each write also changes the state
// counters of its worker's row in the same statement, as the Backend must;
// the calibration knows the state a message leaves, so it reads no row to
// learn it. pgx prepares each statement once per connection, as pgbench -M
// prepared does.
type sqlCalibration struct {
	pool                                 *pgxpool.Pool
	store, move, get, update, deleteStmt string
	slots                                string // the number of counter rows
}

// sqlCounted returns write, a statement that returns 1 for each row it
// changes, with the change of the counter row $slot from the state $from
// to the state $to (-1 for none) for each of those rows.
func sqlCounted(counts, write string, slot, from, to int) string {
	var set strings.Builder
	for i := range metastorage.NumStates {
		if i > 0 {
			set.WriteString(", ")
		}
		fmt.Fprintf(&set, "n%[1]d = n%[1]d + ($%[3]d::smallint = %[1]d)::int - ($%[2]d::smallint = %[1]d)::int", i, from, to)
	}
	return fmt.Sprintf("WITH w AS (%s) UPDATE %s SET %s WHERE slot = $%d AND EXISTS (SELECT FROM w)", write, counts, set.String(), slot)
}

func newSQLCalibration(pool *pgxpool.Pool, schema string) *sqlCalibration {
	m, counts := pgx.Identifier{schema}.Sanitize()+".messages", pgx.Identifier{schema}.Sanitize()+".counts"
	const cols = `id, state, attempts, max_attempts, next_retry_us, next_retry_ns, next_retry_off,
		created_us, created_ns, created_off, updated_us, updated_ns, updated_off,
		last_error, size, priority, headers, retry_policy`
	return &sqlCalibration{
		pool: pool,
		store: sqlCounted(counts, `INSERT INTO `+m+` (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
			ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, attempts = EXCLUDED.attempts, max_attempts = EXCLUDED.max_attempts,
			next_retry_us = EXCLUDED.next_retry_us, next_retry_ns = EXCLUDED.next_retry_ns, next_retry_off = EXCLUDED.next_retry_off,
			created_us = EXCLUDED.created_us, created_ns = EXCLUDED.created_ns, created_off = EXCLUDED.created_off,
			updated_us = EXCLUDED.updated_us, updated_ns = EXCLUDED.updated_ns, updated_off = EXCLUDED.updated_off,
			last_error = EXCLUDED.last_error, size = EXCLUDED.size, priority = EXCLUDED.priority,
			headers = EXCLUDED.headers, retry_policy = EXCLUDED.retry_policy RETURNING 1`, 19, 20, 2),
		move:  sqlCounted(counts, `UPDATE `+m+` SET state = $3, updated_us = $4, updated_ns = $5, updated_off = $6 WHERE id = $1 AND state = $2 RETURNING 1`, 7, 2, 3),
		get:   `SELECT ` + cols + ` FROM ` + m + ` WHERE id = $1`,
		slots: `SELECT count(*) FROM ` + counts,
		update: sqlCounted(counts, `UPDATE `+m+` SET state = $2, attempts = $3, max_attempts = $4,
			next_retry_us = $5, next_retry_ns = $6, next_retry_off = $7, updated_us = $8, updated_ns = $9, updated_off = $10,
			last_error = $11, size = $12, priority = $13, headers = $14, retry_policy = $15 WHERE id = $1 RETURNING 1`, 16, 17, 2),
		deleteStmt: sqlCounted(counts, `DELETE FROM `+m+` WHERE id = $1 RETURNING 1`, 2, 3, 4),
	}
}

// sqlRecord is a record as the calibration binds and scans it.
type sqlRecord struct {
	id                              []byte
	state                           int16
	attempts, maxAttempts           int64
	nextUS, createdUS, updatedUS    int64
	nextNS, createdNS, updatedNS    int16
	nextOff, createdOff, updatedOff int32
	lastError                       []byte
	size, priority                  int64
	headers, policy                 []byte
}

func newSQLRecord(i int, s metastorage.QueueState) sqlRecord {
	md := benchMessage(i, s)
	now := time.Now().UnixMicro()
	var h []byte
	for _, k := range []string{"from", "subject", "to"} {
		h = append(h, byte(len(k)))
		h = append(h, k...)
		h = append(h, byte(len(md.Headers[k])))
		h = append(h, md.Headers[k]...)
	}
	return sqlRecord{id: []byte(benchID(i)), state: int16(s), maxAttempts: int64(md.MaxAttempts),
		nextUS: md.NextRetry.UnixMicro(), createdUS: now, updatedUS: now,
		lastError: []byte(md.LastError), size: md.Size, priority: int64(md.Priority), headers: h, policy: []byte(md.RetryPolicyName)}
}

// lifecycle runs the statements of the lifecycle workload for each message,
// with cfg.workers goroutines.
func (c *sqlCalibration) lifecycle(ctx context.Context, cfg benchRun, lat *latencies) (int, error) {
	var slots int
	if err := c.pool.QueryRow(ctx, c.slots).Scan(&slots); err != nil {
		return 0, err
	}
	err := parallel(cfg.workers, func(w int) error {
		slot := int16(w % slots)
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := c.one(ctx, i, slot, &l); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages * 6, err
}

// exec runs a statement that must change one row.
func (c *sqlCalibration) exec(ctx context.Context, sql string, args ...any) error {
	tag, err := c.pool.Exec(ctx, sql, args...)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("%d rows changed, want 1", tag.RowsAffected())
	}
	return err
}

func (c *sqlCalibration) one(ctx context.Context, i int, slot int16, l *[]time.Duration) error {
	r := newSQLRecord(i, metastorage.StateIncoming)
	move := func(from, to metastorage.QueueState) func() error {
		return func() error {
			now := time.Now().UnixMicro()
			return c.exec(ctx, c.move, r.id, int16(from), int16(to), now, int16(0), int32(0), slot)
		}
	}
	var g sqlRecord
	steps := []func() error{
		func() error {
			return c.exec(ctx, c.store, r.id, r.state, r.attempts, r.maxAttempts, r.nextUS, r.nextNS, r.nextOff,
				r.createdUS, r.createdNS, r.createdOff, r.updatedUS, r.updatedNS, r.updatedOff,
				r.lastError, r.size, r.priority, r.headers, r.policy, slot, int16(-1))
		},
		move(metastorage.StateIncoming, metastorage.StateActive),
		func() error {
			return c.pool.QueryRow(ctx, c.get, r.id).Scan(&g.id, &g.state, &g.attempts, &g.maxAttempts,
				&g.nextUS, &g.nextNS, &g.nextOff, &g.createdUS, &g.createdNS, &g.createdOff,
				&g.updatedUS, &g.updatedNS, &g.updatedOff, &g.lastError, &g.size, &g.priority, &g.headers, &g.policy)
		},
		func() error {
			g.attempts++
			g.lastError = []byte("421 4.4.2 Connection timed out")
			now := time.Now().UnixMicro()
			return c.exec(ctx, c.update, g.id, int16(metastorage.StateDeferred), g.attempts, g.maxAttempts,
				g.nextUS, g.nextNS, g.nextOff, now, int16(0), int32(0), g.lastError, g.size, g.priority, g.headers, g.policy,
				slot, int16(metastorage.StateActive))
		},
		move(metastorage.StateDeferred, metastorage.StateActive),
		func() error {
			return c.exec(ctx, c.deleteStmt, r.id, slot, int16(metastorage.StateActive), int16(-1))
		},
	}
	for _, step := range steps {
		if err := timed(l, step); err != nil {
			return fmt.Errorf("message %s: %w", benchID(i), err)
		}
	}
	return nil
}
