package filesystem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The exhaustive power-loss test: each short script runs once without a
// crash to count its mutating file-system calls, then once with a crash at
// each of them. The crash image (only what was synced) is opened again,
// recovered, and checked against the calls acknowledged before the crash.

// crashRec is what the tests know of a message: the fields they set, and
// where it is. The zero crashRec is a message that does not exist.
type crashRec struct {
	present   bool
	state     metastorage.QueueState
	attempts  int
	lastError string
	priority  int
}

func (r crashRec) String() string {
	if !r.present {
		return "absent"
	}
	return fmt.Sprintf("{%s attempts=%d lastError=%q priority=%d}", r.state, r.attempts, r.lastError, r.priority)
}

func recOf(md metastorage.MessageMetadata, s metastorage.QueueState) crashRec {
	return crashRec{present: true, state: s, attempts: md.Attempts, lastError: md.LastError, priority: md.Priority}
}

// crashStep is one call of a script.
type crashStep struct {
	op       string // store, update, move, delete
	id       string
	rec      crashRec // the fields of a store or update
	from, to metastorage.QueueState
}

func (s crashStep) String() string {
	switch s.op {
	case "move":
		return fmt.Sprintf("move(%s, %s->%s)", s.id, s.from, s.to)
	case "delete":
		return fmt.Sprintf("delete(%s)", s.id)
	}
	return fmt.Sprintf("%s(%s, %v)", s.op, s.id, s.rec)
}

func cStore(id string, s metastorage.QueueState, attempts int, lastError string) crashStep {
	return crashStep{op: "store", id: id, rec: crashRec{present: true, state: s, attempts: attempts, lastError: lastError, priority: attempts % 3}}
}

func cUpdate(id string, s metastorage.QueueState, attempts int, lastError string) crashStep {
	return crashStep{op: "update", id: id, rec: crashRec{present: true, state: s, attempts: attempts, lastError: lastError, priority: attempts % 3}}
}

func cMove(id string, from, to metastorage.QueueState) crashStep {
	return crashStep{op: "move", id: id, from: from, to: to}
}

func cDel(id string) crashStep { return crashStep{op: "delete", id: id} }

// apply returns the message as the step leaves it, and false if the call
// must fail on a message in state cur (not found, or a state conflict).
func (s crashStep) apply(cur crashRec) (crashRec, bool) {
	switch s.op {
	case "store":
		return s.rec, true
	case "update":
		return s.rec, cur.present
	case "move":
		if !cur.present || cur.state != s.from {
			return cur, false
		}
		cur.state = s.to
		return cur, true
	case "delete":
		return crashRec{}, cur.present
	}
	panic("unknown op " + s.op)
}

// call makes the step's call on b.
func (s crashStep) call(ctx context.Context, b *Backend) error {
	switch s.op {
	case "store", "update":
		md := metastorage.MessageMetadata{State: s.rec.state, Attempts: s.rec.attempts, LastError: s.rec.lastError, Priority: s.rec.priority, MaxAttempts: 5, Size: 1234}
		if s.op == "store" {
			return b.StoreMeta(ctx, s.id, md)
		}
		return b.UpdateMeta(ctx, s.id, md)
	case "move":
		return b.MoveToState(ctx, s.id, s.from, s.to)
	case "delete":
		return b.DeleteMeta(ctx, s.id)
	}
	panic("unknown op " + s.op)
}

// crashScript is a workload: each track runs in its own goroutine, its
// steps in order.
type crashScript struct {
	name   string
	tracks [][]crashStep
}

func (sc crashScript) String() string {
	var parts []string
	for _, tr := range sc.tracks {
		var steps []string
		for _, s := range tr {
			steps = append(steps, s.String())
		}
		parts = append(parts, "["+strings.Join(steps, "; ")+"]")
	}
	return sc.name + " " + strings.Join(parts, " || ")
}

const (
	stIncoming = metastorage.StateIncoming
	stActive   = metastorage.StateActive
	stDeferred = metastorage.StateDeferred
	stHold     = metastorage.StateHold
	stBounce   = metastorage.StateBounce
	stArchived = metastorage.StateArchived
)

