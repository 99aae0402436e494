package filesystem

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The environment of the kill tests. SPOOLMETA_SOAK_CYCLES and
// SPOOLMETA_KILL_SEED are for people; the others pass a child process its
// part.
const (
	killSoakEnv  = "SPOOLMETA_SOAK_CYCLES"
	killSeedEnv  = "SPOOLMETA_KILL_SEED"
	killChildEnv = "SPOOLMETA_TEST_KILL_CHILD" // the child's role, the prefix of its IDs
	killDirEnv   = "SPOOLMETA_TEST_KILL_DIR"
	killModeEnv  = "SPOOLMETA_TEST_KILL_MODE"
	killGenEnv   = "SPOOLMETA_TEST_KILL_GEN"
	killRandEnv  = "SPOOLMETA_TEST_KILL_RAND"
	killRecEnv   = "SPOOLMETA_TEST_KILL_RECOVER" // "1": RecoverFromCrash before reading its messages
	killTrackEnv = "SPOOLMETA_TEST_KILL_TRACK"   // "1": sync through a vfs.Tracker
)

const (
	killWorkers   = 8 // goroutines of a child process
	killPerWorker = 8 // messages each goroutine owns
	killMinAcks   = 20
	killMaxAcks   = 200
)

var killModes = []Mode{Standard, Hybrid, Performance}

// TestKillCycles runs the backend in a child process (this test binary,
// re-run) with a random mixed workload of killWorkers goroutines, each
// owning its own messages, and kills it with SIGKILL after a random number
// of acknowledged operations. The child reports each operation on stdout
// before it starts ("B") and when it returned ("A" for nil, "E" for an
// error), so the parent knows what was acknowledged and what was in flight.
// The parent then opens the directory, runs RecoverFromCrash and checks
// that every acknowledged operation is reflected exactly, that each
// operation in flight took effect completely or not at all, that every
// message lies in exactly one state directory, that every message file
// decodes, that Check finds nothing, and that no temp file is left. The
// next cycle reuses the directory and the expected contents; the mode
// rotates over Standard, Hybrid and Performance, which all keep what they
// acknowledged across a process crash. One cycle in four leaves the
// leftovers of its kill to the next child, which runs RecoverFromCrash
// itself, reports what it finds of its messages (checked as above), and is
// killed after its first few repairs, if it makes any: recovery, too, may
// be interrupted at any point.
//
// It runs 12 cycles, 50 with SPOOLMETA_LONG_TESTS set, and at least one
// leaves its recovery to the next child; SPOOLMETA_SOAK_CYCLES=N runs N for
// a long soak, and SPOOLMETA_KILL_SEED=S starts from seed S (failures print
// the seed):
//
//	SPOOLMETA_SOAK_CYCLES=2000 go test -race -run 'Kill' -timeout 0 ./filesystem/
func TestKillCycles(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(killChildEnv) != "" {
		killChildMain()
		return
	}
	killCyclesOn(t, false)
}

// TestKillCyclesMac is TestKillCycles with the children syncing as on
// macOS: through a vfs.Tracker, file by file, instead of syncfs.
func TestKillCyclesMac(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(killChildEnv) != "" {
		killChildMain()
		return
	}
	killCyclesOn(t, true)
}

// killCyclesOn runs TestKillCycles, with the children syncing through a
// vfs.Tracker if track is set.
func killCyclesOn(t *testing.T, track bool) {
	t.Parallel()
	cycles := killCycles(t, 12, 50)
	k := newKillTest(t)
	k.track = track
	seed := k.seed
	unrecovered, recoveryKills, leftOver := false, 0, 0
	for cycle := range cycles {
		cseed := seed + uint64(cycle)
		rng := rand.New(rand.NewPCG(cseed, 0))
		mode := killModes[cycle%len(killModes)]
		c := k.cycle(fmt.Sprintf("cycle %d (%s, seed %d)", cycle, mode, cseed))
		killAfter := killMinAcks + rng.IntN(killMaxAcks-killMinAcks+1)
		// After a cycle that left its recovery to the next child, that
		// child runs RecoverFromCrash before it reports its messages, and
		// is killed after the first few repairs it logs, if there are any.
		killAtRepair := 1 + rng.IntN(3)
		p := c.start("g", mode, rng.Uint64(), unrecovered)
		if p == nil {
			c.finish()
			return
		}
		for line := range p.lines {
			c.handle(p, line)
			switch {
			case p.killed:
			case p.ready && p.acks >= killAfter:
				p.kill()
			case !p.ready && p.repairs >= killAtRepair:
				p.kill()
				recoveryKills++
			}
		}
		c.ended(p)
		// One cycle in four leaves the recovery to the next child, and
		// the one before the last if none did yet.
		unrecovered = cycle+1 < cycles && (rng.IntN(4) == 0 || leftOver == 0 && cycle+2 == cycles)
		if unrecovered {
			leftOver++
		}
		if !unrecovered {
			c.verify()
		}
		if !c.finish() {
			return
		}
	}
	k.summary(cycles)
	t.Logf("%d children were killed while they recovered what the one before had left", recoveryKills)
}

