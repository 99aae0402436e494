package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// errIteratorClosed is returned by Next after Close.
var errIteratorClosed = errors.New("iterator is closed")

// defaultBatch is the iterator's batch size when none is given.
const defaultBatch = 50

// maxAhead bounds the number of messages an iterator reads ahead, whatever
// its batch size: each holds an open file until Next returns it.
const maxAhead = 256

// NewMessageIterator returns an iterator over the messages in state; see
// metastorage.Backend. It reads the directory at most once, batchSize
// entries at a time. A message that moves into the state during the
// iteration may or may not be returned.
//
// A writable Backend keeps the records that iterations and listings read,
// within the budget that WithIndexBudget sets. A pass over messages that
// have not changed since then reads no file, and, if no file of the state
// was added, removed or renamed either, not the directory. A file
// rewritten in place, not replaced, may be seen a minute late.
//
// Files that are not valid metadata are logged and skipped; recovery moves
// them to corrupt/. Files that cannot be read (permission denied) are
// logged, counted in Stats.UnreadableFiles and skipped, and stay where they
// are: one such file never ends an iteration with an error.
//
// Next returns each message as it is at some instant during that call. The
// iterator reads ahead up to two batches (at most 256 messages) while the
// caller handles one. Its memory is bounded by batchSize and the records
// read ahead, whatever the number of messages.
func (b *Backend) NewMessageIterator(ctx context.Context, state metastorage.QueueState, batchSize int) (metastorage.MessageIterator, error) {
	const op = "iterate"
	if err := checkState(op, state.String(), state); err != nil {
		return nil, err
	}
	if err := b.begin(ctx, op, state.String()); err != nil {
		return nil, err
	}
	defer b.end()
	if batchSize <= 0 {
		batchSize = defaultBatch
	}
	d, err := b.fs.OpenDir(b.states[state])
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, state, err)
	}
	it := &iterator{b: b, state: state, dir: d, batch: batchSize, buf: make([]byte, 0, 4096),
		pass:  b.idx.begin(b.changes, state, d),
		ahead: &readAhead{b: b, state: state, dir: d, limit: min(2*batchSize, maxAhead), workers: runtime.GOMAXPROCS(0)}}
	// An iterator dropped without Close would keep the files it read ahead
	// open.
	it.cleanup = runtime.AddCleanup(it, (*readAhead).release, it.ahead)
	return it, nil
}

type iterator struct {
	b       *Backend
	state   metastorage.QueueState
	dir     vfs.File // nil once every message is returned
	batch   int
	pending []fs.DirEntry // entries read from the directory, not yet read ahead
	dirErr  error         // an error reading the directory, for Next once the reads ahead are returned
	done    bool
	closed  bool
	buf     []byte // read buffer of the files Next reads itself
	pass    *pass  // nil without an index
	at      int    // the next of the pass's fresh entries to return
	ahead   *readAhead
	cleanup runtime.Cleanup
}

func (it *iterator) Next(ctx context.Context) (metastorage.MessageMetadata, bool, error) {
	if err := ctx.Err(); err != nil {
		return metastorage.MessageMetadata{}, false, err
	}
	if it.closed {
		return metastorage.MessageMetadata{}, false, fmt.Errorf("iterate %s: %w", it.state, errIteratorClosed)
	}
	if err := it.b.begin(ctx, "iterate", it.state.String()); err != nil {
		return metastorage.MessageMetadata{}, false, err
	}
	defer it.b.end()
	if it.pass != nil && it.pass.fresh {
		return it.nextKept()
	}
	for {
		it.readAhead()
		r := it.ahead.next()
		if r == nil {
			if err := it.dirErr; err != nil {
				it.dirErr = nil // the next call reads the directory again
				it.pass.abandon()
				return metastorage.MessageMetadata{}, false, err
			}
			it.pass.finish()
			return metastorage.MessageMetadata{}, false, it.closeDir()
		}
		md, ok, err := it.take(r)
		if err != nil || ok {
			return md, ok, err
		}
		if err := ctx.Err(); err != nil {
			return metastorage.MessageMetadata{}, false, err
		}
	}
}

