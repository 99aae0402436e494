package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ErrOutcomeUnknown is wrapped by the error of a call whose connection
// failed after its statement was sent: the server may or may not have
// applied it.
var ErrOutcomeUnknown = errors.New("outcome unknown: the connection failed after the statement was sent")

// Limits of what a Backend stores.
const (
	// MaxIDBytes is the longest message ID stored; a longer one gives
	// metastorage.ErrInvalidMessageID. Index entries must fit a third of a
	// page.
	MaxIDBytes = 1024

	// MaxStringBytes is the most bytes a record's strings (LastError,
	// RetryPolicyName, header keys and values) may total; a larger record
	// gives metastorage.ErrTooLarge.
	MaxStringBytes = 16 << 20
)

// maxIdentBytes is the longest identifier PostgreSQL keeps whole.
const maxIdentBytes = 63

// DefaultSchema is the schema a Backend works in unless WithSchema names
// another.
const DefaultSchema = "spoolmeta"

// countTimeout bounds the query of GetStateCount, which has no context.
const countTimeout = 2 * time.Second

// cancelWait is how long a call whose context is done waits for the server
// to confirm that it cancelled the statement before closing the connection.
const cancelWait = 2 * time.Second

// Option configures a Factory.
type Option func(*config)

type config struct {
	schema   string
	maxConns int32
	logger   *slog.Logger
	slots    int // counter rows of a new schema
	existing bool
}

// WithSchema makes the Backends work in the named schema (at most 63
// bytes), which they create if it is missing. Queues in different schemas
// of one database are independent.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithMaxConns sets the largest number of connections each Backend opens
// (its pool size). The default is pgxpool's: the larger of 4 and the number
// of CPUs, or pool_max_conns in the DSN.
func WithMaxConns(n int) Option { return func(c *config) { c.maxConns = int32(n) } }

// WithLogger makes the Backends log what they cannot return as an error to
// l. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithExistingSchema makes Open change nothing in the database: it fails
// with an error wrapping ErrNoSchema when the schema is missing, and
// ErrSchemaOutdated when it is of an older version, rather than create or
// migrate it. It serves tools that must not create a queue where a
// mistyped name points.
func WithExistingSchema() Option { return func(c *config) { c.existing = true } }

// Factory opens Backends on one database and schema.
type Factory struct {
	dsn string
	cfg config
}

var _ metastorage.Factory = (*Factory)(nil)

// NewFactory returns a Factory for Backends on the database that dsn names,
// a URL (postgres://user@host:port/db?sslmode=…) or key=value string as
// pgx accepts them; what it leaves out comes from the PG* environment
// variables and the password file, as with libpq.
func NewFactory(dsn string, opts ...Option) *Factory {
	f := &Factory{dsn: dsn, cfg: config{schema: DefaultSchema, slots: defaultSlots}}
	for _, o := range opts {
		o(&f.cfg)
	}
	return f
}

// Name returns "postgres".
func (f *Factory) Name() string { return "postgres" }

// Create opens a Backend; see Open.
func (f *Factory) Create() (metastorage.Backend, error) {
	return f.Open(context.Background())
}

// Open connects to the database, creates or migrates the schema (unless
// WithExistingSchema), and returns a Backend with its own connection pool.
// It fails with an error wrapping ErrSchemaVersion if the schema is of a
// newer version than this package knows.
func (f *Factory) Open(ctx context.Context) (*Backend, error) {
	pc, err := pgxpool.ParseConfig(f.dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse the connection string: %w", err)
	}
	// On a done context, ask the server to cancel the statement, so that
	// it fails rather than runs on after the call returned.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelWait}
	}
	if f.cfg.maxConns > 0 {
		pc.MaxConns = f.cfg.maxConns
	}
	slots := newConnSlots()
	pc.AfterConnect, pc.BeforeClose = slots.afterConnect, slots.beforeClose
	if n := len(f.cfg.schema); n == 0 || n > maxIdentBytes {
		// PostgreSQL would cut a longer name short, silently.
		return nil, fmt.Errorf("postgres: schema name %q: %d bytes, want 1 to %d", f.cfg.schema, n, maxIdentBytes)
	}
	log := f.cfg.logger
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	n, err := migrate(ctx, pool, f.cfg.schema, f.cfg.slots, !f.cfg.existing)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: schema %q: %w", f.cfg.schema, err)
	}
	return &Backend{pool: pool, log: log, q: newQueries(f.cfg.schema, n), schema: f.cfg.schema, slots: n}, nil
}

