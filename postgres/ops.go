package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// raceLimit bounds how often StoreMeta runs again after another call
// created the message between its lock and its insert.
const raceLimit = 100

// bytea returns s as a non-nil byte slice: nil would be NULL.
func bytea(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return []byte(s)
}

// recordArgs returns the arguments of a statement that writes the whole
// record md of message id, created and updated at the times given, in the
// order of columns.
func recordArgs(id string, md *metastorage.MessageMetadata, created, updated time.Time) []any {
	next, c, u := toStamp(md.NextRetry), toStamp(created), toStamp(updated)
	return []any{bytea(id), int16(md.State), int64(md.Attempts), int64(md.MaxAttempts),
		next.us, next.ns, next.off, c.us, c.ns, c.off, u.us, u.ns, u.off,
		bytea(md.LastError), md.Size, int64(md.Priority), encodeHeaders(md.Headers), bytea(md.RetryPolicyName)}
}

// updateArgs is recordArgs without the creation time, which an update
// keeps.
func updateArgs(id string, md *metastorage.MessageMetadata, updated time.Time) []any {
	args := recordArgs(id, md, time.Time{}, updated)
	return slices.Delete(args, 7, 10) // created_us, created_ns, created_off
}

// StoreMeta creates the message or replaces it whole. It changes the
// database with one statement: an insert, which does nothing when the
// message exists, and then, if it did nothing, a replace.
func (b *Backend) StoreMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) error {
	const op = "store"
	if err := b.beginWrite(ctx, op, messageID, &md); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	now := time.Now()
	if md.Created.IsZero() {
		md.Created = now
	}
	args := recordArgs(messageID, &md, md.Created, now)
	err := b.run(ctx, idempotent, func() error {
		// Most messages are new: the insert alone has fewer steps for the
		// server than the statement that may also replace.
		var done bool
		if err := b.pool.QueryRow(ctx, b.q.insert, args...).Scan(&done); err != nil || done {
			return err
		}
		for range raceLimit {
			if err := b.pool.QueryRow(ctx, b.q.store, args...).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
		}
		return fmt.Errorf("other calls created and deleted the message %d times in a row", raceLimit)
	})
	if err != nil {
		return opError(op, quote(messageID), err)
	}
	return nil
}

// GetMeta returns the message's record.
func (b *Backend) GetMeta(ctx context.Context, messageID string) (metastorage.MessageMetadata, error) {
	const op = "get"
	if err := b.begin(ctx, op, quote(messageID)); err != nil {
		return metastorage.MessageMetadata{}, err
	}
	defer b.ops.RUnlock()
	if err := checkID(messageID); err != nil {
		return metastorage.MessageMetadata{}, opError(op, quote(messageID), err)
	}
	var w row
	found := true
	err := b.run(ctx, read, func() error {
		var err error
		w, err = scan(b.pool.QueryRow(ctx, b.q.get, bytea(messageID)))
		if errors.Is(err, pgx.ErrNoRows) {
			found, err = false, nil
		}
		return err
	})
	if err != nil {
		return metastorage.MessageMetadata{}, opError(op, quote(messageID), err)
	}
	if !found {
		return metastorage.MessageMetadata{}, opError(op, quote(messageID), metastorage.ErrMessageNotFound)
	}
	md, err := w.metadata()
	if err != nil {
		return metastorage.MessageMetadata{}, opError(op, quote(messageID), err)
	}
	return md, nil
}

// UpdateMeta replaces the record of an existing message, keeping Created,
// in one statement.
func (b *Backend) UpdateMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) error {
	const op = "update"
	if err := b.beginWrite(ctx, op, messageID, &md); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	args := updateArgs(messageID, &md, time.Now())
	var done bool
	err := b.run(ctx, idempotent, func() error {
		for range raceLimit {
			var found bool
			if err := b.pool.QueryRow(ctx, b.q.update, args...).Scan(&done, &found); err != nil {
				return err
			}
			if done || !found {
				return nil
			}
		}
		return fmt.Errorf("other calls changed the state of the message %d times in a row", raceLimit)
	})
	switch {
	case err != nil:
		return opError(op, quote(messageID), err)
	case !done:
		return opError(op, quote(messageID), metastorage.ErrMessageNotFound)
	}
	return nil
}

