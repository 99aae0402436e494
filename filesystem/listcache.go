package filesystem

import (
	"cmp"
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

// maxCachedKeys bounds the entries a Backend's keyCache holds across all
// states, about 100 bytes each.
const maxCachedKeys = 1 << 18

// keyCache holds, for each state, the sort keys that ListMessages last
// read from the message files of that state's directory, each with the
// change counter of the file's stripe when it was read. A key is current
// while that counter holds the same value: no file of the stripe has
// entered or left the directory since. So a later listing reads again only
// the files of the stripes that changed, and those it has not seen.
//
// A published map is never written again; a listing that changes anything
// publishes a new one.
type keyCache struct {
	states [metastorage.NumStates]atomic.Pointer[map[string]cachedKey]
	size   atomic.Int64 // entries held, across states
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

// store replaces the keys cached for state s by m, or drops them if m
// would take the cache past maxCachedKeys.
func (c *keyCache) store(s metastorage.QueueState, m map[string]cachedKey) {
	held := int64(len(c.load(s)))
	if c.size.Load()-held+int64(len(m)) > maxCachedKeys {
		m = nil
	}
	var p *map[string]cachedKey
	if m != nil {
		p = &m
	}
	old := c.states[s].Swap(p)
	n := int64(len(m))
	if old != nil {
		n -= int64(len(*old))
	}
	c.size.Add(n)
}
