package metastorage

import "fmt"

// QueueState is the state of a message in the queue. Every message is in
// exactly one state.
type QueueState int

// The queue states. Their values are part of the on-disk format of backends
// that store the state as a number and must not change.
const (
	StateIncoming QueueState = iota // accepted, not yet picked up
	StateActive                     // being delivered by a worker
	StateDeferred                   // waiting for its next retry
	StateHold                       // held by an operator
	StateBounce                     // failed permanently
	StateArchived                   // done, kept for the record
)

// NumStates is the number of queue states; the valid states are the values
// 0 through NumStates-1.
const NumStates = 6

var stateNames = [NumStates]string{"incoming", "active", "deferred", "hold", "bounce", "archived"}

// String returns the state's name ("incoming", "active", "deferred", "hold",
// "bounce", "archived"), or "unknown" for a value out of range.
func (s QueueState) String() string {
	if !s.Valid() {
		return "unknown"
	}
	return stateNames[s]
}

// Valid reports whether s is one of the defined states.
func (s QueueState) Valid() bool {
	return s >= 0 && s < NumStates
}

// States returns every queue state in ascending order.
func States() []QueueState {
	s := make([]QueueState, NumStates)
	for i := range s {
		s[i] = QueueState(i)
	}
	return s
}

// ParseQueueState returns the state whose String is name. For any other
// name it returns an error that wraps ErrInvalidState and lists the valid
// names.
func ParseQueueState(name string) (QueueState, error) {
	for i, n := range stateNames {
		if n == name {
			return QueueState(i), nil
		}
	}
	return 0, fmt.Errorf("unknown queue state %q (valid: incoming, active, deferred, hold, bounce, archived): %w", name, ErrInvalidState)
}
