package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The write-ahead journal of Hybrid mode.
//
// A directory's journal is the file .journal in it, shared by every
// Backend and process on the directory. A change of a message appends a
// record of the message as the change leaves it (its whole new file, or
// its deletion) to the journal, waits for an fsync of the journal that
// started after the append (one fsync serves every caller waiting: group
// commit), and only then changes the message files, without fsync. So
// every acknowledged change is durable in the journal before any of its
// file changes can be, and a power loss at any point leaves, for each
// message, either a durable file state or a durable record that says what
// the files must be.
//
// Records are appended under the message's stripe lock, so for each message
// the journal holds its changes in the order they were made, whichever
// process made them, and the last record of a message is its state.
// Replay applies the last record of each message to the files, removing
// every other copy; it is idempotent.
//
// A checkpoint takes every stripe lock, so that no change is between its
// record and its file changes, replays the journal if asked, makes every
// file change durable at once (syncfs), and only then empties the journal.
// Opening a directory that has a journal runs a checkpoint with replay,
// before the first call; a checkpoint without replay runs when the journal
// has grown by journalLimit, and at Close.
//
// A change whose file changes fail after its record was appended voids
// that record in place, before its call returns, so that no replay applies
// it (see Backend.undo).
//
// Once a directory has a journal, every writer on it appends its changes
// to the journal, whatever its mode (a Standard-mode Backend then also
// waits for the journal's fsync, and skips its own): a change the journal
// does not order could be undone by the replay of an older record. A
// Backend that opened before the journal existed finds it at its next
// change, under the stripe lock, which the journal's creator held.

const journalName = ".journal"

// journalLimit is the journal growth, by one Backend's appends, after which
// it runs a checkpoint.
const journalLimit = 8 << 20

// journal is a Backend's handle on its directory's journal.
type journal struct {
	path     string
	f        vfs.File // opened for appending
	sync     *groupSync
	appended atomic.Int64 // bytes appended since this Backend's last checkpoint
}

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// journalChange appends the record of c to the journal and, if wait is
// set, waits until it is durable. The caller holds the message's stripe
// lock. If it fails, the message is unchanged, also once the journal is
// replayed, unless its error says that a replay may yet apply the change.
func (b *Backend) journalChange(j *journal, c intent, wait bool) error {
	if err := b.appendToJournal(j, c.kind, c.state, c.file, c.data); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	b.stats.journalSyncRequests.Add(1)
	if err := j.sync.sync(); err != nil {
		b.fail(err)
		// The record may or may not be durable, and so may its voiding:
		// the journal's fsync fails from now on.
		return undone(err, b.undo(j, c, wait))
	}
	return nil
}

// appendToJournal appends a record to the journal, in one write.
func (b *Backend) appendToJournal(j *journal, kind byte, s metastorage.QueueState, file string, data []byte) error {
	bp := recordBufs.Get().(*[]byte)
	buf := wal.Append((*bp)[:0], kind, s, file, data)
	_, err := j.f.Write(buf)
	*bp = buf[:0]
	recordBufs.Put(bp)
	if err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	b.stats.journalBytes.Add(int64(len(buf)))
	limit := b.cfg.journalLimit
	if limit == 0 {
		limit = journalLimit
	}
	if j.appended.Add(int64(len(buf))) >= limit {
		b.kickCheckpoint()
	}
	return nil
}

// undo voids the record of c, a change that then failed: the last record
// of its message, so that no replay applies it. The caller holds the
// message's stripe lock, as when it appended the record. If wait is set,
// undo waits until the voiding is durable, and returns an error if it
// cannot be sure it is: then a replay may yet apply the failed change, and
// the Backend refuses further writes.
//
// It overwrites the record's magic in place, in bytes the record's own
// append allocated: so a full disk cannot stop it on a file system that
// writes in place (ext4, XFS, tmpfs).
func (b *Backend) undo(j *journal, c intent, wait bool) error {
	off, err := b.findRecord(j, wal.Append(nil, c.kind, c.state, c.file, c.data))
	if err == nil {
		err = b.fs.Overwrite(j.path, off, wal.VoidMagic())
	}
	switch {
	case err != nil:
	case !wait:
		return nil
	case b.failed.Load() != nil:
		err = errors.New("the journal's fsync has failed")
	default:
		b.stats.journalSyncRequests.Add(1)
		err = j.sync.sync()
	}
	if err != nil {
		err = fmt.Errorf("journal %s: cannot void the record of a failed change: %w", j.path, err)
		b.fail(err)
	}
	return err
}

