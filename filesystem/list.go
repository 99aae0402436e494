package filesystem

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// listEntry is what ListMessages keeps of a message: its ID, file name
// (the same string for most IDs) and sort keys.
type listEntry struct {
	id   string
	file string
	keys listKeys
}

// ListMessages returns one page of the IDs of the messages in state; see
// metastorage.MessageListOptions. Ties are broken by ID in ascending order,
// whatever the SortOrder, so pages never overlap or skip. A call's own
// memory is bounded by its page (Offset+Limit entries).
//
// Sorting by ID reads the directory only. Sorting by another key, or
// filtering by Since, also reads each message's file, unless the Backend
// keeps its record (see NewMessageIterator). Such a listing leaves out
// files that are not valid metadata or cannot be read, and logs them; a
// listing by ID alone names them.
func (b *Backend) ListMessages(ctx context.Context, state metastorage.QueueState, opts metastorage.MessageListOptions) (res metastorage.MessageListResult, err error) {
	const op = "list"
	defer func() { b.stats.count(opList, err) }()
	if err := checkState(op, state.String(), state); err != nil {
		return metastorage.MessageListResult{}, err
	}
	if err := checkListOptions(opts); err != nil {
		return metastorage.MessageListResult{}, fmt.Errorf("%s %s: %w", op, state, err)
	}
	if err := b.begin(ctx, op, state.String()); err != nil {
		return metastorage.MessageListResult{}, err
	}
	defer b.end()
	sel := newSelection(opts)
	if err := b.scanList(ctx, state, opts, sel.add); err != nil {
		return metastorage.MessageListResult{}, fmt.Errorf("%s %s: %w", op, state, err)
	}
	return sel.page(), nil
}

func checkListOptions(opts metastorage.MessageListOptions) error {
	switch {
	case opts.Limit < 0:
		return fmt.Errorf("negative Limit %d", opts.Limit)
	case opts.Offset < 0:
		return fmt.Errorf("negative Offset %d", opts.Offset)
	}
	switch opts.SortBy {
	case metastorage.SortByID, metastorage.SortByCreated, metastorage.SortByUpdated,
		metastorage.SortByPriority, metastorage.SortByAttempts:
	default:
		return fmt.Errorf("unknown SortBy %q (valid: created, updated, priority, attempts, or empty for ID)", opts.SortBy)
	}
	switch strings.ToLower(opts.SortOrder) {
	case "", metastorage.SortAsc, metastorage.SortDesc:
	default:
		return fmt.Errorf("unknown SortOrder %q (valid: asc, desc)", opts.SortOrder)
	}
	return nil
}

