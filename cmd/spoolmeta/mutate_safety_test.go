package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// newSpool makes a metadata directory holding msgs, by ID.
func newSpool(t *testing.T, msgs map[string]metastorage.MessageMetadata) string {
	t.Helper()
	spooltest.NeedDisk(t)
	dir := filepath.Join(t.TempDir(), "spool")
	b, err := metafs.NewFactory(dir).WithDisableSync(true).Open()
	if err != nil {
		t.Fatal(err)
	}
	for id, md := range msgs {
		if err := b.StoreMeta(context.Background(), id, md); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// getMeta reads the record of id in dir.
func getMeta(t *testing.T, dir, id string) metastorage.MessageMetadata {
	t.Helper()
	b, err := metafs.NewFactory(dir).WithReadOnly(true).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	md, err := b.GetMeta(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// The updater is this test binary re-run as a child process (see
// TestMain): a worker that keeps updating one deferred message's Attempts,
// each update a compare on the state, until the message leaves deferred or
// its stdin is closed. It prints "running" after its first update and, at
// the end, "last K": the Attempts of its last acknowledged update.
const updaterEnv = "SPOOLMETA_TEST_UPDATER_DIR"

const updaterID = "worked-on"

func updaterMain() int {
	b, err := metafs.NewFactory(os.Getenv(updaterEnv)).WithDisableSync(true).Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "updater:", err)
		return 2
	}
	defer b.Close()
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	ctx := context.Background()
	md, err := b.GetMeta(ctx, updaterID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "updater:", err)
		return 2
	}
	last := md.Attempts
	for k := last + 1; ; k++ {
		select {
		case <-stop:
			fmt.Printf("last %d\n", last)
			return 0
		default:
		}
		md.Attempts = k
		err := b.UpdateMetaIn(ctx, updaterID, metastorage.StateDeferred, md)
		if errors.Is(err, metastorage.ErrStateConflict) {
			// The tool took the message: wait for the end.
			<-stop
			fmt.Printf("last %d\n", last)
			return 0
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "updater:", err)
			return 2
		}
		if last = k; k == md.MaxAttempts+1 {
			fmt.Println("running")
		}
	}
}

// TestChangeNeverOverwritesAWorker runs requeue, release, hold, move and
// delete on a message while a worker keeps updating it: each either does
// its change on the record the worker acknowledged last, or reports the
// message as skipped and leaves it to the worker; the worker's last
// acknowledged Attempts is never lost.
func TestChangeNeverOverwritesAWorker(t *testing.T) {
	t.Parallel()
	const rounds = 4
	for _, tc := range []struct {
		args []string
		to   string // the state after the change, "" if deleted
	}{
		{[]string{"requeue", updaterID}, "incoming"},
		{[]string{"hold", updaterID}, "hold"},
		{[]string{"move", updaterID, "deferred", "bounce"}, "bounce"},
		{[]string{"delete", updaterID}, ""},
		{[]string{"requeue", "--state", "deferred", "--all", "--yes"}, "incoming"},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			t.Parallel()
			done, skipped := 0, 0
			for range rounds {
				dir := newSpool(t, map[string]metastorage.MessageMetadata{
					updaterID: {State: metastorage.StateDeferred, MaxAttempts: 5},
				})
				stop := startUpdater(t, dir)
				r := spoolmeta(t, append([]string{"-d", dir}, tc.args...)...)
				last := stop()
				b, err := metafs.NewFactory(dir).WithReadOnly(true).Open()
				if err != nil {
					t.Fatal(err)
				}
				md, err := b.GetMeta(context.Background(), updaterID)
				b.Close()
				switch {
				case r.code == 0 && tc.to == "":
					done++
					if !errors.Is(err, metastorage.ErrMessageNotFound) {
						t.Errorf("%v reported done, but GetMeta = %+v, %v", tc.args, md, err)
					}
				case r.code == 0:
					done++
					if err != nil || md.State.String() != tc.to || md.Attempts != last {
						t.Errorf("%v reported done: message in %s with Attempts %d (%v), want %s with the worker's last acknowledged Attempts %d", tc.args, md.State, md.Attempts, err, tc.to, last)
					}
				case r.code == 1 && strings.Contains(r.stdout, "skipped "+updaterID+": changed meanwhile"):
					skipped++
					if err != nil || md.State != metastorage.StateDeferred || md.Attempts != last {
						t.Errorf("%v skipped: message in %s with Attempts %d (%v), want deferred with the worker's last Attempts %d", tc.args, md.State, md.Attempts, err, last)
					}
				default:
					r.expect(t, 0)
				}
			}
			t.Logf("%v: %d done, %d skipped as changed meanwhile", tc.args, done, skipped)
		})
	}
}

