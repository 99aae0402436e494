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
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// listEntry is what ListMessages keeps of a message: its ID, file name
// (the same string for most IDs) and sort key.
type listEntry struct {
	id   string
	file string
	t    time.Time // created or updated
	n    int       // priority or attempts
}

// ListMessages returns one page of the IDs of the messages in state; see
// metastorage.MessageListOptions. Sorting by ID needs one directory read;
// sorting by another key, or filtering by Since, also reads each message's
// file, and keeps only the IDs and sort keys in memory. Ties are broken by
// ID in ascending order, whatever the SortOrder, so pages never overlap or
// skip.
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
	sortEntries(entries, opts)
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

// readKeys reads the sort key of each entry with several workers, and
// drops the entries that have left the state, fail opts.Since, or are not
// valid metadata (recovery sets those aside).
func (b *Backend) readKeys(ctx context.Context, state metastorage.QueueState, entries []listEntry, opts metastorage.MessageListOptions) ([]listEntry, error) {
	keep := make([]bool, len(entries))
	workers := min(listWorkers(), (len(entries)+listChunk-1)/listChunk)
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
				if lo >= len(entries) {
					return
				}
				for i := lo; i < min(lo+listChunk, len(entries)); i++ {
					ok, err := b.readKey(state, &entries[i], opts, &buf)
					if err != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, err)
						mu.Unlock()
						failed.Store(true)
						return
					}
					keep[i] = ok
				}
			}
		})
	}
	wg.Wait()
	if err := cmp.Or(ctx.Err(), firstErr); err != nil {
		return nil, err
	}
	out := entries[:0]
	for i, e := range entries {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out, nil
}

func (b *Backend) readKey(state metastorage.QueueState, e *listEntry, opts metastorage.MessageListOptions, buf *[]byte) (bool, error) {
	md, err := readRecordBuf(b.fs, b.path(state, e.file), buf)
	switch {
	case isNotExist(err):
		return false, nil
	case errors.Is(err, errCorrupt):
		b.log.Warn("skipping file that is not valid metadata; recovery moves it to corrupt/", "err", err)
		return false, nil
	case err != nil:
		return false, err
	}
	if !opts.Since.IsZero() && md.Created.Before(opts.Since) && md.Updated.Before(opts.Since) {
		return false, nil
	}
	switch opts.SortBy {
	case metastorage.SortByCreated:
		e.t = md.Created
	case metastorage.SortByUpdated:
		e.t = md.Updated
	case metastorage.SortByPriority:
		e.n = md.Priority
	case metastorage.SortByAttempts:
		e.n = md.Attempts
	}
	return true, nil
}

func sortEntries(entries []listEntry, opts metastorage.MessageListOptions) {
	desc := strings.EqualFold(opts.SortOrder, metastorage.SortDesc)
	var key func(a, b listEntry) int
	switch opts.SortBy {
	case metastorage.SortByCreated, metastorage.SortByUpdated:
		key = func(a, b listEntry) int { return a.t.Compare(b.t) }
	case metastorage.SortByPriority, metastorage.SortByAttempts:
		key = func(a, b listEntry) int { return cmp.Compare(a.n, b.n) }
	default:
		key = func(a, b listEntry) int { return strings.Compare(a.id, b.id) }
	}
	slices.SortFunc(entries, func(a, b listEntry) int {
		c := key(a, b)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}

func page(entries []listEntry, opts metastorage.MessageListOptions) metastorage.MessageListResult {
	total := len(entries)
	start := min(opts.Offset, total)
	end := total
	if opts.Limit > 0 {
		end = min(start+opts.Limit, total)
	}
	ids := make([]string, 0, end-start)
	for _, e := range entries[start:end] {
		ids = append(ids, e.id)
	}
	return metastorage.MessageListResult{MessageIDs: ids, Total: total, HasMore: end < total}
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