// TestKillOneOfTwo runs two child processes on the same directory, each
// with its own goroutines and messages, and kills one of them at a random
// point while the other keeps working. A fresh child then opens the
// directory, so its background recovery and a RecoverFromCrash run while
// the survivor writes, checks that the killed child's operations in flight
// took effect completely or not at all, and continues its work. Then the
// parent stops the survivor and the fresh child cleanly (it closes their
// stdin; they Close the backend) and checks the invariants of TestKillCycles
// for the acknowledged operations of all three. No recovery may report
// anything of what a live process was writing, and no operation of the
// survivor may fail.
//
// It runs 3 cycles, one for each order of the modes over the three
// children, and 10 with SPOOLMETA_LONG_TESTS set; SPOOLMETA_SOAK_CYCLES=N
// runs N.
func TestKillOneOfTwo(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(killChildEnv) != "" {
		killChildMain()
		return
	}
	killOneOfTwoOn(t, false)
}

// TestKillOneOfTwoMac is TestKillOneOfTwo with the children syncing as on
// macOS: through a vfs.Tracker, file by file, instead of syncfs.
func TestKillOneOfTwoMac(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(killChildEnv) != "" {
		killChildMain()
		return
	}
	killOneOfTwoOn(t, true)
}

// killOneOfTwoOn runs TestKillOneOfTwo, with the children syncing through
// a vfs.Tracker if track is set.
func killOneOfTwoOn(t *testing.T, track bool) {
	t.Parallel()
	cycles := killCycles(t, 3, 10)
	k := newKillTest(t)
	k.track = track
	seed := k.seed
	roles := [2]string{"a", "b"}
	overlap := 0
	for cycle := range cycles {
		cseed := seed + uint64(cycle)
		rng := rand.New(rand.NewPCG(cseed, 1))
		var procs [2]*killProc
		var modes [3]Mode
		for i := range modes {
			modes[i] = killModes[(cycle+i)%len(killModes)]
		}
		v := rng.IntN(2)
		c := k.cycle(fmt.Sprintf("cycle %d (%s killed, %s survives, fresh %s; seed %d)", cycle, modes[v], modes[1-v], modes[2], cseed))
		killAfter := killMinAcks + rng.IntN(killMaxAcks-killMinAcks+1)
		freshAcks := killMinAcks + rng.IntN(killMaxAcks-killMinAcks+1)
		for i := range procs {
			procs[i] = c.start(roles[i], modes[i], rng.Uint64(), false)
		}
		if procs[0] == nil || procs[1] == nil {
			c.finish()
			return
		}
		victim, survivor := procs[v], procs[1-v]
		var fresh *killProc
		victimLines, survivorLines := victim.lines, survivor.lines
		var freshLines <-chan string
		stopping := false
		stop := func() {
			if !stopping {
				stopping = true
				survivor.stdin.Close()
				if fresh != nil {
					fresh.stdin.Close()
				}
			}
		}
		survivorAtFresh := 0
		for victimLines != nil || survivorLines != nil || freshLines != nil {
			select {
			case line, ok := <-victimLines:
				if !ok {
					victimLines = nil
					c.ended(victim)
					fresh = c.start(roles[v], modes[2], rng.Uint64(), true)
					if fresh == nil {
						stop()
						break
					}
					freshLines = fresh.lines
					survivorAtFresh = survivor.acks
					break
				}
				c.handle(victim, line)
				if victim.ready && !victim.killed && victim.acks >= killAfter {
					victim.kill()
					// The survivor's background recovery may still be
					// running: from now on it may find what the kill
					// left, as any recovery may.
					survivor.strict = false
				}
			case line, ok := <-survivorLines:
				if !ok {
					survivorLines = nil
					c.ended(survivor)
					break
				}
				c.handle(survivor, line)
			case line, ok := <-freshLines:
				if !ok {
					freshLines = nil
					c.ended(fresh)
					stop()
					break
				}
				c.handle(fresh, line)
				if line == "R" && survivor.acks > survivorAtFresh {
					overlap++
				}
				if fresh.ready && fresh.acks >= freshAcks {
					stop()
				}
			}
		}
		c.verify()
		if !c.finish() {
			return
		}
	}
	k.summary(cycles)
	t.Logf("in %d of %d cycles the survivor acknowledged writes while the fresh child opened and recovered", overlap, cycles)
}

