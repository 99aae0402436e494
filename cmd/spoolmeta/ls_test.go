package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestLs(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmetaIn(t, "", []string{"COLUMNS=160"}, "-d", dir, "ls", "deferred", "bounce")
	r.expect(t, 0)
	want := []string{
		"ID        STATE     SIZE  CREATED               TRIES  NEXT RETRY            LAST ERROR",
		"msg-123   deferred  1.0K  2026-11-20 07:30 UTC    2/3  2026-11-20 10:30 UTC  451 4.7.1 greylisted, try again later",
	}
	got := lines(r.stdout)
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || !strings.HasPrefix(got[2], "bounce-7 ") {
		t.Errorf("ls =\n%s\nwant\n%s\n(and bounce-7)", r.stdout, strings.Join(want, "\n"))
	}
}

func lsIDs(t *testing.T, args ...string) []string {
	t.Helper()
	r := spoolmeta(t, append(args, "--json")...)
	r.expect(t, 0)
	var ids []string
	for _, l := range lines(r.stdout) {
		var rec record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

func TestLsSortFilter(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--sort", "created"}, []string{"archived-1", "bounce-7", "held-42", "msg-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"}},
		{[]string{"--sort", "created", "--desc", "--limit", "2"}, []string{"7c9e6679-7425-40de-944b-e07fc1f90ae7", "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{[]string{"--sort", "attempts", "--desc", "--limit", "1", "deferred", "bounce"}, []string{"bounce-7"}},
		{[]string{"--header", "to=user@example.com"}, []string{"msg-123"}},
		{[]string{"--header", "to=alice@example.com", "--sort", "priority"}, []string{"0f8fad5b-d9cb-469f-a165-70867728950e"}},
	}
	for _, tt := range tests {
		got := lsIDs(t, append([]string{"-d", dir, "ls"}, tt.args...)...)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ls %v = %v, want %v", tt.args, got, tt.want)
		}
	}
	// Updated is 19:32:02.124... to .128... in the fixture: a cutoff at .127
	// keeps the last three.
	since := func(args ...string) []string {
		t.Helper()
		r := spoolmetaIn(t, "", []string{"SPOOLMETA_NOW=2026-11-25T19:32:03Z"}, append([]string{"-d", dir, "ls", "--json", "--updated-since", "873ms"}, args...)...)
		r.expect(t, 0)
		var ids []string
		for _, l := range lines(r.stdout) {
			ids = append(ids, strings.Split(l, `"`)[3])
		}
		return ids
	}
	if got, want := since("--sort", "updated"), []string{"held-42", "bounce-7", "archived-1"}; !slices.Equal(got, want) {
		t.Errorf("ls --updated-since --sort updated = %v, want %v", got, want)
	}
	if got, want := since(), []string{"held-42", "bounce-7", "archived-1"}; !slices.Equal(got, want) {
		t.Errorf("ls --updated-since = %v, want %v", got, want)
	}
	if got := lsIDs(t, "-d", dir, "ls", "--limit", "3"); len(got) != 3 {
		t.Errorf("ls --limit 3 gave %d", len(got))
	}
}

func TestLsUsage(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	for _, args := range [][]string{{"--sort", "size"}, {"--desc"}, {"--limit", "-1"}, {"--header", "to"}, {"--since", "soon"}} {
		r := spoolmeta(t, append([]string{"-d", dir, "ls"}, args...)...)
		r.expect(t, 2)
		if r.stdout != "" {
			t.Errorf("ls %v printed on stdout: %q", args, r.stdout)
		}
	}
}

func TestLsJSONFields(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "ls", "--json", "deferred")
	r.expect(t, 0)
	want := `{"id":"msg-123","state":"deferred","attempts":2,"max_attempts":3,"next_retry":"2026-11-20T11:30:00.123456789+01:00","created":"2026-11-20T08:30:00.123456789+01:00","updated":"2026-11-25T19:32:02.126292778Z","last_error":"451 4.7.1 greylisted, try again later","size":1024,"priority":5,"headers":{"from":"sender@example.com","to":"user@example.com"},"retry_policy":"smtp-default"}` + "\n"
	if r.stdout != want {
		t.Errorf("ls --json =\n%s\nwant\n%s", r.stdout, want)
	}
}