// DeleteMeta removes the message, in one statement.
func (b *Backend) DeleteMeta(ctx context.Context, messageID string) error {
	const op = "delete"
	if err := b.begin(ctx, op, quote(messageID)); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	if err := checkID(messageID); err != nil {
		return opError(op, quote(messageID), err)
	}
	var done bool
	err := b.run(ctx, write, func() error {
		return b.pool.QueryRow(ctx, b.q.delete, bytea(messageID)).Scan(&done)
	})
	switch {
	case err != nil:
		return opError(op, quote(messageID), err)
	case !done:
		return opError(op, quote(messageID), metastorage.ErrMessageNotFound)
	}
	return nil
}

// MoveToState moves the message from fromState to toState with one
// statement that compares the state and sets it.
func (b *Backend) MoveToState(ctx context.Context, messageID string, fromState, toState metastorage.QueueState) error {
	const op = "move"
	if err := b.begin(ctx, op, quote(messageID)); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	if err := checkID(messageID); err != nil {
		return opError(op, quote(messageID), err)
	}
	for _, s := range []metastorage.QueueState{fromState, toState} {
		if err := checkState(s); err != nil {
			return opError(op, quote(messageID), err)
		}
	}
	var (
		moved bool
		state *int16 // after a failed move; nil when missing
		err   error
	)
	if fromState == toState {
		state, err = b.readState(ctx, messageID)
		moved = err == nil && state != nil && metastorage.QueueState(*state) == fromState
	} else {
		updated := toStamp(time.Now())
		err = b.run(ctx, write, func() error {
			return b.pool.QueryRow(ctx, b.q.move, bytea(messageID), int16(fromState), int16(toState),
				updated.us, updated.ns, updated.off).Scan(&moved)
		})
		if err == nil && !moved {
			if state, err = b.readState(ctx, messageID); err != nil {
				return opError(op, quote(messageID), fmt.Errorf("message not in state %s (reading its state: %v): %w", fromState, err, metastorage.ErrStateConflict))
			}
		}
	}
	switch {
	case err != nil:
		return opError(op, quote(messageID), err)
	case moved:
		return nil
	case state != nil && metastorage.QueueState(*state) == fromState:
		// The statement did not find the message in fromState, but another
		// call has put it back since.
		return opError(op, quote(messageID), fmt.Errorf("another call moved the message out of %s and back: %w", fromState, metastorage.ErrStateConflict))
	}
	if state == nil {
		return opError(op, quote(messageID), fmt.Errorf("message not found, expected in state %s: %w", fromState, metastorage.ErrStateConflict))
	}
	return opError(op, quote(messageID), fmt.Errorf("message is in state %s, expected %s: %w", metastorage.QueueState(*state), fromState, metastorage.ErrStateConflict))
}

// readState returns the state of the message, or nil when it is missing.
func (b *Backend) readState(ctx context.Context, messageID string) (*int16, error) {
	var state *int16
	err := b.run(ctx, read, func() error {
		state = nil
		err := b.pool.QueryRow(ctx, b.q.state, bytea(messageID)).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return err
	})
	return state, err
}

// GetStateCount returns the number of messages in state, summed over the
// counter rows, which every Backend on the schema changes with the
// messages. When the server cannot be reached within two seconds it
// returns the count last read and logs a warning; after Close, it returns
// the count last read.
func (b *Backend) GetStateCount(state metastorage.QueueState) int64 {
	if !state.Valid() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
	defer cancel()
	if _, err := b.StateCounts(ctx); err != nil && !errors.Is(err, metastorage.ErrBackendClosed) {
		if !b.countsWarn.Swap(true) {
			b.log.Warn("postgres: cannot read the state counts; returning the counts last read until the server answers",
				"schema", b.schema, "error", err)
		}
	} else if err == nil && b.countsWarn.Swap(false) {
		b.log.Info("postgres: reading the state counts again", "schema", b.schema)
	}
	return b.counts[state].Load()
}

// StateCounts returns the number of messages in each state, indexed by
// state, in one statement; GetStateCount returns one of them. Unlike
// GetStateCount, it returns an error when it cannot read them.
func (b *Backend) StateCounts(ctx context.Context) ([metastorage.NumStates]int64, error) {
	var n [metastorage.NumStates]int64
	b.ops.RLock()
	defer b.ops.RUnlock()
	if b.closed.Load() {
		return n, fmt.Errorf("state counts: %w", metastorage.ErrBackendClosed)
	}
	err := b.run(ctx, read, func() error {
		return b.pool.QueryRow(ctx, b.q.counts).Scan(&n[0], &n[1], &n[2], &n[3], &n[4], &n[5])
	})
	if err != nil {
		return n, fmt.Errorf("state counts: %w", err)
	}
	for i := range n {
		b.counts[i].Store(n[i])
	}
	return n, nil
}