// findRecord returns the offset of rec, the record a change appended to
// the journal, which is the last valid record of its message there.
func (b *Backend) findRecord(j *journal, rec []byte) (int64, error) {
	buf, err := b.readJournal(j.path)
	if err != nil {
		return 0, err
	}
	want, _, _ := wal.ParseRecord(rec)
	at := -1
	wal.Walk(buf, func(r wal.Record, off, n int) {
		if r.File == want.File {
			at = off
			if !bytes.Equal(buf[off:off+n], rec) {
				at = -1
			}
		}
	})
	if at < 0 {
		return 0, errors.New("the record is not the last of its message")
	}
	return int64(at), nil
}

// undone returns err, the error of a change that failed, saying so if
// uerr says its undoing was not recorded for sure.
func undone(err, uerr error) error {
	if uerr == nil {
		return err
	}
	return fmt.Errorf("%w; %v, so a replay may yet apply the change: the backend refuses writes until reopened", err, uerr)
}

// findJournal returns the directory's journal, opening it if it has come
// to exist since the Backend opened, or nil if it has none. The caller
// holds a stripe lock, so no other Backend is creating it.
func (b *Backend) findJournal() (*journal, error) {
	if j := b.jnl.Load(); j != nil || b.cfg.readOnly || !b.changes.mayHaveJournal() {
		return j, nil
	}
	path := filepath.Join(b.dir, journalName)
	if _, err := b.fs.Lstat(path); isNotExist(err) {
		return nil, nil
	}
	b.jnlMu.Lock()
	defer b.jnlMu.Unlock()
	if j := b.jnl.Load(); j != nil {
		return j, nil
	}
	j, err := b.openJournal(path)
	if err != nil {
		return nil, err
	}
	b.jnl.Store(j)
	return j, nil
}

func (b *Backend) openJournal(path string) (*journal, error) {
	f, err := b.fs.OpenAppend(path, b.cfg.fileMode)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &journal{path: path, f: f, sync: newGroupSync(f, path)}, nil
}

// startJournal opens the directory's journal, creating it in Hybrid mode,
// and replays it. It runs in open, before any call.
func (b *Backend) startJournal(ctx context.Context) error {
	path := filepath.Join(b.dir, journalName)
	if b.cfg.mode() != Hybrid {
		if _, err := b.fs.Lstat(path); isNotExist(err) {
			return nil
		}
	}
	b.changes.markJournal()
	unlock, err := b.lockAll(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = b.fs.Lstat(path)
	created := isNotExist(err)
	j, err := b.openJournal(path)
	if err != nil {
		return err
	}
	b.jnl.Store(j)
	if created {
		// The journal's name must be durable before a record relies on it.
		if err := syncPath(b.fs, b.dir); err != nil {
			return fmt.Errorf("create journal %s: %w", path, err)
		}
		return nil
	}
	return b.checkpointLocked(j, true)
}

// lockAll takes the count gate, shared, and every stripe lock, in order,
// as a writer of every message would.
func (b *Backend) lockAll(ctx context.Context) (func(), error) {
	b.counts.gate.RLock()
	unlocks := make([]func(), 0, numStripes)
	release := func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
		b.counts.gate.RUnlock()
	}
	for i := range numStripes {
		u, err := b.lock(ctx, i)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// checkpointJournal makes every change recorded in j durable in the
// message files and empties j. In Performance mode it then removes the
// records that changes displaced, since its sync covered them too.
func (b *Backend) checkpointJournal(ctx context.Context, j *journal) error {
	left := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("journal not emptied; the next open replays it: %w", err)
	}
	if b.failed.Load() != nil {
		return errors.Join(left(b.journalLeft()), b.flushDisplaced())
	}
	if fi, err := j.f.Stat(); err == nil && fi.Size() == 0 {
		return b.flushDisplaced() // nothing to make durable; no need to stop the writers
	}
	unlock, err := b.lockAll(ctx)
	if err != nil {
		return left(err)
	}
	defer unlock()
	synced, err := b.checkpointSync(j, false)
	// No change can run under every stripe lock: the checkpoint's own
	// sync covers every record displaced so far.
	return errors.Join(left(err), b.flush(synced))
}

// journalLeft returns an error if the journal is not empty while the
// Backend refuses writes: then no checkpoint of the Backend empties it.
func (b *Backend) journalLeft() error {
	j, p := b.jnl.Load(), b.failed.Load()
	if j == nil || p == nil {
		return nil
	}
	fi, err := j.f.Stat()
	switch {
	case err != nil:
		return fmt.Errorf("journal %s may hold records: %w; the backend refuses writes: %w", j.path, err, *p)
	case fi.Size() > 0:
		return fmt.Errorf("journal %s holds %d bytes, which a backend that refuses writes cannot make durable: %w", j.path, fi.Size(), *p)
	}
	return nil
}

// checkpointLocked is checkpoint for a caller that holds every stripe
// lock; with replay, it first applies the journal's records to the files.
func (b *Backend) checkpointLocked(j *journal, replay bool) error {
	_, err := b.checkpointSync(j, replay)
	return err
}

// checkpointSync is checkpointLocked, and reports whether it synced the
// file system itself, successfully.
func (b *Backend) checkpointSync(j *journal, replay bool) (synced bool, err error) {
	fi, err := j.f.Stat()
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	if fi.Size() == 0 {
		return false, nil
	}
	var records []wal.Record // read by a replay; nil otherwise
	if replay {
		// A Performance-mode writer appends without syncing: the records
		// replayed must be durable before the files they replace go.
		if err := j.f.Sync(); err != nil {
			b.fail(err)
			return false, fmt.Errorf("checkpoint: fsync %s: %w", j.path, err)
		}
		if records, err = b.replay(j); err != nil {
			return false, err
		}
	}
	if err := b.trackJournal(j.path, records); err != nil {
		return false, err
	}
	if err := b.syncAll(); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			// Nothing was synced, nor dropped: the journal stays.
			return false, fmt.Errorf("checkpoint %s: %w", j.path, err)
		}
		return false, fmt.Errorf("checkpoint: %w", err) // the Backend refuses writes (see syncAll)
	}
	if err := b.fs.Truncate(j.path, 0); err != nil {
		return true, fmt.Errorf("checkpoint: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		b.fail(err)
		return true, fmt.Errorf("checkpoint: fsync %s: %w", j.path, err)
	}
	j.appended.Store(0)
	b.stats.checkpoints.Add(1)
	if b.cfg.onCheckpoint != nil {
		b.cfg.onCheckpoint()
	}
	return true, nil
}

