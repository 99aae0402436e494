package filesystem

import "sync/atomic"

// stats are the Backend's counters.
type stats struct {
	writes          atomic.Int64
	deletes         atomic.Int64
	conflicts       atomic.Int64
	fileSyncs       atomic.Int64
	dirSyncRequests atomic.Int64
	recoveryActions atomic.Int64
	corruptFiles    atomic.Int64
}

// Stats is a snapshot of a Backend's counters since it was opened.
type Stats struct {
	Writes          int64 // files written (stores, updates, moves)
	Deletes         int64 // messages deleted
	Conflicts       int64 // moves that found the message elsewhere
	FileSyncs       int64 // fsyncs of message data
	DirSyncRequests int64 // directory fsyncs asked for by calls
	DirSyncs        int64 // directory fsyncs issued; fewer than asked when shared
	RecoveryActions int64 // changes made by recovery
	CorruptFiles    int64 // files recovery moved to corrupt/
}

// Stats returns a snapshot of the Backend's counters.
func (b *Backend) Stats() Stats {
	st := Stats{
		Writes:          b.stats.writes.Load(),
		Deletes:         b.stats.deletes.Load(),
		Conflicts:       b.stats.conflicts.Load(),
		FileSyncs:       b.stats.fileSyncs.Load(),
		DirSyncRequests: b.stats.dirSyncRequests.Load(),
		RecoveryActions: b.stats.recoveryActions.Load(),
		CorruptFiles:    b.stats.corruptFiles.Load(),
	}
	for _, d := range b.dirs {
		if d != nil {
			d.mu.Lock()
			st.DirSyncs += int64(d.done)
			d.mu.Unlock()
		}
	}
	return st
}
