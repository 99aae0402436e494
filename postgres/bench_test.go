package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// benchVar sets the number of messages the benchmarks run on.
const benchVar = "SPOOLMETA_BENCH_MESSAGES"

// benchState is the state the benchmark messages are in.
const benchState = ms.StateDeferred

var bench struct {
	once   sync.Once
	dsn    string
	schema string
	n      int
	err    error
}

// dropBenchSchema drops the benchmarks' schema; TestMain calls it.
func dropBenchSchema() {
	if bench.schema == "" {
		return
	}
	ctx := context.Background()
	if conn, err := pgx.Connect(ctx, bench.dsn); err == nil {
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{bench.schema}.Sanitize()+" CASCADE")
		conn.Close(ctx)
	}
}

// benchBackend returns a Backend on a schema that holds
// $SPOOLMETA_BENCH_MESSAGES messages (100,000 by default) in deferred,
// created once per process, and their number.
func benchBackend(b *testing.B) (*postgres.Backend, int) {
	dsn := testDSN(b)
	bench.once.Do(func() {
		bench.dsn, bench.n = dsn, 100000
		if s := os.Getenv(benchVar); s != "" {
			bench.n, bench.err = strconv.Atoi(s)
		}
		if bench.err != nil {
			return
		}
		bench.schema = fmt.Sprintf("spoolmeta_bench_%d_%d", bench.n, os.Getpid())
		f := postgres.NewFactory(dsn, postgres.WithSchema(bench.schema), postgres.WithLogger(quietLogger))
		var be *postgres.Backend
		if be, bench.err = f.Open(context.Background()); bench.err != nil {
			return
		}
		be.Close()
		bench.err = fill(dsn, bench.schema, bench.n)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	be := open(b, dsn, bench.schema)
	return be, bench.n
}

// fill stores n messages in deferred with one statement, their sort keys
// spread out, and sets the counts.
func fill(dsn, schema string, n int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	s := pgx.Identifier{schema}.Sanitize()
	for _, sql := range []string{
		`INSERT INTO ` + s + `.messages
		SELECT convert_to('msg-' || lpad(i::text, 9, '0'), 'UTF8'), 2, i % 5, 10,
			1700000000000000 + i * 1000, 0, 0,
			1700000000000000 + (i * 7919 % $1) * 1000, i % 1000, 3600,
			1700000000000000 + (i * 104729 % $1) * 1000, 0, 0,
			'\x'::bytea, 1000 + i, i * 31 % 10, NULL, convert_to('default', 'UTF8')
		FROM generate_series(0::bigint, $1::bigint - 1) i`,
		`UPDATE ` + s + `.counts SET n2 = $1 WHERE slot = 0`,
	} {
		if _, err := conn.Exec(ctx, sql, n); err != nil {
			return fmt.Errorf("fill %s: %w", schema, err)
		}
	}
	// Vacuum sets the visibility map (index-only scans), and the checkpoint
	// keeps the fill's writes out of the measurements.
	if _, err = conn.Exec(ctx, "VACUUM (ANALYZE) "+s+".messages"); err == nil {
		_, err = conn.Exec(ctx, "CHECKPOINT")
	}
	return err
}

func BenchmarkGetStateCount(b *testing.B) {
	be, n := benchBackend(b)
	for b.Loop() {
		if got := be.GetStateCount(benchState); got != int64(n) {
			b.Fatalf("GetStateCount: got %d, want %d", got, n)
		}
	}
}

// BenchmarkListFirstPage lists the first 100 IDs, without Since, in every
// sort key and order.
func BenchmarkListFirstPage(b *testing.B) {
	be, n := benchBackend(b)
	for _, key := range []string{ms.SortByID, ms.SortByCreated, ms.SortByUpdated, ms.SortByPriority, ms.SortByAttempts} {
		for _, order := range []string{ms.SortAsc, ms.SortDesc} {
			name := key
			if name == "" {
				name = "id"
			}
			b.Run(name+"-"+order, func(b *testing.B) {
				o := ms.MessageListOptions{SortBy: key, SortOrder: order, Limit: 100}
				for b.Loop() {
					res, err := be.ListMessages(b.Context(), benchState, o)
					if err != nil || len(res.MessageIDs) != min(100, n) || res.Total != n {
						b.Fatalf("ListMessages: %d IDs, Total %d, %v", len(res.MessageIDs), res.Total, err)
					}
				}
			})
		}
	}
}

// BenchmarkIterate iterates every message of the state, 500 a page, and
// reports the time per message.
func BenchmarkIterate(b *testing.B) {
	be, n := benchBackend(b)
	for b.Loop() {
		it, err := be.NewMessageIterator(b.Context(), benchState, 500)
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			_, ok, err := it.Next(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			got++
		}
		it.Close()
		if got != n {
			b.Fatalf("iterated %d messages, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/message")
}
