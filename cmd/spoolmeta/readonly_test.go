package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// TestReadOnlyCommandsChangeNothing runs every read-only command on both
// fixtures and checks that the directory is byte for byte as it was.
func TestReadOnlyCommandsChangeNothing(t *testing.T) {
	t.Parallel()
	cmds := [][]string{
		{"stat"}, {"stat", "--json", "--by", "header:to"}, {"ls"}, {"ls", "--json"},
		{"ls", "--sort", "created", "--desc"}, {"show", "msg-123", "held-42", "nope"},
		{"fsck"}, {"fsck", "--json"},
	}
	for _, name := range []string{"clean-spool", "crashed-spool"} {
		dir := fixture(t, name)
		before := spooltest.Snapshot(t, dir)
		for _, args := range cmds {
			r := spoolmeta(t, append([]string{"-d", dir}, args...)...)
			if r.code == 2 {
				t.Errorf("%s %v: exit status 2\n%s", name, args, r.stderr)
			}
		}
		spooltest.SameSnapshot(t, before, spooltest.Snapshot(t, dir))
	}
}

// TestNotAMetadataDirectory checks that commands refuse a missing
// directory (also one whose parents are missing) and one without state
// directories, and create nothing.
func TestNotAMetadataDirectory(t *testing.T) {
	t.Parallel()
	cmds := [][]string{
		{"stat"}, {"ls"}, {"show", "x"}, {"fsck"}, {"hold", "x"},
		{"release", "x"}, {"move", "x", "incoming", "active"}, {"delete", "x"}, {"fsck", "--repair"},
	}
	for _, args := range cmds {
		parent := t.TempDir()
		for _, dir := range []string{filepath.Join(parent, "missing"), filepath.Join(parent, "nested", "missing")} {
			r := spoolmeta(t, append([]string{"-d", dir}, args...)...)
			r.expect(t, 2)
			if !strings.Contains(r.stderr, "no such directory "+dir+" (use -d or $SPOOLMETA_DIR)") || len(lines(r.stderr)) != 1 {
				t.Errorf("%v: stderr = %q, want one line saying there is no such directory", args, r.stderr)
			}
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Errorf("%v created %s in %s", args, ents[0].Name(), parent)
		}
		empty := t.TempDir()
		r := spoolmeta(t, append([]string{"-d", empty}, args...)...)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, empty+" is not a metadata directory") {
			t.Errorf("%v: stderr = %q, want it to say it is not a metadata directory", args, r.stderr)
		}
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Errorf("%v created files in an empty directory", args)
		}
	}
}

// TestDirectoryDefault checks -d, $SPOOLMETA_DIR and ./metadata.
func TestDirectoryDefault(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmetaIn(t, "", []string{"SPOOLMETA_DIR=" + dir}, "ls", "hold")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "held-42") {
		t.Errorf("$SPOOLMETA_DIR not used: %q", r.stdout)
	}
	r = spoolmeta(t, "ls", "-d", dir, "hold") // -d after the command
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "held-42") {
		t.Errorf("-d not used: %q", r.stdout)
	}
	r = spoolmeta(t, "stat") // ./metadata does not exist here
	r.expect(t, 2)
	if !strings.Contains(r.stderr, "no such directory metadata (use -d or $SPOOLMETA_DIR)") {
		t.Errorf("stderr = %q, want it to name ./metadata", r.stderr)
	}
}

// TestUnknownState checks the one-line error that lists the valid names.
func TestUnknownState(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	for _, args := range [][]string{{"ls", "bogus"}, {"stat", "Deferredd"}, {"hold", "--state", "x", "--all"}, {"move", "msg-123", "deferred", "nowhere"}} {
		r := spoolmeta(t, append([]string{"-d", dir}, args...)...)
		r.expect(t, 2)
		first := lines(r.stderr)[0]
		if !strings.Contains(first, "unknown state") || !strings.Contains(first, "incoming, active, deferred, hold, bounce, archived") {
			t.Errorf("%v: stderr = %q", args, r.stderr)
		}
	}
}