// killCycles returns the number of cycles to run: SPOOLMETA_SOAK_CYCLES if
// set, else long with SPOOLMETA_LONG_TESTS set, else short.
func killCycles(t *testing.T, short, long int) int {
	s := os.Getenv(killSoakEnv)
	if s == "" && longTests() {
		return long
	}
	if s == "" {
		return short
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number of cycles", killSoakEnv, s)
	}
	return n
}

func killSeed() uint64 {
	if s, err := strconv.ParseUint(os.Getenv(killSeedEnv), 10, 64); err == nil {
		return s
	}
	return uint64(time.Now().UnixNano())
}

// killView is what a message is: missing, or in a state with the content
// of one write.
type killView struct {
	exists   bool
	state    metastorage.QueueState
	attempts int
	pad      int // length of the "pad" header
	lastErr  string
}

func (v killView) String() string {
	if !v.exists {
		return "-"
	}
	return fmt.Sprintf("%s %d %d %q", v.state, v.attempts, v.pad, v.lastErr)
}

func parseKillView(s string) (killView, error) {
	if s == "-" {
		return killView{}, nil
	}
	f := strings.SplitN(s, " ", 4)
	if len(f) != 4 {
		return killView{}, fmt.Errorf("bad view %q", s)
	}
	st, err := metastorage.ParseQueueState(f[0])
	if err != nil {
		return killView{}, err
	}
	v := killView{exists: true, state: st}
	if v.attempts, err = strconv.Atoi(f[1]); err != nil {
		return killView{}, err
	}
	if v.pad, err = strconv.Atoi(f[2]); err != nil {
		return killView{}, err
	}
	if v.lastErr, err = strconv.Unquote(f[3]); err != nil {
		return killView{}, err
	}
	return v, nil
}

func killViewOf(md metastorage.MessageMetadata) killView {
	return killView{exists: true, state: md.State, attempts: md.Attempts, pad: len(md.Headers["pad"]), lastErr: md.LastError}
}

// killWritten is the view of a message after a write of sequence number
// attempts in state s: LastError and the pad are functions of it.
func killWritten(id string, s metastorage.QueueState, attempts int) killView {
	return killView{exists: true, state: s, attempts: attempts, pad: killPadLen(attempts), lastErr: fmt.Sprintf("%s #%d", id, attempts)}
}

// killPadLen makes one write in eight a record of 4 to 16 KiB, which takes
// more than one page and more than one copy into the page cache.
func killPadLen(attempts int) int {
	h := uint64(attempts) * 0x9e3779b97f4a7c15
	if h>>61 != 0 {
		return 0
	}
	return 4096 + int((h>>20)%12288)
}

func killRecord(v killView) metastorage.MessageMetadata {
	md := metastorage.MessageMetadata{State: v.state, Attempts: v.attempts, MaxAttempts: 10, LastError: v.lastErr, Priority: v.attempts % 7}
	if v.pad > 0 {
		md.Headers = map[string]string{"pad": strings.Repeat("x", v.pad)}
	}
	return md
}

// killOp is one operation of a child's workload.
type killOp struct {
	kind     string // store, update, move, delete
	id       string
	state    metastorage.QueueState // the target state
	from     metastorage.QueueState // of a move
	attempts int                    // of a store or update
}

func (o killOp) String() string {
	switch o.kind {
	case "store", "update":
		return fmt.Sprintf("%s %s %s %d", o.kind, o.id, o.state, o.attempts)
	case "move":
		return fmt.Sprintf("move %s %s %s", o.id, o.from, o.state)
	}
	return "delete " + o.id
}

