package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/counters"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// found is what a writer found of a message under its stripe lock.
type found struct {
	ok    bool
	state metastorage.QueueState
	md    metastorage.MessageMetadata // by the format's rule (see recordIn)
	// written is the file's State field, the state its record was written
	// in: state, unless a move renamed the file since (see moveFile).
	written metastorage.QueueState
	err     error // why the file found is not valid metadata, if it is not
	// mine is set if the file is the record this Backend wrote last (see
	// recent), when the syncs of the file system were syncs; only mutate
	// sets syncs.
	mine  bool
	syncs counters.SyncCount
}

// StoreMeta creates the message or replaces it whole; see
// metastorage.Backend. Created is set to the current time when zero, and
// Updated always; Updated only grows for a message, even if the clock steps
// back. A change of state moves the message atomically, content and state
// together, also across a crash.
func (b *Backend) StoreMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) error {
	const op = "store"
	if err := metastorage.CheckRecord(&md); err != nil {
		return fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		var prev time.Time
		if cur.ok && cur.err == nil {
			prev = cur.md.Updated
		}
		md.ID = messageID
		md.Updated = b.stamp(prev)
		if md.Created.IsZero() {
			md.Created = md.Updated
		}
		return b.put(op, messageID, file, cur, md)
	}, md.State)
}

// UpdateMeta replaces the record of an existing message, keeping its stored
// Created; see metastorage.Backend.
func (b *Backend) UpdateMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) error {
	const op = "update"
	if err := metastorage.CheckRecord(&md); err != nil {
		return fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if !cur.ok {
			return fmt.Errorf("%s %s: %w", op, messageID, metastorage.ErrMessageNotFound)
		}
		if cur.err != nil {
			return fmt.Errorf("%s %s: stored record cannot be read to keep its Created: %w", op, messageID, cur.err)
		}
		md.ID = messageID
		md.Created = cur.md.Created
		md.Updated = b.stamp(cur.md.Updated)
		return b.put(op, messageID, file, cur, md)
	}, md.State)
}

// UpdateMetaIn is UpdateMeta as a compare-and-swap: it replaces the record
// only if the message is in state from, and otherwise returns an error
// wrapping metastorage.ErrStateConflict that says where the message is. It
// serves tools that change a message beside a running queue: of a worker's
// MoveToState and an UpdateMetaIn from the same state, exactly one wins.
func (b *Backend) UpdateMetaIn(ctx context.Context, messageID string, from metastorage.QueueState, md metastorage.MessageMetadata) error {
	const op = "update"
	if err := metastorage.CheckRecord(&md); err != nil {
		return fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if err := b.expect(op, messageID, cur, from); err != nil {
			return err
		}
		md.ID = messageID
		md.Created = cur.md.Created
		md.Updated = b.stamp(cur.md.Updated)
		return b.put(op, messageID, file, cur, md)
	}, from, md.State)
}

// DeleteMetaIn is DeleteMeta as a compare-and-swap: it removes the message
// only if it is in state from, and otherwise returns an error wrapping
// metastorage.ErrStateConflict that says where the message is.
func (b *Backend) DeleteMetaIn(ctx context.Context, messageID string, from metastorage.QueueState) error {
	const op = "delete"
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if err := b.expect(op, messageID, cur, from); err != nil {
			return err
		}
		return b.remove(op, messageID, file, cur)
	}, from)
}

var _ metastorage.CompareAndSwapBackend = (*Backend)(nil)

// UpdateMetaIf replaces the record as UpdateMeta does, only if the stored
// record is the same as expected; see metastorage.CompareAndSwapBackend. The
// compare and the write are one step under the message's lock, across the
// processes that share the directory.
func (b *Backend) UpdateMetaIf(ctx context.Context, messageID string, expected, md metastorage.MessageMetadata) error {
	const op = "update"
	if err := metastorage.CheckRecord(&md); err != nil {
		return fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if err := b.expectRecord(op, messageID, cur, expected); err != nil {
			return err
		}
		md.ID = messageID
		md.Created = cur.md.Created
		md.Updated = b.stamp(cur.md.Updated)
		return b.put(op, messageID, file, cur, md)
	}, expected.State, md.State)
}