// ListMessages returns one page of the IDs in state, in one statement that
// reads the page from the index of its sort key and the total from the
// counters (or, with Since, by counting the matches).
func (b *Backend) ListMessages(ctx context.Context, state metastorage.QueueState, o metastorage.MessageListOptions) (metastorage.MessageListResult, error) {
	const op = "list"
	if err := b.begin(ctx, op, state.String()); err != nil {
		return metastorage.MessageListResult{}, err
	}
	defer b.ops.RUnlock()
	if err := checkState(state); err != nil {
		return metastorage.MessageListResult{}, opError(op, "", err)
	}
	var desc bool
	switch o.SortOrder {
	case "", metastorage.SortAsc:
	case metastorage.SortDesc:
		desc = true
	default:
		return metastorage.MessageListResult{}, opError(op, state.String(), fmt.Errorf("unknown sort order %q (valid: asc, desc)", o.SortOrder))
	}
	if _, ok := sortColumns[o.SortBy]; !ok {
		return metastorage.MessageListResult{}, opError(op, state.String(), fmt.Errorf("unknown sort key %q (valid: created, updated, priority, attempts, or empty for the ID)", o.SortBy))
	}
	if o.Limit < 0 || o.Offset < 0 {
		return metastorage.MessageListResult{}, opError(op, state.String(), fmt.Errorf("negative limit %d or offset %d", o.Limit, o.Offset))
	}
	var limit *int64
	if o.Limit > 0 {
		l := int64(o.Limit)
		limit = &l
	}
	k := listKey{o.SortBy, desc}
	sql, args := b.q.list[k], []any{int16(state), int64(o.Offset), limit}
	if !o.Since.IsZero() {
		s := toStamp(o.Since)
		sql, args = b.q.listSince[k], append(args, s.us, s.ns)
	}
	var (
		total int64
		ids   [][]byte
	)
	err := b.run(ctx, read, func() error {
		return b.pool.QueryRow(ctx, sql, args...).Scan(&total, &ids)
	})
	if err != nil {
		return metastorage.MessageListResult{}, opError(op, state.String(), err)
	}
	res := metastorage.MessageListResult{MessageIDs: make([]string, len(ids)), Total: int(total)}
	for i, id := range ids {
		res.MessageIDs[i] = string(id)
	}
	res.HasMore = int64(o.Offset) < total && int64(o.Offset)+int64(len(ids)) < total
	return res, nil
}

// defaultBatch is the page size of an iterator when the caller gives none.
const defaultBatch = 50

// NewMessageIterator returns an iterator that reads the messages in state
// in pages of batchSize, in the order of their IDs, each page a statement
// of its own that starts after the last ID of the page before.
func (b *Backend) NewMessageIterator(ctx context.Context, state metastorage.QueueState, batchSize int) (metastorage.MessageIterator, error) {
	const op = "iterate"
	if err := b.begin(ctx, op, state.String()); err != nil {
		return nil, err
	}
	defer b.ops.RUnlock()
	if err := checkState(state); err != nil {
		return nil, opError(op, "", err)
	}
	if batchSize <= 0 {
		batchSize = defaultBatch
	}
	return &iterator{b: b, state: state, batch: batchSize, after: []byte{}}, nil
}

type iterator struct {
	b      *Backend
	state  metastorage.QueueState
	batch  int
	after  []byte // the last ID read
	page   []row  // the page read last; its rows from next on are to return
	next   int
	done   bool // the last page was short
	closed bool
}

// Next returns the next message of the page, reading the next page when
// this one is used up.
func (it *iterator) Next(ctx context.Context) (metastorage.MessageMetadata, bool, error) {
	const op = "iterate"
	if it.closed {
		return metastorage.MessageMetadata{}, false, opError(op, it.state.String(), errors.New("iterator is closed"))
	}
	if err := it.b.begin(ctx, op, it.state.String()); err != nil {
		return metastorage.MessageMetadata{}, false, err
	}
	defer it.b.ops.RUnlock()
	if it.next == len(it.page) && !it.done {
		// The rows of the page before are returned: reuse their memory.
		clear(it.page)
		err := it.b.run(ctx, read, func() error {
			rows, err := it.b.pool.Query(ctx, it.b.q.page, int16(it.state), it.after, it.batch)
			if err != nil {
				return err
			}
			it.page, err = readPage(rows, it.page[:0])
			return err
		})
		it.next = 0
		if err != nil {
			it.page = it.page[:0]
			return metastorage.MessageMetadata{}, false, opError(op, it.state.String(), err)
		}
		it.done = len(it.page) < it.batch
		if len(it.page) > 0 {
			it.after = append(it.after[:0], it.page[len(it.page)-1].id()...)
		}
	}
	if it.next == len(it.page) {
		return metastorage.MessageMetadata{}, false, nil
	}
	w := &it.page[it.next]
	it.next++
	md, err := w.metadata()
	if err != nil {
		return metastorage.MessageMetadata{}, false, opError(op, quote(w.id()), err)
	}
	return md, true, nil
}