func parseKillOp(s string) (killOp, error) {
	f := strings.Fields(s)
	bad := fmt.Errorf("bad operation %q", s)
	if len(f) < 2 {
		return killOp{}, bad
	}
	o := killOp{kind: f[0], id: f[1]}
	var err error
	switch {
	case (o.kind == "store" || o.kind == "update") && len(f) == 4:
		if o.state, err = metastorage.ParseQueueState(f[2]); err != nil {
			return killOp{}, err
		}
		if o.attempts, err = strconv.Atoi(f[3]); err != nil {
			return killOp{}, err
		}
	case o.kind == "move" && len(f) == 4:
		if o.from, err = metastorage.ParseQueueState(f[2]); err != nil {
			return killOp{}, err
		}
		if o.state, err = metastorage.ParseQueueState(f[3]); err != nil {
			return killOp{}, err
		}
	case o.kind == "delete" && len(f) == 2:
	default:
		return killOp{}, bad
	}
	return o, nil
}

// apply returns what the message v is after o, or, when the contract
// makes o fail on v, v and the kind of error: "notfound" or "conflict".
func (o killOp) apply(v killView) (killView, string) {
	switch o.kind {
	case "store":
		return killWritten(o.id, o.state, o.attempts), ""
	case "update":
		if !v.exists {
			return v, "notfound"
		}
		return killWritten(o.id, o.state, o.attempts), ""
	case "move":
		if !v.exists || v.state != o.from {
			return v, "conflict"
		}
		v.state = o.state
		return v, ""
	default:
		if !v.exists {
			return v, "notfound"
		}
		return killView{}, ""
	}
}

func (o killOp) run(ctx context.Context, b *Backend) error {
	switch o.kind {
	case "store":
		return b.StoreMeta(ctx, o.id, killRecord(killWritten(o.id, o.state, o.attempts)))
	case "update":
		return b.UpdateMeta(ctx, o.id, killRecord(killWritten(o.id, o.state, o.attempts)))
	case "move":
		return b.MoveToState(ctx, o.id, o.from, o.state)
	default:
		return b.DeleteMeta(ctx, o.id)
	}
}

func killErrKind(err error) string {
	switch {
	case errors.Is(err, metastorage.ErrMessageNotFound):
		return "notfound"
	case errors.Is(err, metastorage.ErrStateConflict):
		return "conflict"
	}
	return "other"
}

func killID(role string, g, k int) string { return fmt.Sprintf("%s%d-m%d", role, g, k) }

// killPick chooses the next operation on message id, which is cur: mostly
// one that succeeds, sometimes one that the contract makes fail.
func killPick(rng *rand.Rand, id string, cur killView, next func() int) killOp {
	other := func(s metastorage.QueueState) metastorage.QueueState {
		return metastorage.QueueState((int(s) + 1 + rng.IntN(metastorage.NumStates-1)) % metastorage.NumStates)
	}
	anyState := func() metastorage.QueueState { return metastorage.QueueState(rng.IntN(metastorage.NumStates)) }
	r := rng.IntN(100)
	if !cur.exists {
		switch {
		case r < 4:
			return killOp{kind: "update", id: id, state: anyState(), attempts: next()}
		case r < 7:
			return killOp{kind: "delete", id: id}
		case r < 10:
			from := anyState()
			return killOp{kind: "move", id: id, from: from, state: other(from)}
		}
		return killOp{kind: "store", id: id, state: anyState(), attempts: next()}
	}
	switch {
	case r < 14:
		return killOp{kind: "store", id: id, state: cur.state, attempts: next()}
	case r < 28:
		return killOp{kind: "store", id: id, state: other(cur.state), attempts: next()}
	case r < 42:
		return killOp{kind: "update", id: id, state: cur.state, attempts: next()}
	case r < 56:
		return killOp{kind: "update", id: id, state: other(cur.state), attempts: next()}
	case r < 76:
		return killOp{kind: "move", id: id, from: cur.state, state: other(cur.state)}
	case r < 94:
		return killOp{kind: "delete", id: id}
	}
	from := other(cur.state)
	return killOp{kind: "move", id: id, from: from, state: other(from)}
}

// killOut writes whole lines to stdout, each with one unbuffered write, so
// a line the parent reads was written completely before the child died.
type killOut struct {
	mu  sync.Mutex
	buf []byte
}

func (o *killOut) line(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(append(o.buf[:0], s...), '\n')
	if _, err := os.Stdout.Write(o.buf); err != nil {
		os.Exit(3) // the parent is gone
	}
}

// killLog is a slog.Handler that passes each recovery finding ("F kind
// path") and each error ("L message") logged by a backend to emit.
type killLog struct{ emit func(string) }

