package filesystem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
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

// keepsDisplaced reports whether the Backend keeps displaced files until a
// flush: in Performance mode, on a file system that can sync itself whole.
func (b *Backend) keepsDisplaced() bool {
	return b.dfs != nil && b.dfs.canSyncAll() && !b.durable()
}

// displace disposes of tmp, the file an exchange left holding a message's
// previous record: in Performance mode kept until the next flush, unless
// keep is false (a journal's replay, which the journal covers until the
// checkpoint that follows it has synced); otherwise removed at once.
func (b *Backend) displace(tmp string, keep bool) {
	if !keep || !b.keepsDisplaced() {
		b.removeTemp(tmp)
		return
	}
	if b.displaced.add(tmp) {
		select {
		case b.flushKick <- struct{}{}:
		default:
		}
	}
}

// flushDisplaced syncs the file system, if a call changed a file since the
// last flush, and then removes the displaced files recorded before the sync
// began. If the sync fails, the file system has dropped data it was writing
// back, and a later sync would not say so again: the Backend refuses
// further writes (see syncAll), and the files stay. A Backend that refuses
// writes for any reason removes none.
func (b *Backend) flushDisplaced() error { return b.flush(false) }

// flush is flushDisplaced, without a sync of its own if synced: a sync
// that began after every file change this Backend made, and after the
// displaced files were recorded, has succeeded.
func (b *Backend) flush(synced bool) error {
	if !b.keepsDisplaced() {
		return nil // every change is durable by itself
	}
	b.displaced.flush.Lock()
	defer b.displaced.flush.Unlock()
	if f := b.failed.Load(); f != nil {
		if n := b.displaced.waiting(); n > 0 {
			return fmt.Errorf("flush: %d displaced records left on disk: %w", n, *f)
		}
		return nil
	}
	paths := b.displaced.take()
	if !b.displaced.dirty.Swap(false) && len(paths) == 0 {
		return nil
	}
	var err error
	if !synced {
		err = b.syncAll()
	}
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		b.displaced.putBack(paths) // never removed now: the Backend has failed
		return fmt.Errorf("flush: %d displaced records left on disk: %w", len(paths), err)
	}
	// Without syncfs, nothing better can be done than the kernel's own
	// write-back, which the displaced records would wait for in vain.
	for p := range paths {
		b.removeTemp(p)
	}
	b.displaced.flushed()
	if err == nil {
		b.stats.flushes.Add(1)
	}
	return nil
}

// flusher flushes the displaced files every flushEvery, or sooner when
// kicked, until ctx is done.
func (b *Backend) flusher(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.flushKick:
		}
		if err := b.flushDisplaced(); err != nil && ctx.Err() == nil {
			b.log.Error("sync of the file system failed; data written may be lost", "dir", b.dir, "err", err)
		}
	}
}

// syncAll syncs the whole file system of the directory (syncfs), through a
// directory opened with the Backend, so that it reports every write-back
// failure since then, also one another process's syncfs was told of first.
// The kernel reports such a failure once: so the Backend's syncs run one at
// a time, a failure makes the Backend refuse writes before the next one can
// start, and once it does, every sync returns that failure, since none can
// tell what it lost.
func (b *Backend) syncAll() error {
	err := b.syncFS()
	if f := b.failed.Load(); f != nil && (err == nil || errors.Is(err, errors.ErrUnsupported)) {
		err = *f
	}
	return err
}

// syncFS runs one syncfs, counted as begun and ended in the directory's
// change counters (see Backend.put), and fails the Backend if it fails.
func (b *Backend) syncFS() error {
	syncer, ok := b.fs.(vfs.SyncFS)
	if !ok {
		return fmt.Errorf("syncfs %s: %w", b.dir, errors.ErrUnsupported)
	}
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.changes.syncBegun()
	err := syncer.SyncAll(b.dirs[metastorage.StateIncoming].f)
	b.changes.syncEnded()
	switch {
	case err == nil:
		b.syncsOK.Add(1)
	case !errors.Is(err, errors.ErrUnsupported):
		b.fail(err)
	}
	return err
}