// nextKept returns the next message of a fresh pass, from the index where
// its record still stands for its file.
func (it *iterator) nextKept() (metastorage.MessageMetadata, bool, error) {
	snap := it.pass.prev
	for it.at < len(snap.entries) {
		i := it.at
		it.at++
		if snap.current(i, it.b.changes, it.state) {
			return snap.record(i, it.state), true, nil
		}
		if md, ok, err := it.read(snap.id(i), snap.file(i)); err != nil || ok {
			return md, ok, err
		}
	}
	return metastorage.MessageMetadata{}, false, it.closeDir()
}

// readAhead starts reading the files of the next messages, once fewer than
// half the limit are being read ahead, until the limit is reached or the
// directory read to its end.
func (it *iterator) readAhead() {
	ra := it.ahead
	if ra.queued() > ra.limit/2 {
		return
	}
	for ra.queued() < ra.limit {
		if len(it.pending) == 0 {
			if it.done || it.dirErr != nil {
				return
			}
			it.dirErr = it.fill()
			continue
		}
		e := it.pending[0]
		it.pending = it.pending[1:]
		id, ok := name.Decode(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		r := &aheadRead{id: id, file: e.Name(), done: make(chan struct{})}
		if r.kept, r.isKept = it.pass.lookup(r.file); r.isKept {
			close(r.done)
			ra.push(r)
		} else {
			ra.start(r)
		}
	}
}

// fill reads the next batch of directory entries, or marks the end.
func (it *iterator) fill() error {
	if it.done {
		return nil
	}
	ents, err := it.dir.ReadDir(it.batch)
	it.pending = ents
	if err == io.EOF || (err == nil && len(ents) == 0) {
		it.done = true // the directory stays open for the reads ahead
		return nil
	}
	if err != nil {
		return fmt.Errorf("iterate %s: %w", it.state, err)
	}
	return nil
}

// take returns the message r read ahead, or false if it is not one (any
// more). The record read ahead, or kept, is returned if its file is still
// the one under the message's name; else the file is read now.
func (it *iterator) take(r *aheadRead) (metastorage.MessageMetadata, bool, error) {
	<-r.done
	if r.isKept {
		prev := it.pass.prev
		if !prev.current(r.kept, it.b.changes, it.state) {
			return it.read(r.id, r.file)
		}
		it.pass.keepPrev(r.kept)
		return prev.record(r.kept, it.state), true, nil
	}
	current := false
	switch {
	case r.counted:
		current = it.b.changes.Unchanged(it.state, r.stripe, r.count)
	case r.f != nil:
		fi, err := it.b.fs.LstatIn(it.dir, r.file)
		cerr := r.f.Close()
		r.f = nil
		if isNotExist(err) { // moved or deleted since it was read ahead
			return metastorage.MessageMetadata{}, false, nil
		}
		// A move that renamed the file away and back changed its time,
		// which may be its Updated (see recordIn).
		current = err == nil && cerr == nil && vfs.SameFile(r.fi, fi) && fi.ModTime().Equal(r.fi.ModTime())
	}
	if !current {
		return it.read(r.id, r.file)
	}
	return it.found(r.id, r.file, r.count, r.counted, r.md), true, nil
}

// read reads the message id from its file, or returns false if it is not
// there any more or not valid metadata.
func (it *iterator) read(id, file string) (metastorage.MessageMetadata, bool, error) {
	count, counted := it.b.changes.snapshot(it.state, stripeOf(file))
	md, ok, err := it.b.readListed(it.dir, it.state, file, &it.buf)
	if err != nil {
		it.pass.miss()
		return metastorage.MessageMetadata{}, false, fmt.Errorf("iterate %s: %w", it.state, err)
	}
	if !ok {
		it.pass.miss()
		return metastorage.MessageMetadata{}, false, nil
	}
	return it.found(id, file, count, counted, md), true, nil
}

// found returns the message id read from its file, and keeps a copy of
// its record in the index if it was read with a usable count.
func (it *iterator) found(id, file string, count uint64, counted bool, md metastorage.MessageMetadata) metastorage.MessageMetadata {
	if it.pass == nil || !counted {
		it.pass.miss()
	} else {
		it.pass.keep(id, file, count, &md)
	}
	md.ID = id
	md.State = it.state
	return md
}

func (it *iterator) closeDir() error {
	if it.dir == nil {
		return nil
	}
	err := it.dir.Close()
	it.dir = nil
	return err
}

func (it *iterator) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.pass.abandon()
	it.pending = nil
	it.buf = nil
	it.cleanup.Stop()
	it.ahead.release() // before the directory the reads use is closed
	return it.closeDir()
}

