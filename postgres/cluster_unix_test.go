//go:build unix

package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/postgres"
)

// cluster is a PostgreSQL server of a test's own, in a temporary directory.
type cluster struct {
	t    *testing.T
	bin  string // the directory of initdb and pg_ctl
	dir  string // the data directory
	port int
	cred *syscall.Credential // the user the server runs as, when not us
}

// serverBinDir returns the directory of initdb and pg_ctl, or "".
func serverBinDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// startCluster creates and starts a server on a free port, stopped when t
// ends. It skips t when the server binaries are not installed. As root,
// which initdb refuses, it runs them as the user postgres.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	bin := serverBinDir()
	if bin == "" {
		t.Skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed: they are needed for a server of the test's own")
	}
	tmp, err := os.MkdirTemp("", "spoolmeta-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	c := &cluster{t: t, bin: bin, dir: filepath.Join(tmp, "data")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root, and initdb refuses root: a user postgres is needed to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(tmp, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	c.start()
	t.Cleanup(func() { c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "stop") })
	return c
}

// run runs one of the server binaries and fails the test if it fails.
func (c *cluster) run(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	cmd.Dir = filepath.Dir(c.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (c *cluster) start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(filepath.Dir(c.dir), "log"), "-o", c.opts(), "-w", "start")
}

// opts are the server's options.
func (c *cluster) opts() string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, filepath.Dir(c.dir))
}

// restart stops the server as pg_ctlcluster restart does (fast mode: the
// sessions are terminated, a checkpoint is written) and starts it again.
func (c *cluster) restart() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(filepath.Dir(c.dir), "log"), "-o", c.opts(), "-m", "fast", "-w", "restart")
}

// crash stops the server as a crash would (immediate mode: no checkpoint,
// recovery from the WAL at the next start).
func (c *cluster) crash() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop")
}

