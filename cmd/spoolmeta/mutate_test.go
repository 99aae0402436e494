package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stateOf returns the state directories the message file of id lies in.
func stateOf(t *testing.T, dir, id string) []string {
	t.Helper()
	return locate(t, dir)[id]
}

func TestHoldReleaseRequeue(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "hold", "msg-123", "bounce-7", "nope")
	r.expect(t, 1)
	want := "held msg-123 (deferred -> hold)\nskipped bounce-7: hold does not act on messages in bounce: the message is finished (requeue delivers it again)\nmissing nope\n"
	if r.stdout != want {
		t.Errorf("hold stdout =\n%s\nwant\n%s", r.stdout, want)
	}
	if r.stderr != "hold: 1 held, 1 skipped, 1 missing\n" {
		t.Errorf("hold stderr = %q", r.stderr)
	}
	if got := stateOf(t, dir, "msg-123"); !slices.Equal(got, []string{"hold"}) {
		t.Errorf("msg-123 in %v after hold", got)
	}

	r = spoolmeta(t, "-d", dir, "release", "msg-123", "archived-1")
	r.expect(t, 1)
	if !strings.Contains(r.stdout, "released msg-123 (hold -> deferred)") || !strings.Contains(r.stdout, "skipped archived-1: release does not act on messages in archived") {
		t.Errorf("release stdout = %q", r.stdout)
	}
	r = spoolmeta(t, "-d", dir, "show", "--json", "msg-123")
	if !strings.Contains(r.stdout, `"state":"deferred"`) || !strings.Contains(r.stdout, `"next_retry":"`+testNow+`"`) {
		t.Errorf("released message = %s, want deferred and due now", r.stdout)
	}

	r = spoolmeta(t, "-d", dir, "requeue", "bounce-7")
	r.expect(t, 0)
	if r.stdout != "requeued bounce-7 (bounce -> incoming)\n" {
		t.Errorf("requeue stdout = %q", r.stdout)
	}
	r = spoolmeta(t, "-d", dir, "requeue", "--state", "hold", "--all", "--yes")
	r.expect(t, 0)
	if r.stdout != "requeued held-42 (hold -> incoming)\n" {
		t.Errorf("requeue --all stdout = %q", r.stdout)
	}
	if got := stateOf(t, dir, "held-42"); !slices.Equal(got, []string{"incoming"}) {
		t.Errorf("held-42 in %v after requeue --all", got)
	}
	spoolmeta(t, "-d", dir, "requeue", "--state", "active", "--all", "--yes").expect(t, 2)
}

func TestDeleteAndMove(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "delete", "--state", "deferred", "msg-123", "bounce-7")
	r.expect(t, 1)
	if r.stdout != "deleted msg-123 (from deferred)\nskipped bounce-7: in state bounce, not deferred\n" {
		t.Errorf("delete stdout = %q", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "deferred", "msg-123.json")); !os.IsNotExist(err) {
		t.Errorf("msg-123 still there: %v", err)
	}
	r = spoolmeta(t, "-d", dir, "move", "bounce-7", "active", "archived")
	r.expect(t, 1)
	if !strings.HasPrefix(r.stdout, "skipped bounce-7: in state bounce, not active") {
		t.Errorf("move stdout = %q", r.stdout)
	}
	r = spoolmeta(t, "-d", dir, "move", "--state", "bounce", "--all", "archived", "--json", "--yes")
	r.expect(t, 0)
	if r.stdout != `{"id":"bounce-7","action":"move","result":"done","from":"bounce","to":"archived"}`+"\n" {
		t.Errorf("move --json stdout = %q", r.stdout)
	}
	if got := stateOf(t, dir, "bounce-7"); !slices.Equal(got, []string{"archived"}) {
		t.Errorf("bounce-7 in %v", got)
	}
	for _, args := range [][]string{{"delete"}, {"delete", "--all"}, {"delete", "--state", "hold", "--all", "x"}, {"move", "x", "hold"}} {
		spoolmeta(t, append([]string{"-d", dir}, args...)...).expect(t, 2)
	}
}
