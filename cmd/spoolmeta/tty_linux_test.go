package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

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

// onTerminal runs the binary with stdout on a terminal cols wide and
// returns what it printed there.
func onTerminal(t *testing.T, cols int, args ...string) string {
	t.Helper()
	ptmx, tty := openPTY(t)
	if err := unix.IoctlSetWinsize(int(ptmx.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = testEnv()
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := ptmx.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break // EIO once the tool has closed the terminal
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("spoolmeta %v: %v", args, err)
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// TestLsFitsTerminal checks that on a terminal ls fits its width, dropping
// the next retry and then the creation time, and shortening the last error.
func TestLsFitsTerminal(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	for _, tc := range []struct {
		cols int
		head string
	}{
		{120, "ID                                    STATE     SIZE  CREATED               TRIES  NEXT RETRY            LAST ERROR"},
		{100, "ID                                    STATE     SIZE  CREATED               TRIES  LAST ERROR"},
		{80, "ID                                    STATE     SIZE  TRIES  LAST ERROR"},
	} {
		out := onTerminal(t, tc.cols, "-d", dir, "ls")
		ls := lines(out)
		if len(ls) != 8 || ls[0] != tc.head || ls[7] != "ls: 6 messages" {
			t.Errorf("%d columns: ls =\n%s\nwant the header %q, 6 rows and the summary", tc.cols, out, tc.head)
		}
		for _, l := range ls {
			if n := utf8.RuneCountInString(l); n > tc.cols {
				t.Errorf("%d columns: line of %d runes: %q", tc.cols, n, l)
			}
		}
	}
	if out := onTerminal(t, 44, "-d", dir, "ls", "bounce"); !strings.Contains(out, "bounce-7  bounce  4.0K    3/3  550 5.1.1 us…\n") {
		t.Errorf("last error not shortened at 44 columns:\n%q", out)
	}
}

// TestLsEmptyOnTerminal checks that ls on a terminal says that a listing
// is empty, and gives the count of one that is not.
func TestLsEmptyOnTerminal(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	spoolmeta(t, "-d", dir, "delete", "held-42").expect(t, 0)
	if out := onTerminal(t, 100, "-d", dir, "ls", "hold"); out != "ls: no messages in hold\n" {
		t.Errorf("ls of an empty state on a terminal: %q", out)
	}
	if out := onTerminal(t, 100, "-d", dir, "ls", "bounce"); !strings.HasSuffix(out, "ls: 1 message\n") {
		t.Errorf("ls bounce on a terminal: %q", out)
	}
	if r := spoolmeta(t, "-d", dir, "ls", "hold"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("ls of an empty state, piped: %+v, want nothing printed", r)
	}
}
