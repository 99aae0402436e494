package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// TestGlobalFlags checks -h, --help and --version before any command, and
// that -d is refused where it does not apply.
func TestGlobalFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}} {
		r := spoolmeta(t, args...)
		r.expect(t, 0)
		if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "spoolmeta -h | --help | --version") {
			t.Errorf("%v: stdout = %q", args, r.stdout)
		}
	}
	r := spoolmeta(t, "--version")
	r.expect(t, 0)
	if !strings.HasPrefix(r.stdout, "spoolmeta ") {
		t.Errorf("--version: stdout = %q", r.stdout)
	}
	r = spoolmeta(t, "-h", "ls")
	r.expect(t, 0)
	if !strings.HasPrefix(r.stdout, "Usage: spoolmeta ls") {
		t.Errorf("-h ls: stdout = %q", r.stdout)
	}
	parent := t.TempDir()
	for _, c := range []string{"bench", "version", "help"} {
		r := spoolmeta(t, "-d", parent, c)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "-d does not apply to "+c) {
			t.Errorf("-d DIR %s: stderr = %q", c, r.stderr)
		}
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("-d DIR bench made %d entries", len(ents))
	}
}

// TestBenchKeep checks that bench --keep leaves a spool with messages in
// every state, which the other commands then work on.
func TestBenchKeep(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := filepath.Join(t.TempDir(), "spool")
	r := spoolmeta(t, "bench", "--keep", dir, "--messages", "48", "--dir", t.TempDir())
	r.expect(t, 0)
	if !strings.Contains(r.stderr, "kept the spool of 48 messages in "+dir) {
		t.Errorf("stderr = %q", r.stderr)
	}
	where := locate(t, dir)
	perState := map[string]int{}
	for _, in := range where {
		perState[in[0]]++
	}
	want := map[string]int{"incoming": 6, "active": 6, "deferred": 18, "hold": 6, "bounce": 6, "archived": 6}
	for s, n := range want {
		if perState[s] != n {
			t.Errorf("kept spool: %d messages in %s, want %d (all: %v)", perState[s], s, n, perState)
		}
	}
	spoolmeta(t, "-d", dir, "fsck").expect(t, 0)
	r = spoolmeta(t, "-d", dir, "ls", "--sort", "attempts", "--desc", "--limit", "1", "--json", "deferred")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, `"last_error":"451 4.7.1 greylisted, try again later"`) {
		t.Errorf("a deferred message of the kept spool: %s", r.stdout)
	}
	spoolmeta(t, "bench", "--keep", dir).expect(t, 2) // it exists
	spoolmeta(t, "bench", "--keep", filepath.Join(t.TempDir(), "x"), "--workload", "store").expect(t, 2)
}

// TestBenchTableExplains checks that the table says what its columns are
// and prints no rate that means nothing for its row.
func TestBenchTableExplains(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	r := spoolmeta(t, "bench", "--dir", t.TempDir(), "--workload", "open,list,iterate", "--messages", "20")
	r.expect(t, 0)
	rows := map[string][]string{}
	for _, l := range lines(r.stdout) {
		f := strings.Fields(l)
		if len(f) == 10 && f[1] == "standard" {
			rows[f[0]] = f
		}
	}
	// WORKLOAD MODE WORKERS MESSAGES MSG/S OPS/S P50 P99 PEAK-HEAP RATIO
	for _, c := range []struct {
		row  string
		col  int
		name string
	}{{"open", 4, "MSG/S"}, {"open", 5, "OPS/S"}, {"list", 4, "MSG/S"}, {"iterate", 6, "P50"}, {"iterate", 7, "P99"}} {
		if f := rows[c.row]; len(f) != 10 || f[c.col] != "-" {
			t.Errorf("%s: %s is %v, want -:\n%s", c.row, c.name, f, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "RATIO: the row's rate over its calibration's") {
		t.Errorf("the table does not say what RATIO is:\n%s", r.stdout)
	}
}
