package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
)

// pgTestDSN returns the URL of the test server, or skips the test.
func pgTestDSN(t *testing.T) string {
	t.Helper()
	dsn := testDSN(t)
	if !isDatabase(dsn) {
		t.Skipf("%s is not a postgres:// URL, which bench needs", dsnVar)
	}
	return dsn
}

func TestIsPostgresURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		loc  string
		want bool
	}{
		{"postgres://u@h:5432/db?sslmode=disable", true},
		{"postgresql://h/db", true},
		{"POSTGRES://h/db", true},
		{"postgres:/h", false},
		{"/var/spool/postgres://x", false},
		{"./postgres", false},
		{"", false},
		{"host=h dbname=db", false},
	} {
		if got := isDatabase(c.loc); got != c.want {
			t.Errorf("isDatabase(%q) = %v, want %v", c.loc, got, c.want)
		}
	}
}

// TestBenchPostgresUsage checks what bench refuses on a database, before
// it connects.
func TestBenchPostgresUsage(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
	for _, args := range [][]string{
		{"--keep", t.TempDir() + "/k"}, {"--mode", "standard"}, {"--disk-load", "10"}, {"--workload", "iterate"}, {"--workload", "lifecycle,nap"},
		{"--messages", "-1"}, {"--rounds", "0"},
	} {
		r := spoolmeta(t, append([]string{"bench", "--dir", dsn}, args...)...)
		r.expect(t, 2)
		if strings.Contains(r.stderr, "connect") {
			t.Errorf("bench %v connected before refusing: %s", args, r.stderr)
		}
	}
}

// benchSchema returns the schema a bench's stderr names.
func benchSchema(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`in schema (spoolmeta_bench_[0-9a-f]+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr names no schema:\n%s", stderr)
	}
	return m[1]
}

// checkSchemaDropped fails t if schema exists.
func checkSchemaDropped(t *testing.T, dsn, schema string) {
	t.Helper()
	if pgtest.SchemaExists(t, dsn, schema) {
		t.Errorf("bench left its schema %s", schema)
	}
}

// TestBenchPostgres runs the lifecycle and its calibration on the test
// server, two rounds: each row is there with a ratio, and the schema is
// dropped at the end.
func TestBenchPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgTestDSN(t)
	r := spoolmeta(t, "bench", "--dir", dsn, "--messages", "40", "--workers", "4", "--rounds", "2", "--json")
	r.expect(t, 0)
	rows := map[string]benchResult{}
	for _, l := range lines(r.stdout) {
		var res benchResult
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rows[res.Workload+" "+res.Mode] = res
	}
	if len(rows) != 2 {
		t.Errorf("%d rows, want calibrate sql and lifecycle postgres:\n%s", len(rows), r.stdout)
	}
	for _, w := range []string{"calibrate sql", "lifecycle postgres"} {
		res, ok := rows[w]
		switch {
		case !ok:
			t.Errorf("no row for %s:\n%s", w, r.stdout)
		case res.Messages != 40 || res.Workers != 4 || res.Rounds != 2 || res.MsgPerSec <= 0 || res.Ratio == nil:
			t.Errorf("%s: %+v", w, res)
		case res.OpsPerSec < 5.9*res.MsgPerSec || res.OpsPerSec > 6.1*res.MsgPerSec:
			t.Errorf("%s: %.0f ops/s for %.0f lifecycles/s, want six calls each", w, res.OpsPerSec, res.MsgPerSec)
		}
	}
	if c := rows["calibrate sql"]; c.Ratio != nil && *c.Ratio != 1 {
		t.Errorf("calibrate sql: ratio %v, want 1", *c.Ratio)
	}
	if strings.Contains(r.stderr, dsn) {
		t.Errorf("stderr shows the connection string:\n%s", r.stderr)
	}
	checkSchemaDropped(t, dsn, benchSchema(t, r.stderr))
}

// TestBenchPostgresInterrupt interrupts a long run on the test server once
// it has started: bench says so and drops its schema.
func TestBenchPostgresInterrupt(t *testing.T) {
	t.Parallel()
	dsn := pgTestDSN(t)
	stderr := interruptFirstRun(t, "bench", "--dir", dsn, "--workload", "lifecycle", "--workers", "2", "--messages", "10000000")
	checkSchemaDropped(t, dsn, benchSchema(t, stderr))
}