// Backend is a metastorage.StateCounterBackend on a PostgreSQL schema. It
// is safe for concurrent use.
type Backend struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	q      queries
	schema string
	slots  int // counter rows

	ops    sync.RWMutex // held for reading by calls, for writing by Close
	closed atomic.Bool

	counts     [metastorage.NumStates]atomic.Int64 // as last read
	countsWarn atomic.Bool                         // a failed read was logged
}

var _ metastorage.StateCounterBackend = (*Backend)(nil)

// Close closes the Backend's connections after its calls in progress
// return. It is idempotent.
func (b *Backend) Close() error {
	b.ops.Lock()
	defer b.ops.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	b.pool.Close()
	return nil
}

// begin checks what every call checks first and holds the Backend open for
// the call; the caller must call b.ops.RUnlock when it returns nil. subject
// is what the call is about, as opError takes it.
func (b *Backend) begin(ctx context.Context, op, subject string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.ops.RLock()
	if b.closed.Load() {
		b.ops.RUnlock()
		return opError(op, subject, metastorage.ErrBackendClosed)
	}
	return nil
}

// beginWrite is begin for a call that writes md as the record of id: it
// also checks both, and holds the Backend open only when it returns nil.
func (b *Backend) beginWrite(ctx context.Context, op, id string, md *metastorage.MessageMetadata) error {
	if err := b.begin(ctx, op, quote(id)); err != nil {
		return err
	}
	err := checkID(id)
	if err == nil {
		err = checkRecord(md)
	}
	if err != nil {
		b.ops.RUnlock()
		return opError(op, quote(id), err)
	}
	return nil
}

// opError wraps err with the operation and, unless empty, its subject: a
// quoted message ID or a state.
func opError(op, subject string, err error) error {
	if subject == "" {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s %s: %w", op, subject, err)
}

// quote quotes an ID for an error message, shortened to its first 40 bytes.
func quote(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q…", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// kind is what a call does, which says which failures are repeated.
type kind int

const (
	read       kind = iota // changes nothing: repeated after any connection failure
	idempotent             // a write that gives the same result when run twice: likewise
	write                  // repeated only when its statement never reached the server
)

// run runs f, which makes one statement on b.pool, and repeats it once when
// its connection failed as k allows, on a new connection, so that the second
// attempt succeeds when the server is back. The error is f's,
// with what a caller needs to know added: that the context ended, and for a
// write, whether the server may have applied the statement.
func (b *Backend) run(ctx context.Context, k kind, f func() error) error {
	err := f()
	unknown := k != read && mayHaveRun(err)
	if err != nil && connFailed(err) {
		// The server ended this session, and likely the others of the
		// pool (as at a restart): replace them all, so that the next
		// calls do not fail on them too.
		b.pool.Reset()
	}
	if err != nil && ctx.Err() == nil && connFailed(err) && (k != write || pgconn.SafeToRetry(err)) {
		b.log.Debug("postgres: repeating a call after a connection failure", "schema", b.schema, "error", err)
		err = f()
		unknown = unknown || k != read && mayHaveRun(err)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && unknown:
		return fmt.Errorf("%w: %w: %v", ctx.Err(), ErrOutcomeUnknown, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %v", ctx.Err(), err)
	case unknown:
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	case connFailed(err):
		return fmt.Errorf("connection failed: %w", err)
	}
	return err
}

// mayHaveRun reports whether a statement that failed with err may have
// been committed: its connection failed after it was sent, and the server
// did not report that the statement failed.
func mayHaveRun(err error) bool {
	if err == nil || pgconn.SafeToRetry(err) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity == "FATAL" || pe.Severity == "PANIC"
	}
	return !errors.Is(err, pgx.ErrNoRows) && !errors.As(err, new(pgx.ScanArgError))
}

// connFailed reports whether err is the failure of a connection rather than
// an error of the statement: a network error, or a fatal error with which
// the server ends the session (as after pg_terminate_backend or at
// shutdown).
func connFailed(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, pgx.ErrNoRows) || errors.As(err, new(pgx.ScanArgError)) || errors.Is(err, errCorrupt) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity == "FATAL" || pe.Severity == "PANIC" || strings.HasPrefix(pe.Code, "08")
	}
	return true
}
