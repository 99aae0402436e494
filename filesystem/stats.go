package filesystem

import (
	"errors"
	"sync/atomic"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The kinds of calls Stats counts by outcome.
const (
	opStore = iota
	opGet
	opUpdate
	opDelete
	opMove
	opList
	numOps
)

// The outcomes of a call.
const (
	outOK = iota
	outNotFound
	outConflict
	outError
	numOutcomes
)

// stats are the Backend's counters.
type stats struct {
	ops             [numOps][numOutcomes]atomic.Int64
	writes          atomic.Int64
	deletes         atomic.Int64
	conflicts       atomic.Int64
	fileSyncs       atomic.Int64
	dirSyncRequests atomic.Int64
	recoveryActions atomic.Int64
	corruptFiles    atomic.Int64
	unreadableFiles atomic.Int64

	journalBytes        atomic.Int64
	journalSyncRequests atomic.Int64
	checkpoints         atomic.Int64
	flushes             atomic.Int64
}

// count records the outcome of a call of kind op that returned err.
func (s *stats) count(op int, err error) {
	out := outOK
	switch {
	case err == nil:
	case errors.Is(err, metastorage.ErrMessageNotFound):
		out = outNotFound
	case errors.Is(err, metastorage.ErrStateConflict):
		out = outConflict
	default:
		out = outError
	}
	s.ops[op][out].Add(1)
}

// opKind returns the kind of a mutating call by its name in errors, or -1
// for recovery's own writes, which Stats counts as recovery actions.
func opKind(op string) int {
	switch op {
	case "store":
		return opStore
	case "update":
		return opUpdate
	case "delete":
		return opDelete
	case "move":
		return opMove
	}
	return -1
}

// Outcomes counts the calls of one kind by how they ended.
type Outcomes struct {
	OK       int64 // returned nil
	NotFound int64 // ErrMessageNotFound
	Conflict int64 // ErrStateConflict
	Error    int64 // any other error, bad input included
}

// Stats is a snapshot of a Backend's counters since it was opened.
type Stats struct {
	Store, Get, Update, Delete, Move, List Outcomes // calls by outcome

	Writes              int64 // files written (stores, updates, moves)
	Deletes             int64 // messages deleted
	Conflicts           int64 // compare-and-swaps that found the message elsewhere
	FileSyncs           int64 // fsyncs of message data
	DirSyncRequests     int64 // directory fsyncs asked for by calls
	DirSyncs            int64 // directory fsyncs issued: group commits, each serving DirSyncRequests/DirSyncs calls on average
	JournalBytes        int64 // bytes appended to the journal
	JournalSyncRequests int64 // journal fsyncs asked for by calls
	JournalSyncs        int64 // journal fsyncs issued: group commits
	Checkpoints         int64 // journal checkpoints: syncfs, then the journal emptied
	Flushes             int64 // Performance mode's syncs of the file system, after which displaced records are removed
	RecoveryActions     int64 // changes made by recovery
	CorruptFiles        int64 // files recovery moved to corrupt/
	// UnreadableFiles counts the message files that a listing, an
	// iteration or a recovery scan skipped because they cannot be read
	// (permission denied): once per file and pass.
	UnreadableFiles int64
}

// MeanGroupCommit returns the mean number of calls one directory or
// journal fsync served, or 0 before the first.
func (s Stats) MeanGroupCommit() float64 {
	if s.DirSyncs+s.JournalSyncs == 0 {
		return 0
	}
	return float64(s.DirSyncRequests+s.JournalSyncRequests) / float64(s.DirSyncs+s.JournalSyncs)
}

// totals returns the counters as Stats, but for the syncs, which the
// Backend's journal and directories count.
func (s *stats) totals() Stats {
	outcomes := func(op int) Outcomes {
		c := &s.ops[op]
		return Outcomes{c[outOK].Load(), c[outNotFound].Load(), c[outConflict].Load(), c[outError].Load()}
	}
	return Stats{
		Store: outcomes(opStore), Get: outcomes(opGet), Update: outcomes(opUpdate),
		Delete: outcomes(opDelete), Move: outcomes(opMove), List: outcomes(opList),
		Writes:              s.writes.Load(),
		Deletes:             s.deletes.Load(),
		Conflicts:           s.conflicts.Load(),
		FileSyncs:           s.fileSyncs.Load(),
		DirSyncRequests:     s.dirSyncRequests.Load(),
		RecoveryActions:     s.recoveryActions.Load(),
		CorruptFiles:        s.corruptFiles.Load(),
		UnreadableFiles:     s.unreadableFiles.Load(),
		JournalBytes:        s.journalBytes.Load(),
		JournalSyncRequests: s.journalSyncRequests.Load(),
		Checkpoints:         s.checkpoints.Load(),
		Flushes:             s.flushes.Load(),
	}
}
