package filesystem

import (
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// recentTTL bounds how long a record a Backend wrote stands in for its
// file, and a listing of a directory for its names (see names). Changes
// are counted whoever makes them through a Backend; the bound is for the
// ones that are not (a file replaced or copied in by hand), which a change
// made within it may overwrite or miss, as one racing with them would.
const recentTTL = time.Second

// recentPerStripe is the number of records kept for each stripe: about
// 400 bytes each.
const recentPerStripe = 32

// recent holds, for each stripe, the records this Backend last wrote, so
// that its next change of the message need not read the file back. A
// record stands for the file while the change counter of its state and
// stripe holds the value it had just after the write: no file of the
// stripe has entered or left that directory since, so the message is still
// there, as written. After that, until evicted, it still tells whether the
// file read back is the one this Backend wrote (see Backend.put). Each
// stripe's records are used only by the holder of its lock, which orders
// them.
type recent struct {
	stripes [numStripes]map[string]recentRecord
	now     func() time.Time // time.Now; tests set it
}

type recentRecord struct {
	state   metastorage.QueueState
	counter uint64
	data    []byte // the file's contents, never changed
	written time.Time
	syncs   counters.SyncCount // the syncs of the file system just before it was written
}

// get returns what is in the message's file, if the record written last is
// known to still be there. The caller holds the stripe's lock.
func (r *recent) get(c *changes, file string, stripe int) (found, bool) {
	rec, ok := r.stripes[stripe][file]
	if !ok || !c.Unchanged(rec.state, stripe, rec.counter) || r.now().Sub(rec.written) >= recentTTL {
		return found{}, false
	}
	md, err := codec.Decode(rec.data)
	if err != nil { // it was encoded by this Backend
		delete(r.stripes[stripe], file)
		return found{}, false
	}
	return found{ok: true, state: rec.state, md: md, mine: true, syncs: rec.syncs}, true
}

// written returns the record this Backend wrote last to the message's
// file, and the syncs of the file system just before, if it is still
// kept, whether or not it is known to be the file's. The caller holds the
// stripe's lock.
func (r *recent) written(file string, stripe int) (data []byte, syncs counters.SyncCount, ok bool) {
	rec, ok := r.stripes[stripe][file]
	return rec.data, rec.syncs, ok
}

// keep records data as the contents just written to the message's file in
// state s, when the syncs of the file system were syncs. The caller holds
// the stripe's lock and has completed the change.
func (r *recent) keep(c *changes, file string, stripe int, s metastorage.QueueState, data []byte, syncs counters.SyncCount) {
	n, ok := c.snapshot(s, stripe)
	if !ok {
		return
	}
	m := r.stripes[stripe]
	if m == nil {
		m = make(map[string]recentRecord, recentPerStripe)
		r.stripes[stripe] = m
	}
	now := r.now()
	if _, ok := m[file]; !ok && len(m) >= recentPerStripe {
		r.evict(m, now, syncs)
	}
	m[file] = recentRecord{state: s, counter: n, data: data, written: now, syncs: syncs}
}

// evict makes room in m, when the syncs of the file system are syncs: it
// drops the records of no more use (too old to stand for their files, and
// written before a sync began or ended), or, if none is, the oldest.
func (r *recent) evict(m map[string]recentRecord, now time.Time, syncs counters.SyncCount) {
	var oldest string
	for f, rec := range m {
		switch {
		case now.Sub(rec.written) >= recentTTL && rec.syncs != syncs:
			delete(m, f)
		case oldest == "" || rec.written.Before(m[oldest].written):
			oldest = f
		}
	}
	if len(m) >= recentPerStripe {
		delete(m, oldest)
	}
}

// forget drops the message's record. The caller holds the stripe's lock.
func (r *recent) forget(file string, stripe int) {
	delete(r.stripes[stripe], file)
}
