package postgres

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
)

// slotVar is the session setting that holds a connection's number; the
// statements change the counter row of that number modulo the rows.
const slotVar = "spoolmeta.slot"

// slotExpr is the SQL of the counter row a statement changes, of the rows
// counter rows. A session without the setting, or whose setting a RESET
// ALL or DISCARD ALL emptied, uses row 0.
func slotExpr(rows int) string {
	return "coalesce(nullif(current_setting('" + slotVar + "', true), '')::int, 0) % " + strconv.Itoa(rows)
}

// connSlots numbers the connections of a pool, each with the lowest number
// no open connection holds, plus a random base per pool. A counter row
// stays locked until its statement commits: with a row per connection,
// a pool's writers never wait for each other's, and pools of several
// Backends seldom do.
type connSlots struct {
	base int
	mu   sync.Mutex
	held map[*pgx.Conn]int
	used []bool
}

func newConnSlots() *connSlots {
	return &connSlots{base: rand.IntN(1 << 20), held: make(map[*pgx.Conn]int)}
}

// afterConnect gives a new connection its number.
func (s *connSlots) afterConnect(ctx context.Context, c *pgx.Conn) error {
	s.mu.Lock()
	n := 0
	for n < len(s.used) && s.used[n] {
		n++
	}
	if n == len(s.used) {
		s.used = append(s.used, false)
	}
	s.used[n] = true
	s.held[c] = n
	s.mu.Unlock()
	_, err := c.Exec(ctx, "SELECT set_config('"+slotVar+"', $1, false)", strconv.Itoa(s.base+n))
	if err != nil {
		s.beforeClose(c)
	}
	return err
}

// beforeClose frees the number of a connection that closes.
func (s *connSlots) beforeClose(c *pgx.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.held[c]; ok {
		s.used[n] = false
		delete(s.held, c)
	}
}
