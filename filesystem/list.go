package filesystem

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
// metastorage.MessageListOptions. Sorting by ID needs one directory read;
// sorting by another key, or filtering by Since, also needs each message's
// sort keys: read from its file, or kept from an earlier listing while no
// file of the message's lock stripe has entered or left the state's
// directory since (see keyCache). A listing holds only the IDs and sort
// keys in memory. Ties are broken by ID in ascending order, whatever the
// SortOrder, so pages never overlap or skip.
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
	entries, err := b.listEntries(ctx, state, opts)
	if err != nil {
		return metastorage.MessageListResult{}, fmt.Errorf("%s %s: %w", op, state, err)
	}
	return page(entries, opts), nil
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

// listEntries reads the IDs, and where needed the sort keys, of the
// messages in state that pass opts.Since.
func (b *Backend) listEntries(ctx context.Context, state metastorage.QueueState, opts metastorage.MessageListOptions) ([]listEntry, error) {
	var entries []listEntry
	err := b.readNames(ctx, state, 1024, func(files []string) error {
		for _, f := range files {
			id, _ := name.Decode(f)
			entries = append(entries, listEntry{id: id, file: f})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opts.SortBy == metastorage.SortByID && opts.Since.IsZero() {
		return entries, nil
	}
	return b.readKeys(ctx, state, entries, opts)
}

// listWorkers is the number of goroutines that read sort keys. Reading a
// small file is mostly system calls and, when it is not cached, waiting for
// the disk, so more than the cores keep both busy.
func listWorkers() int {
	return min(max(runtime.GOMAXPROCS(0)*4, 8), 32)
}

// listChunk is the number of entries a worker takes at a time.
const listChunk = 64

// keyStatus is what reading the sort keys of one entry found.
type keyStatus uint8

const (
	keyGone    keyStatus = iota // left the state, or not valid metadata
	keyRead                     // read, without a usable count
	keyCounted                  // read, and current as long as the stripe's counter holds its count
)

// readKeys fills in the sort keys of the entries, from the Backend's
// keyCache where they are current and else from the files, read by several
// workers, and drops the entries that have left the state, fail
// opts.Since, or are not valid metadata (recovery sets those aside).
func (b *Backend) readKeys(ctx context.Context, state metastorage.QueueState, entries []listEntry, opts metastorage.MessageListOptions) ([]listEntry, error) {
	status := make([]keyStatus, len(entries))
	counts := make([]uint64, len(entries))
	var cached map[string]cachedKey
	if b.changes != nil {
		cached = b.keys.load(state)
	}
	todo := make([]int, 0, len(entries)-min(len(cached), len(entries)))
	for i := range entries {
		e := &entries[i]
		if c, ok := cached[e.file]; ok && b.changes.unchanged(state, stripeOf(e.file), c.count) {
			e.keys, status[i], counts[i] = c.keys, keyCounted, c.count
			continue
		}
		todo = append(todo, i)
	}
	if err := b.readKeysOf(ctx, state, entries, todo, status, counts); err != nil {
		return nil, err
	}
	if b.changes != nil && (len(todo) > 0 || len(entries) != len(cached)) {
		b.keys.store(state, cacheable(entries, status, counts, b.keys.room(state)))
	}
	since := instantOf(opts.Since)
	out := entries[:0]
	for i, e := range entries {
		if status[i] == keyGone {
			continue
		}
		if !opts.Since.IsZero() && e.keys.created.compare(since) < 0 && e.keys.updated.compare(since) < 0 {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// cacheable returns the keys of entries that readKeys can keep, or nil if
// there are more than room of them.
func cacheable(entries []listEntry, status []keyStatus, counts []uint64, room int) map[string]cachedKey {
	n := 0
	for _, st := range status {
		if st == keyCounted {
			n++
		}
	}
	if n > room {
		return nil
	}
	m := make(map[string]cachedKey, n)
	for i, e := range entries {
		if status[i] == keyCounted {
			m[e.file] = cachedKey{count: counts[i], keys: e.keys}
		}
	}
	return m
}

// readKeysOf reads the sort keys of the entries whose indexes are in todo
// from their files, with several workers, and sets their status and
// counts.
func (b *Backend) readKeysOf(ctx context.Context, state metastorage.QueueState, entries []listEntry, todo []int, status []keyStatus, counts []uint64) error {
	workers := min(listWorkers(), (len(todo)+listChunk-1)/listChunk)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		failed   atomic.Bool
		mu       sync.Mutex
		firstErr error
	)
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 4096)
			for !failed.Load() && ctx.Err() == nil {
				lo := int(next.Add(listChunk)) - listChunk
				if lo >= len(todo) {
					return
				}
				for _, i := range todo[lo:min(lo+listChunk, len(todo))] {
					var err error
					status[i], counts[i], err = b.readKey(state, &entries[i], &buf)
					if err != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, err)
						mu.Unlock()
						failed.Store(true)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return cmp.Or(ctx.Err(), firstErr)
}

// readKey reads the sort keys of e from its file in state's directory. The
// count it returns, for keyCounted, is that of the file's stripe before the
// file was opened: while the counter holds it, the file read is the one
// under the name.
func (b *Backend) readKey(state metastorage.QueueState, e *listEntry, buf *[]byte) (keyStatus, uint64, error) {
	count, counted := b.changes.snapshot(state, stripeOf(e.file))
	md, ok, err := b.readListed(b.dirs[state].f, state, e.file, buf)
	if err != nil || !ok {
		return keyGone, 0, err
	}
	e.keys = keysOf(&md)
	if !counted {
		return keyRead, 0, nil
	}
	return keyCounted, count, nil
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

// page returns the page of entries that opts selects, in the order it
// asks for. It reorders entries; when the page ends in their first half,
// only the entries up to its end are sorted.
func page(entries []listEntry, opts metastorage.MessageListOptions) metastorage.MessageListResult {
	total := len(entries)
	start := min(opts.Offset, total)
	end := total
	if opts.Limit > 0 {
		end = start + min(opts.Limit, total-start) // no overflow for a huge Limit
	}
	by := listOrder(opts)
	if end < total/2 {
		entries = smallest(entries, end, by)
	} else {
		slices.SortFunc(entries, by)
	}
	ids := make([]string, 0, end-start)
	for _, e := range entries[start:end] {
		ids = append(ids, e.id)
	}
	return metastorage.MessageListResult{MessageIDs: ids, Total: total, HasMore: end < total}
}

// smallest returns the k first of entries in the order by, sorted. It
// reorders entries and returns its first k elements.
func smallest(entries []listEntry, k int, by func(a, b listEntry) int) []listEntry {
	if k == 0 {
		return entries[:0]
	}
	// entries[:k] holds the k first seen so far, as a heap whose root is
	// the last of them in the order.
	h := entries[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i, by)
	}
	for _, e := range entries[k:] {
		if by(e, h[0]) < 0 {
			h[0] = e
			siftDown(h, 0, by)
		}
	}
	slices.SortFunc(h, by)
	return h
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
// file is no longer there (the message moved or was deleted since) or is
// not valid metadata, which it logs: recovery sets such files aside.
func (b *Backend) readListed(dir vfs.File, state metastorage.QueueState, file string, bp *[]byte) (metastorage.MessageMetadata, bool, error) {
	md, _, err := readRecordIn(b.fs, dir, b.states[state], file, bp)
	switch {
	case isNotExist(err):
		return metastorage.MessageMetadata{}, false, nil
	case errors.Is(err, errCorrupt):
		b.log.Warn("skipping file that is not valid metadata; recovery moves it to corrupt/", "err", err)
		return metastorage.MessageMetadata{}, false, nil
	case err != nil:
		return metastorage.MessageMetadata{}, false, err
	}
	return md, true, nil
}

// readNames calls fn with the message file names in state's directory,
// batch at a time, in directory order. Entries that are not message files
// (temp files, foreign names, subdirectories) are left out.
func (b *Backend) readNames(ctx context.Context, state metastorage.QueueState, batch int, fn func(files []string) error) error {
	files := make([]string, 0, batch)
	return b.readDir(ctx, b.states[state], batch, func(ents []fs.DirEntry) error {
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() {
				if _, ok := name.Decode(e.Name()); ok {
					files = append(files, e.Name())
				}
			}
		}
		if len(files) == 0 {
			return nil
		}
		return fn(files)
	})
}

// readDir calls fn with the entries of the directory dir, batch at a time,
// in directory order, reading the directory once.
func (b *Backend) readDir(ctx context.Context, dir string, batch int, fn func([]fs.DirEntry) error) error {
	d, err := b.fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := d.ReadDir(batch)
		if len(ents) > 0 {
			if ferr := fn(ents); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