// scanList calls add with each message in state that passes opts.Since,
// with its sort keys where opts needs them, reading the state's directory
// at most once, a batch of names at a time. Records that the index does not
// hold are read from the files by several workers, while the directory is
// read on; add is called from one goroutine at a time.
func (b *Backend) scanList(ctx context.Context, state metastorage.QueueState, opts metastorage.MessageListOptions, add func(listEntry)) error {
	d, err := b.fs.OpenDir(b.states[state])
	if err != nil {
		return err
	}
	defer d.Close()
	if opts.SortBy == metastorage.SortByID && opts.Since.IsZero() {
		return readNamesIn(ctx, d, listBatch, func(files []string) error {
			for _, f := range files {
				id, _ := name.Decode(f)
				add(listEntry{id: id, file: f})
			}
			return nil
		})
	}
	since := instantOf(opts.Since)
	passes := func(e *listEntry) bool {
		return opts.Since.IsZero() || e.keys.created.compare(since) >= 0 || e.keys.updated.compare(since) >= 0
	}
	p := b.idx.begin(b.changes, state, d)
	if p != nil && p.fresh {
		return b.scanKept(ctx, d, state, p.prev, func(e listEntry) {
			if passes(&e) {
				add(e)
			}
		})
	}
	var mu sync.Mutex // serialises add
	addAll := func(entries []listEntry, found []bool) {
		mu.Lock()
		defer mu.Unlock()
		for i := range entries {
			if found[i] && passes(&entries[i]) {
				add(entries[i])
			}
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan []listEntry, listWorkers())
	var wg sync.WaitGroup
	for range listWorkers() {
		wg.Go(func() {
			buf := make([]byte, 0, 4096)
			var foundBuf [listChunk]bool
			for chunk := range work {
				if ctx.Err() != nil {
					continue // drain
				}
				found := foundBuf[:len(chunk)]
				clear(found) // an entry not read after an error is not added
				for i := range chunk {
					var err error
					if found[i], err = b.readKeys(d, state, &chunk[i], p, &buf); err != nil {
						cancel(err)
						break
					}
				}
				addAll(chunk, found)
			}
		})
	}
	found := make([]bool, listBatch)
	batch := make([]listEntry, listBatch) // the workers get copies
	err = readNamesIn(ctx, d, listBatch, func(files []string) error {
		batch, found := batch[:len(files)], found[:len(files)]
		var todo []listEntry
		for i, f := range files {
			id, _ := name.Decode(f)
			batch[i] = listEntry{id: id, file: f}
			found[i] = false
			if k, ok := p.lookup(f); ok {
				p.keepPrev(k)
				batch[i].keys, found[i] = p.prev.keys(k), true
			} else {
				todo = append(todo, batch[i])
			}
		}
		addAll(batch, found)
		for lo := 0; lo < len(todo); lo += listChunk {
			select {
			case work <- todo[lo:min(lo+listChunk, len(todo))]:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return nil
	})
	close(work)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		err = cause // a worker's error, or the caller's context's
	}
	if err != nil {
		p.abandon()
		return err
	}
	p.finish()
	return nil
}

// scanKept calls add with each message of snap, a fresh snapshot of
// state's directory d, reading the files whose records no longer stand.
func (b *Backend) scanKept(ctx context.Context, d vfs.File, state metastorage.QueueState, snap *snapshot, add func(listEntry)) error {
	var buf []byte
	for i := range snap.entries {
		if i%listBatch == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		le := listEntry{id: snap.id(i), file: snap.file(i), keys: snap.keys(i)}
		if !snap.current(i, b.changes, state) {
			ok, err := b.readKeys(d, state, &le, nil, &buf)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		add(le)
	}
	return nil
}

// listBatch is the number of names a listing reads from the directory at a
// time.
const listBatch = 1024

// listWorkers is the number of goroutines that read sort keys. Reading a
// small file is mostly system calls and, when it is not cached, waiting for
// the disk, so more than the cores keep both busy.
func listWorkers() int {
	return min(max(runtime.GOMAXPROCS(0)*4, 8), 32)
}

// listChunk is the number of entries a worker takes at a time.
const listChunk = 64

// readKeys reads the sort keys of e from its file in state's directory
// d, and reports whether it is a message. Its record goes to the pass p, if
// read with a usable count: while the stripe's counter holds that count,
// the file read is the one under the name.
func (b *Backend) readKeys(d vfs.File, state metastorage.QueueState, e *listEntry, p *pass, buf *[]byte) (bool, error) {
	count, counted := b.changes.snapshot(state, stripeOf(e.file))
	md, ok, err := b.readListed(d, state, e.file, buf)
	if err != nil || !ok {
		p.miss()
		return false, err
	}
	if p == nil || !counted {
		p.miss()
		e.keys = keysOf(&md)
		return true, nil
	}
	p.keep(e.id, e.file, count, &md)
	e.keys = keysOf(&md)
	return true, nil
}

// listOrder returns the order opts asks for: by its key, then by ID in
// ascending order.
func listOrder(opts metastorage.MessageListOptions) func(a, b listEntry) int {
	desc := strings.EqualFold(opts.SortOrder, metastorage.SortDesc)
	var key func(a, b listEntry) int
	switch opts.SortBy {
	case metastorage.SortByCreated:
		key = func(a, b listEntry) int { return a.keys.created.compare(b.keys.created) }
	case metastorage.SortByUpdated:
		key = func(a, b listEntry) int { return a.keys.updated.compare(b.keys.updated) }
	case metastorage.SortByPriority:
		key = func(a, b listEntry) int { return cmp.Compare(a.keys.priority, b.keys.priority) }
	case metastorage.SortByAttempts:
		key = func(a, b listEntry) int { return cmp.Compare(a.keys.attempts, b.keys.attempts) }
	default:
		key = func(a, b listEntry) int { return strings.Compare(a.id, b.id) }
	}
	return func(a, b listEntry) int {
		c := key(a, b)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	}
}

// selection keeps the entries of a listing that its page may need: the
// first offset+limit in the order the options ask for (all of them without
// a Limit), and counts every entry it is given.
type selection struct {
	by     func(a, b listEntry) int
	offset int
	keep   int // the most entries kept; -1 for all
	// kept is, when keep >= 0, a heap whose root is the last of the kept
	// entries in the order.
	kept  []listEntry
	total int
}

func newSelection(opts metastorage.MessageListOptions) *selection {
	keep := -1
	if opts.Limit > 0 {
		keep = opts.Offset + min(opts.Limit, math.MaxInt-opts.Offset)
	}
	return &selection{by: listOrder(opts), offset: opts.Offset, keep: keep}
}

// add counts e, and keeps it if it is among the first keep.
func (s *selection) add(e listEntry) {
	s.total++
	switch {
	case s.keep < 0:
		s.kept = append(s.kept, e)
	case len(s.kept) < s.keep:
		s.kept = append(s.kept, e)
		siftUp(s.kept, len(s.kept)-1, s.by)
	case s.keep > 0 && s.by(e, s.kept[0]) < 0:
		s.kept[0] = e
		siftDown(s.kept, 0, s.by)
	}
}

// page returns the page of the entries added.
func (s *selection) page() metastorage.MessageListResult {
	slices.SortFunc(s.kept, s.by)
	start := min(s.offset, len(s.kept))
	ids := make([]string, 0, len(s.kept)-start)
	for _, e := range s.kept[start:] {
		ids = append(ids, strings.Clone(e.id)) // not the index's page: see snapshot.record
	}
	return metastorage.MessageListResult{MessageIDs: ids, Total: s.total, HasMore: start+len(ids) < s.total}
}

// siftUp restores the heap h, whose root is the last in the order by,
// above element i.
func siftUp(h []listEntry, i int, by func(a, b listEntry) int) {
	for i > 0 {
		p := (i - 1) / 2
		if by(h[i], h[p]) <= 0 {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// siftDown restores the heap h, whose root is the last in the order by,
// below element i.
func siftDown(h []listEntry, i int, by func(a, b listEntry) int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && by(h[r], h[c]) > 0 {
			c = r
		}
		if by(h[c], h[i]) <= 0 {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// readListed reads the message file named file, found by a read of the
// directory dir of state, into *bp. It returns false, and no error, if the
// file is no longer there (the message moved or was deleted since), is
// not valid metadata, which it logs (recovery sets such files aside), or
// cannot be read, which it logs and counts (see skipUnreadable).
func (b *Backend) readListed(dir vfs.File, state metastorage.QueueState, file string, bp *[]byte) (metastorage.MessageMetadata, bool, error) {
	md, _, _, err := readRecordIn(b.fs, dir, b.states[state], state, file, bp)
	switch {
	case isNotExist(err):
		return metastorage.MessageMetadata{}, false, nil
	case errors.Is(err, codec.ErrCorrupt):
		b.log.Warn("skipping file that is not valid metadata; recovery moves it to corrupt/", "err", err)
		return metastorage.MessageMetadata{}, false, nil
	case isUnreadable(err):
		b.skipUnreadable(b.path(state, file), err)
		return metastorage.MessageMetadata{}, false, nil
	case err != nil:
		return metastorage.MessageMetadata{}, false, err
	}
	return md, true, nil
}