func (h killLog) Enabled(context.Context, slog.Level) bool { return true }
func (h killLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h killLog) WithGroup(string) slog.Handler            { return h }

func (h killLog) Handle(_ context.Context, r slog.Record) error {
	var kind, path string
	all := r.Message
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "kind":
			kind = a.Value.String()
		case "path":
			path = a.Value.String()
		}
		all += " " + a.String()
		return true
	})
	switch {
	case r.Message == "recovery":
		h.emit("F " + kind + " " + strconv.Quote(path))
	case r.Level >= slog.LevelError:
		h.emit("L " + strconv.Quote(all))
	}
	return nil
}

// killChildMain is the body of a child process: it opens the backend,
// reports what its messages are ("S id view"), says "R", and runs its
// workload until its stdin closes; then it closes the backend, says "C" and
// exits.
func killChildMain() {
	role := os.Getenv(killChildEnv)
	mode, _ := strconv.Atoi(os.Getenv(killModeEnv))
	gen, _ := strconv.Atoi(os.Getenv(killGenEnv))
	seed, _ := strconv.ParseUint(os.Getenv(killRandEnv), 10, 64)
	out := &killOut{}
	die := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "kill child %s: "+format+"\n", append([]any{role}, args...)...)
		os.Exit(2)
	}
	f := NewFactory(os.Getenv(killDirEnv)).
		WithDisableSync(Mode(mode) == Performance).
		WithBatchSync(Mode(mode) == Hybrid).
		WithLogger(slog.New(killLog{out.line}))
	// Checkpoint the journal often, so that kills land in checkpoints too.
	f.cfg.journalLimit = 16 << 10
	f.cfg.trackSync = os.Getenv(killTrackEnv) == "true"
	b, err := f.Open()
	if err != nil {
		die("%v", err)
	}
	if (b.tracker != nil) != f.cfg.trackSync {
		die("syncs through a tracker: %v, want %v", b.tracker != nil, f.cfg.trackSync)
	}
	if os.Getenv(killRecEnv) == "1" {
		if err := b.RecoverFromCrash(); err != nil {
			die("%v", err)
		}
	}
	ctx := context.Background()
	views := make([]map[string]killView, killWorkers)
	for g := range killWorkers {
		views[g] = make(map[string]killView)
		for k := range killPerWorker {
			id := killID(role, g, k)
			var v killView
			md, err := b.GetMeta(ctx, id)
			switch {
			case err == nil:
				v = killViewOf(md)
			case !errors.Is(err, metastorage.ErrMessageNotFound):
				die("%v", err)
			}
			views[g][id] = v
			out.line("S " + id + " " + v.String())
		}
	}
	out.line("R")
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for g := range killWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			ids := slices.Sorted(func(yield func(string) bool) {
				for id := range views[g] {
					if !yield(id) {
						return
					}
				}
			})
			seq := make(map[string]int)
			unexpected := 0
			for !stop.Load() {
				id := ids[rng.IntN(len(ids))]
				op := killPick(rng, id, views[g][id], func() int { seq[id]++; return gen*1_000_000 + seq[id] })
				out.line(fmt.Sprintf("B %d %s", g, op))
				err := op.run(ctx, b)
				if err == nil {
					out.line(fmt.Sprintf("A %d %s", g, op))
					views[g][id], _ = op.apply(views[g][id])
					continue
				}
				kind := killErrKind(err)
				msg := err.Error()
				if len(msg) > 1000 {
					msg = msg[:1000]
				}
				out.line(fmt.Sprintf("E %d %s %q", g, kind, msg))
				if kind == "other" {
					failed.Store(true)
					if unexpected++; unexpected >= 20 {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		die("close: %v", err)
	}
	out.line("C")
	if failed.Load() {
		os.Exit(1)
	}
	os.Exit(0)
}

// killTest is the parent's side of a kill test: the directory and what it
// must hold.
type killTest struct {
	t     *testing.T
	dir   string
	track bool   // the children sync through a vfs.Tracker
	seed  uint64 // of cycle 0; cycle n's is seed+n
	model map[string]killView
	// unresolved are the operations in flight when their process died,
	// by message, with the message as it was before.
	unresolved map[string]killInFlight
	gen        int
	// statistics for the summary
	acks, rolledBack, completed int
	found                       map[string]int // recovery findings by kind
}

type killInFlight struct {
	before killView
	op     killOp
	by     string
}

func newKillTest(t *testing.T) *killTest {
	return &killTest{t: t, dir: t.TempDir(), seed: killSeed(), model: make(map[string]killView), unresolved: make(map[string]killInFlight), found: make(map[string]int)}
}

func (k *killTest) summary(cycles int) {
	k.t.Logf("%d cycles: %d operations acknowledged; of those in flight at a kill, %d took no effect and %d took full effect; recovery findings %v",
		cycles, k.acks, k.rolledBack, k.completed, k.found)
}

// killCycle collects the violations found in one cycle.
type killCycle struct {
	*killTest
	name  string
	errs  []string
	procs []*killProc
}

// keptByOther reports whether a recovery finding of kind by p may be the
// doing of another process alive on the directory in Performance mode: it
// keeps the records its changes displace until its next flush, and p's
// recovery may find them, as displaced records or, once their message is
// deleted, as orphaned temp files.
func (c *killCycle) keptByOther(p *killProc, kind FindingKind) bool {
	if kind != Displaced && kind != OrphanTemp {
		return false
	}
	return slices.ContainsFunc(c.procs, func(q *killProc) bool { return q != p && q.mode == Performance && !q.waited })
}

func (k *killTest) cycle(name string) *killCycle { return &killCycle{killTest: k, name: name} }

func (c *killCycle) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// finish reports the cycle's violations and whether it had none. It ends
// the processes still running.
func (c *killCycle) finish() bool {
	for _, p := range c.procs {
		p.cleanup()
	}
	for _, e := range c.errs {
		c.t.Errorf("%s: %s", c.name, e)
	}
	if len(c.errs) > 0 {
		c.t.Logf("to run the same kill points again: %s=%d (the interleaving of the goroutines differs from run to run)", killSeedEnv, c.seed)
	}
	return len(c.errs) == 0 && !c.t.Failed()
}

// killProc is a running child process.
type killProc struct {
	label   string
	mode    Mode
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   <-chan string
	stderr  bytes.Buffer
	pending map[int]killOp // by goroutine
	strict  bool           // whether no recovery finding is allowed
	acks    int
	repairs int // findings its recovery logged
	ready   bool
	killed  bool
	closed  bool // said "C"
	waited  bool
}

// start starts a child process with role role in mode; recover makes it
// run RecoverFromCrash, and allows what that finds of a killed process.
func (c *killCycle) start(role string, mode Mode, seed uint64, recover bool) *killProc {
	c.gen++
	p := &killProc{label: fmt.Sprintf("child %s#%d (%s)", role, c.gen, mode), mode: mode, pending: make(map[int]killOp), strict: !recover}
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+c.t.Name()+"$", "-test.count=1")
	rec := "0"
	if recover {
		rec = "1"
	}
	p.cmd.Env = append(os.Environ(),
		killChildEnv+"="+role,
		killDirEnv+"="+c.dir,
		killModeEnv+"="+strconv.Itoa(int(mode)),
		killGenEnv+"="+strconv.Itoa(c.gen),
		killRandEnv+"="+strconv.FormatUint(seed, 10),
		killRecEnv+"="+rec,
		killTrackEnv+"="+strconv.FormatBool(c.track))
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		c.errorf("%s: %v", p.label, err)
		return nil
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		c.errorf("%s: %v", p.label, err)
		return nil
	}
	if err := p.cmd.Start(); err != nil {
		c.errorf("%s: %v", p.label, err)
		return nil
	}
	c.procs = append(c.procs, p)
	lines := make(chan string, 64)
	p.lines = lines
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if l, ok := strings.CutSuffix(line, "\n"); ok {
				lines <- l
			} else if line != "" {
				lines <- "T " + strconv.Quote(line)
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *killProc) kill() {
	p.killed = true
	p.cmd.Process.Kill()
}

