package filesystem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// changesName is the file under .locks whose memory, mapped by every
// writable Backend on the directory, holds the change counters.
const changesName = "changes"

// The lock files under .locks that tell the Backends on a directory apart.
const (
	// openingName is held exclusively by a writable Backend while it
	// joins the others, and by the one that establishes the message
	// counts until they are.
	openingName = "opening"
	// backendsName is held shared by every open writable Backend, and
	// exclusively by the one that establishes the counts: a Backend that
	// can take it exclusively is alone on the directory.
	backendsName = "backends"
)

// changes is a counter for each state and stripe, in memory that every
// writable Backend on the directory shares, in this process or another.
// Around each rename or removal of a message file of stripe i in a state's
// directory, the writer, who holds stripe i's lock, makes the counter of
// that state and stripe odd, and then even again. So a reader that finds
// the same even value before it opens a message file and later knows that
// the file is still the one under the message's name: no file of the
// stripe entered or left the directory meanwhile.
//
// The same memory holds the number of messages of each state and stripe.
// A writer changes it while the change counter is odd, after the rename or
// removal, so every change made through a Backend is counted once. A
// writer killed in between leaves the change counter odd, and its count
// perhaps wrong. The next holder of that stripe's lock finds the counter
// odd, counts the stripe's names in the state's directory again, and
// makes the counter even (see Backend.heal).
//
// The memory is not durable: a reboot may leave zeros or old values, and
// files may be changed by hand while no Backend runs. So the first
// writable Backend to open the directory while no other has it open
// counts the state directories, and only then marks the counts as known
// (see join). Every other Backend opens after that.
//
// A nil *changes tracks nothing: every snapshot is unusable.
type changes struct {
	counters.Table
	unmap func() error
	// alone is set if no other Backend had the directory open: this one
	// establishes the counts, holding opening and backends exclusively
	// until it has.
	alone    bool
	opening  vfs.Lock // nil once released
	backends vfs.Lock
}

// openChanges maps the counters of the directory whose lock files are in
// lockDir, after joining the other Backends on it. It returns nil, and no
// error, if fsys has no shared memory.
func openChanges(fsys vfs.FS, lockDir string, perm fs.FileMode) (*changes, error) {
	if _, ok := fsys.(vfs.SharedMemory); !ok {
		return nil, nil
	}
	j := &changes{}
	if err := j.join(fsys, lockDir, perm); err != nil {
		j.close()
		return nil, err
	}
	c, err := mapChanges(fsys, lockDir, perm, j.alone)
	if c == nil || err != nil {
		j.close()
		return nil, err
	}
	c.alone, c.opening, c.backends = j.alone, j.opening, j.backends
	if c.alone {
		c.CountsKnown().Store(0)
		return c, nil
	}
	if c.CountsKnown().Load() != 1 {
		c.close()
		return nil, fmt.Errorf("%s: the message counts are not established, although other Backends have the directory open", filepath.Join(lockDir, changesName))
	}
	err = c.opening.Unlock()
	c.opening.Close()
	c.opening = nil
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// mapChanges maps the counters of the directory whose lock files are in
// lockDir. If takeOver, a new file or one of a previous layout is marked
// as of this layout; else it must be already. It returns nil, and no
// error, if fsys has no shared memory.
func mapChanges(fsys vfs.FS, lockDir string, perm fs.FileMode, takeOver bool) (*changes, error) {
	sm, ok := fsys.(vfs.SharedMemory)
	if !ok {
		return nil, nil
	}
	path := filepath.Join(lockDir, changesName)
	if err := checkChangesFile(fsys, path, takeOver); err != nil {
		return nil, err
	}
	mem, unmap, err := sm.MapShared(path, counters.Size, perm)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := &changes{Table: counters.New(mem), unmap: unmap}
	magic := c.MagicWord()
	marked := false
	if takeOver {
		for _, m := range []uint64{0, counters.Magic1, counters.Magic2, counters.Magic3} {
			marked = magic.CompareAndSwap(m, counters.Magic) || marked
		}
	}
	if m := magic.Load(); m != counters.Magic {
		err := foreignChanges(path, m)
		if isOlderMagic(m) {
			err = olderChanges(path)
		}
		unmap()
		return nil, err
	}
	if marked {
		// The magic word marks the directory for older versions, which
		// refuse it, also after a reboot: it must not be lost with the
		// page cache, or found as zeros, which they would take over. It is
		// written to the file too, for a file system whose shared memory
		// is not the file's.
		var word [8]byte
		binary.NativeEndian.PutUint64(word[:], counters.Magic)
		err := fsys.Overwrite(path, 0, word[:])
		if err == nil {
			err = errors.Join(syncFile(fsys, path), syncPath(fsys, lockDir))
		}
		if err != nil {
			unmap()
			return nil, fmt.Errorf("mark %s as of this version: %w", path, err)
		}
	}
	return c, nil
}

// isOlderMagic reports whether m is the magic word of a previous layout
// or version.
func isOlderMagic(m uint64) bool {
	return m == counters.Magic1 || m == counters.Magic2 || m == counters.Magic3
}

// join takes the lock opening exclusively, waiting for another Backend
// that holds it, and then the lock backends: exclusively if no other
// Backend holds it (c.alone), else shared.
func (c *changes) join(fsys vfs.FS, lockDir string, perm fs.FileMode) error {
	var err error
	if c.opening, err = fsys.OpenLock(filepath.Join(lockDir, openingName), perm); err != nil {
		return err
	}
	if c.backends, err = fsys.OpenLock(filepath.Join(lockDir, backendsName), perm); err != nil {
		return err
	}
	// flock(2) cannot be interrupted, so the lock is polled. It is held
	// long only while a Backend counts the directories.
	for pause := 20 * time.Microsecond; ; pause = min(pause*2, 10*time.Millisecond) {
		ok, err := c.opening.TryLock()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		time.Sleep(pause)
	}
	ok, err := c.backends.TryLock()
	if err != nil || ok {
		c.alone = ok
		return err
	}
	// A Backend that holds backends exclusively also holds opening: so
	// the others hold it shared.
	if ok, err := c.backends.TryLockShared(); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("%s: held exclusively by a Backend that does not hold %s", filepath.Join(lockDir, backendsName), openingName))
	}
	return nil
}

