package filesystem

import (
	"cmp"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// DefaultIndexBudget is the memory, in bytes, that a Backend's index of
// records holds at most unless WithIndexBudget says otherwise.
const DefaultIndexBudget = 256 << 20

// indexMaxAge bounds how long a record read from a file stands for it. A
// file rewritten in place, not replaced, changes no counter and no
// directory: it is seen once its record is read again.
const indexMaxAge = time.Minute

// racyStamp is how recent a directory's stamp may be and still miss a
// change made just after it was read, within one tick of the kernel's
// clock.
const racyStamp = 100 * time.Millisecond

// index holds, for each state, the records that the last complete pass
// over the state's directory read (an iteration or a listing by a key), so
// that a pass over messages that have not changed reads no file and, when
// no name changed either, not the directory.
//
// A record stands for its file while the change counter of its state and
// stripe holds the value it had before the file was read: no file of the
// stripe entered or left the directory since. Changes made outside the
// library change no counter; they change the directory's stamp (its
// modification and change times), which each pass reads once.
type index struct {
	budget int64        // the most bytes held; 0 holds nothing
	used   atomic.Int64 // the bytes held, across states
	now    func() time.Time
	states [metastorage.NumStates]atomic.Pointer[snapshot]
}

// snapshot is what one pass over a state's directory found. It never
// changes once published.
type snapshot struct {
	stamp  dirStamp
	racy   bool // the stamp was taken too soon after it changed
	counts [numStripes]uint64
	oldest time.Time // when its oldest record was read
	// complete is set if entries hold every message file the directory
	// held: a later pass may then take the names from entries.
	complete bool
	entries  []*indexEntry
	byName   map[string]*indexEntry
	bytes    int64
}

// indexEntry is a message's record as read from its file.
type indexEntry struct {
	id, file string
	stripe   int
	count    uint64    // the stripe's change counter before the file was read
	read     time.Time // when the file was read
	md       metastorage.MessageMetadata
	keys     listKeys
	bytes    int64 // what it costs the budget
}

// entryOverhead is what an entry costs beyond its strings: the entry, its
// place in a snapshot's slice and map, and a decoded record's fixed part.
const entryOverhead = 320

func newIndexEntry(id, file string, count uint64, read time.Time, md metastorage.MessageMetadata) *indexEntry {
	n := entryOverhead + len(file) + len(md.LastError) + len(md.RetryPolicyName)
	if id != file {
		n += len(id)
	}
	for k, v := range md.Headers {
		n += 64 + len(k) + len(v)
	}
	return &indexEntry{id: id, file: file, stripe: stripeOf(file), count: count, read: read,
		md: md, keys: keysOf(&md), bytes: int64(n)}
}

// record returns the message as e holds it, for the caller to keep and
// change.
func (e *indexEntry) record(s metastorage.QueueState) metastorage.MessageMetadata {
	md := e.md
	md.ID = e.id
	md.State = s
	md.Headers = maps.Clone(md.Headers)
	return md
}

// current reports whether e still stands for its file in state s.
func (e *indexEntry) current(c *changes, s metastorage.QueueState) bool {
	return c.Unchanged(s, e.stripe, e.count)
}

// dirStamp is what a directory's metadata tells of its entries: it changes
// when a name is added, removed or renamed.
type dirStamp struct {
	mtime, ctime int64
	size         int64
	ino          uint64
}

// readStamp returns the stamp of the open directory d.
func readStamp(d vfs.File) (dirStamp, error) {
	fi, err := d.Stat()
	if err != nil {
		return dirStamp{}, err
	}
	st := dirStamp{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	st.ctime, st.ino = statCtimeIno(fi)
	return st, nil
}

// racy reports whether a change made just after st was read, at now,
// might not have changed it.
func (st dirStamp) racy(now time.Time) bool {
	window := racyStamp
	if st.mtime%int64(time.Second) == 0 {
		window = 2 * time.Second // a file system that keeps whole seconds
	}
	return now.UnixNano()-max(st.mtime, st.ctime) < int64(window)
}

// pass is one pass over a state's directory that uses the index and
// renews it. Its methods may be called from several goroutines.
type pass struct {
	x     *index
	c     *changes
	s     metastorage.QueueState
	now   time.Time
	prev  *snapshot // nil if none
	fresh bool      // prev stands for the directory: no name changed
	// reuse is false if the directory changed outside the library since
	// prev: no record of prev is used.
	reuse bool

	mu   sync.Mutex
	next *snapshot // the snapshot being renewed; nil if fresh or abandoned
}

// begin starts a pass over state s's directory, open as d. The pass is
// fresh if the index's snapshot stands for the directory: its names are the
// directory's, and each record stands for its file while its counter
// holds. It returns nil if the index holds nothing.
func (x *index) begin(c *changes, s metastorage.QueueState, d vfs.File) *pass {
	if x == nil || x.budget <= 0 || c == nil {
		return nil
	}
	p := &pass{x: x, c: c, s: s, now: x.now(), prev: x.states[s].Load()}
	var counts [numStripes]uint64
	usable := true
	for i := range counts {
		var ok bool
		counts[i], ok = c.snapshot(s, i)
		usable = usable && ok
	}
	stamp, err := readStamp(d)
	if prev := p.prev; prev != nil && err == nil {
		same := usable && counts == prev.counts
		p.fresh = prev.complete && !prev.racy && same && stamp == prev.stamp &&
			p.now.Sub(prev.oldest) < indexMaxAge
		// A stamp that changed while no counter did: a change outside
		// the library, which counters cannot tell apart.
		p.reuse = stamp == prev.stamp || !same
	}
	if !p.fresh {
		p.next = &snapshot{stamp: stamp, racy: stamp.racy(p.now), counts: counts,
			complete: err == nil, oldest: p.now}
	}
	return p
}

// lookup returns prev's record of file if it still stands for the file.
func (p *pass) lookup(file string) *indexEntry {
	if p == nil || !p.reuse {
		return nil
	}
	e := p.prev.byName[file]
	if e == nil || !e.current(p.c, p.s) || p.now.Sub(e.read) >= indexMaxAge {
		return nil
	}
	return e
}

// keep adds e to the snapshot the pass renews, if the budget has room.
func (p *pass) keep(e *indexEntry) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.next
	if n == nil {
		return
	}
	var prevBytes int64
	if p.prev != nil {
		prevBytes = p.prev.bytes
	}
	if p.x.used.Load()-prevBytes+n.bytes+e.bytes > p.x.budget {
		n.complete = false
		return
	}
	if n.byName == nil {
		n.byName = make(map[string]*indexEntry, cmp.Or(len(p.prevEntries()), 64))
	}
	n.entries = append(n.entries, e)
	n.byName[e.file] = e
	n.bytes += e.bytes
	if e.read.Before(n.oldest) {
		n.oldest = e.read
	}
}

func (p *pass) prevEntries() []*indexEntry {
	if p.prev == nil {
		return nil
	}
	return p.prev.entries
}

// miss records that a message file of the directory has no record in the
// snapshot: it was not valid metadata, could not be read, or changed.
func (p *pass) miss() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next != nil {
		p.next.complete = false
	}
}