// cleanup kills and reaps a process that a failed cycle left running.
func (p *killProc) cleanup() {
	if p.waited {
		return
	}
	p.cmd.Process.Kill()
	for range p.lines {
	}
	p.cmd.Wait()
	p.waited = true
}

// handle takes one line of process p.
func (c *killCycle) handle(p *killProc, line string) {
	kind, rest, _ := strings.Cut(line, " ")
	switch kind {
	case "S":
		id, vs, _ := strings.Cut(rest, " ")
		v, err := parseKillView(vs)
		if err != nil {
			c.errorf("%s: %q: %v", p.label, line, err)
			return
		}
		c.resolve(p.label+" at open", id, v)
	case "R":
		p.ready = true
	case "B", "A":
		gs, ops, _ := strings.Cut(rest, " ")
		g, err := strconv.Atoi(gs)
		if err != nil {
			c.errorf("%s: %q: %v", p.label, line, err)
			return
		}
		op, err := parseKillOp(ops)
		if err != nil {
			c.errorf("%s: %q: %v", p.label, line, err)
			return
		}
		if kind == "B" {
			if prev, ok := p.pending[g]; ok {
				c.errorf("%s: goroutine %d starts %s with %s unfinished", p.label, g, op, prev)
			}
			if u, ok := c.unresolved[op.id]; ok {
				c.errorf("%s: %s starts while %s of %s is unresolved", p.label, op, u.op, u.by)
			}
			p.pending[g] = op
			return
		}
		if p.pending[g] != op {
			c.errorf("%s: goroutine %d acknowledges %s, started %s", p.label, g, op, p.pending[g])
		}
		delete(p.pending, g)
		p.acks++
		c.acks++
		after, fail := op.apply(c.model[op.id])
		if fail != "" {
			c.errorf("%s: %s returned nil, want %s: the message was %s", p.label, op, fail, c.model[op.id])
			return
		}
		c.model[op.id] = after
	case "E":
		f := strings.SplitN(rest, " ", 3)
		g, err := strconv.Atoi(f[0])
		if err != nil || len(f) != 3 {
			c.errorf("%s: bad line %q", p.label, line)
			return
		}
		op, ok := p.pending[g]
		if !ok {
			c.errorf("%s: goroutine %d reports an error of no operation: %q", p.label, g, line)
			return
		}
		delete(p.pending, g)
		msg, _ := strconv.Unquote(f[2])
		if _, want := op.apply(c.model[op.id]); f[1] != want {
			if want == "" {
				want = "nil"
			}
			c.errorf("%s: %s failed (%s), want %s: the message was %s", p.label, op, msg, want, c.model[op.id])
		}
	case "F":
		fk, path, _ := strings.Cut(rest, " ")
		c.found[fk]++
		p.repairs++
		if (p.strict && !c.keptByOther(p, FindingKind(fk))) || !killAllowedFinding(fk) {
			c.errorf("%s: its recovery found %s %s", p.label, fk, path)
		}
	case "L":
		c.errorf("%s: logged an error: %s", p.label, rest)
	case "C":
		p.closed = true
	default:
		c.errorf("%s: unexpected line %q", p.label, line)
	}
}

