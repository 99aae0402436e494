package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// dsnVar names the environment variable that gives the tests a server.
const dsnVar = spooltest.PostgresEnv

// testDSN returns the URL of the test server, or skips the test.
var testDSN = spooltest.PostgresDSN

// newDatabase returns the location of a schema of its own on the test
// server, not created yet; the schema is dropped when t ends.
func newDatabase(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	return withSchema(t, dsn, pgtest.NewSchema(t, dsn))
}

// withSchema returns the URL dsn with its schema parameter set to schema.
func withSchema(t testing.TB, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsnVar, err)
	}
	q := u.Query()
	q.Set(schemaParam, schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// execSQL runs sql on the database of the URL loc (without its schema
// parameter); $s in sql stands for the quoted schema of loc.
func execSQL(t testing.TB, loc, sql string) {
	t.Helper()
	dsn, schema, err := splitSchema(loc)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, dsn, schema, sql)
}

// schemaExists reports whether the schema of loc exists.
func schemaExists(t testing.TB, loc string) bool {
	t.Helper()
	dsn, schema, err := splitSchema(loc)
	if err != nil {
		t.Fatal(err)
	}
	return pgtest.SchemaExists(t, dsn, schema)
}

// open opens loc as mode allows, closed when t ends.
func open(t testing.TB, loc string, mode openMode) *location {
	t.Helper()
	l, err := openLocation(context.Background(), loc, mode, logger(io.Discard))
	if err != nil {
		t.Fatalf("open %s: %v", loc, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// records returns every record at loc by ID.
func records(t testing.TB, loc string) map[string]metastorage.MessageMetadata {
	t.Helper()
	l := open(t, loc, modeReadOnly)
	defer l.Close()
	all := map[string]metastorage.MessageMetadata{}
	for _, s := range metastorage.States() {
		err := eachMessage(context.Background(), l, s, func(md metastorage.MessageMetadata) error {
			all[md.ID] = md
			return nil
		})
		if err != nil {
			t.Fatalf("read %s: %v", s, err)
		}
	}
	return all
}

// fixtureDatabase returns a database location that holds the records of
// the fixture name, times included.
func fixtureDatabase(t *testing.T, name string) string {
	t.Helper()
	return databaseFrom(t, fixture(t, name))
}

// TestDatabaseCommands runs the commands on a database, named by -d and by
// $SPOOLMETA_DIR, as the directory tests run them.
func TestDatabaseCommands(t *testing.T) {
	t.Parallel()
	loc := fixtureDatabase(t, "clean-spool")
	dir := fixture(t, "clean-spool")
	for _, args := range [][]string{{"stat"}, {"stat", "--json", "--by", "domain:to"}, {"ls"}, {"ls", "--sort", "created", "--desc"}, {"show", "--json", "msg-123"}} {
		want := spoolmeta(t, append([]string{"-d", dir}, args...)...)
		got := spoolmeta(t, append([]string{"-d", loc}, args...)...)
		if got != want {
			t.Errorf("%v on the database: %+v\nwant as on the directory: %+v", args, got, want)
		}
	}
	r := spoolmetaIn(t, "", []string{"SPOOLMETA_DIR=" + loc}, "hold", "msg-123", "bounce-7", "nope")
	r.expect(t, 1)
	want := "held msg-123 (deferred -> hold)\nskipped bounce-7: hold does not act on messages in bounce: the message is finished (requeue delivers it again)\nmissing nope\n"
	if r.stdout != want {
		t.Errorf("hold stdout =\n%s\nwant\n%s", r.stdout, want)
	}
	r = spoolmeta(t, "-d", loc, "move", "--state", "hold", "--all", "--yes", "incoming")
	r.expect(t, 0)
	r = spoolmeta(t, "-d", loc, "delete", "archived-1")
	r.expect(t, 0)
	got := records(t, loc)
	if md, ok := got["msg-123"]; !ok || md.State != metastorage.StateIncoming {
		t.Errorf("msg-123 = %+v, want it in incoming after hold and move", md)
	}
	if _, ok := got["archived-1"]; ok {
		t.Errorf("archived-1 is still there after delete")
	}
	r = spoolmeta(t, "-d", loc, "fsck")
	r.expect(t, 0)
	if r.stdout != "" || !strings.HasSuffix(r.stderr, "fsck: 0 findings, 0 repaired, 0 left\n") {
		t.Errorf("fsck: %+v, want no findings", r)
	}
}

// TestDatabaseWithoutSpool checks that every command refuses a schema that
// does not exist, and creates nothing.
func TestDatabaseWithoutSpool(t *testing.T) {
	t.Parallel()
	loc := newDatabase(t)
	for _, args := range [][]string{{"stat"}, {"ls"}, {"show", "x"}, {"fsck"}, {"fsck", "--repair"}, {"hold", "x"}, {"delete", "x"}} {
		r := spoolmeta(t, append([]string{"-d", loc}, args...)...)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "holds no spool in schema") {
			t.Errorf("%v: stderr %q, want it to say there is no spool", args, r.stderr)
		}
	}
	if schemaExists(t, loc) {
		t.Errorf("a command created the schema")
	}
}

// TestPasswordNeverPrinted gives the password in the URL, in its query and
// in PGPASSWORD, and checks that no output holds it: a failed connection,
// a missing schema, and commands that succeed.
func TestPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pw"
	loc := fixtureDatabase(t, "clean-spool")
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	withPassword := *u
	withPassword.User = url.UserPassword(u.User.Username(), secret)
	inQuery := *u
	q := inQuery.Query()
	q.Set("password", secret)
	inQuery.RawQuery = q.Encode()
	refused := withPassword
	refused.Host = "127.0.0.1:1"
	missing := withPassword
	_, missingSchema, err := splitSchema(newDatabase(t)) // dropped at the end, as copy creates it
	if err != nil {
		t.Fatal(err)
	}
	q = missing.Query()
	q.Set(schemaParam, missingSchema)
	missing.RawQuery = q.Encode()
	for _, c := range []struct {
		loc  string
		args []string
	}{
		{withPassword.String(), []string{"stat"}},
		{withPassword.String(), []string{"fsck"}},
		{inQuery.String(), []string{"ls"}},
		{refused.String(), []string{"stat"}},
		{refused.String(), []string{"hold", "x"}},
		{missing.String(), []string{"fsck"}},
		{"postgres://" + u.User.Username() + ":" + secret + "@%zz/db", []string{"stat"}},
	} {
		for _, env := range [][]string{nil, {"PGPASSWORD=" + secret}} {
			r := spoolmetaIn(t, "", env, append([]string{"-d", c.loc}, c.args...)...)
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("%v on %s printed the password:\n%s%s", c.args, redact(c.loc), r.stdout, r.stderr)
			}
		}
	}
	for _, args := range [][]string{
		{"copy", "--from", withPassword.String(), "--to", t.TempDir()},
		{"copy", "--from", t.TempDir(), "--to", refused.String()},
		{"copy", "--from", inQuery.String(), "--to", missing.String()},
	} {
		r := spoolmeta(t, args...)
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%v printed the password:\n%s%s", args[:1], r.stdout, r.stderr)
		}
	}
	if got := redact(withPassword.String()); strings.Contains(got, secret) || !strings.Contains(got, "xxxxx") {
		t.Errorf("redact = %q", got)
	}
	if err := redactErr(errors.New("connect "+secret), withPassword.String()); strings.Contains(err.Error(), secret) {
		t.Errorf("redactErr = %q", err)
	}
}

