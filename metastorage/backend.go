package metastorage

import "context"

// Backend stores message metadata. Implementations are safe for concurrent
// use by multiple goroutines.
//
// Every call whose context is already done returns ctx.Err() and changes
// nothing. Every call made after Close returns an error wrapping
// ErrBackendClosed. Errors name the operation and the message ID and wrap the
// sentinel errors of this package where one applies. A call that returns an
// error has changed nothing: the message is as it was before the call.
//
// A message is in exactly one state at every instant.
type Backend interface {
	// StoreMeta creates the message, or replaces it whole if it exists. It
	// sets Updated to the current time and Created to the current time
	// when metadata.Created is zero. If the message exists in another
	// state than metadata.State, it is moved to metadata.State atomically:
	// no second copy exists at any instant. The ID stored is messageID;
	// metadata.ID is ignored. An ID the backend cannot store gives
	// ErrInvalidMessageID; a state out of range gives ErrInvalidState; a
	// field CheckRecord refuses gives ErrInvalidRecord; a record over the
	// backend's size limit gives ErrTooLarge (see StringBytesAlwaysStored).
	StoreMeta(ctx context.Context, messageID string, metadata MessageMetadata) error

	// GetMeta returns the message's record, with ID and State as the
	// backend holds them, or an error wrapping ErrMessageNotFound. An empty
	// Headers map that was stored comes back as an empty, non-nil map;
	// every field round-trips exactly, strings byte for byte, times to the
	// nanosecond. A time comes back with its zone offset when that is a
	// whole number of minutes less than a day in size, as RFC 3339 writes
	// offsets, and otherwise in UTC: the instant is always kept.
	GetMeta(ctx context.Context, messageID string) (MessageMetadata, error)

	// UpdateMeta replaces the whole record of an existing message, keeping
	// its stored Created and setting Updated to the current time. If
	// metadata.State differs from the message's state, the message moves
	// atomically, content and state together. A missing message gives
	// ErrMessageNotFound; an invalid or too large record is refused as
	// StoreMeta refuses it.
	UpdateMeta(ctx context.Context, messageID string, metadata MessageMetadata) error

	// DeleteMeta removes the message from whatever state it is in, or
	// returns an error wrapping ErrMessageNotFound.
	DeleteMeta(ctx context.Context, messageID string) error

	// ListMessages returns one page of the IDs of the messages in state,
	// selected, sorted and paged as options say (see MessageListOptions).
	ListMessages(ctx context.Context, state QueueState, options MessageListOptions) (MessageListResult, error)

	// NewMessageIterator streams the messages in state, batchSize at a
	// time (50 when batchSize <= 0). Every message that stays in state for
	// the whole iteration is returned exactly once, also while other
	// messages move in or out; no record is returned whose state is not
	// state. See MessageIterator for the end of the iteration.
	NewMessageIterator(ctx context.Context, state QueueState, batchSize int) (MessageIterator, error)

	// MoveToState moves the message from fromState to toState as a
	// compare-and-swap: of any number of concurrent callers, exactly one
	// succeeds and the others get an error wrapping ErrStateConflict. A
	// message that is missing, or in a state other than fromState, gives
	// ErrStateConflict with a message that says which. It sets Updated and
	// keeps every other field. fromState == toState returns nil when the
	// message is in that state. A state out of range gives
	// ErrInvalidState.
	MoveToState(ctx context.Context, messageID string, fromState, toState QueueState) error

	// Close releases the backend's resources after waiting for its
	// background work to stop. It is idempotent; afterwards every call
	// returns ErrBackendClosed.
	Close() error
}

// StateCounterBackend is a Backend that keeps a count of the messages in
// each state.
type StateCounterBackend interface {
	Backend

	// GetStateCount returns the number of messages in state, at a cost
	// that does not grow with the number of messages: it reads no message.
	// It may wait for a count the backend makes once after open. A backend
	// documents how exact the count is; it reflects at least every write
	// made through this Backend value. For a state out of range it returns
	// 0.
	GetStateCount(state QueueState) int64
}

// CompareAndSwapBackend is a Backend that changes a message only if its
// record is still the one the caller read. It serves tools that change
// messages beside a running queue: a worker's write between the tool's read
// and its change is never overwritten.
//
// The stored record matches expected when SameRecord reports them the same;
// expected is typically what GetMeta returned. A backend that stores rows can
// make each call one statement, such as an UPDATE or DELETE whose WHERE
// clause compares every column.
type CompareAndSwapBackend interface {
	Backend

	// UpdateMetaIf is UpdateMeta as a compare-and-swap: it replaces the
	// record with metadata only if the stored record matches expected, as
	// one atomic step. It sets Updated to the current time, or later than
	// the stored Updated if the clock has not passed it, so that a record
	// replaced never matches again: of any number of concurrent callers
	// that expect the same record, at most one succeeds. A message that is
	// missing, or whose record does not match, gives an error wrapping
	// ErrStateConflict that says which, and nothing changes. metadata is
	// checked, stored and moved as UpdateMeta does it.
	UpdateMetaIf(ctx context.Context, messageID string, expected, metadata MessageMetadata) error

	// DeleteMetaIf is DeleteMeta as a compare-and-swap: it removes the
	// message only if its stored record matches expected, and otherwise
	// returns an error wrapping ErrStateConflict, as UpdateMetaIf does.
	DeleteMetaIf(ctx context.Context, messageID string, expected MessageMetadata) error
}

// MessageIterator streams the messages of one state. It is not safe for
// concurrent use.
type MessageIterator interface {
	// Next returns the next message with hasMore true. When nothing is
	// left it returns (MessageMetadata{}, false, nil), and again on every
	// further call: hasMore is false only when no message was returned, so
	// a caller loops until it is false. A done context returns ctx.Err().
	// After Close, or after the backend's Close, Next returns an error.
	Next(ctx context.Context) (MessageMetadata, bool, error)

	// Close releases the iterator's resources. It is idempotent.
	Close() error
}

// Factory creates backends of one kind with one configuration.
type Factory interface {
	// Create opens a new Backend.
	Create() (Backend, error)

	// Name returns the name of the kind of backend the factory creates.
	Name() string
}
