package filesystem

import (
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// durability decides when a change of a message becomes durable. The
// write path calls its methods in this order: record before the change
// touches a file, then either settle once the files have changed, or void
// if the change failed after record returned nil.
//
// There are three: standard (fsync each file and directory), performance
// (fsync nothing) and journaled (the write-ahead journal of Hybrid mode).
// Once a directory has a journal, every change on it is journaled,
// whatever the Backend's mode: see Backend.policy.
type durability interface {
	// syncsFiles reports whether each change fsyncs its own temp file,
	// before it is renamed into place, and its directories.
	syncsFiles() bool
	// record makes c durable ahead of its file changes, where the policy
	// does so. On error the message is unchanged.
	record(c intent) error
	// void cancels c, recorded earlier, after its file changes failed
	// with err. It returns err, extended if the cancellation may not be
	// durable.
	void(c intent, err error) error
	// settle makes a change durable once its files have changed in the
	// directories of states, synced in the order given. An error is final
	// for the Backend.
	settle(states ...metastorage.QueueState) error
}

// intent is what a change of a message leaves, as the journal records it:
// the message's whole new record in a state, or its deletion.
type intent struct {
	kind  byte // wal.KindPut or wal.KindDelete
	state metastorage.QueueState
	file  string
	data  []byte
}

func putIntent(s metastorage.QueueState, file string, data []byte) intent {
	return intent{kind: wal.KindPut, state: s, file: file, data: data}
}

func deleteIntent(file string) intent { return intent{kind: wal.KindDelete, file: file} }

// policy returns the durability of a change made now. The caller holds
// the message's stripe lock, so the journal cannot appear meanwhile.
func (b *Backend) policy() (durability, error) {
	j, err := b.findJournal()
	switch {
	case err != nil:
		return nil, err
	case j != nil:
		return journaled{b: b, j: j}, nil
	case b.durable():
		return standard{b}, nil
	}
	return performance{b}, nil
}

// durable reports whether the Backend's mode makes every call that
// returned nil durable: Standard and Hybrid do, Performance does not.
func (b *Backend) durable() bool { return b.cfg.mode() != Performance }

// standard fsyncs each new file before it takes a message's name, and the
// directories a change touched before its call returns.
type standard struct{ b *Backend }

func (standard) syncsFiles() bool               { return true }
func (standard) record(intent) error            { return nil }
func (standard) void(_ intent, err error) error { return err }

func (p standard) settle(states ...metastorage.QueueState) error {
	return p.b.syncDirs(states...)
}

// performance fsyncs nothing: the kernel writes the changes back in its
// own time.
type performance struct{ b *Backend }

func (performance) syncsFiles() bool                       { return false }
func (performance) record(intent) error                    { return nil }
func (performance) void(_ intent, err error) error         { return err }
func (performance) settle(...metastorage.QueueState) error { return nil }

// journaled appends each change to the directory's journal before its
// files change, and waits for the journal's fsync if the mode is durable; the
// files themselves are never synced but at a checkpoint.
type journaled struct {
	b *Backend
	j *journal
}

func (journaled) syncsFiles() bool                       { return false }
func (p journaled) record(c intent) error                { return p.b.journalChange(p.j, c, p.b.durable()) }
func (journaled) settle(...metastorage.QueueState) error { return nil }

func (p journaled) void(c intent, err error) error {
	return undone(err, p.b.undo(p.j, c, p.b.durable()))
}
