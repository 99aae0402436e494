package metastorage

import (
	"maps"
	"time"
)

// MessageMetadata is the metadata record of one message.
type MessageMetadata struct {
	ID              string            // the message ID, as given by the caller
	State           QueueState        // the queue state the message is in
	Attempts        int               // delivery attempts made so far
	MaxAttempts     int               // attempts allowed before the message bounces
	NextRetry       time.Time         // earliest time of the next attempt
	Created         time.Time         // when the message was first stored
	Updated         time.Time         // when the record last changed
	LastError       string            // the error of the last failed attempt
	Size            int64             // size of the message data in bytes
	Priority        int               // larger is more urgent
	Headers         map[string]string // selected message headers
	RetryPolicyName string            // name of the retry policy that applies
}

// SameRecord reports whether a and b hold the same record: every field but
// ID is equal, times as instants (time.Time.Equal, so the zone offset does
// not matter) and Headers with the same keys and values (nil and empty
// alike). It is the comparison of CompareAndSwapBackend.
func SameRecord(a, b MessageMetadata) bool {
	return a.State == b.State && a.Attempts == b.Attempts && a.MaxAttempts == b.MaxAttempts &&
		a.NextRetry.Equal(b.NextRetry) && a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) &&
		a.LastError == b.LastError && a.Size == b.Size && a.Priority == b.Priority &&
		maps.Equal(a.Headers, b.Headers) && a.RetryPolicyName == b.RetryPolicyName
}

// MessageListOptions selects, orders and pages the result of ListMessages.
type MessageListOptions struct {
	// Limit is the largest number of IDs to return; 0 means all from
	// Offset. A negative Limit is an error.
	Limit int
	// Offset is the number of matching messages to skip. A negative Offset
	// is an error; one past the end gives an empty result.
	Offset int
	// SortBy is "created", "updated", "priority" or "attempts"; empty sorts
	// by ID. Ties are broken by ID, so that pages never overlap or skip.
	// Any other value is an error.
	SortBy string
	// SortOrder is "asc" (the default when empty) or "desc".
	SortOrder string
	// Since, when not zero, keeps only the messages created or updated at
	// or after it.
	Since time.Time
}

// MessageListResult is one page of message IDs.
type MessageListResult struct {
	MessageIDs []string // the page; never nil when the call succeeds
	Total      int      // the number of messages that match, over all pages
	HasMore    bool     // whether matches follow this page
}

// Sort keys accepted in MessageListOptions.SortBy.
const (
	SortByID       = ""
	SortByCreated  = "created"
	SortByUpdated  = "updated"
	SortByPriority = "priority"
	SortByAttempts = "attempts"
)

// Sort orders accepted in MessageListOptions.SortOrder.
const (
	SortAsc  = "asc"
	SortDesc = "desc"
)
