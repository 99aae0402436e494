package filesystem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// counter keeps the number of messages per state.
//
// With shared memory (sh), the counts are those in .locks/changes, which
// every writable Backend on the directory changes (see changes). The
// Backend alone on the directory at open establishes them: it counts the
// directories in the background, and publishes the counts once every
// state is counted. Other Backends open after that, and count nothing.
//
// Without shared memory, and for a read-only Backend, the counts are this
// Backend's own: the directory contents, counted in the background after
// open, followed by this Backend's own writes.
//
// Either way, while a state's directory is being counted, the names this
// Backend changes in it are set aside; when the count ends, each of them
// is counted by its presence after the change, not by what the scan saw,
// so a write is counted exactly once whether or not the scan saw its file.
type counter struct {
	// gate is held shared by every change of a directory, from before its
	// file-system calls until it has been recorded, and exclusively by
	// finish: so no change the scan may have seen is still unrecorded.
	// Take it before a stripe lock.
	gate sync.RWMutex

	sh   *changes        // the shared counts; nil if the Backend keeps its own
	done <-chan struct{} // closed when the Backend closes

	mu       sync.Mutex
	n        [metastorage.NumStates]int64 // without sh, or once detached
	detached bool                         // sh is unmapped: n holds its last totals
	scanning [metastorage.NumStates]bool
	changed  [metastorage.NumStates]map[string]bool // name -> present after the change
	pending  int                                    // states still being counted
	ready    chan struct{}                          // closed when pending reaches 0
}

// start begins the count, in the counts shared through sh if it is not
// nil. done is closed when the Backend closes.
func (c *counter) start(sh *changes, done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sh, c.done = sh, done
	c.ready = make(chan struct{})
	if sh != nil && !sh.alone {
		close(c.ready) // established by the Backend that was alone
		return
	}
	c.pending = metastorage.NumStates
	for s := range c.scanning {
		c.scanning[s] = true
		c.changed[s] = make(map[string]bool)
	}
}

// set records that file, of target t, is now present in its state or
// not; delta is the change of the count it makes. Backend.change calls it
// for each message file a change touches.
func (c *counter) set(t target, file string, present bool, delta int64) {
	if c.sh != nil && !c.sh.alone { // nothing is being counted
		c.sh.Count(t.state, t.stripe).Add(delta)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.scanning[t.state]:
		c.changed[t.state][file] = present
	case c.sh != nil:
		c.sh.Count(t.state, t.stripe).Add(delta)
	default:
		c.n[t.state] += delta
	}
}

// finish ends the count of state s, whose directory held the message files
// whose name hashes are seen (sorted in place), perStripe[i] of them in
// stripe i. With shared counts, it publishes them once every state is
// counted, unless ok is false: the Backend is closing, and the next
// Backend alone on the directory counts again.
func (c *counter) finish(s metastorage.QueueState, seen []uint64, perStripe *[numStripes]int64, ok bool) error {
	slices.Sort(seen)
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.scanning[s] {
		return nil
	}
	n := int64(len(seen))
	for f, present := range c.changed[s] {
		i := stripeOf(f)
		if _, ok := slices.BinarySearch(seen, nameHash(f)); ok {
			n--
			perStripe[i]--
		}
		if present {
			n++
			perStripe[i]++
		}
	}
	c.scanning[s] = false
	c.changed[s] = nil
	if c.sh == nil {
		c.n[s] += n
	} else {
		// A change counter left odd by a writer that died stays odd: the
		// next holder of its lock counts that stripe again (see heal).
		for i, k := range perStripe {
			c.sh.Count(s, i).Store(k)
		}
	}
	if c.pending--; c.pending > 0 {
		return nil
	}
	if c.sh != nil && !ok {
		return nil
	}
	var err error
	if c.sh != nil {
		err = c.sh.publish()
	}
	close(c.ready)
	return err
}

// scanningState reports whether state s is still being counted.
func (c *counter) scanningState(s metastorage.QueueState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scanning[s]
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

// get returns the count of state s, without waiting; while the count
// runs, what has been found so far plus this Backend's own additions.
func (c *counter) get(s metastorage.QueueState) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sh != nil && !c.scanning[s] && !c.detached {
		return c.sh.Total(s)
	}
	n := c.n[s]
	for _, present := range c.changed[s] {
		if present {
			n++
		}
	}
	return n
}

// detach keeps the shared totals, before the shared memory is unmapped.
func (c *counter) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sh == nil || c.detached {
		return
	}
	for _, s := range metastorage.States() {
		if !c.scanning[s] {
			c.n[s] = c.sh.Total(s)
		}
	}
	c.detached = true
}

// wait waits until the initial count is known, or the Backend closes.
func (c *counter) wait() {
	select {
	case <-c.ready:
	case <-c.done:
	}
}

