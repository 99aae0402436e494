package main

import (
	"strings"
	"testing"
)

func TestShow(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "show", "msg-123")
	r.expect(t, 0)
	for _, l := range []string{"id:           msg-123", "state:        deferred", "attempts:     2 of 3",
		"created:      2026-11-20T07:30:00.123456789Z", "retry policy: smtp-default", "  to: user@example.com"} {
		if !strings.Contains(r.stdout, l+"\n") {
			t.Errorf("show lacks %q:\n%s", l, r.stdout)
		}
	}
}

func TestShowMissing(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "show", "--json", "held-42", "nope")
	r.expect(t, 1)
	if !strings.HasPrefix(r.stdout, `{"id":"held-42","state":"hold",`) || len(lines(r.stdout)) != 1 {
		t.Errorf("stdout = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "spoolmeta show: no message nope\n") {
		t.Errorf("stderr = %q", r.stderr)
	}
	spoolmeta(t, "-d", dir, "show").expect(t, 2)
}