func (c *cluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerCrashDuringWorkload crashes and restarts the server while
// workers change messages: calls fail with an error or succeed; every call
// that returned nil is there after recovery; each worker's calls succeed
// again once the server is back, through the same Backend; GetStateCount
// returns the last count it read while the server is down, and logs a
// warning.
func TestServerCrashDuringWorkload(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	dsn := c.dsn()
	schema := newSchema(t, dsn)
	var logs syncBuffer
	b := open(t, dsn, schema, postgres.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	w := newWorkload(t, b, "crash")
	w.start()
	w.awaitAcks(200)
	before := b.GetStateCount(ms.StateActive)
	c.crash()
	if got := b.GetStateCount(ms.StateActive); got != before {
		t.Errorf("GetStateCount active while the server is down: got %d, want %d, the count last read", got, before)
	}
	if !strings.Contains(logs.String(), "cannot read the state counts") {
		t.Errorf("GetStateCount while the server is down logged %q, want a warning", logs.String())
	}
	w.awaitErrors(workers)
	c.start()
	w.awaitAcksAfter(20)
	w.stop()
	w.check()
}

// TestServerRestartDuringWorkload restarts the server while workers change
// messages, three times: calls fail with an error or succeed; every call
// that returned nil is there after the restarts, each message in one
// state; and the calls succeed again through the same Backend.
func TestServerRestartDuringWorkload(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	dsn := c.dsn()
	schema := newSchema(t, dsn)
	b := open(t, dsn, schema)
	w := newWorkload(t, b, "restart")
	w.start()
	for range 3 {
		w.awaitAcks(100 + rand.IntN(100))
		c.restart()
	}
	w.mu.Lock()
	w.mark = w.acks
	w.mu.Unlock()
	w.awaitAcksAfter(20)
	w.stop()
	t.Logf("%d calls failed during the restarts", w.errors.Load())
	w.check()
}

// TestTerminatedAtRandom terminates the workload's sessions with
// pg_terminate_backend, 10 times in the middle of a workload: the same
// checks as TestServerCrashDuringWorkload.
func TestTerminatedAtRandom(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	app := schema
	b := open(t, withParam(dsn, "application_name", app), schema)
	w := newWorkload(t, b, "term")
	w.start()
	for range 10 {
		w.awaitAcks(20 + rand.IntN(40))
		exec := func() error {
			ctx := t.Context()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app)
			return err
		}
		if err := exec(); err != nil {
			t.Fatal(err)
		}
	}
	w.awaitAcksAfter(20)
	w.stop()
	if w.errors.Load() == 0 {
		t.Log("no call failed: every termination hit idle connections")
	}
	w.check()
}

// workload runs worker goroutines that change their own messages through b
// and keep, for each message, the states it may be in.
type workload struct {
	t      *testing.T
	b      *postgres.Backend
	prefix string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	cond    *sync.Cond
	acks    int
	mark    int // acks when awaitErrors returned
	errs    int
	allowed map[string][]string
	errors  atomic.Int64

	stopping atomic.Bool
}

func newWorkload(t *testing.T, b *postgres.Backend, prefix string) *workload {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a bound for a hung test, not a measure
	w := &workload{t: t, b: b, prefix: prefix, ctx: ctx, cancel: cancel, allowed: make(map[string][]string)}
	w.cond = sync.NewCond(&w.mu)
	t.Cleanup(cancel)
	context.AfterFunc(ctx, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	return w
}

func (w *workload) start() {
	for k := range workers {
		w.wg.Go(func() { w.work(k) })
	}
}

// work is one worker: it makes the next call of step on a message of its
// own; after a failed call, it reads the message once the server answers
// and checks that it is in the state before the call or the one the call
// makes.
func (w *workload) work(k int) {
	states := make(map[string]string)
	for n := 0; !w.stopping.Load() && w.ctx.Err() == nil; n++ {
		id := fmt.Sprintf("%s-w%d-%d", w.prefix, k, n%perWorker)
		cur := states[id]
		if cur == "" {
			cur = "-"
		}
		next, call := step(w.b, id, cur, n)
		w.set(id, cur, next)
		err := call(w.ctx)
		if err == nil {
			states[id] = next
			w.set(id, next)
			w.mu.Lock()
			w.acks++
			w.cond.Broadcast()
			w.mu.Unlock()
			continue
		}
		if w.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ms.ErrStateConflict) || errors.Is(err, ms.ErrMessageNotFound) || !strings.Contains(err.Error(), id) {
			w.t.Errorf("%s %s -> %s: %v, want a connection error that names the message", id, cur, next, err)
		}
		w.errors.Add(1)
		w.mu.Lock()
		w.errs++
		w.cond.Broadcast()
		w.mu.Unlock()
		got, ok := w.read(id)
		if !ok {
			return
		}
		if got != cur && got != next {
			w.t.Errorf("%s: in %s after a failed call %s -> %s, want one of those", id, got, cur, next)
		}
		states[id] = got
		w.set(id, got)
	}
}

// read returns the state of id once the server answers.
func (w *workload) read(id string) (string, bool) {
	for w.ctx.Err() == nil {
		m, err := w.b.GetMeta(w.ctx, id)
		switch {
		case errors.Is(err, ms.ErrMessageNotFound):
			return "-", true
		case err == nil:
			return m.State.String(), true
		}
	}
	return "", false
}

func (w *workload) set(id string, states ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.allowed[id] = states
}

// await waits until cond holds, or fails the test if the workload's time
// runs out.
func (w *workload) await(what string, cond func() bool) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !cond() {
		if w.ctx.Err() != nil {
			w.t.Fatalf("waiting for %s: the workload ended", what)
		}
		w.cond.Wait()
	}
}

// awaitAcks waits for n more calls to succeed.
func (w *workload) awaitAcks(n int) {
	w.t.Helper()
	w.mu.Lock()
	target := w.acks + n
	w.mu.Unlock()
	w.await(fmt.Sprintf("%d successful calls", n), func() bool { return w.acks >= target })
}

// awaitErrors waits for n failed calls.
func (w *workload) awaitErrors(n int) {
	w.t.Helper()
	w.await(fmt.Sprintf("%d failed calls", n), func() bool { return w.errs >= n })
	w.mu.Lock()
	w.mark = w.acks
	w.mu.Unlock()
}

// awaitAcksAfter waits until n calls per worker succeeded after the mark.
func (w *workload) awaitAcksAfter(n int) {
	w.t.Helper()
	w.await("calls to succeed again", func() bool { return w.acks >= w.mark+n*workers })
}

// stop stops the workers after their calls in progress returned: a call
// canceled instead might leave a statement running at the server.
func (w *workload) stop() {
	w.stopping.Store(true)
	w.wg.Wait()
	w.cancel()
}

// check checks each message against the states it may be in, and that the
// listings and counts agree.
func (w *workload) check() {
	t := w.t
	t.Helper()
	want := make(map[ms.QueueState]int64)
	for id, ok := range w.allowed {
		got := stateOf(t, w.b, id)
		if !slicesContains(ok, got) {
			t.Errorf("%s: in %s, want %s", id, got, strings.Join(ok, " or "))
		}
		if s, err := ms.ParseQueueState(got); err == nil {
			want[s]++
		}
	}
	checkOneState(t, w.b, want)
}
