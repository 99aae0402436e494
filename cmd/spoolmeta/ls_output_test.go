package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestLsSortLimitAcrossStates lists with every sort key in both orders
// and several limits across three states, with ties in every key, and
// compares with a sort of all records done here: key, then ID, and --desc
// the reverse.
func TestLsSortLimitAcrossStates(t *testing.T) {
	t.Parallel()
	states := []metastorage.QueueState{metastorage.StateIncoming, metastorage.StateDeferred, metastorage.StateHold}
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	msgs := map[string]metastorage.MessageMetadata{}
	for i := range 30 {
		msgs[fmt.Sprintf("m-%02d", (i*7)%30)] = metastorage.MessageMetadata{
			State:    states[i%3],
			Attempts: i % 4,
			Priority: i % 5,
			Created:  base.Add(time.Duration(i%6) * time.Minute),
		}
	}
	dir := newSpool(t, msgs)
	var all []record
	for _, l := range lines(spoolmeta(t, "-d", dir, "ls", "--json").stdout) {
		var rec record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		all = append(all, rec)
	}
	if len(all) != len(msgs) {
		t.Fatalf("ls --json listed %d of %d messages", len(all), len(msgs))
	}
	keys := map[string]func(r record) int64{
		"created":  func(r record) int64 { return r.Created.UnixNano() },
		"updated":  func(r record) int64 { return r.Updated.UnixNano() },
		"priority": func(r record) int64 { return int64(r.Priority) },
		"attempts": func(r record) int64 { return int64(r.Attempts) },
	}
	for key, of := range keys {
		sorted := slices.Clone(all)
		slices.SortFunc(sorted, func(a, b record) int { return cmp.Or(cmp.Compare(of(a), of(b)), strings.Compare(a.ID, b.ID)) })
		for _, desc := range []bool{false, true} {
			want := slices.Clone(sorted)
			args := []string{"-d", dir, "ls", "--sort", key, "incoming", "deferred", "hold"}
			if desc {
				slices.Reverse(want)
				args = append(args, "--desc")
			}
			for _, limit := range []int{1, 4, 11, 30} {
				var wantIDs []string
				for _, r := range want[:limit] {
					wantIDs = append(wantIDs, r.ID)
				}
				got := lsIDs(t, append(args, "--limit", fmt.Sprint(limit))...)
				if !slices.Equal(got, wantIDs) {
					t.Errorf("ls --sort %s desc=%v --limit %d = %v, want %v", key, desc, limit, got, wantIDs)
				}
			}
		}
	}
}

// TestLsPipedColumns checks that piped output has the same columns at any
// $COLUMNS, every column in full, the ID column as wide as the IDs, and
// that -o chooses the columns.
func TestLsPipedColumns(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("450 4.2.0 mailbox busy, try later; ", 6)
	dir := newSpool(t, map[string]metastorage.MessageMetadata{
		"a-rather-longer-message-id": {State: metastorage.StateDeferred, LastError: long, Created: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
		"b":                          {State: metastorage.StateIncoming},
	})
	narrow := spoolmetaIn(t, "", []string{"COLUMNS=40"}, "-d", dir, "ls")
	wide := spoolmetaIn(t, "", []string{"COLUMNS=300"}, "-d", dir, "ls")
	narrow.expect(t, 0)
	if narrow.stdout != wide.stdout {
		t.Errorf("piped output depends on $COLUMNS:\n%s\nvs\n%s", narrow.stdout, wide.stdout)
	}
	ls := lines(narrow.stdout)
	wantHead := "ID                          STATE     SIZE  CREATED               TRIES  NEXT RETRY  LAST ERROR"
	if len(ls) != 3 || ls[0] != wantHead {
		t.Errorf("ls | cat =\n%s\nwant the header %q", narrow.stdout, wantHead)
	}
	if !strings.Contains(narrow.stdout, "2026-11-20 08:00 UTC") || !strings.Contains(narrow.stdout, strings.TrimSpace(long)+"\n") {
		t.Errorf("ls | cat lacks the creation time or the whole last error:\n%s", narrow.stdout)
	}
	r := spoolmeta(t, "-d", dir, "ls", "-o", "id,state,next_retry", "incoming")
	r.expect(t, 0)
	if r.stdout != "ID  STATE     NEXT RETRY\nb   incoming  -\n" {
		t.Errorf("ls -o id,state,next_retry = %q", r.stdout)
	}
	spoolmeta(t, "-d", dir, "ls", "-o", "id,colour").expect(t, 2)
}

// TestUnprintableIDs checks that text output escapes control characters
// and invalid UTF-8 in IDs and errors, keeping one row per message.
func TestUnprintableIDs(t *testing.T) {
	t.Parallel()
	dir := newSpool(t, map[string]metastorage.MessageMetadata{
		"two\nlines":    {State: metastorage.StateDeferred, LastError: "bad \x1b]0;title\a"},
		"\x1b[31mred":   {State: metastorage.StateDeferred},
		"back\\slash":   {State: metastorage.StateDeferred},
		"plain-message": {State: metastorage.StateDeferred},
	})
	r := spoolmeta(t, "-d", dir, "ls", "-o", "id,last_error")
	r.expect(t, 0)
	if strings.ContainsAny(r.stdout, "\x1b\a") || len(lines(r.stdout)) != 5 {
		t.Errorf("ls printed raw control characters or split a row:\n%q", r.stdout)
	}
	for _, want := range []string{`two\nlines`, `\x1b[31mred`, `back\\slash`, `bad \x1b]0;title\a`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ls lacks %s:\n%s", want, r.stdout)
		}
	}
	r = spoolmeta(t, "-d", dir, "show", "two\nlines")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "id:           two\\nlines\n") || strings.Contains(r.stdout, "\x1b") {
		t.Errorf("show = %q", r.stdout)
	}
	r = spoolmeta(t, "-d", dir, "hold", "\x1b[31mred")
	r.expect(t, 0)
	if r.stdout != "held \\x1b[31mred (deferred -> hold)\n" {
		t.Errorf("hold = %q", r.stdout)
	}
}