// DeleteMetaIf removes the message only if its stored record is the same as
// expected; see metastorage.CompareAndSwapBackend.
func (b *Backend) DeleteMetaIf(ctx context.Context, messageID string, expected metastorage.MessageMetadata) error {
	const op = "delete"
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if err := b.expectRecord(op, messageID, cur, expected); err != nil {
			return err
		}
		return b.remove(op, messageID, file, cur)
	}, expected.State)
}

// expectRecord is expect for a compare on the whole record.
func (b *Backend) expectRecord(op, id string, cur found, expected metastorage.MessageMetadata) error {
	if err := b.expect(op, id, cur, expected.State); err != nil {
		return err
	}
	if !metastorage.SameRecord(cur.md, expected) {
		b.stats.conflicts.Add(1)
		return fmt.Errorf("%s %s: record changed since it was read (updated %s): %w", op, id, cur.md.Updated.Format(time.RFC3339Nano), metastorage.ErrStateConflict)
	}
	return nil
}

// expect returns the conflict error of a compare-and-swap that found cur
// where it expected the message in state from, or nil if it is there and
// readable.
func (b *Backend) expect(op, id string, cur found, from metastorage.QueueState) error {
	switch {
	case !cur.ok:
		b.stats.conflicts.Add(1)
		return fmt.Errorf("%s %s: message not found in state %s: %w", op, id, from, metastorage.ErrStateConflict)
	case cur.state != from:
		b.stats.conflicts.Add(1)
		return fmt.Errorf("%s %s: message is in state %s, expected %s: %w", op, id, cur.state, from, metastorage.ErrStateConflict)
	case cur.err != nil:
		return fmt.Errorf("%s %s: %w", op, id, cur.err)
	}
	return nil
}

// DeleteMeta removes the message from whatever state it is in; see
// metastorage.Backend.
func (b *Backend) DeleteMeta(ctx context.Context, messageID string) error {
	const op = "delete"
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if !cur.ok {
			return fmt.Errorf("%s %s: %w", op, messageID, metastorage.ErrMessageNotFound)
		}
		return b.remove(op, messageID, file, cur)
	})
}

// remove deletes the message's file where cur found it.
func (b *Backend) remove(op, id, file string, cur found) error {
	d, err := b.policy()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	c := deleteIntent(file)
	if err := d.record(c); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if err := b.change(opRemove, b.path(cur.state, file), ""); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, d.void(c, err))
	}
	b.changed(file, nowhere)
	if err := b.checkDirs(cur.state); err != nil {
		return b.undoReplaced(op, id, d, c, cur, nowhere, err)
	}
	if err := d.settle(cur.state); err != nil {
		return b.rollback(op, id, d, file, cur, nowhere, err)
	}
	return nil
}

// MoveToState moves the message from one state to another as a
// compare-and-swap; see metastorage.Backend. It keeps every field but State
// and Updated. On a file system that keeps times to the nanosecond, a move
// out of the state that the message's file was written in is one rename
// of the file (see moveFile), also through a journal, which records the
// whole new record first; any other writes the whole record anew.
func (b *Backend) MoveToState(ctx context.Context, messageID string, from, to metastorage.QueueState) error {
	const op = "move"
	return b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if err := b.expect(op, messageID, cur, from); err != nil {
			return err
		}
		if from == to {
			return nil
		}
		md := cur.md
		md.ID = messageID
		md.State = to
		md.Updated = b.stamp(cur.md.Updated)
		// A file already moved holds a stale State field, and its time
		// is its Updated: set before the rename, a crash between the two
		// would leave the new Updated in the old state. So only a file
		// whose State field names its state is moved by a rename; that
		// also keeps a move back into the field's state from a stale
		// field.
		if !b.nanoTimes || cur.written != from {
			return b.put(op, messageID, file, cur, md)
		}
		d, err := b.policy()
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, messageID, err)
		}
		// Through a journal, the whole new record is durable in it
		// before the file changes, so that a replay after a crash
		// writes it, whether the rename persisted or not.
		var c intent
		if _, ok := d.(journaled); ok {
			data, err := codec.Encode(&md)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, messageID, err)
			}
			c = putIntent(to, file, data)
			if err := d.record(c); err != nil {
				return fmt.Errorf("%s %s: %w", op, messageID, err)
			}
		}
		err = b.moveFile(op, messageID, file, cur, to, md.Updated, d, c)
		switch {
		case !errors.Is(err, errTimeNotSet):
			return err
		case c.data != nil:
			return b.putRecorded(op, messageID, cur, d, c)
		}
		return b.put(op, messageID, file, cur, md)
	}, from, to)
}

