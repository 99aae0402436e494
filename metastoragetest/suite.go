// Package metastoragetest checks that an implementation of
// metastorage.Backend keeps the storage contract, in the spirit of
// testing/fstest.TestFS. A backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		metastoragetest.Run(t, func(t *testing.T) metastorage.Backend {
//			b, err := mybackend.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// Run checks one Backend at a time; RunShared checks several Backends opened
// on one store, such as several filesystem backends on one directory.
//
// The suite reports every failure it finds, each as
// "operation id: got X, want Y". Its outcome does not depend on timing: it
// never sleeps to synchronise and has no time limits of its own, and it keeps
// its counts small (tens of messages) so that a backend that syncs every
// write to disk runs it in seconds.
//
// Where the contract leaves a choice, the suite accepts each reading:
//
//   - A stored nil Headers map may come back nil or empty; a stored empty one
//     must come back empty and non-nil.
//   - ListMessages may break ties in the sort key by ID ascending or by ID
//     descending (for example by reversing the whole order for "desc"), as
//     long as it does so consistently for one list.
//   - A second Close of a Backend may return nil or an error wrapping
//     metastorage.ErrBackendClosed.
//   - GetMeta, UpdateMeta, DeleteMeta and MoveToState with the empty ID may
//     report metastorage.ErrInvalidMessageID or treat the message as missing;
//     StoreMeta must refuse it with ErrInvalidMessageID.
//   - MoveToState with fromState == toState may or may not set Updated.
//   - Updated is "now" as the backend's clock sees it; the suite checks it
//     lies within a second of the call, to allow for coarse clocks.
//   - Messages that are moved in and out of a state while it is iterated may
//     be returned any number of times (but only while they are in it).
package metastoragetest

