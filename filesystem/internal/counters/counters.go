// Package counters is the layout of the shared change counters of a
// metadata directory (the file .locks/changes, mapped by every writable
// Backend on it) and their odd/even protocol.
//
// The file holds a header of Header bytes, then a change counter for each
// state and stripe, then the number of messages of each state and stripe:
// native-endian 64-bit words, read and written atomically. The header's
// words are, by offset: 0 the magic word, 8 the journal flag, 16 and 24
// the syncs of the file system begun and ended, 32 the flag that the
// message counts are established.
//
// Around each rename or removal of a message file of a stripe in a state's
// directory, the writer, who holds the stripe's lock, makes the counter of
// that state and stripe odd (Begin), and then even again (End). So a reader
// that finds the same even value (Snapshot, Unchanged) before it opens a
// message file and later knows that no file of the stripe entered or left
// the directory meanwhile. A writer killed in between leaves the counter
// odd; the next Begin moves it past that value.
package counters

import (
	"sync/atomic"
	"unsafe"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The magic words: the first word of the file, as little-endian bytes.
const (
	// Magic marks this layout, written by a version whose moves leave a
	// message file's State and Updated fields stale (its State is its
	// directory, its Updated then the file's modification time): a
	// version before it would take them for the record, so it must refuse
	// the directory, and its check refuses any magic word it does not
	// know.
	Magic = 0x34306d7367686373 // "schgsm04"
	// Magic3 marks the same layout written by the version before, whose
	// files' fields are never stale; Magic2 the layout before the message
	// counts, and Magic1 the one before the sync counts. A Backend alone
	// on the directory takes any of them over; Backends of those versions
	// then refuse the file.
	Magic3 = 0x33306d7367686373 // "schgsm03"
	Magic2 = 0x32306d7367686373 // "schgsm02"
	Magic1 = 0x31306d7367686373 // "schgsm01"
)

const (
	// Stripes is the number of lock stripes, each with its own counters.
	Stripes = 64
	// Header is the number of bytes before the counters.
	Header   = 64
	counters = metastorage.NumStates * Stripes
	// Size is the size of the file.
	Size = Header + 2*counters*8

	// The offsets of the words of the header, and of the message counts.
	JournalFlagAt = 8  // 1 once the directory may have a journal
	SyncsBegunAt  = 16 // the syncs of the file system begun
	SyncsEndedAt  = 24 // the syncs of the file system ended
	CountsKnownAt = 32 // 1 once the message counts are established
	CountsAt      = Header + counters*8
)

// Table is the counters in a mapping of the file.
type Table struct{ mem []byte }

// New returns the Table in mem, which holds at least Size bytes and is
// aligned to 8 bytes.
func New(mem []byte) Table { return Table{mem: mem[:Size:Size]} }

func (t Table) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&t.mem[off]))
}

// MagicWord is the file's first word.
func (t Table) MagicWord() *atomic.Uint64 { return t.word(0) }

// MarkJournal records that the directory has, or is about to have, a
// journal.
func (t Table) MarkJournal() { t.word(JournalFlagAt).Store(1) }

// MayHaveJournal reports whether MarkJournal was called since the file was
// created.
func (t Table) MayHaveJournal() bool { return t.word(JournalFlagAt).Load() != 0 }

// SyncCount is how many syncs of the whole file system (syncfs) Backends
// on the directory have begun and ended. While it holds one value, no sync
// began, and none that was under way was counted as ended (one whose
// process died before it counted the end never is).
type SyncCount struct{ Begun, Ended uint64 }

// SyncBegun counts a sync of the file system about to begin.
func (t Table) SyncBegun() { t.word(SyncsBegunAt).Add(1) }

// SyncEnded counts a sync of the file system that has returned, whether
// or not it failed.
func (t Table) SyncEnded() { t.word(SyncsEndedAt).Add(1) }

// Syncs returns the syncs of the file system begun and ended.
func (t Table) Syncs() SyncCount {
	return SyncCount{t.word(SyncsBegunAt).Load(), t.word(SyncsEndedAt).Load()}
}

// CountsKnown is the word that is 1 once the message counts are
// established, and 0 while they are not.
func (t Table) CountsKnown() *atomic.Uint64 { return t.word(CountsKnownAt) }

// Counter is the change counter of state s and stripe.
func (t Table) Counter(s metastorage.QueueState, stripe int) *atomic.Uint64 {
	return t.word(Header + (int(s)*Stripes+stripe)*8)
}

// Count is the number of messages of stripe in state s's directory.
func (t Table) Count(s metastorage.QueueState, stripe int) *atomic.Int64 {
	return (*atomic.Int64)(unsafe.Pointer(&t.mem[CountsAt+(int(s)*Stripes+stripe)*8]))
}

// Total returns the number of messages in state s.
func (t Table) Total(s metastorage.QueueState) int64 {
	var n int64
	for i := range Stripes {
		n += t.Count(s, i).Load()
	}
	return n
}

// Begin makes the counter of state s and stripe odd: a change is under
// way. The caller holds the stripe's lock, so no one else writes the
// counter; an odd value found is that of a holder that died mid-change.
func (t Table) Begin(s metastorage.QueueState, stripe int) {
	v := t.Counter(s, stripe)
	n := v.Load()
	if n%2 == 1 {
		n++
	}
	v.Store(n + 1)
}

// End makes the counter of state s and stripe even again.
func (t Table) End(s metastorage.QueueState, stripe int) {
	v := t.Counter(s, stripe)
	v.Store(v.Load() + 1)
}

// Snapshot returns the counter of state s and stripe, and whether a
// reader can use it: it is even, no change being under way.
func (t Table) Snapshot(s metastorage.QueueState, stripe int) (uint64, bool) {
	n := t.Counter(s, stripe).Load()
	return n, n%2 == 0
}

// Unchanged reports whether the counter of state s and stripe still holds
// n, a usable snapshot.
func (t Table) Unchanged(s metastorage.QueueState, stripe int, n uint64) bool {
	return t.Counter(s, stripe).Load() == n
}
