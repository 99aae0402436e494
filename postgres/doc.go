// Package postgres is a metastorage.Backend that keeps message metadata in
// a PostgreSQL database (version 13 or later), so that the processes of
// several machines can share one queue.
//
// # Layout
//
// A Backend works in one schema ("spoolmeta" unless WithSchema says
// otherwise), which it creates and migrates when it opens, under an
// advisory lock so that Backends opening at once migrate it once (with
// WithExistingSchema, it only checks that the schema is there and current). The
// schema holds three tables:
//
//   - messages: one row per message, its ID the primary key, so a message
//     is in exactly one state at every instant. IDs, strings and headers
//     are bytea, since text cannot hold the NUL bytes that valid UTF-8 may
//     contain; every byte round-trips. Times are three integers each: Unix
//     microseconds, the nanoseconds beyond them, and the zone offset in
//     seconds. An index on the state and each sort key, ending in the ID,
//     serves every order of ListMessages and the iterator. Headers are
//     encoded with their keys in order, so equal records have equal rows
//     and a row can be compared whole in a statement's WHERE clause.
//   - counts: rows of per-state counters (128 in a new schema), changed in
//     the same statement as the message, so that GetStateCount is exact
//     without counting rows. Each connection of a Backend changes a row of
//     its own (its number, from the session setting spoolmeta.slot, modulo
//     the rows), since a row stays locked until the statement commits.
//   - schema_version: the version of the layout. A Backend refuses a schema
//     of a newer version than it knows.
//
// # Guarantees
//
// Every call changes the database with one statement, and so in one
// transaction: a call that returns nil has been committed (durable as the
// server's synchronous_commit setting makes it), and a message never shows
// in two states. MoveToState is one compare-and-swap on the state. The
// Backend is a metastorage.CompareAndSwapBackend: UpdateMetaIf and
// DeleteMetaIf are each one statement whose WHERE clause compares the
// stored row with the expected record, so the changes the spoolmeta tool
// makes beside a running queue are one statement each. A done context
// cancels the statement at the server.
//
// A call that fails because the connection failed after its statement was
// sent returns an error wrapping ErrOutcomeUnknown: the server may or may
// not have applied it. This is the one exception to the contract's rule that
// a failed call changed nothing; a caller re-reads the message to learn
// which. Calls that are safe to repeat (reads, StoreMeta, UpdateMeta) are
// repeated once on a new connection instead.
//
// The Backend survives a restart of the server and terminated connections
// without being reopened: calls fail while the server is away and succeed
// once it is back.
//
// GetStateCount reads the counters from the server (a query on a few rows,
// whatever the number of messages), so the count is exact across every
// Backend on the schema, at the cost of a round trip. It has no error to
// return: when the server cannot be reached within two seconds, it returns
// the last count it read and logs a warning.
//
// ListMessages reads a page from the index of its sort key and, without
// Since, its total from the counters; with Since, it counts the matches,
// which reads every row of the state.
//
// Updated, and Created when defaulted, are set from the clock of the
// machine that makes the call.
//
// # Tools
//
// The spoolmeta tool uses three more calls: Check compares the counters
// with the rows and repairs them, ImportMeta creates a message with its
// record exactly as given (for copies between backends, which keep the
// times), and Identity tells whether two Backends share a schema.
package postgres
