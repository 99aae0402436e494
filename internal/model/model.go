// Package model is a simple in-memory implementation of
// metastorage.StateCounterBackend: one map guarded by one mutex.
//
// It is written to be obviously correct rather than fast. It is the reference
// that randomized tests compare real backends against, and the backend the
// conformance suite metastoragetest checks itself on.
package model

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// errIteratorClosed is returned by Next after the iterator's Close.
var errIteratorClosed = errors.New("iterator is closed")

// Backend is an in-memory metastorage.StateCounterBackend. The zero value is
// not usable; call New.
//
// Every ID other than the empty one is accepted and kept byte for byte.
// Records are deep-copied on the way in and out, so callers never share a
// Headers map with the backend; a nil Headers map stays nil and an empty one
// stays empty and non-nil.
//
// Updated is set to the current time, or to one nanosecond after the
// message's previous Updated if the clock has not passed it, so a message's
// Updated only grows.
//
// ListMessages breaks ties by ID in ascending order, whatever SortOrder says.
//
// The context is only checked on entry: a call whose context is already done
// returns an error wrapping ctx.Err() and changes nothing.
type Backend struct {
	mu     sync.Mutex
	closed bool
	msgs   map[string]metastorage.MessageMetadata
	counts [metastorage.NumStates]int64
	clock  func() time.Time
}

var (
	_ metastorage.StateCounterBackend   = (*Backend)(nil)
	_ metastorage.CompareAndSwapBackend = (*Backend)(nil)
)

// New returns an empty, open Backend.
func New() *Backend { return NewClock(time.Now) }

// NewClock returns an empty, open Backend that reads the current time from
// clock.
func NewClock(clock func() time.Time) *Backend {
	return &Backend{msgs: make(map[string]metastorage.MessageMetadata), clock: clock}
}

// StoreMeta creates the message messageID, or replaces it whole, as
// metastorage.Backend.StoreMeta describes. It sets Created to the current time
// when metadata.Created is zero, also when it replaces a message.
func (b *Backend) StoreMeta(ctx context.Context, messageID string, metadata metastorage.MessageMetadata) error {
	const op = "store"
	if err := checkWrite(ctx, op, messageID, &metadata); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	rec := clone(metadata)
	rec.ID = messageID
	now := b.now()
	if rec.Created.IsZero() {
		rec.Created = now
	}
	prev, ok := b.msgs[messageID]
	rec.Updated = nextUpdated(now, prev, ok)
	b.put(prev, ok, rec)
	return nil
}

