package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/pgtest"
	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// childVar, when set, makes the test binary run as a child process of a
// multi-process test: its value names what the child does.
const childVar = "SPOOLMETA_PG_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childVar); mode != "" {
		os.Exit(runChild(mode))
	}
	code := m.Run()
	dropBenchSchema()
	os.Exit(code)
}

// runChild runs the child's part on the schema in SPOOLMETA_PG_SCHEMA and
// returns its exit code. It writes what it did to stdout, a line each.
func runChild(mode string) int {
	dsn, schema := os.Getenv(dsnVar), os.Getenv("SPOOLMETA_PG_SCHEMA")
	b, err := postgres.NewFactory(dsn, postgres.WithSchema(schema), postgres.WithMaxConns(4), postgres.WithLogger(quietLogger)).Open(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer b.Close()
	switch mode {
	case "race":
		return childRace(b)
	case "work":
		return childWork(b, os.Getenv("SPOOLMETA_PG_PREFIX"))
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

// raceMessages is the number of messages the processes race for.
const raceMessages = 500

// childRace waits for a line on stdin, then moves every message from
// incoming to active, in an order of its own, and prints the ID of each
// move it won.
func childRace(b *postgres.Backend) int {
	bufio.NewReader(os.Stdin).ReadString('\n')
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, i := range rand.Perm(raceMessages) {
		id := fmt.Sprintf("race-%03d", i)
		err := b.MoveToState(context.Background(), id, ms.StateIncoming, ms.StateActive)
		switch {
		case err == nil:
			fmt.Fprintln(out, id)
		case !errors.Is(err, ms.ErrStateConflict):
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestProcessesRaceMove races 8 processes, each with its own Backend and
// pool, moving the same 500 messages from incoming to active: each message
// has exactly one winner, and ends in active.
func TestProcessesRaceMove(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema)
	for i := range raceMessages {
		if err := b.StoreMeta(t.Context(), fmt.Sprintf("race-%03d", i), ms.MessageMetadata{State: ms.StateIncoming}); err != nil {
			t.Fatal(err)
		}
	}
	const procs = 8
	type proc struct {
		cmd   *exec.Cmd
		start io.WriteCloser
		out   strings.Builder
		err   strings.Builder
	}
	ps := make([]*proc, procs)
	for i := range ps {
		p := &proc{cmd: child(t, "race", schema)}
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
		var err error
		if p.start, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	for _, p := range ps {
		io.WriteString(p.start, "go\n")
		p.start.Close()
	}
	wins := make(map[string][]int)
	for i, p := range ps {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, p.err.String())
		}
		for _, id := range strings.Fields(p.out.String()) {
			wins[id] = append(wins[id], i)
		}
	}
	for i := range raceMessages {
		id := fmt.Sprintf("race-%03d", i)
		if len(wins[id]) != 1 {
			t.Errorf("%s: won by processes %v, want exactly one", id, wins[id])
		}
		if m, err := b.GetMeta(t.Context(), id); err != nil || m.State != ms.StateActive {
			t.Errorf("GetMeta %s after the race: %v in %s, want active", id, err, m.State)
		}
	}
	if n := b.GetStateCount(ms.StateActive); n != raceMessages {
		t.Errorf("GetStateCount active after the race: got %d, want %d", n, raceMessages)
	}
}

// child returns the command that runs the test binary as a child in mode on
// schema.
func child(t *testing.T, mode, schema string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childVar+"="+mode, "SPOOLMETA_PG_SCHEMA="+schema)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// A step of a workload: the state a message enters, or "-" when deleted.
// The child writes "B id state" before a call and "A id state" after it
// returned nil.

// workers and perWorker shape a child's workload.
const workers, perWorker = 4, 8

// childWork changes messages named after prefix in a loop until it is
// killed, each worker goroutine its own messages, and reports each call.
func childWork(b *postgres.Backend, prefix string) int {
	var mu sync.Mutex
	report := func(kind, id, state string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s %s %s\n", kind, id, state)
	}
	var wg sync.WaitGroup
	failed := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			states := make(map[string]string)
			for n := 0; ; n++ {
				id := fmt.Sprintf("%s-w%d-%d", prefix, w, n%perWorker)
				cur := states[id]
				if cur == "" {
					cur = "-"
				}
				next, call := step(b, id, cur, n)
				report("B", id, next)
				if err := call(context.Background()); err != nil {
					failed <- fmt.Errorf("%s %s -> %s: %w", id, cur, next, err)
					return
				}
				report("A", id, next)
				states[id] = next
			}
		})
	}
	err := <-failed
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// step returns the next state of the message id, now in state cur ("-"
// when absent), and the call that takes it there. n varies the choice.
func step(b ms.Backend, id, cur string, n int) (string, func(context.Context) error) {
	rec := func(s ms.QueueState) ms.MessageMetadata {
		return ms.MessageMetadata{State: s, Attempts: n, LastError: "attempt " + strconv.Itoa(n), Headers: map[string]string{"n": strconv.Itoa(n)}}
	}
	move := func(from, to ms.QueueState) (string, func(context.Context) error) {
		return to.String(), func(ctx context.Context) error { return b.MoveToState(ctx, id, from, to) }
	}
	switch cur {
	case "-":
		return "incoming", func(ctx context.Context) error { return b.StoreMeta(ctx, id, rec(ms.StateIncoming)) }
	case "incoming":
		return move(ms.StateIncoming, ms.StateActive)
	case "active":
		if n%2 == 0 {
			return "deferred", func(ctx context.Context) error { return b.UpdateMeta(ctx, id, rec(ms.StateDeferred)) }
		}
		return move(ms.StateActive, ms.StateBounce)
	case "deferred":
		return move(ms.StateDeferred, ms.StateActive)
	}
	return "-", func(ctx context.Context) error { return b.DeleteMeta(ctx, id) }
}

// stateOf returns the state of id as step names it.
func stateOf(t *testing.T, b ms.Backend, id string) string {
	t.Helper()
	m, err := b.GetMeta(t.Context(), id)
	if errors.Is(err, ms.ErrMessageNotFound) {
		return "-"
	}
	if err != nil {
		t.Fatalf("GetMeta %s: %v", id, err)
	}
	return m.State.String()
}

// TestKilledClients kills processes at random points of a workload with
// SIGKILL, 50 times: every call that returned nil to a killed process is
// there (the message is in the state it left it in, or in the state of the
// call it was making when killed), every message is in exactly one state,
// and the counts match the rows.
func TestKilledClients(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema)
	const cycles = 50
	app := schema + "_child"
	childDSN := dsnVar + "=" + withParam(dsn, "application_name", app)
	allowed := make(map[string][]string) // the states each message may be in
	for c := range cycles {
		prefix := fmt.Sprintf("c%02d", c)
		cmd := child(t, "work", schema, "SPOOLMETA_PG_PREFIX="+prefix, childDSN)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked, began := make(map[string]string), make(map[string]string)
		killAfter := 1 + rand.IntN(40)
		sc := bufio.NewScanner(out)
		acks := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				t.Fatalf("cycle %d: bad line %q", c, sc.Text())
			}
			switch f[0] {
			case "B":
				began[f[1]] = f[2]
			case "A":
				acked[f[1]] = f[2]
				delete(began, f[1])
				if acks++; acks == killAfter {
					cmd.Process.Kill()
				}
			}
		}
		cmd.Wait()
		if acks < killAfter {
			t.Fatalf("cycle %d: the child ended after %d calls, before it was killed: %s", c, acks, stderr.String())
		}
		for id, s := range acked {
			allowed[id] = []string{s}
		}
		for id, s := range began {
			prev := acked[id]
			if prev == "" {
				prev = "-"
			}
			allowed[id] = []string{prev, s}
		}
	}
	// A killed process's last statement may still run at the server:
	// wait for its sessions to end before looking.
	awaitNoSessions(t, dsn, app)
	want := make(map[ms.QueueState]int64)
	for id, ok := range allowed {
		got := stateOf(t, b, id)
		if !slicesContains(ok, got) {
			t.Errorf("%s: in %s after the kills, want %s", id, got, strings.Join(ok, " or "))
		}
		if s, err := ms.ParseQueueState(got); err == nil {
			want[s]++
		}
	}
	checkOneState(t, b, want)
}

