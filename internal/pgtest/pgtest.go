// Package pgtest holds what the tests on a PostgreSQL server share: a
// schema of each test's own, and statements run in it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// NewSchema returns the name of a schema for t alone on the server of dsn,
// not created yet, which is dropped when t ends.
func NewSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	schema := "spoolmeta_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { Exec(t, dsn, schema, "DROP SCHEMA IF EXISTS $s CASCADE") })
	return schema
}

// Connect returns a connection to the database of dsn, closed when t
// ends; it fails t if it cannot connect.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn := dial(t, dsn)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dial connects to the database of dsn; it fails t if it cannot.
func dial(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return conn
}

// Exec runs sql on the database of dsn, with $s standing for the quoted
// schema; it fails t if it cannot.
func Exec(t testing.TB, dsn, schema, sql string) {
	t.Helper()
	ctx := context.Background()
	conn := dial(t, dsn)
	defer conn.Close(ctx)
	sql = strings.ReplaceAll(sql, "$s", pgx.Identifier{schema}.Sanitize())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// SchemaExists reports whether the schema exists on the database of dsn.
func SchemaExists(t testing.TB, dsn, schema string) bool {
	t.Helper()
	ctx := context.Background()
	conn := dial(t, dsn)
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
