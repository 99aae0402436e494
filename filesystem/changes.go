package filesystem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// changesName is the file under .locks whose memory, mapped by every
// writable Backend on the directory, holds the change counters.
const changesName = "changes"

const (
	changesMagic = 0x32306d7367686373 // "schgsm02" as little-endian bytes: the layout below
	// changesMagic1 marks the layout before the sync counts, which a
	// Backend takes over: then Backends of that version refuse the file,
	// since their syncs would not be counted.
	changesMagic1 = 0x31306d7367686373 // "schgsm01"
	changesHeader = 64                 // bytes before the counters: the magic word, the journal flag, the syncs
	changesSize   = changesHeader + metastorage.NumStates*numStripes*8
	journalFlag   = 8  // offset of the word that is 1 once the directory may have a journal
	syncsBegun    = 16 // offset of the count of syncs of the file system begun
	syncsEnded    = 24 // offset of the count of syncs of the file system ended
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
// A nil *changes tracks nothing: every snapshot is unusable.
type changes struct {
	mem   []byte
	unmap func() error
}

// openChanges maps the counters of the directory whose lock files are in
// lockDir. It returns nil, and no error, if fsys has no shared memory.
func openChanges(fsys vfs.FS, lockDir string, perm fs.FileMode) (*changes, error) {
	sm, ok := fsys.(vfs.SharedMemory)
	if !ok {
		return nil, nil
	}
	path := filepath.Join(lockDir, changesName)
	if err := checkChangesFile(fsys, path); err != nil {
		return nil, err
	}
	mem, unmap, err := sm.MapShared(path, changesSize, perm)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := &changes{mem: mem, unmap: unmap}
	magic := c.word(0)
	if !magic.CompareAndSwap(0, changesMagic) && !magic.CompareAndSwap(changesMagic1, changesMagic) {
		if m := magic.Load(); m != changesMagic {
			unmap()
			return nil, foreignChanges(path, m)
		}
	}
	return c, nil
}

// checkChangesFile refuses the file at path if it starts with anything but
// the magic word, that of the previous layout, or zeros (a file being set
// up by another Backend), before mapping it could extend it: a file of
// another format is left as it is.
func checkChangesFile(fsys vfs.FS, path string) error {
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
	if m := binary.NativeEndian.Uint64(word[:]); m != 0 && (n < len(word) || m != changesMagic && m != changesMagic1) {
		return foreignChanges(path, word[:n])
	}
	return nil
}

// foreignChanges is the error of a counters file at path that starts with
// start instead of the magic word.
func foreignChanges(path string, start any) error {
	return fmt.Errorf("%s: not a file of change counters of this version (it starts with %#x)", path, start)
}

func (c *changes) close() error {
	if c == nil {
		return nil
	}
	return c.unmap()
}

// markJournal records that the directory has, or is about to have, a
// journal. Every Backend that finds or creates the journal calls it first,
// so that the flag is set again after a reboot left it clear on disk.
func (c *changes) markJournal() {
	if c != nil {
		c.word(journalFlag).Store(1)
	}
}

// mayHaveJournal reports whether the directory may have a journal: false
// only if no Backend has marked one since the counters were created, so
// that a writer can skip looking for it. Without counters it is true.
func (c *changes) mayHaveJournal() bool {
	return c == nil || c.word(journalFlag).Load() != 0
}

// syncCount is how many syncs of the whole file system (syncfs) Backends
// on the directory have begun and ended. While it holds one value, no sync
// began, and none that was under way was counted as ended (one whose
// process died before it counted the end never is).
type syncCount struct{ begun, ended uint64 }

// syncBegun counts a sync of the file system that a Backend on the
// directory is about to begin.
func (c *changes) syncBegun() {
	if c != nil {
		c.word(syncsBegun).Add(1)
	}
}

// syncEnded counts a sync of the file system that has returned, whether
// or not it failed.
func (c *changes) syncEnded() {
	if c != nil {
		c.word(syncsEnded).Add(1)
	}
}

// syncs returns the syncs of the file system that Backends on the directory
// have begun and ended, and false without counters.
func (c *changes) syncs() (syncCount, bool) {
	if c == nil {
		return syncCount{}, false
	}
	return syncCount{c.word(syncsBegun).Load(), c.word(syncsEnded).Load()}, true
}

func (c *changes) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

func (c *changes) counter(s metastorage.QueueState, stripe int) *atomic.Uint64 {
	return c.word(changesHeader + (int(s)*numStripes+stripe)*8)
}

// begin makes the counter of state s and stripe odd: a change is under
// way. The caller holds the stripe's lock, so no one else writes the
// counter; an odd value found is that of a holder that died mid-change.
func (c *changes) begin(s metastorage.QueueState, stripe int) {
	v := c.counter(s, stripe)
	n := v.Load()
	if n%2 == 1 {
		n++
	}
	v.Store(n + 1)
}

// end makes the counter of state s and stripe even again.
func (c *changes) end(s metastorage.QueueState, stripe int) {
	v := c.counter(s, stripe)
	v.Store(v.Load() + 1)
}

// snapshot returns the counter of state s and stripe, and whether a
// reader can use it: it is even, no change being under way.
func (c *changes) snapshot(s metastorage.QueueState, stripe int) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	n := c.counter(s, stripe).Load()
	return n, n%2 == 0
}

