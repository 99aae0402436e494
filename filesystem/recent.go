package filesystem

import (
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
)

// recentPerStripe is the number of records kept for each stripe: about
// 400 bytes each.
const recentPerStripe = 32

// recent holds, for each stripe, the records this Backend last wrote, so
// that a later change can tell whether the file it reads is the one this
// Backend wrote since the last sync began (see Backend.put). Each
// stripe's records are used only by the holder of its lock, which orders
// them.
type recent struct {
	stripes [numStripes]map[string]recentRecord
	now     func() time.Time // time.Now; tests set it
}

type recentRecord struct {
	data    []byte // the file's contents, never changed
	written time.Time
	syncs   counters.SyncCount // the syncs of the file system just before it was written
}

// written returns the record this Backend wrote last to the message's
// file, and the syncs of the file system just before, if it is still
// kept (nil data otherwise). The caller holds the stripe's lock.
func (r *recent) written(file string, stripe int) (data []byte, syncs counters.SyncCount) {
	rec := r.stripes[stripe][file]
	return rec.data, rec.syncs
}

// keep records data as the contents just written to the message's file,
// when the syncs of the file system were syncs. The caller holds the
// stripe's lock and has completed the change.
func (r *recent) keep(file string, stripe int, data []byte, syncs counters.SyncCount) {
	m := r.stripes[stripe]
	if m == nil {
		m = make(map[string]recentRecord, recentPerStripe)
		r.stripes[stripe] = m
	}
	now := r.now()
	if _, ok := m[file]; !ok && len(m) >= recentPerStripe {
		r.evict(m, syncs)
	}
	m[file] = recentRecord{data: data, written: now, syncs: syncs}
}

// evict makes room in m, when the syncs of the file system are syncs: it
// drops the records of no more use (written before a sync began or
// ended), or, if none is, the oldest.
func (r *recent) evict(m map[string]recentRecord, syncs counters.SyncCount) {
	var oldest string
	for f, rec := range m {
		switch {
		case rec.syncs != syncs:
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
