package metastorage

import "time"

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
