package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the controller and the terminal of a new pseudo-terminal.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

// TestConfirmOnTerminal checks that --all asks when stdin is a terminal,
// and acts only on a yes.
func TestConfirmOnTerminal(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	for _, tc := range []struct {
		answer string
		code   int
		state  string
	}{
		{"n\n", 2, "deferred"},
		{"y\n", 0, "incoming"},
	} {
		ptmx, tty := openPTY(t)
		if _, err := ptmx.WriteString(tc.answer); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "-d", dir, "requeue", "--state", "deferred", "--all")
		cmd.Env = testEnv()
		cmd.Stdin = tty
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != tc.code {
			t.Errorf("answer %q: exit status %d, want %d; stderr %q", tc.answer, code, tc.code, stderr.String())
		}
		if !strings.HasPrefix(stderr.String(), "requeue all 1 messages in deferred? [y/N] ") {
			t.Errorf("answer %q: stderr = %q, want the question", tc.answer, stderr.String())
		}
		if got := stateOf(t, dir, "msg-123"); !slices.Equal(got, []string{tc.state}) {
			t.Errorf("answer %q: msg-123 in %v, want %s", tc.answer, got, tc.state)
		}
	}
}
