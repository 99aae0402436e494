package postgres_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// dsnVar names the environment variable that gives the tests a server.
const dsnVar = spooltest.PostgresEnv

// testDSN returns the URL of the test server, or skips the test.
var testDSN = spooltest.PostgresDSN

// newSchema returns the name of a schema for t alone, which is dropped when
// t ends.
var newSchema = pgtest.NewSchema

// execIn runs sql on dsn, with $s standing for the quoted schema.
var execIn = pgtest.Exec

// quietLogger discards what it is given.
var quietLogger = slog.New(slog.DiscardHandler)

// open opens a Backend on schema with opts, closed when t ends.
func open(t testing.TB, dsn, schema string, opts ...postgres.Option) *postgres.Backend {
	t.Helper()
	opts = append([]postgres.Option{postgres.WithSchema(schema), postgres.WithMaxConns(4), postgres.WithLogger(quietLogger)}, opts...)
	b, err := postgres.NewFactory(dsn, opts...).Open(context.Background())
	if err != nil {
		t.Fatalf("open schema %s: %v", schema, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// withParam returns dsn with the connection parameter key set to value.
func withParam(dsn, key, value string) string {
	if !strings.Contains(dsn, "://") {
		return dsn + " " + key + "='" + value + "'"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// lockRow locks the row of the message id in schema from a transaction of
// its own, until the returned function is called.
func lockRow(t testing.TB, dsn, schema, id string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM (SELECT FROM "+pgx.Identifier{schema}.Sanitize()+".messages WHERE id = $1 FOR UPDATE) l", []byte(id)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("lock the row of %q: %d rows, %v", id, n, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// awaitLockWait returns true when a session named app waits for a lock,
// or false when ctx ends first or the server cannot be asked.
func awaitLockWait(ctx context.Context, t testing.TB, dsn, app string) bool {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if ctx.Err() == nil {
			t.Errorf("connect: %v", err)
		}
		return false
	}
	defer conn.Close(context.Background())
	for {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", app).Scan(&n)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("waiting for a session of %s to wait for a lock: %v", app, err)
			}
			return false
		}
		if n > 0 {
			return true
		}
	}
}