var crashScripts = []crashScript{
	{name: "store-new", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cStore("b", stDeferred, 1, "first"),
	}}},
	{name: "store-replace-same-state", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cStore("a", stIncoming, 1, "replaced"),
		cStore("a", stIncoming, 2, "again"),
	}}},
	{name: "store-relocate", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cStore("a", stDeferred, 1, "relocated"),
		cStore("a", stHold, 2, "relocated again"),
	}}},
	{name: "update", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cUpdate("a", stIncoming, 1, "same state"),
		cUpdate("a", stDeferred, 2, "new state"),
	}}},
	{name: "move", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cMove("a", stIncoming, stActive),
		cMove("a", stActive, stDeferred),
	}}},
	{name: "delete", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cStore("b", stActive, 1, "kept"),
		cDel("a"),
		cDel("b"),
	}}},
	{name: "mixed", tracks: [][]crashStep{{
		cStore("a", stIncoming, 0, ""),
		cStore("b", stIncoming, 0, ""),
		cMove("a", stIncoming, stActive),
		cUpdate("b", stDeferred, 1, "timeout"),
		cStore("c", stHold, 0, "held"),
		cMove("a", stActive, stDeferred),
		cUpdate("a", stDeferred, 2, "refused"),
		cDel("b"),
		cMove("c", stHold, stIncoming),
		cStore("a", stArchived, 3, "done"),
		cDel("c"),
	}}},
	// Two goroutines move their own messages along, and both race to move
	// the shared one out of incoming; the state compare-and-swap lets one
	// win. Only what was acknowledged is checked.
	{name: "concurrent-moves", tracks: [][]crashStep{
		{
			cStore("x", stIncoming, 0, ""),
			cMove("x", stIncoming, stActive),
			cMove("shared", stIncoming, stActive),
			cMove("x", stActive, stDeferred),
		},
		{
			cStore("y", stIncoming, 0, ""),
			cMove("y", stIncoming, stHold),
			cMove("shared", stIncoming, stBounce),
			cMove("y", stHold, stArchived),
		},
	}},
	{name: "handoff", tracks: [][]crashStep{
		{cStore("a", stIncoming, 0, "")},
		{cStore("b", stDeferred, 0, "")},
	}},
}

// crashSetup runs before a concurrent script's tracks start.
var crashSetup = map[string][]crashStep{
	"concurrent-moves": {cStore("shared", stIncoming, 7, "contended")},
	// With two backends, the message changes hands at each step.
	"handoff": {
		cStore("h", stIncoming, 0, ""),
		cMove("h", stIncoming, stActive),
		cUpdate("h", stDeferred, 1, "timeout"),
		cMove("h", stDeferred, stActive),
		cDel("h"),
		cStore("h", stHold, 2, "again"),
	},
}

// crashModel records what the calls of a run acknowledged. It is safe for
// concurrent use.
type crashModel struct {
	mu       sync.Mutex
	acked    map[string]crashRec
	inflight map[string][]crashStep
	seen     map[string][]crashRec  // every version a message had or may have had
	steps    map[string][]crashStep // the acknowledged calls of each message
	errs     []string
}

func newCrashModel() *crashModel {
	return &crashModel{acked: map[string]crashRec{}, inflight: map[string][]crashStep{}, seen: map[string][]crashRec{}, steps: map[string][]crashStep{}}
}

func (m *crashModel) violation(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, fmt.Sprintf(format, args...))
}

// result records the outcome of a step; it reports whether the track goes
// on.
func (m *crashModel) result(s crashStep, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.acked[s.id]
	next, ok := s.apply(cur)
	switch {
	case err == nil && !ok:
		m.errs = append(m.errs, fmt.Sprintf("%v acknowledged, but the message was %v", s, cur))
		return false
	case err == nil:
		m.acked[s.id] = next
		m.seen[s.id] = append(m.seen[s.id], next)
		m.steps[s.id] = append(m.steps[s.id], s)
		return true
	case isCrashed(err):
		m.inflight[s.id] = append(m.inflight[s.id], s)
		return false
	case s.op == "move" && errors.Is(err, metastorage.ErrStateConflict):
		// Lost the race; the model may not yet hold the winner's ack.
		return true
	}
	m.errs = append(m.errs, fmt.Sprintf("%v failed with an error that is not the crash: %v", s, err))
	return false
}

