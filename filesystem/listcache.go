package filesystem

import (
	"cmp"
	"sync"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

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

// maxCachedKeys is the number of entries a Backend's keyCache holds at
// most, across all states: about 130 bytes each.
const maxCachedKeys = 1 << 20

// keyCache holds, for each state, the sort keys that listings read from the
// message files of that state's directory, each with the change counter of
// the file's stripe taken before the file was opened. A key is current
// while that counter holds the same value: no file of the stripe has
// entered or left the directory since. So a later listing reads again only
// the files of the stripes that changed, and those it has not seen.
//
// Keys are added while the cache holds fewer than its limit. A listing
// that read the whole directory and saw fewer names than the cache holds
// removes the keys that are no longer current: a file that left the
// directory moved its stripe's counter.
type keyCache struct {
	mu     sync.Mutex
	states [metastorage.NumStates]map[string]cachedKey
	size   int // entries held, across states
	limit  int // the most entries held; 0 means maxCachedKeys
}

type cachedKey struct {
	count uint64 // the stripe's change counter when the file was read
	keys  listKeys
}

// keyScan is one listing's use of the keys of one state.
type keyScan struct {
	c   *keyCache
	ch  *changes
	s   metastorage.QueueState
	saw int // the cached names it saw
}

// begin starts a listing of state s, whose keys ch tells current.
func (c *keyCache) begin(s metastorage.QueueState, ch *changes) *keyScan {
	return &keyScan{c: c, ch: ch, s: s}
}

// lookup fills in the keys of the entries that the cache holds and
// changes says are current, with status keyCounted and their counts, and
// returns the indexes of the others, whose status it sets to keyGone. A
// nil scan holds nothing.
func (sc *keyScan) lookup(entries []listEntry, status []keyStatus, counts []uint64) []int {
	todo := make([]int, 0, len(entries))
	clear(status)
	if sc == nil {
		for i := range entries {
			todo = append(todo, i)
		}
		return todo
	}
	sc.c.mu.Lock()
	defer sc.c.mu.Unlock()
	m := sc.c.states[sc.s]
	for i := range entries {
		e := &entries[i]
		k, ok := m[e.file]
		if !ok || !sc.ch.Unchanged(sc.s, stripeOf(e.file), k.count) {
			todo = append(todo, i)
			continue
		}
		e.keys, status[i], counts[i] = k.keys, keyCounted, k.count
		sc.saw++
	}
	return todo
}

// keep adds the keys of the entries at the indexes todo that were read
// with a usable count, while the cache has room.
func (sc *keyScan) keep(entries []listEntry, todo []int, status []keyStatus, counts []uint64) {
	if sc == nil {
		return
	}
	c := sc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := cmp.Or(c.limit, maxCachedKeys)
	for _, i := range todo {
		if status[i] != keyCounted {
			continue
		}
		e := &entries[i]
		m := c.states[sc.s]
		if _, ok := m[e.file]; !ok {
			if c.size >= limit {
				continue
			}
			if m == nil {
				m = make(map[string]cachedKey)
				c.states[sc.s] = m
			}
			c.size++
		}
		m[e.file] = cachedKey{count: counts[i], keys: e.keys}
		sc.saw++
	}
}

// end ends a listing that read the whole directory. If it saw fewer names
// than the cache holds, some have left the state: it removes the keys that
// are no longer current.
func (sc *keyScan) end() {
	c := sc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.states[sc.s]
	if sc.saw >= len(m) {
		return
	}
	for f, k := range m {
		if !sc.ch.Unchanged(sc.s, stripeOf(f), k.count) {
			delete(m, f)
			c.size--
		}
	}
}

// drop removes the keys of state s.
func (c *keyCache) drop(s metastorage.QueueState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size -= len(c.states[s])
	c.states[s] = nil
}

// len returns the number of keys held for state s.
func (c *keyCache) len(s metastorage.QueueState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states[s])
}