// errTimeNotSet is wrapped by moveFile's error when it changed nothing
// because the file's time could not be set: the caller writes the whole
// record instead.
var errTimeNotSet = errors.New("cannot set the file's modification time")

// moveFile moves the message's file, found as cur in the state its State
// field names, to state to as one rename, with d the change's durability
// and c its journal record, if d is a journal (d.record(c) has returned
// nil). The file keeps its bytes; its modification time becomes updated,
// the message's new Updated, which the record's Updated is read from once
// the file lies in a state that its State field does not name (see
// recordIn), and is not before. The time is set first and, in Standard
// mode, synced before the rename, so that a file found after a crash in a
// directory its State field does not name has its move's time on stable
// storage; where metadata is journaled in order (b.ordered), the fsync of
// the new directory after the rename commits the time with it. Through a
// journal nothing is synced, as replay writes c's record whole. The
// rename runs under the change counters of both directories and under
// b.order, as relocate's. On error the message is
// as cur found it (its time, which no reader takes, may have changed),
// and c is voided (see durability.void) unless the error wraps
// errTimeNotSet: then the caller writes c's record whole. After a failed
// sync the Backend refuses writes, as after any.
func (b *Backend) moveFile(op, id, file string, cur found, to metastorage.QueueState, updated time.Time, d durability, c intent) error {
	from := cur.state
	src, dst := b.path(from, file), b.path(to, file)
	err := func() error {
		ch := b.beginChange(src, dst)
		defer b.endChange(ch)
		if err := b.setModTime(from, file, updated); err != nil {
			return fmt.Errorf("%w: %w", errTimeNotSet, err)
		}
		if d.syncsFiles() && !b.ordered {
			err := syncClose(b.fs.OpenIn(b.dirs[from].f, file))
			b.stats.fileSyncs.Add(1)
			if err != nil {
				b.fail(err)
				return fmt.Errorf("%w: the message stays in state %s", err, from)
			}
		}
		return b.order.rename(from, to, func() (bool, error) {
			err := b.renameNoReplace(ch, src, dst)
			if errors.Is(err, fs.ErrExist) {
				err = fmt.Errorf("message file lies in both %s and %s; run recovery: %w", src, dst, err)
			}
			return err == nil, err
		})
	}()
	if errors.Is(err, errTimeNotSet) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, d.void(c, err))
	}
	b.changed(file, to)
	if err := b.checkDirs(to); err != nil {
		return b.undoReplaced(op, id, d, c, cur, to, err)
	}
	if err := d.settle(b.movedSync(from, to)); err != nil {
		return b.rollback(op, id, d, file, cur, to, err)
	}
	return nil
}

// movedSync returns the state whose directory's fsync makes durable a
// message's file renamed from state from to state to. The old directory's
// fsync first makes the new one's entry durable (moveOrder); where
// metadata is journaled in order, the new one's commits both names, and
// the time set before the rename.
func (b *Backend) movedSync(from, to metastorage.QueueState) metastorage.QueueState {
	if b.ordered {
		return to
	}
	return from
}

// setModTime sets the modification time of the message file named file in
// state s's directory to t.
func (b *Backend) setModTime(s metastorage.QueueState, file string, t time.Time) error {
	ms, ok := b.fs.(vfs.ModTimeSetter)
	if !ok {
		return fmt.Errorf("%s: %w", b.path(s, file), errors.ErrUnsupported)
	}
	return ms.SetModTimeIn(b.dirs[s].f, file, t)
}

