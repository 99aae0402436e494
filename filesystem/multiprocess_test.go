package filesystem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

const (
	raceMessages  = 200
	raceProcesses = 8
	raceChildEnv  = "SPOOLMETA_TEST_RACE_CHILD"
)

// TestMultiProcessMoveRace starts several processes (this test binary,
// re-run) that race MoveToState on the same messages, from the same state
// to different target states: exactly one wins each message, and each
// message ends in exactly one directory, the winner's target. The
// processes use the three modes in turn, so the Hybrid ones make a journal
// that the others find and write through; the outcome checked here does
// not depend on it (TestCrashPowerLossShared shows that they must).
func TestMultiProcessMoveRace(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(raceChildEnv) != "" {
		raceChild()
		return
	}
	t.Parallel()
	dir := t.TempDir()
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range raceMessages {
		if err := b.StoreMeta(ctx, raceID(i), metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	type child struct {
		cmd   *exec.Cmd
		start io.WriteCloser
		out   *bufio.Reader
	}
	children := make([]child, raceProcesses)
	for p := range children {
		cmd, start, out := startChild(t, "TestMultiProcessMoveRace", raceChildEnv+"="+strconv.Itoa(p), "SPOOLMETA_TEST_DIR="+dir)
		children[p] = child{cmd, start, out}
	}
	// Each child opens the directory, says "ready", and waits for its
	// stdin to close: all of them start moving at once.
	for _, c := range children {
		line, err := c.out.ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("child did not get ready: %q, %v", line, err)
		}
	}
	for _, c := range children {
		c.start.Close()
	}
	winners := make(map[string][]metastorage.QueueState)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p, c := range children {
		wg.Go(func() {
			data, err := io.ReadAll(c.out)
			if err != nil {
				t.Errorf("child %d: %v", p, err)
			}
			if err := c.cmd.Wait(); err != nil {
				t.Errorf("child %d: %v", p, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, line := range strings.Fields(string(data)) {
				id, to, ok := strings.Cut(line, "->")
				if !ok {
					continue
				}
				s, err := metastorage.ParseQueueState(to)
				if err != nil {
					t.Errorf("child %d: %q: %v", p, line, err)
				}
				winners[id] = append(winners[id], s)
			}
		})
	}
	wg.Wait()

	for i := range raceMessages {
		id := raceID(i)
		won := winners[id]
		if len(won) != 1 {
			t.Errorf("%s: %d winners %v, want exactly 1", id, len(won), won)
			continue
		}
		var in []string
		for _, s := range metastorage.States() {
			if _, err := os.Lstat(filepath.Join(dir, s.String(), id+".json")); err == nil {
				in = append(in, s.String())
			}
		}
		if len(in) != 1 || in[0] != won[0].String() {
			t.Errorf("%s: lies in %v, want exactly [%s]", id, in, won[0])
		}
	}
}

func raceID(i int) string { return fmt.Sprintf("race-%03d", i) }

// raceChild is the body of one racing process.
func raceChild() {
	p, _ := strconv.Atoi(os.Getenv(raceChildEnv))
	to := metastorage.QueueState(1 + p%(metastorage.NumStates-1))
	mode := []Mode{Standard, Hybrid, Performance}[p%3]
	b, err := NewBackendWithOptions(os.Getenv("SPOOLMETA_TEST_DIR"), mode == Performance, mode == Hybrid)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	ctx := context.Background()
	w := bufio.NewWriter(os.Stdout)
	failed := false
	for i := range raceMessages {
		// Start at a different message in each process so that they
		// meet on every message from both sides.
		id := raceID((i + p*raceMessages/raceProcesses) % raceMessages)
		err := b.MoveToState(ctx, id, metastorage.StateIncoming, to)
		switch {
		case err == nil:
			fmt.Fprintf(w, "%s->%s\n", id, to)
		case !errors.Is(err, metastorage.ErrStateConflict):
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	w.Flush()
	if err := b.Close(); err != nil || failed {
		fmt.Fprintln(os.Stderr, "child failed:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startChild starts this test binary again, running only the test named
// test, with the extra environment variables env, its stdin and stdout
// piped to the returned writer and reader and its stderr to this one's.
func startChild(t *testing.T, test string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, in, bufio.NewReader(out)
}