// startUpdater starts the updater on dir and waits until it runs; stop
// ends it and returns the worker's last acknowledged Attempts.
func startUpdater(t *testing.T, dir string) (stop func() int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), updaterEnv+"="+dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outPipe)
	if line, err := out.ReadString('\n'); err != nil || line != "running\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("updater did not start: %q, %v", line, err)
	}
	return func() int {
		in.Close()
		line, _ := out.ReadString('\n')
		if err := cmd.Wait(); err != nil {
			t.Fatalf("updater: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "last "))
		if err != nil {
			t.Fatalf("updater said %q", line)
		}
		return n
	}
}

// TestHoldRefusesFinished checks that hold acts on queued messages only: a
// bounced or archived message is refused, by ID and by state, and says why.
func TestHoldRefusesFinished(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	r := spoolmeta(t, "-d", dir, "hold", "bounce-7", "archived-1", "held-42")
	r.expect(t, 1)
	want := "skipped bounce-7: hold does not act on messages in bounce: the message is finished (requeue delivers it again)\n" +
		"skipped archived-1: hold does not act on messages in archived: the message is finished (requeue delivers it again)\n" +
		"skipped held-42: hold does not act on messages in hold: already held\n"
	if r.stdout != want {
		t.Errorf("hold stdout =\n%s\nwant\n%s", r.stdout, want)
	}
	for _, s := range []string{"bounce", "archived"} {
		r := spoolmeta(t, "-d", dir, "hold", "--state", s, "--all", "--yes")
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "hold does not act on messages in "+s+": the message is finished") {
			t.Errorf("hold --state %s --all: stderr = %q", s, r.stderr)
		}
	}
	where := locate(t, dir)
	if !slices.Equal(where["bounce-7"], []string{"bounce"}) || !slices.Equal(where["archived-1"], []string{"archived"}) {
		t.Errorf("after refused holds: %v", where)
	}
	for _, id := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "msg-123"} {
		from := where[id][0]
		r := spoolmeta(t, "-d", dir, "hold", id)
		r.expect(t, 0)
		if r.stdout != "held "+id+" ("+from+" -> hold)\n" {
			t.Errorf("hold %s from %s: %q", id, from, r.stdout)
		}
	}
}

// TestConfirmOnlyOnATerminal checks that --all without --yes is refused,
// without a prompt, when stdin is /dev/null or a pipe, and changes nothing.
func TestConfirmOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "clean-spool")
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for name, stdin := range map[string]io.Reader{"/dev/null": devNull, "a pipe": strings.NewReader("y\n")} {
		cmd := exec.Command(binary, "-d", dir, "requeue", "--state", "deferred", "--all")
		cmd.Env = testEnv()
		cmd.Stdin = stdin
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 2 || stdout.String() != "" {
			t.Errorf("stdin %s: exit status %d, stdout %q; want 2 and nothing done", name, code, stdout.String())
		}
		if s := stderr.String(); strings.Contains(s, "[y/N]") || !strings.Contains(s, "--all needs --yes when stdin is not a terminal") {
			t.Errorf("stdin %s: stderr = %q, want no question and the need of --yes", name, s)
		}
	}
	if got := stateOf(t, dir, "msg-123"); !slices.Equal(got, []string{"deferred"}) {
		t.Errorf("msg-123 in %v, want deferred", got)
	}
}

// TestIDsFromStdin checks - (one ID a line) and -0 (NUL-separated IDs, one
// with a newline in it), and that empty input acts on nothing.
func TestIDsFromStdin(t *testing.T) {
	t.Parallel()
	deferred := metastorage.MessageMetadata{State: metastorage.StateDeferred}
	dir := newSpool(t, map[string]metastorage.MessageMetadata{"a": deferred, "b": deferred, "two\nlines": deferred})
	r := spoolmetaIn(t, "a\n\nb\n", nil, "-d", dir, "hold", "-")
	r.expect(t, 0)
	if r.stdout != "held a (deferred -> hold)\nheld b (deferred -> hold)\n" {
		t.Errorf("hold - stdout = %q", r.stdout)
	}
	r = spoolmetaIn(t, "two\nlines\x00a\x00", nil, "-d", dir, "release", "-0")
	r.expect(t, 1)
	if r.stdout != "skipped two\\nlines: release does not act on messages in deferred: only held ones\nreleased a (hold -> deferred)\n" {
		t.Errorf("release -0 stdout = %q", r.stdout)
	}
	r = spoolmetaIn(t, "two\nlines\x00", nil, "-d", dir, "move", "-0", "deferred", "hold")
	r.expect(t, 0)
	if got := getMeta(t, dir, "two\nlines"); got.State != metastorage.StateHold {
		t.Errorf("move -0: message in %s, want hold", got.State)
	}
	for _, args := range [][]string{{"hold", "-"}, {"delete", "-0"}, {"move", "-", "deferred", "hold"}} {
		r := spoolmetaIn(t, "", nil, append([]string{"-d", dir}, args...)...)
		r.expect(t, 0)
		if r.stdout != "" || !strings.HasPrefix(r.stderr, args[0]+": 0 ") {
			t.Errorf("%v on empty input: stdout %q, stderr %q", args, r.stdout, r.stderr)
		}
	}
	spoolmetaIn(t, "a\n", nil, "-d", dir, "hold", "-", "b").expect(t, 2)
}
