package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The mover is this test binary re-run as a child process (see TestMain):
// it plays a queue that keeps moving messages incoming -> active ->
// deferred -> incoming, never touching hold, until its stdin is closed or
// it has made moverMaxMoves moves.
const (
	moverEnv      = "SPOOLMETA_TEST_MOVER_DIR"
	moverMessages = 240
	moverMaxMoves = 200000
	moverReady    = 200 // moves made before the mover says it is running
	moverWorkers  = 8
)

func moverID(i int) string { return fmt.Sprintf("m-%04d", i) }

// cycle is the next state of a message in the mover's queue.
var cycle = map[metastorage.QueueState]metastorage.QueueState{
	metastorage.StateIncoming: metastorage.StateActive,
	metastorage.StateActive:   metastorage.StateDeferred,
	metastorage.StateDeferred: metastorage.StateIncoming,
}

// moverMain is the child's main function.
func moverMain() int {
	b, err := metafs.NewFactory(os.Getenv(moverEnv)).WithDisableSync(true).Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mover:", err)
		return 2
	}
	defer b.Close()
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var moves atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, moverWorkers)
	for w := range moverWorkers {
		wg.Go(func() { errc <- moverWork(b, w, stop, &moves) })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			fmt.Fprintln(os.Stderr, "mover:", err)
			return 2
		}
	}
	fmt.Printf("moves %d\n", moves.Load())
	return 0
}

// moverWork is one worker of the mover: it walks the messages with a
// stride of its own and moves each one a step along the cycle.
func moverWork(b *metafs.Backend, w int, stop <-chan struct{}, moves *atomic.Int64) error {
	ctx := context.Background()
	for i := w; moves.Load() < moverMaxMoves; i = (i + 2*w + 1) % moverMessages {
		select {
		case <-stop:
			return nil
		default:
		}
		id := moverID(i)
		md, err := b.GetMeta(ctx, id)
		if errors.Is(err, metastorage.ErrMessageNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		next, ok := cycle[md.State]
		if !ok {
			continue
		}
		err = b.MoveToState(ctx, id, md.State, next)
		if err != nil && !errors.Is(err, metastorage.ErrStateConflict) {
			return err
		}
		if moves.Add(1) == moverReady {
			fmt.Println("running")
		}
	}
	return nil
}

// startMover starts the mover on dir and waits until it runs.
func startMover(t *testing.T, dir string) (stop func() string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), moverEnv+"="+dir)
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
	line, err := out.ReadString('\n')
	if err != nil || line != "running\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("mover did not start: %q, %v", line, err)
	}
	return func() string {
		in.Close()
		rest, _ := io.ReadAll(out)
		if err := cmd.Wait(); err != nil {
			t.Errorf("mover: %v", err)
		}
		return strings.TrimSpace(string(rest))
	}
}

// outcomes runs a mutating command with --json and returns its outcomes
// by result.
func outcomes(t *testing.T, dir string, args ...string) map[string][]outcome {
	t.Helper()
	r := spoolmeta(t, append([]string{"-d", dir}, append(args, "--yes", "--json")...)...)
	if r.code != 0 && r.code != 1 {
		r.expect(t, 0)
	}
	m := map[string][]outcome{}
	for _, l := range lines(r.stdout) {
		var o outcome
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("%v: %q: %v", args, l, err)
		}
		m[o.Result] = append(m[o.Result], o)
	}
	if len(m["missing"]) > 0 {
		t.Errorf("%v reports missing messages while iterating a state: %v", args, m["missing"])
	}
	return m
}

// TestMutateWhileQueueRuns runs hold, requeue and delete on whole states
// while another process keeps moving the same messages: every message ends
// in exactly one state or was deleted, as reported, and nothing is lost or
// duplicated.
func TestMutateWhileQueueRuns(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := filepath.Join(t.TempDir(), "spool")
	b, err := metafs.NewFactory(dir).WithDisableSync(true).Open()
	if err != nil {
		t.Fatal(err)
	}
	states := []metastorage.QueueState{metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred}
	for i := range moverMessages {
		md := metastorage.MessageMetadata{State: states[i%3], MaxAttempts: 5, Headers: map[string]string{"n": strconv.Itoa(i)}}
		if err := b.StoreMeta(context.Background(), moverID(i), md); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	stop := startMover(t, dir)
	held := outcomes(t, dir, "hold", "--state", "deferred", "--all")
	requeued := outcomes(t, dir, "requeue", "--state", "deferred", "--all")
	deleted := outcomes(t, dir, "delete", "--state", "incoming", "--all")
	t.Logf("mover: %s; held %d (%d skipped), requeued %d (%d skipped), deleted %d (%d skipped)", stop(),
		len(held["done"]), len(held["skipped"]), len(requeued["done"]), len(requeued["skipped"]),
		len(deleted["done"]), len(deleted["skipped"]))

	where := locate(t, dir)
	gone := map[string]bool{}
	for _, o := range deleted["done"] {
		if gone[o.ID] {
			t.Errorf("%s deleted twice", o.ID)
		}
		gone[o.ID] = true
	}
	for i := range moverMessages {
		id := moverID(i)
		switch in := where[id]; {
		case gone[id] && len(in) > 0:
			t.Errorf("%s reported deleted but is in %v", id, in)
		case !gone[id] && len(in) != 1:
			t.Errorf("%s is in %d states %v, want exactly one", id, len(in), in)
		}
	}
	for _, o := range held["done"] {
		if in := where[o.ID]; len(in) != 1 || in[0] != "hold" {
			t.Errorf("%s was held, but is in %v (the queue never takes messages from hold)", o.ID, in)
		}
	}
	if len(where) != moverMessages-len(gone) {
		t.Errorf("%d messages on disk, want %d", len(where), moverMessages-len(gone))
	}
	spoolmeta(t, "-d", dir, "fsck").expect(t, 0)
}

// locate returns the state directories each message file lies in, and
// fails on any other file in them.
func locate(t *testing.T, dir string) map[string][]string {
	t.Helper()
	where := map[string][]string{}
	for _, s := range metastorage.States() {
		ents, err := os.ReadDir(filepath.Join(dir, s.String()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			id, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok {
				t.Errorf("unexpected file %s/%s", s, e.Name())
				continue
			}
			where[id] = append(where[id], s.String())
		}
	}
	return where
}