// unchanged reports whether the counter of state s and stripe still holds
// n, a usable snapshot.
func (c *changes) unchanged(s metastorage.QueueState, stripe int, n uint64) bool {
	return c.counter(s, stripe).Load() == n
}

// changeFS is the file system of a writable Backend with change counters:
// each rename, exchange or removal of a message file in a state's
// directory is counted, by construction, whatever code makes it.
type changeFS struct {
	vfs.FS
	c      *changes
	states *[metastorage.NumStates]string
	names  *names // told of each change
}

// SyncAll implements vfs.SyncFS if the wrapped file system does.
func (f *changeFS) SyncAll(dir vfs.File) error {
	s, ok := f.FS.(vfs.SyncFS)
	if !ok {
		return &fs.PathError{Op: "syncfs", Path: fmt.Sprint(dir), Err: errors.ErrUnsupported}
	}
	return s.SyncAll(dir)
}

// target is a message file in a state's directory: the counter a change
// of it moves.
type target struct {
	state  metastorage.QueueState
	stripe int
}

// target returns the target that path names, if it is a message file in a
// state's directory: a name that name.Decode accepts, as readers take
// them. Temp files are not, and their changes are made under the lock of
// their message's stripe, which is not that of their own name.
func (f *changeFS) target(path string) (target, bool) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return target{}, false
	}
	dir, file := path[:i], path[i+1:]
	if _, ok := name.Decode(file); !ok {
		return target{}, false
	}
	for s, d := range f.states {
		if d == dir {
			return target{metastorage.QueueState(s), stripeOf(file)}, true
		}
	}
	return target{}, false
}

// changing is a change under way: the targets whose counters it made odd,
// and whether the Backend's names knew their names just before.
type changing struct {
	a, b           target
	okA, okB       bool
	knownA, knownB bool
	newInA         bool // the new name is a's
}

// begin counts a change of the names old and new (new may be "") as begun.
func (f *changeFS) begin(old, new string) changing {
	var c changing
	c.a, c.okA = f.target(old)
	if new != "" {
		var ok bool
		c.b, ok = f.target(new)
		c.newInA = ok && c.okA && c.b == c.a
		c.okB = ok && !c.newInA
	}
	if c.okA {
		c.knownA = f.names.current(f.c, c.a)
		f.c.begin(c.a.state, c.a.stripe)
	}
	if c.okB {
		c.knownB = f.names.current(f.c, c.b)
		f.c.begin(c.b.state, c.b.stripe)
	}
	return c
}

// end counts the change c as ended, and tells the Backend's names that it
// removed the name gone and added came ("" for none), unless it failed.
func (f *changeFS) end(c changing, err error, gone, came string) {
	if c.okB {
		f.c.end(c.b.state, c.b.stripe)
		f.names.changed(f.c, c.b, c.knownB, err, "", came)
	}
	if c.okA {
		f.c.end(c.a.state, c.a.stripe)
		if !c.newInA {
			came = ""
		}
		f.names.changed(f.c, c.a, c.knownA, err, gone, came)
	}
}

func (f *changeFS) Rename(oldname, newname string) error {
	c := f.begin(oldname, newname)
	err := f.FS.Rename(oldname, newname)
	f.end(c, err, oldname, newname)
	return err
}

func (f *changeFS) RenameNoReplace(oldname, newname string) error {
	c := f.begin(oldname, newname)
	err := f.FS.RenameNoReplace(oldname, newname)
	f.end(c, err, oldname, newname)
	return err
}

// Exchange swaps two names, so each directory keeps the names it had.
func (f *changeFS) Exchange(oldname, newname string) error {
	c := f.begin(oldname, newname)
	err := f.FS.Exchange(oldname, newname)
	f.end(c, err, "", "")
	return err
}

func (f *changeFS) Remove(name string) error {
	c := f.begin(name, "")
	err := f.FS.Remove(name)
	f.end(c, err, name, "")
	return err
}