// TestDatabaseFsck damages the counters by hand, then deletes a counter
// row, and checks that fsck finds each, fsck --repair repairs each, and
// that a newer schema is refused.
func TestDatabaseFsck(t *testing.T) {
	t.Parallel()
	loc := fixtureDatabase(t, "clean-spool")
	execSQL(t, loc, fmt.Sprintf("UPDATE $s.counts SET n%[1]d = n%[1]d + 5 WHERE slot = 3", metastorage.StateDeferred))
	r := spoolmeta(t, "-d", loc, "fsck", "--json")
	r.expect(t, 1)
	var f finding
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil || f.Kind != "count" || f.Path != "counts/deferred" || f.Repaired {
		t.Fatalf("fsck --json = %q (%v), want one count finding on deferred, not repaired", r.stdout, err)
	}
	n := open(t, loc, modeReadOnly).GetStateCount(metastorage.StateDeferred)
	rows := int64(0)
	for _, md := range records(t, loc) {
		if md.State == metastorage.StateDeferred {
			rows++
		}
	}
	if n != rows+5 {
		t.Fatalf("deferred count %d after fsck without --repair, want the damaged %d", n, rows+5)
	}
	r = spoolmeta(t, "-d", loc, "fsck", "--repair")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "; set to ") || !strings.HasSuffix(r.stderr, "fsck: 1 findings, 1 repaired, 0 left\n") {
		t.Errorf("fsck --repair: %+v", r)
	}
	if n := open(t, loc, modeReadOnly).GetStateCount(metastorage.StateDeferred); n != rows {
		t.Errorf("deferred count %d after repair, want %d", n, rows)
	}
	spoolmeta(t, "-d", loc, "fsck").expect(t, 0)

	// A counter row without counts deleted by hand, below the highest: the
	// sums still agree.
	execSQL(t, loc, fmt.Sprintf("DELETE FROM $s.counts WHERE slot = (SELECT min(slot) FROM $s.counts WHERE n%d = 0)", metastorage.StateDeferred))
	r = spoolmeta(t, "-d", loc, "fsck")
	r.expect(t, 1)
	if !strings.HasPrefix(r.stdout, "damage   counter-rows    counts: 1 counter rows missing") {
		t.Errorf("fsck after a counter row was deleted: %+v", r)
	}
	r = spoolmeta(t, "-d", loc, "fsck", "--repair")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "; created again") || !strings.HasSuffix(r.stderr, "fsck: 1 findings, 1 repaired, 0 left\n") {
		t.Errorf("fsck --repair after a counter row was deleted: %+v", r)
	}
	spoolmeta(t, "-d", loc, "fsck").expect(t, 0)

	old := newDatabase(t)
	execSQL(t, old, "CREATE SCHEMA $s; CREATE TABLE $s.schema_version (version integer NOT NULL); INSERT INTO $s.schema_version VALUES (0)")
	r = spoolmeta(t, "-d", old, "fsck")
	r.expect(t, 2)
	if !strings.Contains(r.stderr, "version 0, this spoolmeta writes 1") {
		t.Errorf("fsck on an older schema: stderr %q, want it to name the versions", r.stderr)
	}
	r = spoolmeta(t, "-d", old, "fsck", "--repair")
	r.expect(t, 0)
	if !strings.HasPrefix(r.stdout, "damage   schema-version  schema_version: ") || !strings.Contains(r.stdout, "; migrated to version 1") {
		t.Errorf("fsck --repair on an older schema: %+v", r)
	}
	spoolmeta(t, "-d", old, "fsck").expect(t, 0)

	execSQL(t, loc, "UPDATE $s.schema_version SET version = 99")
	r = spoolmeta(t, "-d", loc, "fsck", "--repair")
	r.expect(t, 2)
	if !strings.Contains(r.stderr, "version 99") {
		t.Errorf("fsck on a newer schema: stderr %q, want it to name the version", r.stderr)
	}
}
