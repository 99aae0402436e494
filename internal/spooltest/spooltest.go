// Package spooltest holds what the project's tests share: the metadata
// directories written by another implementation of the on-disk format, a
// way to check that a directory did not change, the seeds of the metadata
// readers' fuzz targets, and comparisons of records.
package spooltest

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// fixtures are testdata/clean-spool (six messages, one in each state) and
// testdata/crashed-spool (the same after a crash in the middle of several
// writes: a message in two states, orphaned temp files, a truncated and an
// empty file, a State field that disagrees with its directory).
//
//go:embed all:testdata
var fixtures embed.FS

// Fixture copies the fixture name ("clean-spool" or "crashed-spool") into
// a new temporary directory of t and returns the copy's path: opening a
// directory may change it.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	src, err := fs.Sub(fixtures, "testdata/"+name)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, src); err != nil {
		t.Fatalf("copy fixture %s: %v", name, err)
	}
	return dst
}

// Snapshot returns every path under dir with its mode, size, modification
// time and contents.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%s %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(data)
		}
		m[strings.TrimPrefix(p, dir)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SameSnapshot reports every difference between two snapshots as a test
// error.
func SameSnapshot(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if v != w {
			t.Errorf("%s changed:\n%s\n-> %s", p, v, w)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// FixtureFiles returns the contents of every file of the fixture
// directories: the records another implementation wrote, and what a crash
// left of them.
func FixtureFiles(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	err := fs.WalkDir(fixtures, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := fs.ReadFile(fixtures, p)
		if err == nil {
			out = append(out, data)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		tb.Fatalf("reading the fixtures: %d files, %v", len(out), err)
	}
	return out
}

// Seeds are the seed corpus of the metadata readers' fuzz targets besides
// FixtureFiles: what a crash, a foreign writer or a damaged disk may leave.
func Seeds() [][]byte {
	deep := func(open, close string, n int) []byte {
		return []byte(`{"Headers":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}`)
	}
	seeds := []string{
		"",
		" \n\t ",
		"\x00\x00\x00\x00",
		"{",
		`{"ID":"msg-1","State":2,"Attem`,
		`{"ID":"msg-1","State":2}`,
		"null",
		"[]",
		`[{"ID":"msg-1"}]`,
		`"{\"ID\":\"msg-1\"}"`,
		"42",
		"true",
		"{}",
		`{}{}`,
		`{} trailing`,
		`{"State":3}` + "\n",
		`{"State":-1}`,
		`{"State":99}`,
		`{"State":"hold"}`,
		`{"State":1.5}`,
		`{"Attempts":1e400}`,
		`{"Size":99999999999999999999999999}`,
		`{"Size":-9223372036854775808,"Priority":9223372036854775807}`,
		`{"Priority":1e2}`,
		`{"Created":"2026-11-20T09:30:00.123456789+01:00"}`,
		`{"Created":"2026-13-45T99:00:00Z"}`,
		`{"Created":"0000-01-01T00:00:00+01:00"}`,
		`{"Created":"9999-12-31T23:59:59.999999999-01:00"}`,
		`{"Created":"2026-11-20T09:30:00+23:59"}`,
		`{"Created":1700000000}`,
		`{"Updated":null,"Created":null,"Headers":null}`,
		`{"Headers":{}}`,
		`{"Headers":{"to":"a@example.com","to":"b@example.com"}}`,
		`{"Headers":{"k":1}}`,
		`{"ID":"../../etc/passwd","State":0}`,
		`{"LastError":"` + "\xff\xfe\xfd" + `"}`,
		`{"LastError":"\ud800"}`,
		"{\"LastError\":\"\xc3\x28\"}",
		"\xff\xfe{\x00}\x00",
		"\xef\xbb\xbf{\"State\":0}",
		"{\"State\":0}\xef\xbb\xbf",
		`{"state":3,"attempts":2}`,
		strings.Repeat(" ", 5000) + "{}",
	}
	out := make([][]byte, 0, len(seeds)+4)
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	return append(out, deep("{\"a\":", "}", 10001), deep("[", "]", 10001), deep("{\"a\":", "}", 100), deep("[", "]", 100))
}

// SameRecord compares records field by field, times by instant and zone
// offset.
func SameRecord(a, b metastorage.MessageMetadata) bool {
	for _, p := range [][2]time.Time{{a.NextRetry, b.NextRetry}, {a.Created, b.Created}, {a.Updated, b.Updated}} {
		_, oa := p[0].Zone()
		_, ob := p[1].Zone()
		if !p[0].Equal(p[1]) || oa != ob {
			return false
		}
	}
	a.NextRetry, a.Created, a.Updated = time.Time{}, time.Time{}, time.Time{}
	b.NextRetry, b.Created, b.Updated = time.Time{}, time.Time{}, time.Time{}
	if len(a.Headers) == 0 && len(b.Headers) == 0 {
		a.Headers, b.Headers = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// SameDecoded is SameRecord (instants and zone offsets of times, every
// other field) that also tells a nil Headers map from an empty one.
func SameDecoded(a, b metastorage.MessageMetadata) bool {
	return SameRecord(a, b) && (a.Headers == nil) == (b.Headers == nil)
}

// PostgresEnv names the environment variable that gives the tests a
// PostgreSQL server.
const PostgresEnv = "SPOOLMETA_TEST_POSTGRES"

// PostgresDSN returns the URL of the test server, or skips the test,
// saying which variable to set.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		t.Skipf("set %s to the URL of a PostgreSQL 13 or later server (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run this test", PostgresEnv)
	}
	return dsn
}
