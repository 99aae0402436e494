//go:build linux

package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user and group the tool runs as in TestUnreadableAsOtherUser.
const nobody = 65534

// TestUnreadableAsOtherUser runs the tool as another user on a crashed
// spool in which one message file is root's, mode 0600: listing, iteration
// (stat) and recovery go on past it, report it, and never set it aside,
// and the tool's calls on that message name the file.
func TestUnreadableAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: to make a file another user cannot read, and to run the tool as uid 65534")
	}
	t.Parallel()
	base, err := os.MkdirTemp("", "spoolmeta-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "meta")
	if err := os.CopyFS(dir, os.DirFS(fixture(t, "crashed-spool"))); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	secret := filepath.Join(dir, "active", id+".json")
	if err := os.Chown(secret, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	// TestMain builds the binary where other users can run it: a copy
	// written here could be inherited, open for writing, by a child
	// another test forks meanwhile, and then not run (text file busy).
	bin := binary
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-d", dir}, args...)...)
		cmd.Env = testEnv()
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run spoolmeta %s: %v", strings.Join(args, " "), err)
		}
		return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}
	if r := run("show", id); r.code == 0 || !strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("show %s: exit %d, stderr %q; want an error naming %s", id, r.code, r.stderr, secret)
	}

	r := run("ls", "--sort", "created", "active")
	r.expect(t, 1)
	if !strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "ls: 1 message; 1 message file skipped") {
		t.Errorf("ls does not report the unreadable file; stderr %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "0f8fad5b-d9cb-469f-a165-70867728950e") || strings.Contains(r.stdout, id) {
		t.Errorf("ls --sort created active:\n%s", r.stdout)
	}

	r = run("stat")
	r.expect(t, 1)
	if !strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "3 message files skipped") { // and two corrupt ones
		t.Errorf("stat does not report the unreadable file; stderr %q", r.stderr)
	}

	want := "damage   unreadable      active/" + id + ".json: cannot be read (permission denied)"
	r = run("fsck")
	r.expect(t, 1)
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stderr, "6 findings, 0 repaired, 6 left: 6 damage") {
		t.Errorf("fsck:\n%s%s", r.stdout, r.stderr)
	}

	r = run("fsck", "--repair")
	r.expect(t, 1)
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stderr, "6 findings, 5 repaired, 1 left: 1 damage") {
		t.Errorf("fsck --repair:\n%s%s", r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", "incoming", "empty-3.json")); err != nil {
		t.Errorf("the damage beside the unreadable file was not repaired: %v", err)
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the unreadable file: %v, %v; want it left as it was", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "corrupt", "active", id+".json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the unreadable file was set aside: %v", err)
	}
}