import (
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// Run runs the conformance suite against the backend that newBackend makes,
// as subtests of t.
//
// Each call of newBackend must return a new, empty, open Backend; newBackend
// may fail the test given to it (for example with t.Fatal) if it cannot. The
// suite closes every Backend it gets, and the caller may close it too, for
// example in a t.Cleanup function.
//
// Run checks, each in its own subtest on its own Backend:
//
//   - StoreMeta, GetMeta, UpdateMeta and DeleteMeta: every field round-trips
//     (times to the nanosecond with their zone offset, or in UTC where RFC
//     3339 cannot write the offset; empty Headers non-nil); Created and
//     Updated are set as the contract says; a replace or update into another
//     state leaves exactly one copy; missing messages give
//     ErrMessageNotFound, invalid states ErrInvalidState, and fields that
//     CheckRecord refuses ErrInvalidRecord, naming the field, with nothing
//     changed; a record whose strings total StringBytesAlwaysStored is
//     stored, and one of 20 MB round-trips or gives ErrTooLarge with
//     nothing changed.
//   - MoveToState: moves keep every field but State and Updated; conflicts
//     give ErrStateConflict with a text naming the actual state or saying
//     "not found"; fromState == toState; invalid states.
//   - ListMessages: every sort key and order with ties broken by ID, paging
//     without overlap or gap, Total, HasMore, Offset past the end, Since at
//     the nanosecond, and errors rather than panics for bad options.
//   - Iterators: every batch size, the end repeated, Close, the backend's
//     Close, done contexts, and messages that stay in the state returned
//     exactly once while others move in and out, are created and deleted,
//     between calls of Next and from other goroutines, and while they are
//     themselves rewritten in place.
//   - Message IDs: the empty ID is refused; each of HostileIDs is refused
//     with ErrInvalidMessageID or round-trips byte for byte through every
//     call, alone and together with the others.
//   - Calls with a done context return ctx.Err() and change nothing; after
//     Close every call returns ErrBackendClosed.
//   - Goroutines racing MoveToState on the same messages have exactly one
//     winner per message; concurrent writers on distinct messages do not
//     disturb each other or concurrent lists.
//   - When the Backend implements metastorage.StateCounterBackend, its
//     counts are exact after every kind of call, failed calls included, and
//     after every test.
//   - When the Backend implements metastorage.CompareAndSwapBackend:
//     UpdateMetaIf and DeleteMetaIf give ErrStateConflict, changing nothing,
//     when the stored record differs from the expected one in any field or
//     is missing, and succeed on the record GetMeta returned (its times in
//     any zone); invalid records are refused as UpdateMeta refuses them;
//     goroutines that add to a field by compare-and-swap lose no addition.
//     Otherwise these subtests are skipped.
func Run(t *testing.T, newBackend func(t *testing.T) metastorage.Backend) {
	t.Helper()
	open := func(t *testing.T) metastorage.Backend {
		t.Helper()
		b := newBackend(t)
		if b == nil {
			t.Fatal("newBackend returned a nil Backend")
		}
		t.Cleanup(func() { closeQuietly(t, b) })
		return b
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, func(*testing.T) metastorage.Backend)
	}{
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"NoAliasing", testNoAliasing},
		{"StoreSetsTimes", testStoreSetsTimes},
		{"StoreReplace", testStoreReplace},
		{"StoreInvalid", testStoreInvalid},
		{"StoreInvalidRecord", testStoreInvalidRecord},
		{"ZoneOffsets", testZoneOffsets},
		{"RecordSize", testRecordSize},
		{"Update", testUpdate},
		{"Delete", testDelete},
		{"Move", testMove},
		{"MoveConflict", testMoveConflict},
		{"MoveSameState", testMoveSameState},
		{"MoveInvalidState", testMoveInvalidState},
		{"ListEmpty", testListEmpty},
		{"ListSort", testListSort},
		{"ListPaging", testListPaging},
		{"ListOffsetPastEnd", testListOffsetPastEnd},
		{"ListSince", testListSince},
		{"ListInvalid", testListInvalid},
		{"Iterate", testIterate},
		{"IterateEnd", testIterateEnd},
		{"IterateClose", testIterateClose},
		{"IterateBackendClose", testIterateBackendClose},
		{"IterateContext", testIterateContext},
		{"IterateInvalidState", testIterateInvalidState},
		{"IterateInterleaved", testIterateInterleaved},
		{"IterateConcurrent", testIterateConcurrent},
		{"IterateWhileUpdating", testIterateWhileUpdating},
		{"EmptyID", testEmptyID},
		{"HostileIDs", testHostileIDs},
		{"HostileIDsTogether", testHostileIDsTogether},
		{"ContextDone", testContextDone},
		{"Close", testClose},
		{"ConcurrentMove", testConcurrentMove},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Counts", testCounts},
		{"CompareAndSwap", testCompareAndSwap},
		{"CompareAndSwapInvalid", testCompareAndSwapInvalid},
		{"CompareAndSwapRace", testCompareAndSwapRace},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// RunShared runs the part of the conformance suite that concerns several
// Backends open on one store, as subtests of t.
//
// Each call of newStore must make a new, empty store and return an opener;
// each call of the opener opens another Backend on that store. The suite
// closes every Backend it opens.
//
// RunShared checks that Backends racing MoveToState on the same messages
// have exactly one winner per message, that what one writes the others read,
// that closing one leaves the others working, and, when they implement
// metastorage.CompareAndSwapBackend, that goroutines adding to a field by
// compare-and-swap through several of them lose no addition. It does not
// check state counts, which a backend need only keep exact for its own
// writes.
func RunShared(t *testing.T, newStore func(t *testing.T) func() (metastorage.Backend, error)) {
	t.Helper()
	store := func(t *testing.T) func() metastorage.Backend {
		t.Helper()
		opener := newStore(t)
		if opener == nil {
			t.Fatal("newStore returned a nil opener")
		}
		return func() metastorage.Backend {
			t.Helper()
			b, err := opener()
			if err != nil {
				t.Fatalf("opening a Backend on the shared store: %v", err)
			}
			if b == nil {
				t.Fatal("the opener returned a nil Backend")
			}
			t.Cleanup(func() { closeQuietly(t, b) })
			return b
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, func() metastorage.Backend)
	}{
		{"Visibility", testSharedVisibility},
		{"MoveRace", testSharedMoveRace},
		{"Close", testSharedClose},
		{"Reopen", testSharedReopen},
		{"CompareAndSwapRace", testSharedCompareAndSwapRace},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, store(t)) })
	}
}
