package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ErrSchemaVersion is wrapped by the error of Open when the schema is of a
// newer version than this package knows: a newer spoolmeta migrated it.
var ErrSchemaVersion = errors.New("schema version is newer than this spoolmeta knows")

// ErrNoSchema is wrapped by the error of Open with WithExistingSchema when
// the schema, or its version table, is missing.
var ErrNoSchema = errors.New("no spoolmeta schema")

// ErrSchemaOutdated is wrapped by the error of Open with WithExistingSchema
// when the schema is of an older version than SchemaVersion: an Open
// without that option migrates it.
var ErrSchemaOutdated = errors.New("schema version is older than this spoolmeta writes")

// SchemaVersion is the version of the layout this package writes.
const SchemaVersion = 1

// defaultSlots is the number of counter rows a new schema gets: a
// connection changes one of its own (see connSlots), so that writers seldom
// wait for each other's.
const defaultSlots = 128

// lockSpace is the first key of the advisory lock that serialises
// migrations; the second is the hash of the schema name.
const lockSpace = 0x73706f6f // "spoo"

// migrations[v] takes a schema from version v to v+1. %[1]s is the quoted
// schema name, %[2]d the number of counter rows.
var migrations = []string{
	`CREATE TABLE %[1]s.messages (
		id             bytea    PRIMARY KEY,
		state          smallint NOT NULL CHECK (state BETWEEN 0 AND 5),
		attempts       bigint   NOT NULL,
		max_attempts   bigint   NOT NULL,
		next_retry_us  bigint   NOT NULL,
		next_retry_ns  smallint NOT NULL,
		next_retry_off integer  NOT NULL,
		created_us     bigint   NOT NULL,
		created_ns     smallint NOT NULL,
		created_off    integer  NOT NULL,
		updated_us     bigint   NOT NULL,
		updated_ns     smallint NOT NULL,
		updated_off    integer  NOT NULL,
		last_error     bytea    NOT NULL,
		size           bigint   NOT NULL,
		priority       bigint   NOT NULL,
		headers        bytea,
		retry_policy   bytea    NOT NULL
	);
	CREATE INDEX messages_state_id ON %[1]s.messages (state, id);
	CREATE INDEX messages_state_created ON %[1]s.messages (state, created_us, created_ns, id);
	CREATE INDEX messages_state_updated ON %[1]s.messages (state, updated_us, updated_ns, id);
	CREATE INDEX messages_state_priority ON %[1]s.messages (state, priority, id);
	CREATE INDEX messages_state_attempts ON %[1]s.messages (state, attempts, id);
	CREATE TABLE %[1]s.counts (
		slot smallint PRIMARY KEY,
		n0 bigint NOT NULL DEFAULT 0,
		n1 bigint NOT NULL DEFAULT 0,
		n2 bigint NOT NULL DEFAULT 0,
		n3 bigint NOT NULL DEFAULT 0,
		n4 bigint NOT NULL DEFAULT 0,
		n5 bigint NOT NULL DEFAULT 0
	);
	INSERT INTO %[1]s.counts (slot) SELECT generate_series(0, %[2]d - 1);`,
}

