//go:build unix

package main

import (
	"bufio"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestInterruptFinishesAndAccounts stops hold with a signal while it reads
// IDs from stdin: the message in hand is done and printed, the summary is
// printed, nothing else changes, no temp file is left, and the exit status
// is 128 plus the signal.
func TestInterruptFinishesAndAccounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		code int
	}{
		{syscall.SIGINT, "SIGINT", 130},
		{syscall.SIGTERM, "SIGTERM", 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			deferred := metastorage.MessageMetadata{State: metastorage.StateDeferred}
			dir := newSpool(t, map[string]metastorage.MessageMetadata{"a": deferred, "b": deferred, "c": deferred})
			cmd := exec.Command(binary, "-d", dir, "hold", "--json", "-")
			cmd.Env = testEnv()
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			outPipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			out := bufio.NewReader(outPipe)
			io.WriteString(in, "a\n")
			first, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("no line for the first ID: %v", err)
			}
			cmd.Process.Signal(tc.sig)
			rest, _ := io.ReadAll(out)
			in.Close()
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if code != tc.code {
				t.Errorf("exit status %d (%v), want %d; stderr:\n%s", code, err, tc.code, stderr.String())
			}
			want := `{"id":"a","action":"hold","result":"done","from":"deferred","to":"hold"}` + "\n"
			if first+string(rest) != want {
				t.Errorf("stdout = %q, want %q", first+string(rest), want)
			}
			if want := "hold: 1 held, 0 skipped, 0 missing (stopped by " + tc.name; !strings.HasPrefix(stderr.String(), want) {
				t.Errorf("stderr = %q, want the summary %q...", stderr.String(), want)
			}
			where := locate(t, dir)
			if !slices.Equal(where["a"], []string{"hold"}) || !slices.Equal(where["b"], []string{"deferred"}) || !slices.Equal(where["c"], []string{"deferred"}) {
				t.Errorf("after the signal: %v, want a held and b, c deferred", where)
			}
		})
	}
}