// aheadRead is the read of one message's file ahead of Next.
type aheadRead struct {
	id, file string
	done     chan struct{} // closed when the read has ended
	// If isKept, the entry of the pass's prev whose record stood at the
	// listing: no read.
	kept   int
	isKept bool

	// Set before done is closed, if the read succeeded: the record, and
	// either the change counter of the message's stripe (counted) that
	// was even before the file was opened, or the file, open until Next
	// takes the record. If the read failed, counted is false and f nil.
	stripe  int
	counted bool
	count   uint64
	f       vfs.File
	fi      fs.FileInfo
	md      metastorage.MessageMetadata
}

// readAhead reads message files ahead of Next with up to workers
// goroutines, which end when nothing is left to read. It refers to no
// iterator, so that an iterator dropped without Close can be collected and
// release the files.
type readAhead struct {
	b       *Backend
	state   metastorage.QueueState
	dir     vfs.File     // the state's directory, open until every read has ended
	limit   int          // the most reads queued at a time
	workers int          // the most goroutines reading at a time
	queue   []*aheadRead // the reads not yet taken, in directory order; queue[head:]
	head    int

	mu      sync.Mutex
	todo    []*aheadRead // the reads not yet started: todo[todoAt:]
	todoAt  int
	running int
}

// queued returns the number of reads not yet taken.
func (ra *readAhead) queued() int { return len(ra.queue) - ra.head }

// push queues r, which needs no read.
func (ra *readAhead) push(r *aheadRead) {
	if ra.head > 0 && len(ra.queue) == cap(ra.queue) {
		n := copy(ra.queue, ra.queue[ra.head:])
		clear(ra.queue[n:])
		ra.queue, ra.head = ra.queue[:n], 0
	}
	ra.queue = append(ra.queue, r)
}

// start queues r and starts a goroutine to read it if fewer than
// ra.workers are reading.
func (ra *readAhead) start(r *aheadRead) {
	ra.push(r)
	ra.mu.Lock()
	ra.todo = append(ra.todo, r)
	spawn := ra.running < ra.workers
	if spawn {
		ra.running++
	}
	ra.mu.Unlock()
	if spawn {
		go ra.work()
	}
}

// next returns the next read not yet taken, or nil if there is none.
func (ra *readAhead) next() *aheadRead {
	if ra.head == len(ra.queue) {
		return nil
	}
	r := ra.queue[ra.head]
	ra.queue[ra.head] = nil
	ra.head++
	return r
}

// work reads files until none is left to start.
func (ra *readAhead) work() {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	for {
		ra.mu.Lock()
		if ra.todoAt == len(ra.todo) {
			clear(ra.todo)
			ra.todo, ra.todoAt = ra.todo[:0], 0
			ra.running--
			ra.mu.Unlock()
			return
		}
		r := ra.todo[ra.todoAt]
		ra.todoAt++
		ra.mu.Unlock()
		ra.read(r, bp)
		close(r.done)
	}
}

// read reads r's file, and keeps it open unless the change counter of its
// stripe was usable before it was opened. Any failure leaves r.f nil and
// r.counted false, for Next to read the file itself and report what it
// finds.
func (ra *readAhead) read(r *aheadRead, bp *[]byte) {
	b := ra.b
	// Hold the Backend open as a call does, but never wait: Next, which
	// waits for this read, holds it too, and a Close waiting for Next
	// blocks new holders.
	if !b.ops.TryRLock() {
		return
	}
	defer b.ops.RUnlock()
	if b.closed.Load() {
		return
	}
	r.stripe = stripeOf(r.file)
	count, counted := b.changes.snapshot(ra.state, r.stripe)
	f, err := b.fs.OpenIn(ra.dir, r.file)
	if err != nil {
		return
	}
	fi, err := f.Stat()
	var data []byte
	if err == nil {
		data, err = codec.ReadFile(f, fi, bp)
	}
	if err == nil {
		r.md, _, err = decodeIn(data, fi, ra.state)
	}
	if err != nil {
		f.Close()
		return
	}
	if counted {
		r.counted, r.count = f.Close() == nil, count
		return
	}
	r.f, r.fi = f, fi
}

// release waits for the reads not yet taken and closes their files.
func (ra *readAhead) release() {
	for r := ra.next(); r != nil; r = ra.next() {
		<-r.done
		if r.f != nil {
			r.f.Close()
			r.f = nil
		}
	}
	ra.queue, ra.head = nil, 0
}
