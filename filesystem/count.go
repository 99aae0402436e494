package filesystem

import (
	"context"
	"slices"
	"sync"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// counter keeps the number of messages per state. It starts from the
// directory contents, counted in the background after open, and follows
// this Backend's own writes. While a state's directory is being counted, the
// names this Backend changes in it are set aside; when the count ends, each
// of them is counted by its presence after the change, not by what the scan
// saw, so a write is counted exactly once whether or not the scan saw its
// file.
type counter struct {
	// gate is held shared by every change of a directory, from before its
	// file-system calls until it has been recorded, and exclusively by
	// finish: so no change the scan may have seen is still unrecorded.
	// Take it before a stripe lock.
	gate sync.RWMutex

	mu       sync.Mutex
	n        [metastorage.NumStates]int64
	scanning [metastorage.NumStates]bool
	changed  [metastorage.NumStates]map[string]bool // name -> present after the change
	pending  int                                    // states still being counted
	ready    chan struct{}                          // closed when pending reaches 0
}

func (c *counter) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = metastorage.NumStates
	c.ready = make(chan struct{})
	for s := range c.scanning {
		c.scanning[s] = true
		c.changed[s] = make(map[string]bool)
	}
}

// set records that file is now present in state s or not; delta is the
// change of the count it makes.
func (c *counter) set(s metastorage.QueueState, file string, present bool, delta int64) {
	c.mu.Lock()
	if c.scanning[s] {
		c.changed[s][file] = present
	} else {
		c.n[s] += delta
	}
	c.mu.Unlock()
}

// finish ends the count of state s, whose directory held the message files
// whose name hashes are seen (sorted in place).
func (c *counter) finish(s metastorage.QueueState, seen []uint64) {
	slices.Sort(seen)
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.scanning[s] {
		return
	}
	n := int64(len(seen))
	for f, present := range c.changed[s] {
		if _, ok := slices.BinarySearch(seen, nameHash(f)); ok {
			n--
		}
		if present {
			n++
		}
	}
	c.n[s] += n
	c.scanning[s] = false
	c.changed[s] = nil
	if c.pending--; c.pending == 0 {
		close(c.ready)
	}
}

// nameHash is a 64-bit FNV-1a hash of a file name.
func nameHash(file string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(file); i++ {
		h ^= uint64(file[i])
		h *= 1099511628211
	}
	return h
}

// get returns the count of state s; while the count runs, what has been
// found so far plus this Backend's own additions.
func (c *counter) get(s metastorage.QueueState) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[s]
	for _, present := range c.changed[s] {
		if present {
			n++
		}
	}
	return n
}

// GetStateCount returns the number of messages in state, without I/O, or 0
// for a state out of range. It counts the state's directory once in the
// background after open and then follows this Backend's own writes, so it
// is exact for them (read-your-writes) once WaitCounts has returned.
// Writes by other Backends or processes on the same directory are not seen
// until the directory is opened again.
func (b *Backend) GetStateCount(state metastorage.QueueState) int64 {
	if !state.Valid() {
		return 0
	}
	return b.counts.get(state)
}

// WaitCounts waits until the initial count of every state directory has
// finished, so that GetStateCount is exact, or until ctx is done.
func (b *Backend) WaitCounts(ctx context.Context) error {
	select {
	case <-b.counts.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
