package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// defaultBatch is the iterator's batch size when none is given.
const defaultBatch = 50

// NewMessageIterator returns an iterator over the messages in state; see
// metastorage.Backend. It holds one open directory and at most batchSize
// directory entries, whatever the number of messages, and reads the
// directory once from start to end. Files that are not valid metadata are
// logged and skipped; recovery moves them to corrupt/.
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
	return &iterator{b: b, state: state, dir: d, batch: batchSize, buf: make([]byte, 0, 4096)}, nil
}

type iterator struct {
	b       *Backend
	state   metastorage.QueueState
	dir     vfs.File // nil once the directory is read to its end
	batch   int
	pending []fs.DirEntry
	done    bool
	closed  bool
	buf     []byte // read buffer, reused for every message
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
	for {
		if len(it.pending) == 0 {
			if err := it.fill(); err != nil {
				return metastorage.MessageMetadata{}, false, err
			}
			if it.done {
				return metastorage.MessageMetadata{}, false, nil
			}
			continue
		}
		e := it.pending[0]
		it.pending = it.pending[1:]
		md, ok, err := it.read(e)
		if err != nil || ok {
			return md, ok, err
		}
		if err := ctx.Err(); err != nil {
			return metastorage.MessageMetadata{}, false, err
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
		it.done = true
		return it.closeDir()
	}
	if err != nil {
		return fmt.Errorf("iterate %s: %w", it.state, err)
	}
	return nil
}

// read returns the message of entry e, or false if e is not one (any
// more).
func (it *iterator) read(e fs.DirEntry) (metastorage.MessageMetadata, bool, error) {
	id, ok := name.Decode(e.Name())
	if !ok || !e.Type().IsRegular() {
		return metastorage.MessageMetadata{}, false, nil
	}
	md, err := readRecordBuf(it.b.fs, it.b.path(it.state, e.Name()), &it.buf)
	switch {
	case isNotExist(err): // moved or deleted since the directory was read
		return metastorage.MessageMetadata{}, false, nil
	case errors.Is(err, errCorrupt):
		it.b.log.Warn("skipping file that is not valid metadata; recovery moves it to corrupt/", "err", err)
		return metastorage.MessageMetadata{}, false, nil
	case err != nil:
		return metastorage.MessageMetadata{}, false, fmt.Errorf("iterate %s: %w", it.state, err)
	}
	md.ID = id
	md.State = it.state
	return md, true, nil
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
	it.pending = nil
	it.buf = nil
	return it.closeDir()
}