// abandon ends a pass that did not see the whole directory.
func (p *pass) abandon() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = nil
}

// finish ends a pass that saw the whole directory and publishes what it
// found.
func (p *pass) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	n := p.next
	p.next = nil
	p.mu.Unlock()
	if n == nil {
		return
	}
	old := p.x.states[p.s].Swap(n)
	var oldBytes int64
	if old != nil {
		oldBytes = old.bytes
	}
	p.x.used.Add(n.bytes - oldBytes)
}

// drop forgets the records of state s.
func (x *index) drop(s metastorage.QueueState) {
	if old := x.states[s].Swap(nil); old != nil {
		x.used.Add(-old.bytes)
	}
}

// listKeys are the fields of a record that ListMessages sorts and filters
// by.
type listKeys struct {
	created, updated   instant
	priority, attempts int
}

func keysOf(md *metastorage.MessageMetadata) listKeys {
	return listKeys{
		created: instantOf(md.Created), updated: instantOf(md.Updated),
		priority: md.Priority, attempts: md.Attempts,
	}
}

// instant is a time.Time reduced to what ordering needs, without the
// pointer to its location.
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant { return instant{t.Unix(), int32(t.Nanosecond())} }

func (a instant) compare(b instant) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	return cmp.Compare(a.nsec, b.nsec)
}