// GetMeta returns a copy of the record of messageID, or an error wrapping
// metastorage.ErrMessageNotFound.
func (b *Backend) GetMeta(ctx context.Context, messageID string) (metastorage.MessageMetadata, error) {
	const op = "get"
	if err := checkCall(ctx, op, messageID); err != nil {
		return metastorage.MessageMetadata{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return metastorage.MessageMetadata{}, closedError(op, messageID)
	}
	rec, ok := b.msgs[messageID]
	if !ok {
		return metastorage.MessageMetadata{}, notFound(op, messageID)
	}
	return clone(rec), nil
}

// UpdateMeta replaces the whole record of the existing message messageID,
// keeping its Created and setting Updated. It fails with an error wrapping
// metastorage.ErrMessageNotFound when the message does not exist.
func (b *Backend) UpdateMeta(ctx context.Context, messageID string, metadata metastorage.MessageMetadata) error {
	const op = "update"
	if err := checkWrite(ctx, op, messageID, &metadata); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	prev, ok := b.msgs[messageID]
	if !ok {
		return notFound(op, messageID)
	}
	rec := clone(metadata)
	rec.ID = messageID
	rec.Created = prev.Created
	rec.Updated = nextUpdated(b.now(), prev, true)
	b.put(prev, true, rec)
	return nil
}

// UpdateMetaIf replaces the record of messageID as UpdateMeta does, if the
// stored record is the same as expected (see metastorage.SameRecord);
// otherwise it returns an error wrapping metastorage.ErrStateConflict.
func (b *Backend) UpdateMetaIf(ctx context.Context, messageID string, expected, metadata metastorage.MessageMetadata) error {
	const op = "update"
	if err := checkWrite(ctx, op, messageID, &metadata); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	prev, err := b.expect(op, messageID, expected)
	if err != nil {
		return err
	}
	rec := clone(metadata)
	rec.ID = messageID
	rec.Created = prev.Created
	rec.Updated = nextUpdated(b.now(), prev, true)
	b.put(prev, true, rec)
	return nil
}

// DeleteMetaIf removes messageID if its stored record is the same as
// expected; otherwise it returns an error wrapping
// metastorage.ErrStateConflict.
func (b *Backend) DeleteMetaIf(ctx context.Context, messageID string, expected metastorage.MessageMetadata) error {
	const op = "delete"
	if err := checkCall(ctx, op, messageID); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	prev, err := b.expect(op, messageID, expected)
	if err != nil {
		return err
	}
	delete(b.msgs, messageID)
	b.counts[prev.State]--
	return nil
}

// expect returns the stored record of messageID if it is the same as
// expected, or the conflict error that says why not. b.mu is held.
func (b *Backend) expect(op, messageID string, expected metastorage.MessageMetadata) (metastorage.MessageMetadata, error) {
	prev, ok := b.msgs[messageID]
	switch {
	case !ok:
		return prev, fmt.Errorf("%s %s: message not found in state %s: %w", op, messageID, expected.State, metastorage.ErrStateConflict)
	case prev.State != expected.State:
		return prev, fmt.Errorf("%s %s: message is in state %s, expected %s: %w", op, messageID, prev.State, expected.State, metastorage.ErrStateConflict)
	case !metastorage.SameRecord(prev, expected):
		return prev, fmt.Errorf("%s %s: record changed since it was read (updated %s): %w", op, messageID, prev.Updated.Format(time.RFC3339Nano), metastorage.ErrStateConflict)
	}
	return prev, nil
}

// DeleteMeta removes the message messageID, or returns an error wrapping
// metastorage.ErrMessageNotFound.
func (b *Backend) DeleteMeta(ctx context.Context, messageID string) error {
	const op = "delete"
	if err := checkCall(ctx, op, messageID); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	prev, ok := b.msgs[messageID]
	if !ok {
		return notFound(op, messageID)
	}
	delete(b.msgs, messageID)
	b.counts[prev.State]--
	return nil
}

// MoveToState moves messageID from fromState to toState if, and only if, it
// is in fromState; otherwise it returns an error wrapping
// metastorage.ErrStateConflict that names the state the message is in, or
// says that it was not found. A successful move sets Updated and keeps every
// other field. When fromState == toState and the message is in that state,
// MoveToState returns nil and changes nothing, not even Updated.
func (b *Backend) MoveToState(ctx context.Context, messageID string, fromState, toState metastorage.QueueState) error {
	const op = "move"
	if err := checkCall(ctx, op, messageID); err != nil {
		return err
	}
	for _, s := range []metastorage.QueueState{fromState, toState} {
		if !s.Valid() {
			return invalidState(op, messageID, s)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedError(op, messageID)
	}
	prev, ok := b.msgs[messageID]
	if !ok {
		return fmt.Errorf("%s %s: message not found in state %s: %w", op, messageID, fromState, metastorage.ErrStateConflict)
	}
	if prev.State != fromState {
		return fmt.Errorf("%s %s: message is in state %s, expected %s: %w", op, messageID, prev.State, fromState, metastorage.ErrStateConflict)
	}
	if fromState == toState {
		return nil
	}
	rec := clone(prev)
	rec.State = toState
	rec.Updated = nextUpdated(b.now(), prev, true)
	b.put(prev, true, rec)
	return nil
}

// ListMessages returns one page of the IDs of the messages in state, as
// metastorage.MessageListOptions describes. Ties in the sort key are broken
// by ID in ascending order, also when SortOrder is "desc". A SortOrder other
// than "", "asc" and "desc" is an error.
func (b *Backend) ListMessages(ctx context.Context, state metastorage.QueueState, options metastorage.MessageListOptions) (metastorage.MessageListResult, error) {
	op := "list " + state.String()
	if err := ctx.Err(); err != nil {
		return metastorage.MessageListResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if !state.Valid() {
		return metastorage.MessageListResult{}, fmt.Errorf("list: state %d out of range: %w", int(state), metastorage.ErrInvalidState)
	}
	less, err := comparer(options.SortBy, options.SortOrder)
	if err != nil {
		return metastorage.MessageListResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if options.Limit < 0 {
		return metastorage.MessageListResult{}, fmt.Errorf("%s: negative limit %d", op, options.Limit)
	}
	if options.Offset < 0 {
		return metastorage.MessageListResult{}, fmt.Errorf("%s: negative offset %d", op, options.Offset)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return metastorage.MessageListResult{}, fmt.Errorf("%s: %w", op, metastorage.ErrBackendClosed)
	}
	var match []metastorage.MessageMetadata
	for _, m := range b.msgs {
		if m.State == state && since(m, options.Since) {
			match = append(match, m)
		}
	}
	slices.SortFunc(match, less)
	return page(match, options.Offset, options.Limit), nil
}

// since reports whether m was created or updated at or after t, or whether t
// is zero.
func since(m metastorage.MessageMetadata, t time.Time) bool {
	return t.IsZero() || !m.Created.Before(t) || !m.Updated.Before(t)
}

// comparer returns the comparison function for the sort key and order.
func comparer(sortBy, order string) (func(a, b metastorage.MessageMetadata) int, error) {
	var key func(a, b metastorage.MessageMetadata) int
	switch sortBy {
	case metastorage.SortByID:
		key = func(a, b metastorage.MessageMetadata) int { return strings.Compare(a.ID, b.ID) }
	case metastorage.SortByCreated:
		key = func(a, b metastorage.MessageMetadata) int { return a.Created.Compare(b.Created) }
	case metastorage.SortByUpdated:
		key = func(a, b metastorage.MessageMetadata) int { return a.Updated.Compare(b.Updated) }
	case metastorage.SortByPriority:
		key = func(a, b metastorage.MessageMetadata) int { return cmp.Compare(a.Priority, b.Priority) }
	case metastorage.SortByAttempts:
		key = func(a, b metastorage.MessageMetadata) int { return cmp.Compare(a.Attempts, b.Attempts) }
	default:
		return nil, fmt.Errorf("unknown sort key %q (valid: created, updated, priority, attempts, or empty for ID)", sortBy)
	}
	sign := 1
	switch order {
	case "", metastorage.SortAsc:
	case metastorage.SortDesc:
		sign = -1
	default:
		return nil, fmt.Errorf("unknown sort order %q (valid: asc, desc)", order)
	}
	return func(a, b metastorage.MessageMetadata) int {
		if c := sign * key(a, b); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}, nil
}

// page returns the page of sorted that starts at offset and holds at most
// limit IDs, or all of the rest when limit is 0.
func page(sorted []metastorage.MessageMetadata, offset, limit int) metastorage.MessageListResult {
	total := len(sorted)
	start := min(offset, total)
	end := total
	if limit > 0 {
		end = min(start+limit, total)
	}
	ids := make([]string, 0, end-start)
	for _, m := range sorted[start:end] {
		ids = append(ids, m.ID)
	}
	return metastorage.MessageListResult{MessageIDs: ids, Total: total, HasMore: end < total}
}

// NewMessageIterator returns an iterator over the messages in state. It takes
// a sorted snapshot of the IDs in state and returns, in ID order, each of
// them that is still in state when Next reaches it. batchSize is accepted for
// the interface's sake; the snapshot is taken whole.
func (b *Backend) NewMessageIterator(ctx context.Context, state metastorage.QueueState, batchSize int) (metastorage.MessageIterator, error) {
	op := "iterate " + state.String()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !state.Valid() {
		return nil, fmt.Errorf("iterate: state %d out of range: %w", int(state), metastorage.ErrInvalidState)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("%s: %w", op, metastorage.ErrBackendClosed)
	}
	var ids []string
	for id, m := range b.msgs {
		if m.State == state {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return &iterator{b: b, state: state, ids: ids}, nil
}

// GetStateCount returns the number of messages in state, or 0 for a state out
// of range. After Close it returns the counts as they were at Close.
func (b *Backend) GetStateCount(state metastorage.QueueState) int64 {
	if !state.Valid() {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[state]
}

// Close closes the backend. It is idempotent and always returns nil;
// afterwards every call, and every iterator's Next, returns an error wrapping
// metastorage.ErrBackendClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// put replaces prev (if ok) by rec and keeps the counts. The caller holds
// b.mu.
func (b *Backend) put(prev metastorage.MessageMetadata, ok bool, rec metastorage.MessageMetadata) {
	if ok {
		b.counts[prev.State]--
	}
	b.counts[rec.State]++
	b.msgs[rec.ID] = rec
}

// iterator is the model's metastorage.MessageIterator.
type iterator struct {
	b      *Backend
	state  metastorage.QueueState
	ids    []string // IDs not yet looked at
	closed bool
}

// Next returns the next message of the snapshot that is still in the
// iterator's state.
func (it *iterator) Next(ctx context.Context) (metastorage.MessageMetadata, bool, error) {
	op := "iterate " + it.state.String()
	if err := ctx.Err(); err != nil {
		return metastorage.MessageMetadata{}, false, fmt.Errorf("%s: %w", op, err)
	}
	if it.closed {
		return metastorage.MessageMetadata{}, false, fmt.Errorf("%s: %w", op, errIteratorClosed)
	}
	it.b.mu.Lock()
	defer it.b.mu.Unlock()
	if it.b.closed {
		return metastorage.MessageMetadata{}, false, fmt.Errorf("%s: %w", op, metastorage.ErrBackendClosed)
	}
	for len(it.ids) > 0 {
		id := it.ids[0]
		it.ids = it.ids[1:]
		if m, ok := it.b.msgs[id]; ok && m.State == it.state {
			return clone(m), true, nil
		}
	}
	it.ids = nil
	return metastorage.MessageMetadata{}, false, nil
}

// Close closes the iterator. It is idempotent and returns nil.
func (it *iterator) Close() error {
	it.closed = true
	it.ids = nil
	return nil
}

// checkWrite checks a call that writes metadata: the context and ID, as
// checkCall does, the state, and the record (metastorage.CheckRecord).
func checkWrite(ctx context.Context, op, id string, metadata *metastorage.MessageMetadata) error {
	if err := checkCall(ctx, op, id); err != nil {
		return err
	}
	if !metadata.State.Valid() {
		return invalidState(op, id, metadata.State)
	}
	if err := metastorage.CheckRecord(metadata); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	return nil
}

// checkCall returns the error for a call of op on id whose context is done or
// whose ID is empty.
func checkCall(ctx context.Context, op, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if id == "" {
		return fmt.Errorf("%s: empty ID: %w", op, metastorage.ErrInvalidMessageID)
	}
	return nil
}

func invalidState(op, id string, s metastorage.QueueState) error {
	return fmt.Errorf("%s %s: state %d out of range: %w", op, id, int(s), metastorage.ErrInvalidState)
}

func closedError(op, id string) error {
	return fmt.Errorf("%s %s: %w", op, id, metastorage.ErrBackendClosed)
}

func notFound(op, id string) error {
	return fmt.Errorf("%s %s: %w", op, id, metastorage.ErrMessageNotFound)
}

// now returns the current time without its monotonic clock reading, as a
// stored time would be.
func (b *Backend) now() time.Time {
	return b.clock().Round(0)
}

// nextUpdated returns the Updated time of a message written at now whose
// previous record, if ok, is prev: now, or one nanosecond after prev.Updated
// if now has not passed it.
func nextUpdated(now time.Time, prev metastorage.MessageMetadata, ok bool) time.Time {
	if ok && !now.After(prev.Updated) {
		return prev.Updated.Add(time.Nanosecond)
	}
	return now
}

// clone returns a deep copy of m: its Headers map is a new map, nil if and
// only if m.Headers is nil.
func clone(m metastorage.MessageMetadata) metastorage.MessageMetadata {
	m.Headers = maps.Clone(m.Headers)
	m.NextRetry, m.Created = storable(m.NextRetry), storable(m.Created)
	return m
}

// storable returns t as the contract has a backend return it: in UTC if
// its zone offset is not a whole number of minutes less than a day.
func storable(t time.Time) time.Time {
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return t.UTC()
	}
	return t
}