// migrate creates the schema or brings it to SchemaVersion, in one
// transaction under an advisory lock, and returns its number of counter
// rows. Unless create is set, it changes nothing and fails on a schema that
// is missing or not at SchemaVersion.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, slots int, create bool) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockSpace, schema); err != nil {
		return 0, fmt.Errorf("take the migration lock: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	// Create only what is missing: a role without the right to create
	// can open a schema that is up to date.
	var hasSchema, hasVersion bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL",
		schema, s+".schema_version").Scan(&hasSchema, &hasVersion); err != nil {
		return 0, fmt.Errorf("look for the schema: %w", err)
	}
	if !create && (!hasSchema || !hasVersion) {
		return 0, ErrNoSchema
	}
	if !hasSchema {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
			return 0, fmt.Errorf("create the schema: %w", err)
		}
	}
	if !hasVersion {
		if _, err := tx.Exec(ctx, "CREATE TABLE "+s+".schema_version (version integer NOT NULL)"); err != nil {
			return 0, fmt.Errorf("create the version table: %w", err)
		}
	}
	var versions []int32
	rows, err := tx.Query(ctx, "SELECT version FROM "+s+".schema_version")
	if err == nil {
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	var v int
	switch len(versions) {
	case 0:
		if _, err := tx.Exec(ctx, "INSERT INTO "+s+".schema_version VALUES (0)"); err != nil {
			return 0, fmt.Errorf("set the schema version: %w", err)
		}
	case 1:
		v = int(versions[0])
	default:
		return 0, fmt.Errorf("the version table holds %d rows, want one", len(versions))
	}
	if v > SchemaVersion {
		return 0, fmt.Errorf("version %d, this spoolmeta knows up to %d: %w", v, SchemaVersion, ErrSchemaVersion)
	}
	if v < 0 {
		return 0, fmt.Errorf("version %d is not a version", v)
	}
	if !create && v < SchemaVersion {
		return 0, fmt.Errorf("version %d, this spoolmeta writes %d: %w", v, SchemaVersion, ErrSchemaOutdated)
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v], s, slots)); err != nil {
			return 0, fmt.Errorf("migrate from version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE "+s+".schema_version SET version = $1", v+1); err != nil {
			return 0, fmt.Errorf("set the schema version: %w", err)
		}
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+s+".counts").Scan(&n); err != nil {
		return 0, fmt.Errorf("count the counter rows: %w", err)
	}
	if n == 0 {
		return 0, errors.New("the counts table has no rows")
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit the migration: %w", err)
	}
	return n, nil
}

// columns are the columns of a record, in the order scan reads them.
const columns = `id, state, attempts, max_attempts,
	next_retry_us, next_retry_ns, next_retry_off,
	created_us, created_ns, created_off,
	updated_us, updated_ns, updated_off,
	last_error, size, priority, headers, retry_policy`

// queries holds the statements of one schema.
type queries struct {
	store, update, delete, move, state, get, page, counts string
	updateIf, deleteIf, insert                            string
	list, listSince                                       map[listKey]string
}

type listKey struct {
	sortBy string
	desc   bool
}

// sortColumns are the index columns, after state, of each sort key.
var sortColumns = map[string][]string{
	metastorage.SortByID:       {"id"},
	metastorage.SortByCreated:  {"created_us", "created_ns", "id"},
	metastorage.SortByUpdated:  {"updated_us", "updated_ns", "id"},
	metastorage.SortByPriority: {"priority", "id"},
	metastorage.SortByAttempts: {"attempts", "id"},
}

// countDeltas sets every counter of the row from d.o, the state a message
// leaves (NULL when it is new), and d.s, the state it enters (NULL when it
// is deleted).
func countDeltas() string {
	var b strings.Builder
	for i := range metastorage.NumStates {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "n%[1]d = n%[1]d + (d.s IS NOT DISTINCT FROM %[1]d)::int - (d.o IS NOT DISTINCT FROM %[1]d)::int", i)
	}
	return b.String()
}

// stateCount is the sum of the counters of the state $1.
func stateCount(c string) string {
	var b strings.Builder
	b.WriteString("(SELECT coalesce(sum(CASE $1::smallint")
	for i := range metastorage.NumStates {
		fmt.Fprintf(&b, " WHEN %[1]d THEN n%[1]d", i)
	}
	b.WriteString(" END), 0)::bigint FROM " + c + ")")
	return b.String()
}

// sameRecord is the condition that a row holds the record whose fields
// are the parameters from $first on, as expectArgs gives them: times
// compare as instants, whatever their offsets, and NULL headers as an empty
// map.
func sameRecord(first int) string {
	cols := []string{"state", "attempts", "max_attempts", "next_retry_us", "next_retry_ns",
		"created_us", "created_ns", "updated_us", "updated_ns",
		"last_error", "size", "priority", "coalesce(headers, '\\x00'::bytea)", "retry_policy"}
	conds := make([]string, len(cols))
	for i, col := range cols {
		conds[i] = fmt.Sprintf("%s = $%d", col, first+i)
	}
	return "(" + strings.Join(conds, " AND ") + ")"
}