// count counts the message files in state s's directory.
func (b *Backend) count(ctx context.Context, s metastorage.QueueState) {
	var seen []uint64
	var perStripe [numStripes]int64
	err := readNames(ctx, b.fs, b.states[s], 4096, func(files []string) error {
		for _, f := range files {
			seen = append(seen, nameHash(f))
			perStripe[stripeOf(f)]++
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		b.log.Error("counting messages failed; counts are not exact", "dir", b.states[s], "err", err)
	}
	if err := b.counts.finish(s, seen, &perStripe, ctx.Err() == nil); err != nil {
		b.log.Error("publishing the message counts failed; other Backends cannot open the directory until this one closes", "dir", b.dir, "err", err)
	}
}

// lock takes stripe i of the Backend, or nothing for a read-only Backend,
// which has no lock files and changes nothing. It first heals the stripe's
// counts (see heal); if that fails it releases the lock and fails, since a
// change would make the odd counter even and hide the need.
func (b *Backend) lock(ctx context.Context, i int) (func(), error) {
	if b.locks == nil {
		return func() {}, nil
	}
	unlock, err := b.locks.lock(ctx, i)
	if err != nil {
		return nil, err
	}
	if err := b.heal(i); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// heal recounts, under stripe i's lock, the messages of stripe i in each
// state whose change counter is odd: its last writer died during a change,
// perhaps before counting it. It then makes the counter even. A state
// still being counted at open is left to that count. If a recount fails,
// the counter stays odd, for the next holder to try again.
func (b *Backend) heal(i int) error {
	sh := b.counts.sh
	if sh == nil {
		return nil
	}
	var errs []error
	for _, s := range metastorage.States() {
		v := sh.Counter(s, i)
		if v.Load()%2 == 0 || b.counts.scanningState(s) {
			continue
		}
		var n int64
		err := readNames(context.Background(), b.fs, b.states[s], 4096, func(files []string) error {
			for _, f := range files {
				if stripeOf(f) == i {
					n++
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("recount stripe %d of %s after a writer died: %w", i, b.states[s], err))
			continue
		}
		if old := sh.Count(s, i).Swap(n); old != n {
			b.log.Warn("a writer died during a change; recounted the messages of its stripe", "dir", b.states[s], "stripe", i, "was", old, "now", n)
		}
		v.Add(1)
	}
	return errors.Join(errs...)
}

// healOdd heals each stripe whose change counter is odd in some state,
// taking its lock: at open, so that the counts are exact before the first
// call although a writer died mid-change.
func (b *Backend) healOdd() {
	sh := b.counts.sh
	if sh == nil || sh.alone {
		return // the count at open includes what the dead writer did
	}
	for i := range numStripes {
		for _, s := range metastorage.States() {
			if sh.Counter(s, i).Load()%2 == 0 {
				continue
			}
			unlock, err := b.lock(context.Background(), i) // heals
			if err != nil {
				b.log.Error("cannot take a lock to recount messages after a writer died", "dir", b.dir, "stripe", i, "err", err)
				break
			}
			unlock()
			break
		}
	}
}

// tryHeal heals each stripe of state s whose change counter is odd and
// whose lock is free: its writer died mid-change. A stripe whose lock is
// held has a live writer, whose change is counted before the lock is
// released.
func (b *Backend) tryHeal(s metastorage.QueueState) {
	sh := b.counts.sh
	if sh == nil || b.counts.scanningState(s) {
		return
	}
	for i := range numStripes {
		if sh.Counter(s, i).Load()%2 == 0 {
			continue
		}
		if unlock, ok := b.locks.tryLock(i); ok {
			if err := b.heal(i); err != nil {
				b.log.Error("recounting messages failed; the next writer of the stripe tries again", "err", err)
			}
			unlock()
		}
	}
}

// GetStateCount returns the number of messages in state, or 0 for a state
// out of range. It is never negative. It waits until the initial count of
// the directory is known (about a second at a million messages; see
// WaitCounts). After Close it answers without waiting.
//
// On Linux, the count is exact for every change made through a writable
// Backend, by any process on the directory, also after a writer was
// killed mid-change. Files added or removed by hand are counted only when
// a writable Backend next opens the directory while no other has it open.
// A state directory that cannot be read then is logged as an error, and
// counted as far as it was read.
//
// For a Backend opened with WithReadOnly, and on a file system without
// shared memory, the count is the Backend's own: the directories as
// counted after open, followed by this Backend's own writes only.
func (b *Backend) GetStateCount(state metastorage.QueueState) int64 {
	if !state.Valid() {
		return 0
	}
	b.counts.wait()
	b.ops.RLock() // the shared memory stays mapped
	defer b.ops.RUnlock()
	if !b.closed.Load() {
		b.tryHeal(state)
	}
	return max(0, b.counts.get(state))
}

// WaitCounts waits until the initial count of every state directory has
// finished, so that GetStateCount answers at once, or until ctx is done.
func (b *Backend) WaitCounts(ctx context.Context) error {
	select {
	case <-b.counts.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
