package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// store is what the commands need of a backend: the contract, the state
// counts, the compare-and-swaps of their changes, and imports for copy.
type store interface {
	metastorage.StateCounterBackend
	metastorage.CompareAndSwapBackend
	importer
}

// importer is a backend that creates a message with its record exactly as
// given, times included, and changes nothing if the message exists.
type importer interface {
	ImportMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) (bool, error)
}

// openMode says what opening a location may do.
type openMode int

const (
	// modeReadOnly changes nothing: it creates nothing, repairs nothing,
	// takes no lock, and refuses a location that holds no spool.
	modeReadOnly openMode = iota
	// modeWritable opens a location that holds a spool for changes.
	modeWritable
	// modeCreate opens a location for changes, creating the spool (a
	// directory or a schema) if it is missing.
	modeCreate
)

// schemaParam is the query parameter of a PostgreSQL location that names
// its schema; the rest of the URL goes to the driver.
const schemaParam = "schema"

// location is an open spool: a metadata directory or a PostgreSQL schema.
// Exactly one of fs and pg is set; store is that one.
type location struct {
	store
	name string // for messages: the directory, or the URL without its password
	fs   *metafs.Backend
	pg   *postgres.Backend
}

// isDatabase reports whether loc names a PostgreSQL database rather than a
// directory.
func isDatabase(loc string) bool {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if len(loc) >= len(scheme) && strings.EqualFold(loc[:len(scheme)], scheme) {
			return true
		}
	}
	return false
}

// redact returns loc with the password of a database URL replaced by
// "xxxxx", fit to print.
func redact(loc string) string {
	if !isDatabase(loc) {
		return loc
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "postgres://(a URL that does not parse)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// openLocation opens loc, a directory or a postgres:// or postgresql:// URL,
// as mode allows. The backend logs to log. Errors name the location with
// its password redacted. In a URL, the query parameter schema names the
// schema (default "spoolmeta"); what the URL leaves out comes from the PG*
// variables and the password file, as with libpq.
func openLocation(ctx context.Context, loc string, mode openMode, log *slog.Logger) (*location, error) {
	if isDatabase(loc) {
		return openDatabase(ctx, loc, mode, log)
	}
	return openDirectory(loc, mode, log)
}

func openDirectory(dir string, mode openMode, log *slog.Logger) (*location, error) {
	if mode != modeCreate {
		if err := checkMetadataDir(dir); err != nil {
			return nil, err
		}
	}
	f := metafs.NewFactory(dir).WithLogger(log).WithReadOnly(mode == modeReadOnly)
	b, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return &location{store: b, name: dir, fs: b}, nil
}

func openDatabase(ctx context.Context, loc string, mode openMode, log *slog.Logger) (*location, error) {
	name := redact(loc)
	dsn, schema, err := splitSchema(loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opts := []postgres.Option{postgres.WithSchema(schema), postgres.WithLogger(log), postgres.WithMaxConns(4)}
	if mode != modeCreate {
		opts = append(opts, postgres.WithExistingSchema())
	}
	b, err := postgres.NewFactory(dsn, opts...).Open(ctx)
	switch {
	case errors.Is(err, postgres.ErrNoSchema):
		return nil, fmt.Errorf("%s holds no spool in schema %q (use -d or $SPOOLMETA_DIR; add ?schema=NAME for another schema)", name, schema)
	case errors.Is(err, postgres.ErrSchemaOutdated):
		return nil, fmt.Errorf("open %s: %w (a writable open by the queue's processes, or spoolmeta fsck --repair, migrates it)", name, redactErr(err, loc))
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", name, redactErr(err, loc))
	}
	return &location{store: b, name: name, pg: b}, nil
}

// splitSchema returns the URL loc without its schema parameter, and the
// schema that parameter names, or the default.
func splitSchema(loc string) (dsn, schema string, err error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", "", errors.New("not a valid URL")
	}
	q := u.Query()
	schema = postgres.DefaultSchema
	if q.Has(schemaParam) {
		schema = q.Get(schemaParam)
		q.Del(schemaParam)
		u.RawQuery = q.Encode()
	}
	return u.String(), schema, nil
}

// redactErr returns err with the password of the URL loc, if it has one,
// replaced by "xxxxx" in its text; errors.Is and errors.As still see err.
func redactErr(err error, loc string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	if u, perr := url.Parse(loc); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
		if p := u.Query().Get("password"); p != "" {
			secrets = append(secrets, p, url.QueryEscape(p))
		}
	}
	if len(secrets) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: secrets}
}

// redactedError is an error whose text has its secrets replaced.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	s := e.err.Error()
	for _, p := range e.secrets {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}

func (e *redactedError) Unwrap() error { return e.err }

// stateCounts returns the number of messages in each state: for a
// directory once its first count is made, for a database from the
// counters.
func (l *location) stateCounts(ctx context.Context) ([metastorage.NumStates]int64, error) {
	var n [metastorage.NumStates]int64
	if l.pg != nil {
		return l.pg.StateCounts(ctx)
	}
	if l.fs != nil {
		if err := l.fs.WaitCounts(ctx); err != nil {
			return n, err
		}
	}
	for _, s := range metastorage.States() {
		n[s] = l.GetStateCount(s)
	}
	return n, nil
}

// same reports whether l and o are the same spool, whatever the spelling
// of their locations: the same directory (through links too), or the same
// schema of the same server.
func (l *location) same(ctx context.Context, o *location) (bool, error) {
	switch {
	case l.fs != nil && o.fs != nil:
		a, err := os.Stat(l.fs.Dir())
		if err != nil {
			return false, err
		}
		b, err := os.Stat(o.fs.Dir())
		if err != nil {
			return false, err
		}
		return os.SameFile(a, b), nil
	case l.pg != nil && o.pg != nil:
		a, err := l.pg.Identity(ctx)
		if err != nil {
			return false, err
		}
		b, err := o.pg.Identity(ctx)
		return err == nil && a == b, err
	}
	return false, nil
}
