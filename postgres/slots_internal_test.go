package postgres

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestConnectionSlots shows that each connection of a Backend's pool
// changes a counter row of its own, and that a connection whose session
// was reset (RESET ALL, DISCARD ALL) still writes, and is counted.
func TestConnectionSlots(t *testing.T) {
	t.Parallel()
	dsn := spooltest.PostgresDSN(t)
	schema := pgtest.NewSchema(t, dsn)
	const conns = 4
	b, err := NewFactory(dsn, WithSchema(schema), WithMaxConns(conns)).Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	held := make([]*pgxpool.Conn, conns)
	rows := map[int]bool{}
	for i := range held {
		if held[i], err = b.pool.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		var row int
		if err := held[i].QueryRow(t.Context(), "SELECT "+slotExpr(b.slots)).Scan(&row); err != nil {
			t.Fatal(err)
		}
		rows[row] = true
	}
	if len(rows) != conns {
		t.Errorf("%d connections change %d counter rows (%v), want one each", conns, len(rows), rows)
	}
	for i, c := range held {
		sql := "RESET ALL"
		if i%2 == 1 {
			sql = "DISCARD ALL"
		}
		if _, err := c.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
		c.Release()
	}
	const n = 10
	for i := range n {
		if err := b.StoreMeta(t.Context(), fmt.Sprintf("m-%d", i), metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
			t.Fatalf("store after the sessions were reset: %v", err)
		}
	}
	if got := b.GetStateCount(metastorage.StateDeferred); got != n {
		t.Errorf("GetStateCount(deferred) = %d after %d stores, want %d", got, n, n)
	}
}
