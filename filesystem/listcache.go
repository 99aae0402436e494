package filesystem

import (
	"cmp"
	"sync"
	"sync/atomic"
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
const maxCachedKeys = 1 << 18

// keyCache holds, for each state, the sort keys that ListMessages last
// read from the message files of that state's directory, each with the
// change counter of the file's stripe taken before the file was opened. A
// key is current while that counter holds the same value: no file of the
// stripe has entered or left the directory since. So a later listing reads
// again only the files of the stripes that changed, and those it has not
// seen.
//
// A published map is never written again; a listing that changes anything
// publishes a new one.
type keyCache struct {
	states [metastorage.NumStates]atomic.Pointer[map[string]cachedKey]

	mu    sync.Mutex // serialises store
	size  int        // entries held, across states
	limit int        // the most entries held; 0 means maxCachedKeys
}

type cachedKey struct {
	count uint64
	keys  listKeys
}

// load returns the keys cached for state s, or nil.
func (c *keyCache) load(s metastorage.QueueState) map[string]cachedKey {
	if m := c.states[s].Load(); m != nil {
		return *m
	}
	return nil
}

// room returns the number of entries the keys of state s may take.
func (c *keyCache) room(s metastorage.QueueState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roomLocked(s)
}

func (c *keyCache) roomLocked(s metastorage.QueueState) int {
	limit := c.limit
	if limit == 0 {
		limit = maxCachedKeys
	}
	return limit - c.size + len(c.load(s))
}

// store replaces the keys cached for state s by m, or drops them if m
// would take the cache past its limit.
func (c *keyCache) store(s metastorage.QueueState, m map[string]cachedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) > c.roomLocked(s) {
		m = nil
	}
	c.size += len(m) - len(c.load(s))
	if m == nil {
		c.states[s].Store(nil)
		return
	}
	c.states[s].Store(&m)
}
