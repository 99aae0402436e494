package filesystem

import (
	"errors"
	"fmt"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

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
		b.kickCheckpoint()
	}
}

// removeTemp removes a temp file of a failed call. If that fails too, the
// file stays for recovery, which removes it: it is never taken for a
// message.
func (b *Backend) removeTemp(tmp string) {
	if err := b.fs.Remove(tmp); err != nil && !isNotExist(err) {
		b.log.Warn("cannot remove temp file; recovery will", "path", tmp, "err", err)
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
			return fmt.Errorf("flush %s: %d displaced records left on disk, which the next open's recovery removes after a sync: %w", b.dir, n, *f)
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
		return fmt.Errorf("flush %s: %d displaced records left on disk, which the next open's recovery removes after a sync: %w", b.dir, len(paths), err)
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