// publish marks the message counts as established, and lets other
// Backends join. Only the Backend alone on the directory calls it, once.
func (c *changes) publish() error {
	c.CountsKnown().Store(1)
	// No other Backend tries backends while this one holds opening, so the
	// conversion, which flock(2) does not make atomic, lets none in.
	ok, err := c.backends.TryLockShared()
	if err == nil && !ok {
		err = errors.New("taken by another Backend")
	}
	if err != nil {
		err = fmt.Errorf("lock %s shared: %w", backendsName, err)
	}
	// Released even so: a Backend that joins then fails at once, rather
	// than wait for this one to close.
	err = errors.Join(err, c.opening.Unlock())
	c.opening.Close()
	c.opening = nil
	return err
}

// checkChangesFile refuses the file at path if it starts with anything but
// the magic word, those of the previous layouts, or zeros (a file being
// set up by another Backend), before mapping it could extend it: a file of
// another format is left as it is. A file of a previous layout is refused
// unless this Backend is alone on the directory.
func checkChangesFile(fsys vfs.FS, path string, alone bool) error {
	f, err := fsys.Open(path)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var word [8]byte
	n, err := io.ReadFull(f, word[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	m := binary.NativeEndian.Uint64(word[:])
	switch {
	case m == 0 || n == len(word) && m == counters.Magic:
		return nil
	case n == len(word) && isOlderMagic(m):
		if alone {
			return nil
		}
		return olderChanges(path)
	}
	return foreignChanges(path, word[:n])
}

// foreignChanges is the error of a counters file at path that starts with
// start instead of the magic word.
func foreignChanges(path string, start any) error {
	return fmt.Errorf("%s: not a file of change counters of this version (it starts with %#x)", path, start)
}

// olderChanges is the error of a counters file at path of a previous
// layout, while other Backends have the directory open.
func olderChanges(path string) error {
	return fmt.Errorf("%s: change counters of an older version, in use: stop the processes of the older version, then open the directory again", path)
}

func (c *changes) close() error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.unmap != nil {
		errs = append(errs, c.unmap())
	}
	for _, l := range []vfs.Lock{c.opening, c.backends} {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}

// markJournal records that the directory has, or is about to have, a
// journal. Every Backend that finds or creates the journal calls it first,
// so that the flag is set again after a reboot left it clear on disk.
func (c *changes) markJournal() {
	if c != nil {
		c.MarkJournal()
	}
}

// mayHaveJournal reports whether the directory may have a journal: false
// only if no Backend has marked one since the counters were created, so
// that a writer can skip looking for it. Without counters it is true.
func (c *changes) mayHaveJournal() bool {
	return c == nil || c.MayHaveJournal()
}

// syncBegun counts a sync of the file system that a Backend on the
// directory is about to begin.
func (c *changes) syncBegun() {
	if c != nil {
		c.SyncBegun()
	}
}

// syncEnded counts a sync of the file system that has returned, whether
// or not it failed.
func (c *changes) syncEnded() {
	if c != nil {
		c.SyncEnded()
	}
}

// syncs returns the syncs of the file system that Backends on the directory
// have begun and ended, and false without counters.
func (c *changes) syncs() (counters.SyncCount, bool) {
	if c == nil {
		return counters.SyncCount{}, false
	}
	return c.Syncs(), true
}

// snapshot returns the counter of state s and stripe, and whether a
// reader can use it: it is even, no change being under way.
func (c *changes) snapshot(s metastorage.QueueState, stripe int) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	return c.Snapshot(s, stripe)
}