// allowed returns the outcomes a message may have: as acknowledged, or
// with any of its in-flight calls taken in any order.
func (m *crashModel) allowed(id string) []crashRec {
	out := []crashRec{m.acked[id]}
	steps := m.inflight[id]
	for range steps {
		for _, s := range steps {
			for _, r := range out {
				if n, ok := s.apply(r); ok && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// everSeen returns every version the message had or may have had, and
// absent.
func (m *crashModel) everSeen(id string) []crashRec {
	out := append([]crashRec{{}}, m.seen[id]...)
	return append(out, m.allowed(id)...)
}

func (m *crashModel) ids() []string {
	var ids []string
	for id := range m.acked {
		ids = append(ids, id)
	}
	for id := range m.inflight {
		if _, ok := m.acked[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// runScript opens a backend on fsys in each of modes, in order, and runs
// the script: the setup, then track i on backend i modulo
// their number. Several backends stand for several processes sharing the
// directory. Setup step i runs on backend i modulo their number. The
// model records what was acknowledged.
func runScript(sc crashScript, fsys vfs.FS, mem *vfs.Mem, model *crashModel, modes ...Mode) (checked int) {
	return runScriptThen(sc, fsys, mem, model, nil, modes...)
}

// runScriptThen is runScript with then, if not nil, called with the step
// and its Backend after each call that returned nil; the step is
// acknowledged only if then returns nil too.
func runScriptThen(sc crashScript, fsys vfs.FS, mem *vfs.Mem, model *crashModel, then func(*Backend, crashStep) error, modes ...Mode) (checked int) {
	call := func(ctx context.Context, s crashStep, b *Backend) error {
		err := s.call(ctx, b)
		if err == nil && then != nil {
			err = then(b, s)
		}
		return err
	}
	cf := &checkFS{wrapFS: wrapFS{fsys}, mem: mem}
	var bs []*Backend
	defer func() {
		for _, b := range bs {
			b.Close()
		}
		errs, n := cf.result()
		for _, e := range errs {
			model.violation("%s", e)
		}
		checked = n
	}()
	for _, mode := range modes {
		b, err := open(crashConfig(cf, mode))
		if err != nil {
			if !isCrashed(err) {
				model.violation("open in %s mode failed: %v", mode, err)
			}
			return 0
		}
		bs = append(bs, b)
	}
	ctx := context.Background()
	for i, s := range crashSetup[sc.name] {
		if !model.result(s, call(ctx, s, bs[i%len(bs)])) {
			return 0
		}
	}
	var wg sync.WaitGroup
	for i, tr := range sc.tracks {
		b := bs[i%len(bs)]
		wg.Go(func() {
			for _, s := range tr {
				if !model.result(s, call(ctx, s, b)) {
					return
				}
			}
		})
	}
	wg.Wait()
	return 0 // set by the deferred function
}

// checkImage opens a backend on the crash image, recovers, and checks the
// invariants against the model. It returns the violations found.
func checkImage(img *vfs.Mem, mode Mode, model *crashModel) []string {
	allowed := model.allowed
	if mode == Performance {
		// A power loss may take back acknowledged calls, but never
		// leave a version the message did not have.
		allowed = model.everSeen
	}
	return checkImageAllowed(img, mode, model, allowed)
}

// checkImageAllowed is checkImage with the outcomes each message may have
// given by allowed.
func checkImageAllowed(img *vfs.Mem, mode Mode, model *crashModel, allowed func(id string) []crashRec) []string {
	v := slices.Clone(model.errs)
	cf := &checkFS{wrapFS: wrapFS{img}, mem: img}
	b, err := open(crashConfig(cf, mode))
	if err != nil {
		return append(v, fmt.Sprintf("reopening the crash image failed: %v", err))
	}
	if err := b.RecoverFromCrash(); err != nil {
		v = append(v, fmt.Sprintf("recovery failed: %v", err))
	}
	if err := b.Close(); err != nil {
		v = append(v, fmt.Sprintf("closing the recovered backend failed: %v", err))
	}
	errs, _ := cf.result()
	v = append(v, errs...)
	disk, err := readImage(img)
	if err != nil {
		return append(v, fmt.Sprintf("listing the recovered directory failed: %v", err))
	}
	v = append(v, disk.structural()...)
	for _, id := range disk.ids() {
		if !slices.Contains(model.ids(), id) {
			v = append(v, fmt.Sprintf("message %q found that no call stored", id))
		}
	}
	for _, id := range model.ids() {
		got := crashRec{}
		if es := disk.msgs[id]; len(es) == 1 && es[0].err == nil {
			got = recOf(es[0].md, es[0].state)
		} else if len(es) > 0 {
			continue // reported by structural
		}
		if ok := allowed(id); !slices.Contains(ok, got) {
			v = append(v, fmt.Sprintf("message %q is %v; acknowledged %v, in flight %v, so allowed %v", id, got, model.acked[id], model.inflight[id], ok))
		}
	}
	return v
}

func TestCrashPowerLossAtEveryCall(t *testing.T) {
	t.Parallel()
	for _, mode := range crashModes {
		for _, sc := range crashScripts {
			t.Run(mode.String()+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				crashAtEveryCall(t, crashLayout, sc, mode, mode)
			})
		}
	}
	// Standard mode on a file system that journals metadata in order
	// syncs only a move's new directory.
	for _, sc := range crashScripts {
		t.Run("standard/ordered/"+sc.name, func(t *testing.T) {
			t.Parallel()
			crashAtEveryCallOn(t, crashLayoutOrdered, asOrdered, sc, Standard, Standard)
		})
	}
}

// TestCrashPowerLossShared runs the concurrent scripts with each track on
// a backend of its own, standing for processes sharing the directory, in
// the durable modes mixed: a Standard-mode backend opened before or after
// a Hybrid-mode one must write through the journal the Hybrid one made,
// or the replay of an older record could undo its change.
//
// Without a journal, a Backend orders the fsyncs of its own calls only:
// another process's fsync of a message's old directory may come between
// its rename out of it and the fsync of the new one. There the message is
// safe only on a file system that commits a rename whole, as ext4 and XFS
// do (see the limitations in docs/DESIGN.md), and the Standard+Standard runs model
// one; every run with a journal keeps the strict model. The ordered runs
// model a file system that journals metadata in order, on which Standard
// mode syncs only a move's new directory.
func TestCrashPowerLossShared(t *testing.T) {
	t.Parallel()
	pairs := [][]Mode{{Hybrid, Hybrid}, {Standard, Hybrid}, {Hybrid, Standard}, {Standard, Standard}}
	for _, modes := range pairs {
		for _, sc := range crashScripts {
			if len(sc.tracks) < 2 {
				continue
			}
			t.Run(fmt.Sprintf("%s+%s/%s", modes[0], modes[1], sc.name), func(t *testing.T) {
				t.Parallel()
				// The image is opened in Standard mode, which replays a
				// journal it finds as Hybrid mode does.
				layout := crashLayout
				if !slices.Contains(modes, Hybrid) {
					layout = crashLayoutJournaledRenames
				}
				crashAtEveryCall(t, layout, sc, Standard, modes...)
			})
		}
	}
	for _, sc := range crashScripts {
		if len(sc.tracks) < 2 {
			continue
		}
		t.Run("standard+standard/ordered/"+sc.name, func(t *testing.T) {
			t.Parallel()
			crashAtEveryCallOn(t, crashLayoutOrdered, asOrdered, sc, Standard, Standard, Standard)
		})
	}
}

// crashAtEveryCall runs the script with backends in modes once without a
// crash, to count the crash points, and then once crashing at each, each
// time on a new layout; it checks each crash image, opened in mode check,
// against the model.
func crashAtEveryCall(t *testing.T, layout func(testing.TB) *vfs.Mem, sc crashScript, check Mode, modes ...Mode) {
	crashAtEveryCallOn(t, layout, nil, sc, check, modes...)
}

// crashAtEveryCallOn is crashAtEveryCall with the backends on wrap of each
// Crasher, if wrap is not nil.
func crashAtEveryCallOn(t *testing.T, layout func(testing.TB) *vfs.Mem, wrap func(vfs.FS) vfs.FS, sc crashScript, check Mode, modes ...Mode) {
	on := func(c *vfs.Crasher) vfs.FS {
		if wrap == nil {
			return c
		}
		return wrap(c)
	}
	// A run that never crashes counts the crash points, and its final
	// image must hold every acknowledged call.
	base := layout(t)
	counter := vfs.NewCrasher(base, 0)
	model := newCrashModel()
	if runScript(sc, on(counter), base, model, modes...) == 0 {
		t.Fatalf("script %v: no change of a message file was checked", sc)
	}
	n := counter.Calls()
	for _, msg := range checkImage(base.CrashClone(), check, model) {
		t.Errorf("modes %v, script %v, no crash (after %d calls): %s", modes, sc, n, msg)
	}
	if n == 0 {
		t.Fatalf("script %v made no mutating call", sc)
	}
	for k := 1; k <= n; k++ {
		m := layout(t)
		c := vfs.NewCrasher(m, k)
		model := newCrashModel()
		runScript(sc, on(c), m, model, modes...)
		img, ok := c.Crashed()
		if !ok {
			// The concurrent script may make fewer calls when the race
			// goes the other way; nothing to crash.
			if len(sc.tracks) > 1 {
				continue
			}
			t.Fatalf("modes %v, script %v: crash point %d of %d not reached", modes, sc, k, n)
		}
		for _, msg := range checkImage(img, check, model) {
			t.Errorf("modes %v, script %v, crash at call %d of %d: %s", modes, sc, k, n, msg)
		}
	}
}

// TestCrashDuringRecovery crashes the program a second time while it
// recovers from a first crash (a power loss): at each crash point of each
// script, and then at each mutating call of the open (a journal's
// replay), recovery scan and close that follow, by a power loss or by a
// kill of the process (whose written data the kernel keeps, for the next
// program to find, sync or not). The image either leaves, once recovered
// in full, must hold what the first crash allowed: recovery never makes
// things worse than the crash it repairs. Performance mode syncs nothing,
// so its power-loss image holds nothing to recover, and it is left out.
//
// It takes every fourth first crash point, and every one with
// SPOOLMETA_CRASH_ALL set (a few minutes under -race).
func TestCrashDuringRecovery(t *testing.T) {
	t.Parallel()
	step := 4
	if os.Getenv("SPOOLMETA_CRASH_ALL") != "" {
		step = 1
	}
	for _, mode := range []Mode{Standard, Hybrid} {
		for _, sc := range crashScripts {
			t.Run(mode.String()+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				base := crashLayout(t)
				counter := vfs.NewCrasher(base, 0)
				runScript(sc, counter, base, newCrashModel(), mode)
				n, second := counter.Calls(), 0
				for k := 1; k <= n; k += step {
					m := crashLayout(t)
					c := vfs.NewCrasher(m, k)
					model := newCrashModel()
					runScript(sc, c, m, model, mode)
					img, ok := c.Crashed()
					if !ok {
						continue // the concurrent scripts may make fewer calls
					}
					recovery := vfs.NewCrasher(img.CrashClone(), 0)
					recoverOn(recovery, mode)
					for k2 := 1; k2 <= recovery.Calls(); k2++ {
						m2 := img.CrashClone()
						c2 := vfs.NewCrasher(m2, k2)
						recoverOn(c2, mode)
						powerLoss, ok := c2.Crashed()
						if !ok {
							continue
						}
						second++
						for _, crash := range []struct {
							how string
							img *vfs.Mem
						}{{"power loss", powerLoss}, {"kill", m2}} {
							for _, msg := range checkImage(crash.img, mode, model) {
								t.Errorf("script %v, crash at call %d of %d, then %s at call %d of recovery: %s", sc, k, n, crash.how, k2, msg)
							}
						}
					}
				}
				if second == 0 {
					t.Fatal("no crash point during recovery was reached")
				}
			})
		}
	}
}

// recoverOn opens a Backend on fsys, runs the recovery scan, and closes
// it, as a program restarted after a crash does; what fails is left to
// the caller's image.
func recoverOn(fsys vfs.FS, mode Mode) {
	cfg := quietConfig(fsys, mode)
	b, err := open(cfg)
	if err != nil {
		return
	}
	b.RecoverFromCrash()
	b.Close()
}
