package filesystem

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
)

// TestCrashPerformanceNamesBeforeData crashes Performance mode where a file
// system may commit a change of names before the data of the files it
// names. Each script is crashed at each mutating call; the image keeps
// every name as the program left it, and file data only as of the last
// sync (vfs.Mem.CrashCloneNames). An exchange that put a record whose data
// is lost under a message's name leaves the record it displaced, which
// recovery puts back, so no message that was ever synced is lost.
//
// In the first variant every acknowledged call is followed by a sync and
// the Backend's flush (a syncfs, then the removal of the records its
// changes displaced), so each message must be as the last flush left it or
// as the call in flight would. The scripts with two tracks also run with a
// Performance-mode Backend beside one in a durable mode, whose fsyncs of a
// directory make the Performance-mode renames into it durable. In the
// second, a sync and flush follow only every third call, so that several
// changes of a message fall between two syncs: each message may then be at
// any version it had, but one that was synced must be found unless the
// script deletes it.
func TestCrashPerformanceNamesBeforeData(t *testing.T) {
	t.Parallel()
	for _, modes := range [][]Mode{{Performance}, {Performance, Standard}, {Hybrid, Performance}} {
		for _, sc := range crashScripts {
			if len(modes) > len(sc.tracks) {
				continue
			}
			t.Run(fmt.Sprint(modes, "/every call/", sc.name), func(t *testing.T) {
				t.Parallel()
				crashNamesFirst(t, sc, 1, modes)
			})
		}
	}
	for _, sc := range crashScripts {
		t.Run(fmt.Sprint("[performance]/every third call/", sc.name), func(t *testing.T) {
			t.Parallel()
			crashNamesFirst(t, sc, 3, []Mode{Performance})
		})
	}
}

// crashNamesFirst runs the script with backends in modes, with a sync and
// flush after every n-th call, once without a crash, to count the crash
// points, and then once crashing at each; it checks each crash's names
// image.
func crashNamesFirst(t *testing.T, sc crashScript, n int, modes []Mode) {
	crashNamesFirstOn(t, nil, sc, n, modes)
}

// crashNamesFirstOn is crashNamesFirst with the backends on wrap of each
// Crasher, if wrap is not nil.
func crashNamesFirstOn(t *testing.T, wrap func(vfs.FS) vfs.FS, sc crashScript, n int, modes []Mode) {
	on := func(c *vfs.Crasher) vfs.FS {
		if wrap == nil {
			return c
		}
		return wrap(c)
	}
	base := crashLayout(t)
	counter := vfs.NewCrasher(base, 0)
	runScriptThen(sc, on(counter), base, newCrashModel(), newSyncEvery(n, nil).then, modes...)
	calls := counter.Calls()
	for k := 1; k <= calls; k++ {
		m := crashLayout(t)
		c := vfs.NewCrasher(m, k)
		model := newCrashModel()
		se := newSyncEvery(n, model)
		runScriptThen(sc, on(c), m, model, se.then, modes...)
		img, ok := c.CrashedNames()
		if !ok {
			if len(sc.tracks) > 1 {
				continue // the race went the other way: fewer calls
			}
			t.Fatalf("script %v: crash point %d of %d not reached", sc, k, calls)
		}
		allowed := model.allowedNamesFirst
		if n > 1 {
			allowed = func(id string) []crashRec { return model.allowedSyncedEver(id, se.synced(id), deletes(sc, id)) }
		}
		for _, msg := range checkImageAllowed(img, Performance, model, allowed) {
			t.Errorf("modes %v, sync every %d calls, script %v, crash at call %d of %d: %s", modes, n, sc, k, calls, msg)
		}
	}
}

// syncEvery syncs the file system and flushes the Backend's displaced
// records after every n-th call, and records which messages were present
// at a sync.
type syncEvery struct {
	n     int
	model *crashModel // nil: nothing recorded

	mu      sync.Mutex
	calls   int
	present map[string]bool // present at a sync
}

func newSyncEvery(n int, model *crashModel) *syncEvery {
	return &syncEvery{n: n, model: model, present: map[string]bool{}}
}

func (se *syncEvery) then(b *Backend, s crashStep) error {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.calls++
	if se.calls%se.n != 0 {
		return nil
	}
	// A sync, as the kernel's write-back does in time, for the new files
	// that displaced nothing; then the flush.
	if err := b.syncAll(); err != nil {
		return err
	}
	if se.model != nil {
		se.model.mu.Lock()
		for id, r := range se.model.acked {
			se.present[id] = se.present[id] || r.present
		}
		se.model.mu.Unlock()
		if s.op != "delete" {
			se.present[s.id] = true
		}
	}
	return b.flushDisplaced()
}

// synced reports whether message id was present at a sync.
func (se *syncEvery) synced(id string) bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.present[id]
}

// deletes reports whether the script deletes message id.
func deletes(sc crashScript, id string) bool {
	steps := slices.Clone(crashSetup[sc.name])
	for _, tr := range sc.tracks {
		steps = append(steps, tr...)
	}
	return slices.ContainsFunc(steps, func(s crashStep) bool { return s.op == "delete" && s.id == id })
}

// allowedNamesFirst returns the outcomes a message may have after a crash
// that committed names before data: those of allowed, and, for a call in
// flight that changes the message's state and fields, the state changed
// without the fields. That one is left by a crash between the two renames
// of a change of state, when the record the second was to put in place
// lost its data: recovery keeps the message in the directory it was moved
// to, with its State field rewritten.
func (m *crashModel) allowedNamesFirst(id string) []crashRec {
	return withStateChanges(m.allowed(id), m.inflight[id])
}

// allowedSyncedEver returns the outcomes a message may have after such a
// crash when calls were acknowledged without a sync: any version it had,
// or one with the state of a call of it (acknowledged or in flight)
// without its fields; and not absent if it was synced and is never
// deleted.
func (m *crashModel) allowedSyncedEver(id string, synced, deleted bool) []crashRec {
	var steps []crashStep
	for _, tr := range [][]crashStep{m.inflight[id], m.steps[id]} {
		steps = append(steps, tr...)
	}
	out := withStateChanges(m.everSeen(id), steps)
	if synced && !deleted {
		out = slices.DeleteFunc(out, func(r crashRec) bool { return !r.present })
	}
	return out
}

// withStateChanges returns out and, for each of steps that changes a
// message's state, each version in out moved to that state.
func withStateChanges(out []crashRec, steps []crashStep) []crashRec {
	for _, s := range steps {
		to := s.to
		if s.op == "store" || s.op == "update" {
			to = s.rec.state
		}
		for _, r := range slices.Clone(out) {
			if r.present && (s.op != "move" || r.state == s.from) {
				r.state = to
				if !slices.Contains(out, r) {
					out = append(out, r)
				}
			}
		}
	}
	return out
}
