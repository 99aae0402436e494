package filesystem

import (
	"sync"
	"sync/atomic"
	"time"
)

// In Performance mode nothing is synced, and a file system may make the
// exchange that puts a new record under a message's name durable before
// the record's data (ext4's delayed allocation does, in its periodic
// journal commit): after a power loss the message's file would be empty.
// So the file an exchange displaces, which holds the message's previous
// record, is not removed at once: it stays under its temp file name until
// a sync of the whole file system (syncfs) has made the new record's data
// durable. Recovery puts such a file back in place of a message file that
// is not valid metadata, and removes it otherwise, after a sync of its own
// (see scanner.tempLocked).
//
// A change may drop the record it displaces at once when this Backend
// wrote that record and no sync of the file system has begun or ended
// since: the record before it is then still kept, by this Backend, or
// from every other's recovery, which removes a displaced record only
// after a sync it began once it had seen it. A sync the directory's
// counters do not record (sync(1), the kernel's write-back, a Backend of
// another directory) may have written it; a power loss then leaves the
// message at an earlier record, as it may for any call since the last
// syncfs.

// flushEvery is how often a Performance-mode Backend that has written since
// its last flush syncs the file system and removes the files its changes
// displaced, unless maxDisplaced wait before.
const flushEvery = 5 * time.Second

// maxDisplaced is the number of displaced files that starts a flush
// before its time.
const maxDisplaced = 4096

// displaced are the temp file paths of the records that a Backend's
// changes displaced.
type displaced struct {
	mu       sync.Mutex
	paths    map[string]struct{}
	flushing map[string]struct{} // those a flush has taken and not yet removed
	flush    sync.Mutex          // serialises flushes
	dirty    atomic.Bool         // a call changed a file since the last flush began
}

// waiting returns the number of paths waiting for a flush.
func (d *displaced) waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.paths)
}

// wrote records that a call changed a message file.
func (d *displaced) wrote() { d.dirty.Store(true) }

// add records path, and reports whether enough are waiting to flush early.
func (d *displaced) add(path string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.paths == nil {
		d.paths = make(map[string]struct{})
	}
	d.paths[path] = struct{}{}
	return len(d.paths) >= maxDisplaced
}

// has reports whether path is waiting for a flush, or being flushed.
func (d *displaced) has(path string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.paths[path]
	if !ok {
		_, ok = d.flushing[path]
	}
	return ok
}

// putBack returns paths, taken earlier, to those waiting.
func (d *displaced) putBack(paths map[string]struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if paths == nil {
		paths = make(map[string]struct{}, len(d.paths))
	}
	for p := range d.paths {
		paths[p] = struct{}{}
	}
	d.paths, d.flushing = paths, nil
}

// take takes the paths waiting, for a flush, which calls flushed or
// putBack once it is done with them.
func (d *displaced) take() map[string]struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.paths
	d.paths, d.flushing = nil, p
	return p
}

// flushed records that the paths taken have been removed.
func (d *displaced) flushed() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flushing = nil
}
