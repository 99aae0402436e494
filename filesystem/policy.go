package filesystem

import (
	"context"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// durability decides when a change of a message becomes durable. The
// write path calls its methods in this order: record before the change
// touches a file, then either settle once the files have changed, or void
// if the change failed after record returned nil. A checkpoint, in the
// background and at Close, makes durable what the changes left to later.
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
	// checkpoint makes durable every change that the policy left to a
	// later sync, and then drops what it kept until then: the journal's
	// records, the displaced records. Its error says what it left, which
	// the next open finishes.
	checkpoint(ctx context.Context) error
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
	if err != nil {
		return nil, err
	}
	return b.policyWith(j), nil
}

// policyWith returns the durability of changes on a directory whose
// journal is j, or that has none if j is nil.
func (b *Backend) policyWith(j *journal) durability {
	switch {
	case j != nil:
		return journaled{b: b, j: j}
	case b.durable():
		return standard{b}
	}
	return performance{b}
}

// checkpoint runs the checkpoint of the Backend's policy. A journal the
// Backend has not found yet holds none of its changes.
func (b *Backend) checkpoint(ctx context.Context) error {
	return b.policyWith(b.jnl.Load()).checkpoint(ctx)
}

// checkpointer runs a checkpoint every period, if it is positive, and
// whenever kicked, until ctx is done.
func (b *Backend) checkpointer(ctx context.Context, every time.Duration) {
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-b.kick:
		}
		if err := b.checkpoint(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("checkpoint failed; changes not yet synced may be lost", "dir", b.dir, "err", err)
		}
	}
}

// kickCheckpoint asks the checkpointer for a checkpoint before its time.
func (b *Backend) kickCheckpoint() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
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

func (standard) checkpoint(context.Context) error { return nil }

// performance fsyncs nothing: the kernel writes the changes back in its
// own time. Its checkpoint syncs the file system and then removes the
// records that changes displaced (see displaced.go).
type performance struct{ b *Backend }

func (performance) syncsFiles() bool                       { return false }
func (performance) record(intent) error                    { return nil }
func (performance) void(_ intent, err error) error         { return err }
func (performance) settle(...metastorage.QueueState) error { return nil }
func (p performance) checkpoint(context.Context) error     { return p.b.flushDisplaced() }

// journaled appends each change to the directory's journal before its
// files change, and waits for the journal's fsync if the mode is durable; the
// files themselves are never synced but at a checkpoint, which empties the
// journal once they are.
type journaled struct {
	b *Backend
	j *journal
}

func (journaled) syncsFiles() bool                       { return false }
func (p journaled) record(c intent) error                { return p.b.journalChange(p.j, c, p.b.durable()) }
func (journaled) settle(...metastorage.QueueState) error { return nil }
func (p journaled) checkpoint(ctx context.Context) error { return p.b.checkpointJournal(ctx, p.j) }

func (p journaled) void(c intent, err error) error {
	return undone(err, p.b.undo(p.j, c, p.b.durable()))
}
