package filesystem

import (
	"path/filepath"
	"strings"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// nowhere stands for "in no state" where a state is expected.
const nowhere metastorage.QueueState = -1

// changed keeps the bookkeeping of a message whose file a call changed,
// beside what change kept: now is the state the message lies in, or
// nowhere once deleted. The caller holds the message's stripe lock.
func (b *Backend) changed(file string, now metastorage.QueueState) {
	b.displaced.wrote()
	if now == nowhere {
		b.recent.forget(file, stripeOf(file))
		b.stats.deletes.Add(1)
		return
	}
	b.stats.writes.Add(1)
}

// Stats returns a snapshot of the Backend's counters.
func (b *Backend) Stats() Stats {
	st := b.stats.totals()
	if j := b.jnl.Load(); j != nil {
		j.sync.mu.Lock()
		st.JournalSyncs = int64(j.sync.done)
		j.sync.mu.Unlock()
	}
	for _, d := range b.dirs {
		if d != nil {
			d.mu.Lock()
			st.DirSyncs += int64(d.done)
			d.mu.Unlock()
		}
	}
	return st
}

// skipUnreadable logs and counts the message file at path, skipped by a
// listing, an iteration or a scan because err says it cannot be read.
func (b *Backend) skipUnreadable(path string, err error) {
	b.stats.unreadableFiles.Add(1)
	b.log.Warn("skipping message file that cannot be read; calls on its message fail until its owner or mode is fixed",
		"path", path, "err", pathErrReason(err))
}

// entryOp is a change of directory entries that Backend.change makes.
type entryOp int

const (
	opRename          entryOp = iota // rename old over whatever new names
	opRenameNoReplace                // rename old to new, which must not exist
	opExchange                       // swap old and new
	opRemove                         // remove old
)

// change makes one change of directory entries that may be message files
// (old, and new unless op is opRemove; both paths), and keeps the
// bookkeeping of the message files it touches: their change counters,
// odd around it (see changes), and the message counts, told while the
// counter is odd. The caller holds the lock
// of the message's stripe. Every rename, exchange and removal that may
// touch a message file goes through change; those of temp files alone
// need not.
func (b *Backend) change(op entryOp, old, new string) error {
	c := b.beginChange(old, new)
	// The stripe's lock is held: no Backend adds or removes either name
	// meanwhile.
	var err error
	switch op {
	case opRename:
		// Only a move out of the state directories (to corrupt/) may be of
		// an entry that is not a regular file: the Backend moves and
		// removes only the message files it found.
		counted := c.okB || b.regular(old, c.okA)
		replaced := b.regular(new, c.okB)
		if err = b.fs.Rename(old, new); err == nil {
			b.tally(c.a, c.okA && counted, old, false, -1)
			if replaced {
				b.tally(c.b, c.okB, new, true, 0)
			} else {
				b.tally(c.b, c.okB, new, true, 1)
			}
		}
	case opRenameNoReplace:
		err = b.renameNoReplace(c, old, new)
	case opExchange:
		// Each directory keeps the names it had.
		err = b.fs.Exchange(old, new)
	case opRemove:
		if err = b.fs.Remove(old); err == nil {
			b.tally(c.a, c.okA, old, false, -1)
		}
	}
	b.endChange(c)
	return err
}

// renameNoReplace renames old to new, which must not exist, as the change
// c begun by beginChange(old, new), and tallies it.
func (b *Backend) renameNoReplace(c changing, old, new string) error {
	counted := c.okB || b.regular(old, c.okA)
	err := b.fs.RenameNoReplace(old, new)
	if err == nil {
		b.tally(c.a, c.okA && counted, old, false, -1)
		b.tally(c.b, c.okB, new, true, 1)
	}
	return err
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
func (b *Backend) target(path string) (target, bool) {
	i := strings.LastIndexByte(path, filepath.Separator)
	if i < 0 {
		return target{}, false
	}
	dir, file := path[:i], path[i+1:]
	if _, ok := name.Decode(file); !ok {
		return target{}, false
	}
	for s, d := range b.states {
		if d == dir {
			return target{metastorage.QueueState(s), stripeOf(file)}, true
		}
	}
	return target{}, false
}

// changing is a change under way: the targets of its names, if they are
// message files, whose counters it made odd.
type changing struct {
	a, b     target
	okA, okB bool
}

// both reports whether c's second target is another counter than its first.
func (c changing) both() bool { return c.okB && !(c.okA && c.b == c.a) }

// beginChange counts a change of the names old and new (new may be "") as
// begun. Without change counters it only finds their targets.
func (b *Backend) beginChange(old, new string) changing {
	var c changing
	c.a, c.okA = b.target(old)
	if new != "" {
		c.b, c.okB = b.target(new)
	}
	if b.changes == nil {
		return c
	}
	if c.okA {
		b.changes.Begin(c.a.state, c.a.stripe)
	}
	if c.both() {
		b.changes.Begin(c.b.state, c.b.stripe)
	}
	return c
}

// endChange counts the change c as ended.
func (b *Backend) endChange(c changing) {
	if b.changes == nil {
		return
	}
	if c.both() {
		b.changes.End(c.b.state, c.b.stripe)
	}
	if c.okA {
		b.changes.End(c.a.state, c.a.stripe)
	}
}

// regular reports whether path, a message file's name in a state's
// directory if message is set, names a regular file: one that the counts
// hold. An error other than its absence counts as one.
func (b *Backend) regular(path string, message bool) bool {
	if !message {
		return false
	}
	fi, err := b.fs.Lstat(path)
	return err == nil && fi.Mode().IsRegular() || err != nil && !isNotExist(err)
}

// tally tells the counts, if ok, that the message file at path, of
// target t, is present after a change or not, and by how much the change
// moved its state's count. It is called while the change counter is odd,
// so that a writer killed before it leaves the counter odd.
func (b *Backend) tally(t target, ok bool, path string, present bool, delta int64) {
	if ok {
		b.counts.set(t, path[strings.LastIndexByte(path, filepath.Separator)+1:], present, delta)
	}
}