// awaitNoSessions returns when the server has no session named app.
func awaitNoSessions(t *testing.T, dsn, app string) {
	t.Helper()
	conn := pgtest.Connect(t, dsn)
	for {
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
			t.Fatalf("waiting for the sessions of %s to end: %v", app, err)
		}
		if n == 0 {
			return
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkOneState checks that the listings of all states hold each message
// once, that they hold want[s] messages in each state s, and that the
// counts say the same.
func checkOneState(t *testing.T, b ms.StateCounterBackend, want map[ms.QueueState]int64) {
	t.Helper()
	seen := make(map[string]ms.QueueState)
	for _, s := range ms.States() {
		res, err := b.ListMessages(t.Context(), s, ms.MessageListOptions{})
		if err != nil {
			t.Fatalf("ListMessages %s: %v", s, err)
		}
		for _, id := range res.MessageIDs {
			if o, ok := seen[id]; ok {
				t.Errorf("%s listed in %s and %s", id, o, s)
			}
			seen[id] = s
		}
		if int64(len(res.MessageIDs)) != want[s] {
			t.Errorf("ListMessages %s: %d messages, want %d", s, len(res.MessageIDs), want[s])
		}
		if n := b.GetStateCount(s); n != want[s] {
			t.Errorf("GetStateCount %s: got %d, want %d", s, n, want[s])
		}
	}
}