// mutate runs fn for the message under its stripe lock, with what locate
// finds of it, looking first in states[0]. states are the states the call
// names, checked first.
func (b *Backend) mutate(ctx context.Context, op, id string, fn func(file string, cur found) error, states ...metastorage.QueueState) (err error) {
	if k := opKind(op); k >= 0 {
		defer func() { b.stats.count(k, err) }()
	}
	if err := checkState(op, id, states...); err != nil {
		return err
	}
	file, err := b.fileName(op, id)
	if err != nil {
		return err
	}
	if err := b.beginWrite(ctx, op, id); err != nil {
		return err
	}
	defer b.end()
	b.counts.gate.RLock()
	defer b.counts.gate.RUnlock()
	stripe := stripeOf(file)
	unlock, err := b.lock(ctx, stripe)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	defer unlock()
	first := nowhere
	if len(states) > 0 {
		first = states[0]
	}
	wrote, syncs := b.recent.written(file, stripe)
	cur, err := b.locate(file, first, wrote)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if cur.mine {
		cur.syncs = syncs
	}
	if err := fn(file, cur); err != nil {
		b.recent.forget(file, stripe)
		return err
	}
	return nil
}

// locate finds the message's file and reads it, trying first the state
// first (unless it is nowhere), then the others. Under the message's
// stripe lock the answer is stable against the writers of this directory;
// without it, a message that moves meanwhile may be missed. The file found is mine if it holds exactly
// wrote, the record this Backend wrote last (if not nil): each record a
// Backend writes has a later Updated than the one it replaces.
func (b *Backend) locate(file string, first metastorage.QueueState, wrote []byte) (found, error) {
	if first != nowhere {
		if f, done, err := b.probe(file, first, wrote); done {
			return f, err
		}
	}
	for _, s := range metastorage.States() {
		if s == first {
			continue
		}
		if f, done, err := b.probe(file, s, wrote); done {
			return f, err
		}
	}
	return found{}, nil
}

// probe reads the message's file in state s; done is false when it is not
// there.
func (b *Backend) probe(file string, s metastorage.QueueState, wrote []byte) (f found, done bool, err error) {
	bp := readBufs.Get().(*[]byte)
	md, data, written, err := readRecordIn(b.fs, b.dirs[s].f, b.states[s], s, file, bp)
	mine := wrote != nil && err == nil && bytes.Equal(data, wrote)
	readBufs.Put(bp)
	switch {
	case err == nil:
		return found{ok: true, state: s, md: md, written: written, mine: mine}, true, nil
	case errors.Is(err, codec.ErrCorrupt):
		return found{ok: true, state: s, err: err}, true, nil
	case !isNotExist(err):
		return found{}, true, err
	}
	return found{}, false, nil
}

// stamp returns the current time, or prev plus 1ns if the clock is not past
// prev, so that Updated only grows for a message.
func (b *Backend) stamp(prev time.Time) time.Time {
	now := b.cfg.now().Round(0)
	if !now.After(prev) {
		now = prev.Add(time.Nanosecond)
	}
	return now
}

// put writes md as the message's new record in state md.State, moving the
// file there if cur lies in another state. On error the message is as cur
// was. It returns nil once the change is as durable as the Backend's mode
// promises.
func (b *Backend) put(op, id, file string, cur found, md metastorage.MessageMetadata) error {
	if cur.ok && cur.err == nil && cur.state != md.State && cur.written == md.State {
		// A file moved by rename whose stale State field names the target
		// would, once relocated there, read as that field's older record
		// until the new one is in place, to readers and after a crash. So
		// it is first written anew where it lies, naming its state: the
		// same record, which readers and recovery see in either file.
		now := cur.md
		now.ID = id
		if err := b.put(op, id, file, cur, now); err != nil {
			return err
		}
		cur.written, cur.mine = cur.state, false
	}
	data, err := codec.Encode(&md)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	to := md.State
	d, err := b.policy()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	c := putIntent(to, file, data)
	if err := d.record(c); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	return b.putRecorded(op, id, cur, d, c)
}

