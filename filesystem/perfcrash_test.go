package filesystem

import (
	"fmt"
	"slices"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
)

// TestCrashPerformanceNamesBeforeData crashes Performance mode where a file
// system may commit a change of names before the data of the files it
// names: each script runs with every acknowledged call followed by a sync
// and the Backend's flush (a syncfs, then the removal of the records its
// changes displaced), and is crashed at each mutating call; the image keeps every
// name as the program left it, and file data only as of the last sync
// (vfs.Mem.CrashCloneNames). Each message must then be in exactly one
// state, as the last flush left it or as a call in flight would, and never
// lost: an exchange that put a record whose data is lost under the
// message's name leaves the record it displaced, which recovery puts back.
// The scripts with two tracks also run with a Performance-mode Backend
// beside one in a durable mode, whose fsyncs of a directory make the
// Performance-mode renames into it durable.
func TestCrashPerformanceNamesBeforeData(t *testing.T) {
	// A sync, as the kernel's write-back does in time, for the new files
	// that displaced nothing; then the flush.
	flush := func(b *Backend) error {
		if err := b.syncAll(); err != nil {
			return err
		}
		return b.flushDisplaced()
	}
	for _, modes := range [][]Mode{{Performance}, {Performance, Standard}, {Hybrid, Performance}} {
		for _, sc := range crashScripts {
			if len(modes) > len(sc.tracks) {
				continue
			}
			t.Run(fmt.Sprint(modes, "/", sc.name), func(t *testing.T) {
				t.Parallel()
				crashNamesFirst(t, sc, flush, modes)
			})
		}
	}
}

// crashNamesFirst runs the script with backends in modes, with then after
// each call, once without a crash, to count the crash points, and then once
// crashing at each; it checks each crash's names image.
func crashNamesFirst(t *testing.T, sc crashScript, then func(*Backend) error, modes []Mode) {
	base := crashLayout(t)
	counter := vfs.NewCrasher(base, 0)
	runScriptThen(sc, counter, base, newCrashModel(), then, modes...)
	n := counter.Calls()
	for k := 1; k <= n; k++ {
		m := crashLayout(t)
		c := vfs.NewCrasher(m, k)
		model := newCrashModel()
		runScriptThen(sc, c, m, model, then, modes...)
		img, ok := c.CrashedNames()
		if !ok {
			if len(sc.tracks) > 1 {
				continue // the race went the other way: fewer calls
			}
			t.Fatalf("script %v: crash point %d of %d not reached", sc, k, n)
		}
		for _, msg := range checkImageAllowed(img, Performance, model, model.allowedNamesFirst) {
			t.Errorf("modes %v, script %v, crash at call %d of %d: %s", modes, sc, k, n, msg)
		}
	}
}

// allowedNamesFirst returns the outcomes a message may have after a crash
// that committed names before data: those of allowed, and, for a call in
// flight that changes the message's state and fields, the state changed
// without the fields. That one is left by a crash between the two renames
// of a change of state, when the record the second was to put in place
// lost its data: recovery keeps the message in the directory it was moved
// to, with its State field rewritten.
func (m *crashModel) allowedNamesFirst(id string) []crashRec {
	out := m.allowed(id)
	for _, s := range m.inflight[id] {
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