// TestListingReportsSkippedFiles checks that ls and stat name the files
// they cannot use on stderr, count them, list the rest and exit 1.
func TestListingReportsSkippedFiles(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "crashed-spool")
	for _, args := range [][]string{{"ls"}, {"ls", "--sort", "created"}, {"stat"}, {"stat", "--json"}} {
		r := spoolmeta(t, append([]string{"-d", dir}, args...)...)
		r.expect(t, 1)
		for _, f := range []string{"incoming/empty-3.json", "deferred/truncated-9.json"} {
			if !strings.Contains(r.stderr, f) {
				t.Errorf("%v: stderr does not name %s:\n%s", args, f, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, "2 message files skipped") {
			t.Errorf("%v: stderr does not count the files skipped:\n%s", args, r.stderr)
		}
		if args[0] == "ls" && (len(lines(r.stdout)) != 8 || !strings.Contains(r.stderr, "ls: 7 messages;")) {
			t.Errorf("%v: want 7 rows and a header, and the count:\n%s%s", args, r.stdout, r.stderr)
		}
	}
}

// TestSortedLimitCountsSkippedOnce checks that a sorted ls with a limit,
// which reads a state with tied keys more than once, names and counts a
// corrupt file once.
func TestSortedLimitCountsSkippedOnce(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := filepath.Join(t.TempDir(), "spool")
	spoolmeta(t, "bench", "--keep", dir, "--workload", "spool").expect(t, 0)
	if err := os.WriteFile(filepath.Join(dir, "deferred", "bad-1.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := spoolmeta(t, "-d", dir, "ls", "--sort", "attempts", "--limit", "1", "deferred")
	r.expect(t, 1)
	if !strings.Contains(r.stderr, "1 message file skipped") || strings.Count(r.stderr, "bad-1.json") != 1 {
		t.Errorf("stderr does not name and count the corrupt file once:\n%s", r.stderr)
	}
}

// TestSmallThings checks the small points of an operator's first use.
func TestSmallThings(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")

	if ids := lsIDs(t, "-d", dir, "ls", "deferred", "deferred"); !slices.Equal(ids, []string{"msg-123"}) {
		t.Errorf("ls deferred deferred = %v, want msg-123 once", ids)
	}
	r := spoolmeta(t, "-d", dir, "move", "msg-123", "deferred", "deferred")
	r.expect(t, 2)
	if r.stdout != "" || !strings.Contains(r.stderr, "FROM and TO are both deferred: nothing to move") {
		t.Errorf("move msg-123 deferred deferred: %q %q", r.stdout, r.stderr)
	}
	r = spoolmeta(t, "-d", dir, "show", "")
	r.expect(t, 1)
	if !strings.HasPrefix(r.stderr, `spoolmeta show: no message ""`+"\n") {
		t.Errorf(`show "": stderr = %q`, r.stderr)
	}

	// Every command shows times in the local zone, and names it.
	kolkata := []string{"TZ=Asia/Kolkata"}
	if r := spoolmetaIn(t, "", kolkata, "-d", dir, "ls", "deferred"); !strings.Contains(r.stdout, "2026-11-20 13:00 IST") {
		t.Errorf("ls in Asia/Kolkata:\n%s", r.stdout)
	}
	if r := spoolmetaIn(t, "", kolkata, "-d", dir, "stat", "deferred"); !strings.Contains(r.stdout, "2026-11-20 13:00:00 IST") {
		t.Errorf("stat in Asia/Kolkata:\n%s", r.stdout)
	}
	if r := spoolmetaIn(t, "", kolkata, "-d", dir, "show", "msg-123"); !strings.Contains(r.stdout, "created:      2026-11-20T13:00:00.123456789+05:30\n") || !strings.Contains(r.stdout, "updated:      2026-11-26T01:02:02.126292778+05:30\n") {
		t.Errorf("show in Asia/Kolkata:\n%s", r.stdout)
	}

	r = spoolmeta(t, "-d", dir, "stat", "--json", "hold")
	var row struct {
		Ages       []int64  `json:"ages"`
		AgeColumns []string `json:"age_columns"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &row); err != nil {
		t.Fatal(err)
	}
	if want := []string{"5m", "10m", "20m", "40m", "80m", "160m", "320m", "640m", "1280m", "1280m+"}; !slices.Equal(row.AgeColumns, want) || len(row.Ages) != len(want) {
		t.Errorf("stat --json: age_columns %v for ages %v, want %v", row.AgeColumns, row.Ages, want)
	}

	// Created is in 2026-11-17..20, Updated on 2026-11-25.
	late := []string{"SPOOLMETA_NOW=2026-11-25T20:00:00Z"}
	if r := spoolmetaIn(t, "", late, "-d", dir, "ls", "--since", "2h"); r.stdout != "" {
		t.Errorf("ls --since 2h lists messages created days ago:\n%s", r.stdout)
	}
	if r := spoolmetaIn(t, "", late, "-d", dir, "ls", "--json", "--updated-since", "2h"); len(lines(r.stdout)) != 6 {
		t.Errorf("ls --updated-since 2h does not list the 6 messages updated within it:\n%s", r.stdout)
	}
	r = spoolmeta(t, "help", "ls")
	if !strings.Contains(r.stdout, "--since keeps the messages created within the duration (Created)") {
		t.Errorf("help ls does not say which field --since compares:\n%s", r.stdout)
	}
}
