package counters

import (
	"testing"
	"unsafe"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestCounter shows the counter protocol: a snapshot is usable only
// while no change is under way, and any change begun after it, including
// one begun over the odd value a dead writer left, moves the counter away
// from it for good.
func TestCounter(t *testing.T) {
	words := make([]uint64, Size/8) // aligned as a mapping is
	c := New(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), Size))
	const s, stripe = metastorage.StateDeferred, 7
	n, ok := c.Snapshot(s, stripe)
	if !ok {
		t.Fatal("a fresh counter is not usable")
	}
	c.Begin(s, stripe)
	if _, ok := c.Snapshot(s, stripe); ok {
		t.Error("a snapshot during a change is usable")
	}
	if c.Unchanged(s, stripe, n) {
		t.Error("a change under way leaves the snapshot taken before it unchanged")
	}
	// The writer dies here, leaving the counter odd; the next holder of the
	// stripe's lock changes it.
	c.Begin(s, stripe)
	c.End(s, stripe)
	m2, ok := c.Snapshot(s, stripe)
	if !ok {
		t.Fatal("the counter is not usable after the next holder's change")
	}
	if m2 == n || c.Unchanged(s, stripe, n) {
		t.Errorf("counter %d after two changes, the same as the snapshot %d before them", m2, n)
	}
	if !c.Unchanged(s, stripe, m2) {
		t.Error("a snapshot with no change after it is not unchanged")
	}
	if other, _ := c.Snapshot(metastorage.StateActive, stripe); other != 0 {
		t.Errorf("another state's counter moved: %d", other)
	}
	if other, _ := c.Snapshot(s, stripe+1); other != 0 {
		t.Errorf("another stripe's counter moved: %d", other)
	}
}