// putRecorded is put once d.record(c) has returned nil, for c a put of the
// message's new record.
func (b *Backend) putRecorded(op, id string, cur found, d durability, c intent) error {
	file, to, data := c.file, c.state, c.data
	// Read before the write: a sync that began earlier and ends later may
	// cover it too.
	syncs, _ := b.changes.syncs()
	tmp, err := b.writeTemp(to, file, data, d.syncsFiles())
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, d.void(c, err))
	}
	if err := b.place(tmp, file, cur, to); err != nil {
		// Its directory first: a relocation that failed has moved the
		// message back there.
		dirs := []metastorage.QueueState{to}
		if cur.ok && cur.state != to {
			dirs = []metastorage.QueueState{cur.state, to}
		}
		if derr := b.discardTemp(tmp, d.syncsFiles(), dirs...); derr != nil {
			err = fmt.Errorf("%w; its temp file %s could not be removed for good (%v), so recovery may yet apply the change: the backend refuses writes until reopened", err, tmp, derr)
		}
		return fmt.Errorf("%s %s: %w", op, id, d.void(c, err))
	}
	b.changed(file, to)
	if err := b.checkDirs(to); err != nil {
		return b.undoReplaced(op, id, d, c, cur, to, err)
	}
	// After a relocation, one fsync makes both directories durable.
	synced := to
	if cur.ok && cur.state != to {
		synced = b.movedSync(cur.state, to)
	}
	if err := d.settle(synced); err != nil {
		return b.rollback(op, id, d, file, cur, to, err)
	}
	b.recent.keep(file, stripeOf(file), data, syncs)
	return nil
}

// place puts the temp file tmp, in state to's directory, in place as the
// message's file, where cur found it.
func (b *Backend) place(tmp, file string, cur found, to metastorage.QueueState) error {
	// The record displaced may be all a power loss leaves, unless this
	// Backend wrote it and no sync of the file system has begun or ended
	// since: then the record before it is still kept (see displace).
	now, _ := b.changes.syncs()
	keep := !(cur.mine && now == cur.syncs)
	switch {
	case !cur.ok:
		return b.placeNew(tmp, to, file)
	case cur.state == to:
		return b.replace(tmp, b.path(to, file), keep)
	}
	return b.relocate(file, tmp, cur.state, to, keep)
}

// placeNew renames the temp file tmp to the name of a message that lies
// nowhere, in state s, and counts it there.
func (b *Backend) placeNew(tmp string, s metastorage.QueueState, file string) error {
	dst := b.path(s, file)
	err := b.change(opRenameNoReplace, tmp, dst)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s appeared while the message's lock was held; another program writes this directory: %w", dst, err)
	}
	return err
}

// relocate moves the message's file from one state directory to another
// and puts the temp file tmp, already in the target directory, over it.
// The file is in exactly one directory at every instant; a crash between
// the two renames leaves a complete temp file beside the moved message,
// which recovery puts in place. The move is recorded in b.order, so that
// no fsync of the source directory makes the removal durable before the
// target's entry is.
func (b *Backend) relocate(file, tmp string, from, to metastorage.QueueState, keep bool) error {
	src, dst := b.path(from, file), b.path(to, file)
	err := b.order.rename(from, to, func() (bool, error) {
		if err := b.change(opRenameNoReplace, src, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return false, fmt.Errorf("message file lies in both %s and %s; run recovery: %w", src, dst, err)
			}
			return false, err
		}
		if err := b.replace(tmp, dst, keep); err != nil {
			if rerr := b.change(opRenameNoReplace, dst, src); rerr != nil {
				return true, fmt.Errorf("%w; moving it back failed too, message is in state %s: %v", err, to, rerr)
			}
			return false, err
		}
		return true, nil
	})
	return err
}

// replace puts the temp file tmp over dst atomically. It swaps the two
// (renameat2 RENAME_EXCHANGE), and tmp then holds the old record, which is
// removed (see displace; keep says whether Performance mode may keep it):
// a rename over an existing file would make ext4 write tmp's data back at
// once, which costs several times the rest of an unsynced write. If a
// crash comes before the removal, or it fails, recovery removes the
// leftover, or puts it back if the new record was lost. Where exchange is
// not supported, replace renames over dst.
func (b *Backend) replace(tmp, dst string, keep bool) error {
	err := b.change(opExchange, tmp, dst)
	if errors.Is(err, errors.ErrUnsupported) {
		return b.change(opRename, tmp, dst)
	}
	if err != nil {
		return err
	}
	b.displace(tmp, keep)
	return nil
}