// killAllowedFinding reports whether recovery may find kind after a
// process crash: an orphaned temp file, a complete one whose rename the
// crash cut off, a State field left behind by the first of the two
// renames of a change of state, and an older record that a Performance-mode
// change displaced and the killed process had not removed yet.
func killAllowedFinding(kind string) bool {
	switch FindingKind(kind) {
	case OrphanTemp, InterruptedPut, StateMismatch, Displaced:
		return true
	}
	return false
}

// resolve checks what message id is found to be: what the model says, or,
// if an operation on it was in flight at a crash, either the message before
// it or the message after it.
func (c *killCycle) resolve(where, id string, v killView) {
	if u, ok := c.unresolved[id]; ok {
		delete(c.unresolved, id)
		after, fail := u.op.apply(u.before)
		switch {
		case v == u.before:
			c.rolledBack++
		case fail == "" && v == after:
			c.completed++
		case fail != "":
			c.errorf("%s: %s: %s of %s was in flight and must fail: found %s, want %s", where, id, u.op, u.by, v, u.before)
		default:
			c.errorf("%s: %s: %s of %s was in flight: found %s, want %s (not done) or %s (done)", where, id, u.op, u.by, v, u.before, after)
		}
	} else if m := c.model[id]; v != m {
		c.errorf("%s: %s: found %s, want %s", where, id, v, m)
	}
	c.model[id] = v
}

// ended reaps process p after its stdout closed: a killed one leaves its
// operations in flight unresolved; any other must have stopped cleanly.
func (c *killCycle) ended(p *killProc) {
	err := p.cmd.Wait()
	p.waited = true
	if bytes.Contains(p.stderr.Bytes(), []byte("DATA RACE")) {
		c.errorf("%s: race detected:\n%s", p.label, p.stderr.String())
	}
	if !p.killed {
		if err != nil || !p.closed {
			c.errorf("%s: did not stop cleanly: %v\n%s", p.label, err, p.stderr.String())
		}
		if len(p.pending) > 0 {
			c.errorf("%s: stopped with operations unfinished: %v", p.label, p.pending)
		}
	}
	for _, op := range p.pending {
		c.unresolved[op.id] = killInFlight{before: c.model[op.id], op: op, by: p.label}
	}
	clear(p.pending)
}

