package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestStat(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "stat")
	r.expect(t, 0)
	want := []string{
		"    STATE  COUNT  SIZE               OLDEST               NEWEST",
		" incoming      1  2.0K  2026-11-20 08:30:00 UTC  2026-11-20 08:30:00 UTC",
		"    TOTAL      6  7.6K  2026-11-17 08:30:00 UTC  2026-11-20 08:31:00 UTC",
		"    STATE T 5m 10m 20m 40m 80m 160m 320m 640m 1280m 1280m+",
		// now is 08:36: active is 4m old, incoming 5m, deferred 66m.
		"    TOTAL 6  1   1   0   0   1    0    0    0     0      3",
		" incoming 1  0   1   0   0   0    0    0    0     0      0",
		"   active 1  1   0   0   0   0    0    0    0     0      0",
		" deferred 1  0   0   0   0   1    0    0    0     0      0",
		"     hold 1  0   0   0   0   0    0    0    0     0      1",
	}
	var got []string
	for _, l := range lines(r.stdout) {
		got = append(got, fields(l))
	}
	for _, l := range want {
		if !slices.Contains(got, fields(l)) {
			t.Errorf("stat output lacks %q:\n%s", l, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

// fields returns s with each run of spaces made one space.
func fields(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestStatByDomain(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "stat", "--by", "domain:to")
	r.expect(t, 0)
	age := r.stdout[strings.Index(r.stdout, "DOMAIN:TO"):]
	for _, l := range []string{"example.com 3", "example.net 1", "(none) 2"} {
		if !strings.Contains(fields(age), l) {
			t.Errorf("age table lacks row %q:\n%s", l, age)
		}
	}
	spoolmeta(t, "-d", dir, "stat", "--by", "recipient").expect(t, 2)
}

func TestStatJSON(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "stat", "--json", "deferred", "hold")
	r.expect(t, 0)
	got := lines(r.stdout)
	if len(got) != 2 {
		t.Fatalf("want 2 lines, got:\n%s", r.stdout)
	}
	var row statRow
	if err := json.Unmarshal([]byte(got[0]), &row); err != nil {
		t.Fatal(err)
	}
	if row.By != "state" || row.Key != "deferred" || row.Count != 1 || row.Size != 1024 || row.Ages[4] != 1 || row.Oldest == nil {
		t.Errorf("deferred row = %+v", row)
	}
	for _, field := range []string{`"by":`, `"key":`, `"count":`, `"size":`, `"oldest":`, `"newest":`, `"ages":`} {
		if !strings.Contains(got[0], field) {
			t.Errorf("JSON lacks %s: %s", field, got[0])
		}
	}
}