// newQueries returns the statements of schema, whose counts table has
// slots rows.
func newQueries(schema string, slots int) queries {
	s := pgx.Identifier{schema}.Sanitize()
	m, c := s+".messages", s+".counts"
	deltas, slot := countDeltas(), slotExpr(slots)
	q := queries{list: make(map[listKey]string), listSince: make(map[listKey]string)}

	// The statements lock the message's row before a counter row, and one
	// counter row only, so that they cannot deadlock.
	q.store = `WITH old AS (
		SELECT state FROM ` + m + ` WHERE id = $1 FOR UPDATE
	), ins AS (
		INSERT INTO ` + m + ` (` + columns + `)
		SELECT $1::bytea, $2::smallint, $3::bigint, $4::bigint, $5::bigint, $6::smallint, $7::integer,
			$8::bigint, $9::smallint, $10::integer, $11::bigint, $12::smallint, $13::integer,
			$14::bytea, $15::bigint, $16::bigint, $17::bytea, $18::bytea
		WHERE NOT EXISTS (SELECT FROM old)
		ON CONFLICT (id) DO NOTHING
		RETURNING 1
	), upd AS (
		UPDATE ` + m + ` SET state = $2, attempts = $3, max_attempts = $4,
			next_retry_us = $5, next_retry_ns = $6, next_retry_off = $7,
			created_us = $8, created_ns = $9, created_off = $10,
			updated_us = $11, updated_ns = $12, updated_off = $13,
			last_error = $14, size = $15, priority = $16, headers = $17, retry_policy = $18
		WHERE id = $1 AND EXISTS (SELECT FROM old)
		RETURNING 1
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT (SELECT state FROM old) AS o, $2::smallint AS s
			WHERE EXISTS (SELECT FROM ins) OR EXISTS (SELECT FROM upd)) d
		WHERE slot = ` + slot + ` AND d.o IS DISTINCT FROM d.s
	)
	SELECT EXISTS (SELECT FROM ins) OR EXISTS (SELECT FROM upd)`

	// The update takes no lock to learn the state it leaves: it changes the
	// row only if it is still in the state read, which PostgreSQL checks
	// again on the newest row after waiting for a concurrent writer. When
	// it is not, the row was there but no longer as read, and the caller
	// runs the statement again.
	q.update = `WITH old AS (
		SELECT state FROM ` + m + ` WHERE id = $1
	), upd AS (
		UPDATE ` + m + ` SET state = $2, attempts = $3, max_attempts = $4,
			next_retry_us = $5, next_retry_ns = $6, next_retry_off = $7,
			updated_us = $8, updated_ns = $9, updated_off = $10,
			last_error = $11, size = $12, priority = $13, headers = $14, retry_policy = $15
		WHERE id = $1 AND state = (SELECT state FROM old)
		RETURNING 1
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT (SELECT state FROM old) AS o, $2::smallint AS s WHERE EXISTS (SELECT FROM upd)) d
		WHERE slot = ` + slot + ` AND d.o IS DISTINCT FROM d.s
	)
	SELECT EXISTS (SELECT FROM upd), EXISTS (SELECT FROM old)`

	q.delete = `WITH del AS (
		DELETE FROM ` + m + ` WHERE id = $1 RETURNING state
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT state AS o, NULL::smallint AS s FROM del) d
		WHERE slot = ` + slot + `
	)
	SELECT EXISTS (SELECT FROM del)`

	// A move that fails reads the state afterwards, for the text of its
	// conflict: a successful one reads no row but the one it changes.
	q.move = `WITH mv AS (
		UPDATE ` + m + ` SET state = $3, updated_us = $4, updated_ns = $5, updated_off = $6
		WHERE id = $1 AND state = $2
		RETURNING 1
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT $2::smallint AS o, $3::smallint AS s FROM mv) d
		WHERE slot = ` + slot + `
	)
	SELECT EXISTS (SELECT FROM mv)`

	// The compare-and-swaps return, after whether they changed the row,
	// the state and Updated of the row before the statement and whether it
	// matched, for the text of a conflict only.
	before := func(first int) string {
		return `, coalesce(o.id IS NOT NULL AND ` + sameRecord(first) + `, false) FROM (SELECT) one LEFT JOIN ` + m + ` o ON o.id = $1`
	}
	q.updateIf = `WITH upd AS (
		UPDATE ` + m + ` SET state = $2, attempts = $3, max_attempts = $4,
			next_retry_us = $5, next_retry_ns = $6, next_retry_off = $7,
			updated_us = $8, updated_ns = $9, updated_off = $10,
			last_error = $11, size = $12, priority = $13, headers = $14, retry_policy = $15
		WHERE id = $1 AND ` + sameRecord(16) + `
		RETURNING 1
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT $16::smallint AS o, $2::smallint AS s FROM upd) d
		WHERE slot = ` + slot + ` AND d.o IS DISTINCT FROM d.s
	)
	SELECT EXISTS (SELECT FROM upd), o.state, o.updated_us, o.updated_ns` + before(16)

	q.deleteIf = `WITH del AS (
		DELETE FROM ` + m + ` WHERE id = $1 AND ` + sameRecord(2) + ` RETURNING state
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT state AS o, NULL::smallint AS s FROM del) d
		WHERE slot = ` + slot + `
	)
	SELECT EXISTS (SELECT FROM del), o.state, o.updated_us, o.updated_ns` + before(2)

	q.insert = `WITH ins AS (
		INSERT INTO ` + m + ` (` + columns + `)
		VALUES ($1::bytea, $2::smallint, $3::bigint, $4::bigint, $5::bigint, $6::smallint, $7::integer,
			$8::bigint, $9::smallint, $10::integer, $11::bigint, $12::smallint, $13::integer,
			$14::bytea, $15::bigint, $16::bigint, $17::bytea, $18::bytea)
		ON CONFLICT (id) DO NOTHING
		RETURNING state
	), cnt AS (
		UPDATE ` + c + ` SET ` + deltas + `
		FROM (SELECT NULL::smallint AS o, state AS s FROM ins) d
		WHERE slot = ` + slot + `
	)
	SELECT EXISTS (SELECT FROM ins)`

	q.state = `SELECT state FROM ` + m + ` WHERE id = $1`
	q.get = `SELECT ` + columns + ` FROM ` + m + ` WHERE id = $1`
	q.page = `SELECT ` + columns + ` FROM ` + m + ` WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3`

	var sums []string
	for i := range metastorage.NumStates {
		sums = append(sums, fmt.Sprintf("coalesce(sum(n%d), 0)::bigint", i))
	}
	q.counts = `SELECT ` + strings.Join(sums, ", ") + ` FROM ` + c

	const since = `((created_us, created_ns) >= ($4::bigint, $5::smallint) OR (updated_us, updated_ns) >= ($4::bigint, $5::smallint))`
	for key, cols := range sortColumns {
		for _, desc := range []bool{false, true} {
			order := make([]string, len(cols))
			for i, col := range cols {
				order[i] = col
				if desc {
					order[i] += " DESC"
				}
			}
			by := strings.Join(order, ", ")
			k := listKey{key, desc}
			q.list[k] = `SELECT ` + stateCount(c) + `,
				ARRAY(SELECT id FROM ` + m + ` WHERE state = $1 ORDER BY ` + by + ` OFFSET $2 LIMIT $3)`
			q.listSince[k] = `SELECT (SELECT count(*) FROM ` + m + ` WHERE state = $1 AND ` + since + `),
				ARRAY(SELECT id FROM ` + m + ` WHERE state = $1 AND ` + since + ` ORDER BY ` + by + ` OFFSET $2 LIMIT $3)`
		}
	}
	return q
}
