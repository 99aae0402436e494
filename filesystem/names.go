package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// maxListed bounds the entries of a state's directory that a Backend lists
// to learn which names it lacks; a larger directory is looked up name by
// name.
const maxListed = 4096

// names knows, for some states and stripes, every name in the state's
// directory that falls in the stripe, so that a change need not look for a
// new message in every directory. What it knows of a state and stripe
// comes from a listing of the directory and this Backend's own changes
// since (Backend.change reports them). It stands while the change counter of the
// state and stripe holds the value it was known at, so no other Backend
// has changed the names since, and for recentTTL after the listing at
// most: a file placed by hand is not counted, and a change made within that
// time may miss it, as one racing with it would.
type names struct {
	sets [numStripes][metastorage.NumStates]nameSet // each used by the holder of its stripe's lock
	dirs [metastorage.NumStates]dirListing
	now  func() time.Time // time.Now; tests set it
}

// nameSet is what names knows of one state and stripe.
type nameSet struct {
	files   map[string]struct{} // nil: nothing
	counter uint64
	listed  time.Time // when the listing it comes from began
}

// dirListing is the last listing of a state's directory, for the stripes
// to take what they need from.
type dirListing struct {
	mu     sync.Mutex // held while listing
	last   atomic.Pointer[listing]
	misses atomic.Int64 // lookups made for want of a usable listing since the last
}

// listing is the names of a state's directory, by stripe, and the change
// counters read just before. The names of a stripe whose counter still
// holds that value, even, are exact: no change of them ran since.
type listing struct {
	began    time.Time
	counters [numStripes]uint64
	usable   [numStripes]bool // the counter was even
	files    [numStripes][]string
	entries  int
}

// current reports whether n knows the names of target t.
func (n *names) current(c *changes, t target) bool {
	set := &n.sets[t.stripe][t.state]
	return set.files != nil && c.Unchanged(t.state, t.stripe, set.counter) && n.now().Sub(set.listed) < recentTTL
}

// adopt takes the names of target t from l, if they still stand, and
// reports whether they do.
func (n *names) adopt(c *changes, t target, l *listing) bool {
	if l == nil || !l.usable[t.stripe] || !c.Unchanged(t.state, t.stripe, l.counters[t.stripe]) || n.now().Sub(l.began) >= recentTTL {
		return false
	}
	set := &n.sets[t.stripe][t.state]
	set.files = make(map[string]struct{}, len(l.files[t.stripe])+4)
	for _, f := range l.files[t.stripe] {
		set.files[f] = struct{}{}
	}
	set.counter, set.listed = l.counters[t.stripe], l.began
	return true
}

// changed brings what n knows of target t up to date after a change of its
// names by this Backend: known says whether n knew them just before it,
// gone and came are the paths it removed from and added to t's directory
// ("" for none). A change that failed may have been made or not, so n
// forgets.
func (n *names) changed(c *changes, t target, known bool, err error, gone, came string) {
	set := &n.sets[t.stripe][t.state]
	if !known || err != nil {
		set.files = nil
		return
	}
	if gone != "" {
		delete(set.files, gone[strings.LastIndexByte(gone, '/')+1:])
	}
	if came != "" {
		set.files[came[strings.LastIndexByte(came, '/')+1:]] = struct{}{}
	}
	set.counter = c.Counter(t.state, t.stripe).Load()
}

// absent reports whether file, a message file name, is known not to be in
// state s's directory. It may list the directory to know. The caller holds
// the lock of file's stripe.
func (b *Backend) absent(s metastorage.QueueState, stripe int, file string) bool {
	if b.changes == nil {
		return false
	}
	n, t := &b.names, target{s, stripe}
	if !n.current(b.changes, t) && !n.adopt(b.changes, t, n.dirs[s].last.Load()) && !n.adopt(b.changes, t, b.relist(s)) {
		return false
	}
	_, ok := n.sets[stripe][s].files[file]
	return !ok
}

// errTooMany stops a listing of more than maxListed entries.
var errTooMany = errors.New("too many entries to list")

// relist lists state s's directory, if enough lookups were made since the
// last listing to pay for it, and returns the listing, or nil.
func (b *Backend) relist(s metastorage.QueueState) *listing {
	d := &b.names.dirs[s]
	last := d.last.Load()
	due := int64(4)
	if last != nil {
		due += int64(last.entries / 8)
	}
	if d.misses.Add(1) < due || b.counts.get(s) > maxListed || !d.mu.TryLock() {
		return nil
	}
	defer d.mu.Unlock()
	d.misses.Store(0)
	l := &listing{began: b.names.now()}
	for i := range l.counters {
		l.counters[i], l.usable[i] = b.changes.snapshot(s, i)
	}
	err := b.readDir(context.Background(), b.states[s], 256, func(ents []fs.DirEntry) error {
		if l.entries += len(ents); l.entries > maxListed {
			return errTooMany
		}
		for _, e := range ents {
			f := e.Name()
			i := stripeOf(f)
			l.files[i] = append(l.files[i], f)
		}
		return nil
	})
	if err != nil {
		// Nothing usable; wait long before trying again.
		l = &listing{entries: 64 * maxListed}
	}
	d.last.Store(l)
	return l
}