// readJournal returns the contents of the journal at path.
func (b *Backend) readJournal(path string) ([]byte, error) {
	f, err := b.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// replay applies the last record of each message in the journal to the
// message files, and returns the records. The caller holds every stripe
// lock.
func (b *Backend) replay(j *journal) ([]wal.Record, error) {
	buf, err := b.readJournal(j.path)
	if err != nil {
		return nil, fmt.Errorf("replay journal: %w", err)
	}
	records, skipped := wal.Parse(buf)
	if skipped > 0 {
		b.log.Warn("journal has damaged records, skipped; they were never acknowledged", "path", j.path, "bytes", skipped)
	}
	before := b.stats.recoveryActions.Load()
	for _, r := range records {
		if err := b.applyRecord(r); err != nil {
			return nil, fmt.Errorf("replay journal %s: %w", j.path, err)
		}
	}
	if n := b.stats.recoveryActions.Load() - before; n > 0 {
		b.log.Warn("journal replayed: message files changed to match it", "path", j.path, "messages", len(records), "changes", n)
	}
	return records, nil
}

// applyRecord makes the message files what r says, without fsync: the
// message's file in r's state holds r's contents, and no other state holds
// the message. It puts r's copy in place before it removes the others, so
// that a replay cut off between the two leaves the message in two states,
// which the next replay or recovery resolves, and never in none.
func (b *Backend) applyRecord(r wal.Record) error {
	keep := nowhere
	if r.Kind == wal.KindPut {
		keep = r.State
		if err := b.placeRecord(r); err != nil {
			return err
		}
	}
	for _, s := range metastorage.States() {
		if s == keep {
			continue
		}
		path := b.path(s, r.File)
		fi, err := b.fs.Lstat(path)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			if _, err := b.moveToCorrupt(s, r.File); err != nil {
				return err
			}
			continue
		}
		if err := b.change(opRemove, path, ""); err != nil {
			return err
		}
		b.stats.recoveryActions.Add(1)
	}
	return nil
}

// placeRecord makes the message's file in r's state hold r's contents.
func (b *Backend) placeRecord(r wal.Record) error {
	dst := b.path(r.State, r.File)
	fi, err := b.fs.Lstat(dst)
	exists := err == nil
	switch {
	case isNotExist(err):
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		if _, err := b.moveToCorrupt(r.State, r.File); err != nil {
			return err
		}
		exists = false
	default:
		if same, err := b.sameContents(dst, r.Data); err != nil || same {
			return err
		}
	}
	tmp, err := b.writeTemp(r.State, r.File, r.Data, false)
	if err != nil {
		return err
	}
	if exists {
		err = b.replace(tmp, dst, false) // the journal has the record
	} else {
		err = b.placeNew(tmp, r.State, r.File)
	}
	if err != nil {
		b.removeTemp(tmp)
		return err
	}
	b.stats.recoveryActions.Add(1)
	return nil
}

// sameContents reports whether the file path holds exactly data.
func (b *Backend) sameContents(path string, data []byte) (bool, error) {
	f, err := b.fs.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	got, err := codec.ReadFile(f, nil, bp)
	if err != nil {
		return false, nil // damaged or oversized: not the record
	}
	return bytes.Equal(got, data), nil
}