// verify opens the directory as after a crash, recovers, and checks every
// message against the model.
func (c *killCycle) verify() {
	var mu sync.Mutex
	var logged []string
	b, err := NewFactory(c.dir).WithLogger(slog.New(killLog{func(l string) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, l)
	}})).Open()
	if err != nil {
		c.errorf("reopen: %v", err)
		return
	}
	defer b.Close()
	if err := b.RecoverFromCrash(); err != nil {
		c.errorf("RecoverFromCrash: %v", err)
	}
	ctx := context.Background()
	// Invariants 1 and 4, and that each message decodes.
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range c.model {
			if !yield(id) {
				return
			}
		}
		for id := range c.unresolved {
			if _, ok := c.model[id]; !ok && !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		var v killView
		md, err := b.GetMeta(ctx, id)
		switch {
		case err == nil:
			v = killViewOf(md)
		case !errors.Is(err, metastorage.ErrMessageNotFound):
			c.errorf("after recovery: %s: %v", id, err)
			continue
		}
		c.resolve("after recovery", id, v)
	}
	// Nothing left to repair.
	findings, err := b.Check(ctx, false)
	if err != nil {
		c.errorf("Check: %v", err)
	}
	for _, f := range findings {
		c.errorf("Check after recovery found %s %s: %s", f.Kind, f.Path, f.Detail)
	}
	if err := b.WaitCounts(ctx); err != nil {
		c.errorf("WaitCounts: %v", err)
	}
	var want [metastorage.NumStates]int64
	for _, v := range c.model {
		if v.exists {
			want[v.state]++
		}
	}
	for _, s := range metastorage.States() {
		if n := b.GetStateCount(s); n != want[s] {
			c.errorf("after recovery: GetStateCount(%s) = %d, want %d", s, n, want[s])
		}
	}
	if err := b.Close(); err != nil {
		c.errorf("Close: %v", err)
	}
	mu.Lock()
	for _, l := range logged {
		kind, rest, _ := strings.Cut(l, " ")
		if kind == "F" {
			fk, path, _ := strings.Cut(rest, " ")
			c.found[fk]++
			if !killAllowedFinding(fk) {
				c.errorf("recovery found %s %s", fk, path)
			}
		} else {
			c.errorf("reopened backend logged an error: %s", rest)
		}
	}
	mu.Unlock()
	c.checkListing()
}

// checkListing lists the state directories directly: each message in
// exactly the one its model says, every name a message's, no temp file.
func (c *killCycle) checkListing() {
	where := make(map[string][]metastorage.QueueState)
	for _, s := range metastorage.States() {
		ents, err := os.ReadDir(filepath.Join(c.dir, s.String()))
		if err != nil {
			c.errorf("list %s: %v", s, err)
			continue
		}
		for _, e := range ents {
			n := e.Name()
			id, ok := name.Decode(n)
			switch {
			case strings.Contains(n, ".tmp."):
				c.errorf("after recovery: temp file %s/%s left", s, n)
			case !ok || !strings.HasSuffix(n, ".json"):
				c.errorf("after recovery: %s/%s is not a message file", s, n)
			case !e.Type().IsRegular():
				c.errorf("after recovery: %s/%s is not a regular file (%s)", s, n, e.Type())
			default:
				if _, known := c.model[id]; !known {
					c.errorf("after recovery: %s/%s is no message of the test", s, n)
				}
				where[id] = append(where[id], s)
			}
		}
	}
	for id, v := range c.model {
		var want []metastorage.QueueState
		if v.exists {
			want = []metastorage.QueueState{v.state}
		}
		if !slices.Equal(where[id], want) {
			c.errorf("after recovery: %s lies in %v, want %v", id, where[id], want)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(c.dir, "corrupt")); err == nil {
		for _, e := range ents {
			if sub, _ := os.ReadDir(filepath.Join(c.dir, "corrupt", e.Name())); len(sub) > 0 || !e.IsDir() {
				c.errorf("after recovery: corrupt/%s holds files", e.Name())
			}
		}
	}
}