const hexDigit = "0123456789abcdef"

// writeTemp writes data to a new temp file in state s's directory, synced
// if sync is set, and returns its path. Its name starts with
// ".tmp.<stripe>-", so recovery knows which lock its writer holds.
func (b *Backend) writeTemp(s metastorage.QueueState, file string, data []byte, sync bool) (string, error) {
	stripe := stripeOf(file)
	prefix := b.states[s] + string(filepath.Separator) + ".tmp." + string([]byte{hexDigit[stripe>>4], hexDigit[stripe&15]}) + "-"
	for attempt := 0; ; attempt++ {
		tmp := prefix + strconv.FormatUint(rand.Uint64(), 16)
		b.dirLocks[s].Lock()
		f, err := b.fs.Create(tmp, b.cfg.fileMode)
		b.dirLocks[s].Unlock()
		if errors.Is(err, fs.ErrExist) && attempt < 10 {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(data)
		if err == nil && sync {
			if err = f.Sync(); err != nil {
				b.fail(err)
			}
			b.stats.fileSyncs.Add(1)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.removeTemp(tmp)
			return "", err
		}
		return tmp, nil
	}
}

// discardTemp removes tmp, the temp file of a change that failed, which
// holds the change's complete record. If synced (its record is on disk),
// it syncs the directories of states, in order, so that a power loss
// cannot bring the file back for recovery to put in place. If the file
// cannot be removed for good, the Backend refuses further writes.
func (b *Backend) discardTemp(tmp string, synced bool, states ...metastorage.QueueState) error {
	err := b.fs.Remove(tmp)
	if isNotExist(err) {
		err = nil
	}
	if err != nil {
		b.fail(err)
		return err
	}
	if synced {
		return b.syncDirs(states...) // fails the Backend on error
	}
	return nil
}

// syncDirs fsyncs the directories of the given states, in order, in the
// durable modes. A failure is final for the Backend.
func (b *Backend) syncDirs(states ...metastorage.QueueState) error {
	if !b.durable() {
		return nil
	}
	for _, s := range states {
		b.stats.dirSyncRequests.Add(1)
		if err := b.dirs[s].sync(); err != nil {
			b.fail(err)
			return err
		}
	}
	return nil
}

// rollback undoes a change whose directory fsync failed, so that the
// message is visibly as cur was, and returns the error to report. Nothing
// can be made durable after a failed fsync, so the Backend refuses writes
// from now on; the error says in which state the message is.
func (b *Backend) rollback(op, id string, d durability, file string, cur found, now metastorage.QueueState, cause error) error {
	err := b.restore(d, file, cur, now)
	if err != nil {
		where := "in state " + now.String()
		if now == nowhere {
			where = "deleted"
		}
		return fmt.Errorf("%s %s: %w; rolling back failed too (%v): message is %s, its durability unknown", op, id, cause, err, where)
	}
	if cur.ok {
		return fmt.Errorf("%s %s: %w; rolled back: message is in state %s as before, its durability unknown", op, id, cause, cur.state)
	}
	return fmt.Errorf("%s %s: %w; rolled back: message does not exist, as before", op, id, cause)
}

// restore puts the message back as cur was, from where it lies now (in
// state now, or nowhere), writing the record back as d makes it durable.
func (b *Backend) restore(d durability, file string, cur found, now metastorage.QueueState) error {
	if !cur.ok {
		return b.change(opRemove, b.path(now, file), "")
	}
	if cur.err != nil {
		return fmt.Errorf("the previous record was not valid metadata: %w", cur.err)
	}
	md := cur.md
	data, err := codec.Encode(&md)
	if err != nil {
		return err
	}
	tmp, err := b.writeTemp(cur.state, file, data, b.durable())
	if err != nil {
		return err
	}
	dst := b.path(cur.state, file)
	if err := b.change(opRename, tmp, dst); err != nil {
		b.removeTemp(tmp)
		return err
	}
	if now == cur.state || now == nowhere {
		return nil
	}
	if err := b.change(opRemove, b.path(now, file), ""); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}