// Close releases the page. It is idempotent.
func (it *iterator) Close() error {
	it.closed = true
	it.page, it.next = nil, 0
	return nil
}

var _ metastorage.CompareAndSwapBackend = (*Backend)(nil)

// expectArgs returns the parameters of sameRecord for expected. A record
// that no row can hold gets the state -1, which matches no row.
func expectArgs(expected metastorage.MessageMetadata) []any {
	state := int16(expected.State)
	if !expected.State.Valid() || metastorage.CheckRecord(&expected) != nil {
		state = -1
	}
	h := expected.Headers
	if h == nil {
		h = map[string]string{}
	}
	next, created, updated := toStamp(expected.NextRetry), toStamp(expected.Created), toStamp(expected.Updated)
	return []any{state, int64(expected.Attempts), int64(expected.MaxAttempts), next.us, next.ns,
		created.us, created.ns, updated.us, updated.ns,
		bytea(expected.LastError), expected.Size, int64(expected.Priority), encodeHeaders(h), bytea(expected.RetryPolicyName)}
}

// UpdateMetaIf replaces the record as UpdateMeta does, only if the stored
// record is the same as expected; see metastorage.CompareAndSwapBackend.
// The compare and the write are one statement.
func (b *Backend) UpdateMetaIf(ctx context.Context, messageID string, expected, md metastorage.MessageMetadata) error {
	const op = "update"
	if err := b.beginWrite(ctx, op, messageID, &md); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	// The row changes only if its Updated is expected.Updated: later than
	// that, the record replaced never matches again.
	now := time.Now()
	if !now.After(expected.Updated) {
		now = expected.Updated.Add(time.Nanosecond)
	}
	args := updateArgs(messageID, &md, now)
	return b.swap(ctx, op, messageID, expected, b.q.updateIf, append(args, expectArgs(expected)...))
}

// DeleteMetaIf removes the message only if its stored record is the same as
// expected, in one statement; see metastorage.CompareAndSwapBackend.
func (b *Backend) DeleteMetaIf(ctx context.Context, messageID string, expected metastorage.MessageMetadata) error {
	const op = "delete"
	if err := b.begin(ctx, op, quote(messageID)); err != nil {
		return err
	}
	defer b.ops.RUnlock()
	if err := checkID(messageID); err != nil {
		return opError(op, quote(messageID), err)
	}
	args := []any{bytea(messageID)}
	return b.swap(ctx, op, messageID, expected, b.q.deleteIf, append(args, expectArgs(expected)...))
}

// swap runs the compare-and-swap statement sql and returns the conflict it
// met, if any.
func (b *Backend) swap(ctx context.Context, op, messageID string, expected metastorage.MessageMetadata, sql string, args []any) error {
	var (
		done  bool
		state *int16 // before the statement; nil when missing
		us    *int64
		ns    *int16
		same  bool // the row before the statement matched expected
	)
	err := b.run(ctx, write, func() error {
		return b.pool.QueryRow(ctx, sql, args...).Scan(&done, &state, &us, &ns, &same)
	})
	switch {
	case err != nil:
		return opError(op, quote(messageID), err)
	case done:
		return nil
	case state == nil:
		return opError(op, quote(messageID), fmt.Errorf("message not found in state %s: %w", expected.State, metastorage.ErrStateConflict))
	case metastorage.QueueState(*state) != expected.State:
		return opError(op, quote(messageID), fmt.Errorf("message is in state %s, expected %s: %w", metastorage.QueueState(*state), expected.State, metastorage.ErrStateConflict))
	}
	if same {
		// Another call changed or deleted the row between the
		// statement's snapshot and its compare.
		return opError(op, quote(messageID), fmt.Errorf("another call changed or deleted the message since it was read: %w", metastorage.ErrStateConflict))
	}
	was := stamp{us: *us, ns: *ns}.time()
	return opError(op, quote(messageID), fmt.Errorf("record changed since it was read (updated %s): %w", was.Format(time.RFC3339Nano), metastorage.ErrStateConflict))
}
