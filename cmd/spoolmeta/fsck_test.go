package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

func TestFsckReport(t *testing.T) {
	dir := fixture(t, "crashed-spool")
	before := spooltest.Snapshot(t, dir)
	r := spoolmeta(t, "-d", dir, "fsck")
	r.expect(t, 1)
	for _, want := range []string{
		"orphan-temp     incoming/.tmp.abc123: ",
		"corrupt         incoming/empty-3.json: ",
		"corrupt         deferred/truncated-9.json: ",
		"duplicate       incoming/0f8fad5b-d9cb-469f-a165-70867728950e.json: ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("fsck lacks %q:\n%s", want, r.stdout)
		}
	}
	// held-42's State field names incoming while it lies in hold: what a
	// move by one rename leaves, not damage.
	if strings.Contains(r.stdout, "held-42") {
		t.Errorf("fsck reports held-42:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "5 findings, 0 repaired, 5 left") {
		t.Errorf("stderr = %q", r.stderr)
	}
	spooltest.SameSnapshot(t, before, spooltest.Snapshot(t, dir))
}

func TestFsckRepair(t *testing.T) {
	dir := fixture(t, "crashed-spool")
	r := spoolmeta(t, "-d", dir, "fsck", "--repair", "--json")
	r.expect(t, 0)
	n := 0
	for _, l := range lines(r.stdout) {
		var f finding
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatal(err)
		}
		if !f.Repaired || f.Action == "" {
			t.Errorf("not repaired: %+v", f)
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d findings, want 5:\n%s", n, r.stdout)
	}
	r = spoolmeta(t, "-d", dir, "fsck")
	r.expect(t, 0)
	if r.stdout != "" {
		t.Errorf("findings after repair:\n%s", r.stdout)
	}
	if got := stateOf(t, dir, "0f8fad5b-d9cb-469f-a165-70867728950e"); len(got) != 1 || got[0] != "active" {
		t.Errorf("duplicate not resolved: %v", got)
	}
}

func TestHelp(t *testing.T) {
	r := spoolmeta(t, "help")
	r.expect(t, 0)
	for _, c := range commands() {
		if !strings.Contains(r.stdout, "\t"+c.name) {
			t.Errorf("help lacks %s", c.name)
		}
		h := spoolmeta(t, "help", c.name)
		h.expect(t, 0)
		if !strings.Contains(h.stdout, "Usage: spoolmeta "+c.name) || !strings.Contains(h.stdout, "Examples:") {
			t.Errorf("help %s:\n%s", c.name, h.stdout)
		}
		if f := spoolmeta(t, c.name, "-h"); f.stdout != h.stdout {
			t.Errorf("%s -h differs from help %s", c.name, c.name)
		}
	}
	spoolmeta(t, "frobnicate").expect(t, 2)
	spoolmeta(t).expect(t, 2)
	if r := spoolmeta(t, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "spoolmeta ") {
		t.Errorf("version: %d %q", r.code, r.stdout)
	}
}

// TestFsckProgress shows that fsck's progress lines come once per step of
// scanned entries, however the scan's reports fall.
func TestFsckProgress(t *testing.T) {
	var buf strings.Builder
	p := progressPrinter(&buf, 1000)
	for _, n := range []int{10, 999, 1000, 1024, 1500, 2048, 4096, 4100} {
		p(n)
	}
	want := "fsck: 1000 entries scanned\nfsck: 2048 entries scanned\nfsck: 4096 entries scanned\n"
	if buf.String() != want {
		t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestFsckDryRunSaysWhatRepairDoes places a byte copy of a held message in
// active/, with the record's Updated as its time, so that both copies read
// with the same Updated: fsck without --repair must report what --repair
// then does, and the repair must keep the message in hold.
func TestFsckDryRunSaysWhatRepairDoes(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	data, err := os.ReadFile(filepath.Join(dir, "hold", "held-42.json"))
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "active", "held-42.json")
	if err := os.WriteFile(copied, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var rec struct{ Updated time.Time }
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copied, time.Time{}, rec.Updated); err != nil {
		t.Fatal(err)
	}
	dry := spoolmeta(t, "-d", dir, "fsck", "--json")
	dry.expect(t, 1)
	rep := spoolmeta(t, "-d", dir, "fsck", "--repair", "--json")
	rep.expect(t, 0)
	said, did := parseFindings(t, dry.stdout), parseFindings(t, rep.stdout)
	if len(said) != 1 || said[0].Kind != "duplicate" || said[0].Path != filepath.Join(dir, "active", "held-42.json") {
		t.Errorf("dry run found %+v, want the copy in active reported as a duplicate", said)
	}
	if len(said) != len(did) {
		t.Fatalf("dry run found\n%+v\nrepair found\n%+v", said, did)
	}
	for i := range said {
		s, d := said[i], did[i]
		if s.Kind != d.Kind || s.Path != d.Path || s.Detail != d.Detail || !d.Repaired {
			t.Errorf("dry run said %+v, repair did %+v", s, d)
		}
	}
	if got := stateOf(t, dir, "held-42"); len(got) != 1 || got[0] != "hold" {
		t.Errorf("held-42 is in %v after repair, want [hold]", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", "active", "held-42.json")); err != nil {
		t.Errorf("the copy in active was not set aside: %v", err)
	}
}

// parseFindings decodes the lines of fsck --json.
func parseFindings(t *testing.T, out string) []finding {
	t.Helper()
	var fs []finding
	for _, l := range lines(out) {
		var f finding
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// TestFsckHealthyLiveSpool shows that fsck exits 0, run after run, on a
// spool that holds only what a live Performance-mode writer keeps on
// purpose (an older record beside the message's file) and an entry that is
// not the backend's, shows each finding's class, and exits 1 on damage.
func TestFsckHealthyLiveSpool(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	cur := filepath.Join(dir, "deferred", "msg-123.json")
	data, err := os.ReadFile(cur)
	if err != nil {
		t.Fatal(err)
	}
	older := strings.Replace(string(data), `"Updated": "2026-`, `"Updated": "2025-`, 1)
	if older == string(data) {
		t.Fatalf("no Updated field in %s", data)
	}
	if err := os.WriteFile(cur+".tmp.1a2b3c4d", []byte(older), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deferred", "README.txt"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := spoolmeta(t, "-d", dir, "fsck")
		r.expect(t, 0)
		for _, want := range []string{
			"expected displaced       deferred/msg-123.json.tmp.1a2b3c4d: an older record of ",
			"unknown  unknown-entry   deferred/README.txt: not a message file name",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("fsck lacks %q:\n%s", want, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "2 findings, 0 repaired, 2 left: 0 damage, 1 expected, 1 unknown") {
			t.Errorf("stderr = %q", r.stderr)
		}
	}
	r := spoolmeta(t, "-d", dir, "fsck", "--json")
	r.expect(t, 0)
	for _, f := range parseFindings(t, r.stdout) {
		if want := map[string]string{"displaced": "expected", "unknown-entry": "unknown"}[f.Kind]; f.Class != want {
			t.Errorf("%s has class %q, want %q", f.Kind, f.Class, want)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, "hold", "bad-1.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = spoolmeta(t, "-d", dir, "fsck")
	r.expect(t, 1)
	if !strings.Contains(r.stdout, "damage   corrupt         hold/bad-1.json: ") {
		t.Errorf("fsck lacks the damage:\n%s", r.stdout)
	}
}
