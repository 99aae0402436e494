package metastorage

import "errors"

// Errors reported by backends. A backend wraps them with the operation and
// the message ID, so callers test for them with errors.Is.
var (
	// ErrMessageNotFound is returned by GetMeta, UpdateMeta and DeleteMeta
	// when no message has the given ID.
	ErrMessageNotFound = errors.New("message not found")

	// ErrBackendClosed is returned by every call made after Close, and by
	// iterators whose backend was closed.
	ErrBackendClosed = errors.New("backend is closed")

	// ErrInvalidState is returned when a call names a QueueState out of
	// range, or a state name that does not parse.
	ErrInvalidState = errors.New("invalid state")

	// ErrStateConflict is returned by MoveToState when the message is not
	// in the expected state: it is in another one, or missing; and by the
	// calls of CompareAndSwapBackend when its record is not the expected
	// one. It is the expected outcome for all but one of several callers
	// that race to change the same message.
	ErrStateConflict = errors.New("state conflict")

	// ErrInvalidMessageID is returned when a message ID cannot be stored:
	// it is empty, or too long for the backend.
	ErrInvalidMessageID = errors.New("invalid message ID")

	// ErrInvalidRecord is returned by StoreMeta and UpdateMeta when a
	// field of the record cannot be stored exactly: a string or header
	// that is not valid UTF-8, or a time outside the years 0 to 9999. The
	// error names the field. CheckRecord reports the same errors.
	ErrInvalidRecord = errors.New("invalid record")

	// ErrTooLarge is returned by StoreMeta and UpdateMeta when the record
	// is larger than the backend stores. A record whose strings total at
	// most StringBytesAlwaysStored bytes is never refused with it.
	ErrTooLarge = errors.New("record too large")
)
