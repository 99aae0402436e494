package filesystem

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

const (
	countChildEnv = "SPOOLMETA_TEST_COUNT_CHILD" // the child's mode
	countDirEnv   = "SPOOLMETA_TEST_COUNT_DIR"
)

// filesIn returns the number of message files in each state directory of
// dir.
func filesIn(t *testing.T, dir string) [metastorage.NumStates]int64 {
	t.Helper()
	var n [metastorage.NumStates]int64
	for _, s := range metastorage.States() {
		ents, err := os.ReadDir(filepath.Join(dir, s.String()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if _, ok := name.Decode(e.Name()); ok && e.Type().IsRegular() {
				n[s]++
			}
		}
	}
	return n
}

// openQuiet opens dir without a recovery scan, which could change files
// while the test counts them.
func openQuiet(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := open(config{dir: dir, fileMode: 0o644, dirMode: 0o755, noRecovery: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// countsOf returns b's GetStateCount of each state.
func countsOf(b *Backend) [metastorage.NumStates]int64 {
	var n [metastorage.NumStates]int64
	for _, s := range metastorage.States() {
		n[s] = b.GetStateCount(s)
	}
	return n
}

func formatCounts(n [metastorage.NumStates]int64) string {
	f := make([]string, len(n))
	for i, k := range n {
		f[i] = strconv.FormatInt(k, 10)
	}
	return strings.Join(f, " ")
}

// countChild runs one process of TestStateCountsAcrossProcesses: it opens
// the directory, prints its counts at once, and then runs the commands it
// reads, one a line, printing "ok" or the error, or its counts.
func countChild() {
	mode, _ := strconv.Atoi(os.Getenv(countChildEnv))
	b, err := NewBackendWithOptions(os.Getenv(countDirEnv), Mode(mode) == Performance, Mode(mode) == Hybrid)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(formatCounts(countsOf(b)))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "counts" {
			fmt.Println(formatCounts(countsOf(b)))
			continue
		}
		if err := runCountOp(b, strings.Fields(in.Text())); err != nil {
			fmt.Println(strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Println("ok")
	}
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runCountOp runs op on b: "store <state> <id>...", "move <from> <to>
// <id>..." or "delete <id>...".
func runCountOp(b *Backend, op []string) error {
	ctx := context.Background()
	switch op[0] {
	case "store":
		s, err := metastorage.ParseQueueState(op[1])
		if err != nil {
			return err
		}
		for _, id := range op[2:] {
			if err := b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: s}); err != nil {
				return err
			}
		}
	case "move":
		from, err := metastorage.ParseQueueState(op[1])
		if err != nil {
			return err
		}
		to, err := metastorage.ParseQueueState(op[2])
		if err != nil {
			return err
		}
		for _, id := range op[3:] {
			if err := b.MoveToState(ctx, id, from, to); err != nil {
				return err
			}
		}
	case "delete":
		for _, id := range op[1:] {
			if err := b.DeleteMeta(ctx, id); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown op %q", op[0])
	}
	return nil
}

// ids returns "<prefix><i>" for i in [from, to).
func ids(prefix string, from, to int) string {
	var f []string
	for i := from; i < to; i++ {
		f = append(f, prefix+strconv.Itoa(i))
	}
	return strings.Join(f, " ")
}

// TestStateCountsAcrossProcesses runs two processes (this test binary,
// re-run) on one directory, and a Backend in this process, as the
// operator's tool would open one. Each in turn changes messages; after
// each step, every one's GetStateCount of every state equals the number
// of files in the state's directory, and is never negative. The first
// process opens a directory of 300 messages alone and asks for its counts
// at once: they are the full counts, not those of a count under way.
func TestStateCountsAcrossProcesses(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(countChildEnv) != "" {
		countChild()
		return
	}
	t.Parallel()
	dir := t.TempDir()
	pre, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := runCountOp(pre, strings.Fields("store incoming "+ids("m", 0, 300))); err != nil {
		t.Fatal(err)
	}
	if err := pre.Close(); err != nil {
		t.Fatal(err)
	}

	type proc struct {
		name string
		cmd  *exec.Cmd
		in   io.WriteCloser
		out  *bufio.Reader
	}
	var procs []*proc
	for i, mode := range []Mode{Standard, Hybrid} {
		cmd, in, out := startChild(t, "TestStateCountsAcrossProcesses", countChildEnv+"="+strconv.Itoa(int(mode)), countDirEnv+"="+dir)
		p := &proc{fmt.Sprintf("process %d (%s)", i, mode), cmd, in, out}
		procs = append(procs, p)
		t.Cleanup(func() { in.Close(); cmd.Wait() })
		// Each prints its counts right after open.
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if got, want := strings.TrimSpace(line), formatCounts(filesIn(t, dir)); got != want {
			t.Errorf("%s: counts right after open: %s, want %s", p.name, got, want)
		}
	}
	tool := openTest(t, dir)

	counts := func(p *proc) string {
		if p == nil {
			return formatCounts(countsOf(tool))
		}
		fmt.Fprintln(p.in, "counts")
		line, err := p.out.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return strings.TrimSpace(line)
	}
	steps := []struct {
		by int // index in procs, or -1 for the tool
		op string
	}{
		{0, "store hold " + ids("h", 0, 20)},
		{1, "move hold active " + ids("h", 0, 20)},
		{-1, "move incoming deferred " + ids("m", 0, 50)},
		{0, "delete " + ids("m", 0, 10)},
		{1, "store incoming " + ids("n", 0, 30)},
		{-1, "delete " + ids("h", 0, 5)},
		{0, "move incoming bounce " + ids("n", 0, 10)},
		{1, "move deferred archived " + ids("m", 10, 20)},
		{-1, "store hold " + ids("t", 0, 10)},
		{1, "move hold incoming " + ids("t", 0, 10)},
		{0, "delete " + ids("t", 0, 10)},
	}
	for i, st := range steps {
		if st.by < 0 {
			if err := runCountOp(tool, strings.Fields(st.op)); err != nil {
				t.Fatalf("step %d, the tool: %v", i, err)
			}
		} else {
			p := procs[st.by]
			fmt.Fprintln(p.in, st.op)
			if line, err := p.out.ReadString('\n'); err != nil || line != "ok\n" {
				t.Fatalf("step %d, %s: %q, %v", i, p.name, line, err)
			}
		}
		want := formatCounts(filesIn(t, dir))
		for _, p := range append([]*proc{nil}, procs...) {
			who := "the tool"
			if p != nil {
				who = p.name
			}
			got := counts(p)
			if got != want {
				t.Errorf("after step %d (%s): %s counts %s, want %s", i, st.op[:strings.IndexByte(st.op, ' ')], who, got, want)
			}
			if strings.Contains(got, "-") {
				t.Errorf("after step %d: %s counts %s: negative", i, who, got)
			}
		}
	}
	for _, p := range procs {
		p.in.Close()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	}
}

// TestStateCountsRightAfterOpen shows that GetStateCount answers the full
// count right after open, without WaitCounts, both for the Backend that
// counts the directory and for one that opens while it does.
func TestStateCountsRightAfterOpen(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	dir := t.TempDir()
	pre, err := NewBackendWithOptions(dir, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := runCountOp(pre, strings.Fields("store deferred "+ids("m", 0, 2000))); err != nil {
		t.Fatal(err)
	}
	if err := pre.Close(); err != nil {
		t.Fatal(err)
	}
	first := openTest(t, dir)
	second := openTest(t, dir)
	for i, b := range []*Backend{first, second} {
		if n := b.GetStateCount(metastorage.StateDeferred); n != 2000 {
			t.Errorf("Backend %d: GetStateCount(deferred) right after open = %d, want 2000", i, n)
		}
	}
}

// TestStateCountsHealDeadWriter shows that a writer that died between its
// rename and counting it, leaving the change counters odd, leaves counts
// that are exact again: for the next Backend to open, for GetStateCount of
// a Backend that stayed open, and after the next change of that stripe.
func TestStateCountsHealDeadWriter(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	for _, heal := range []string{"next open", "GetStateCount", "next change"} {
		t.Run(heal, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := openQuiet(t, dir) // no recovery scan: it would hold the stripe GetStateCount heals
			ctx := context.Background()
			if err := b.WaitCounts(ctx); err != nil { // no healing while the count at open runs
				t.Fatal(err)
			}
			if err := runCountOp(b, strings.Fields("store incoming "+ids("m", 0, 10))); err != nil {
				t.Fatal(err)
			}
			file := fileOf(t, "m3")
			stripe := stripeOf(file)
			// The dead writer's move: the counters made odd, the rename
			// done, the counts not changed.
			b.changes.Begin(metastorage.StateIncoming, stripe)
			b.changes.Begin(metastorage.StateActive, stripe)
			if err := os.Rename(filepath.Join(dir, "incoming", file), filepath.Join(dir, "active", file)); err != nil {
				t.Fatal(err)
			}
			want := filesIn(t, dir)
			var got [metastorage.NumStates]int64
			switch heal {
			case "next open":
				got = countsOf(openQuiet(t, dir))
			case "GetStateCount":
				got = countsOf(b)
			case "next change":
				other := "x"
				for i := 0; stripeOf(fileOf(t, other)) != stripe; i++ {
					other = "x" + strconv.Itoa(i)
				}
				if err := b.StoreMeta(ctx, other, metastorage.MessageMetadata{State: metastorage.StateHold}); err != nil {
					t.Fatal(err)
				}
				want = filesIn(t, dir)
				for _, s := range metastorage.States() {
					got[s] = b.counts.get(s) // no healing by GetStateCount
				}
			}
			if got != want {
				t.Errorf("counts %v, want %v", got, want)
			}
			for _, s := range []metastorage.QueueState{metastorage.StateIncoming, metastorage.StateActive} {
				if _, even := b.changes.snapshot(s, stripe); !even {
					t.Errorf("the change counter of %s, stripe %d, is still odd", s, stripe)
				}
			}
		})
	}
}

const countKillEnv = "SPOOLMETA_TEST_COUNT_KILL"

// countKillChild changes its messages at random, printing a line after
// each change, until it is killed.
func countKillChild() {
	b, err := NewBackend(os.Getenv(countDirEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	seed, _ := strconv.ParseUint(os.Getenv(countKillEnv), 10, 64)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	where := make(map[string]metastorage.QueueState)
	for {
		id := "k" + strconv.Itoa(rng.IntN(40))
		s, ok := where[id]
		to := metastorage.QueueState(rng.IntN(metastorage.NumStates))
		switch {
		case !ok:
			err = b.StoreMeta(ctx, id, metastorage.MessageMetadata{State: to})
			where[id] = to
		case rng.IntN(4) == 0:
			err = b.DeleteMeta(ctx, id)
			delete(where, id)
		default:
			err = b.MoveToState(ctx, id, s, to)
			where[id] = to
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("A")
	}
}

// TestStateCountsAfterKill kills a writing process with SIGKILL at a
// random point, while a Backend of this process stays open, so that the
// counts are not established again: GetStateCount of that Backend, and of
// the next one to open, equals the files in each state.
func TestStateCountsAfterKill(t *testing.T) {
	spooltest.NeedDisk(t)
	if os.Getenv(countKillEnv) != "" {
		countKillChild()
		return
	}
	t.Parallel()
	dir := t.TempDir()
	stay := openQuiet(t, dir) // no recovery scan that could change files while the test counts them
	seed := killSeed()
	rng := rand.New(rand.NewPCG(seed, 0))
	for cycle := range 5 {
		cmd, in, out := startChild(t, "TestStateCountsAfterKill", countKillEnv+"="+strconv.FormatUint(rng.Uint64(), 10), countDirEnv+"="+dir)
		defer in.Close()
		acks := 1 + rng.IntN(200)
		for range acks {
			if line, err := out.ReadString('\n'); err != nil || line != "A\n" {
				t.Fatalf("cycle %d (seed %d): the child said %q, %v", cycle, seed, line, err)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		want := filesIn(t, dir)
		if got := countsOf(stay); got != want {
			t.Errorf("cycle %d (seed %d): the Backend that stayed open counts %v, want %v", cycle, seed, got, want)
		}
		next := openQuiet(t, dir)
		if got := countsOf(next); got != want {
			t.Errorf("cycle %d (seed %d): the next Backend counts %v, want %v", cycle, seed, got, want)
		}
		if err := next.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStateCountsStaleFile shows that the first Backend to open a
// directory counts it, whatever the counters file holds: counts left from
// before a reboot, or files changed by hand while no Backend ran.
func TestStateCountsStaleFile(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"stale counts", func(t *testing.T, dir string) {
			path := filepath.Join(dir, ".locks", changesName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			binary.NativeEndian.PutUint64(data[counters.CountsKnownAt:], 1)
			for i := counters.CountsAt; i < len(data); i += 8 {
				binary.NativeEndian.PutUint64(data[i:], 1000)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"files changed by hand", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "incoming", fileOf(t, "m1")), filepath.Join(dir, "hold", fileOf(t, "m1"))); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "incoming", fileOf(t, "m2"))); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := openQuiet(t, dir)
			if err := runCountOp(b, strings.Fields("store incoming "+ids("m", 0, 5))); err != nil {
				t.Fatal(err)
			}
			// Published, so that the file says the counts are known.
			if err := b.WaitCounts(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			tc.change(t, dir)
			if got, want := countsOf(openQuiet(t, dir)), filesIn(t, dir); got != want {
				t.Errorf("counts %v, want %v", got, want)
			}
		})
	}
}

// TestStateCountsHealRetried shows that a stripe whose recount failed is
// left for the next writer to heal: the writer that could not recount
// fails rather than make the dead writer's odd counter even.
func TestStateCountsHealRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := crashLayout(t)
	incoming := filepath.Join(crashDir, "incoming")
	sw := &faultSwitch{inj: vfs.And(vfs.OnOp(vfs.OpOpenDir), vfs.PathMatch(func(p string) bool { return p == incoming }))}
	b, err := open(quietConfig(vfs.Inject(mem, sw), Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	if err := runCountOp(b, strings.Fields("store incoming "+ids("m", 0, 10))); err != nil {
		t.Fatal(err)
	}
	file := fileOf(t, "m3")
	stripe := stripeOf(file)
	other := "x"
	for i := 0; stripeOf(fileOf(t, other)) != stripe; i++ {
		other = "x" + strconv.Itoa(i)
	}
	// A writer died removing m3: the counter odd, the file gone, the
	// count not changed.
	b.changes.Begin(metastorage.StateIncoming, stripe)
	if err := mem.Remove(filepath.Join(incoming, file)); err != nil {
		t.Fatal(err)
	}
	sw.on.Store(true)
	err = b.StoreMeta(ctx, other, metastorage.MessageMetadata{State: metastorage.StateIncoming})
	sw.on.Store(false)
	if err == nil {
		t.Error("a store whose stripe could not be recounted succeeded")
	}
	if err := b.StoreMeta(ctx, other, metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
		t.Fatal(err)
	}
	if got := b.GetStateCount(metastorage.StateIncoming); got != 10 {
		t.Errorf("incoming counted %d, want 10: nine of the ten stored and %s", got, other)
	}
}
