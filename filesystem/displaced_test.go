package filesystem

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// temps returns the temp files in the state directories of the metadata
// directory on mem.
func temps(t *testing.T, mem *vfs.Mem) []string {
	t.Helper()
	img, err := readImage(mem)
	if err != nil {
		t.Fatal(err)
	}
	return img.temps
}

// journaledUnflushed returns a layout whose journal a Hybrid-mode Backend
// made, that Backend, and an unflushed Performance-mode one on it.
func journaledUnflushed(t *testing.T) (mem *vfs.Mem, h, p *Backend) {
	t.Helper()
	mem = crashLayout(t)
	h, err := open(quietConfig(mem, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return mem, h, unflushed(t, mem)
}

// unflushed opens a Performance-mode Backend on fsys that flushes its
// displaced records only when told, and at Close.
func unflushed(t *testing.T, fsys vfs.FS) *Backend {
	t.Helper()
	b, err := open(quietConfig(fsys, Performance))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// mustSyncAll syncs the file system of b.
func mustSyncAll(t *testing.T, b *Backend) {
	t.Helper()
	if err := b.syncAll(); err != nil {
		t.Fatal(err)
	}
}

// storeSynced stores md as message id and syncs the file system.
func storeSynced(t *testing.T, b *Backend, id string, md metastorage.MessageMetadata) {
	t.Helper()
	if err := b.StoreMeta(context.Background(), id, md); err != nil {
		t.Fatal(err)
	}
	if err := b.syncAll(); err != nil {
		t.Fatal(err)
	}
}

// TestDisplacedKeptUntilFlush shows that in Performance mode the record a
// change displaces stays until a flush has synced the file system, that
// Close flushes, and that the records of a flush whose sync failed stay on
// disk until a Backend opened later recovers; and that the durable modes
// remove the displaced record at once.
func TestDisplacedKeptUntilFlush(t *testing.T) {
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			mem := crashLayout(t)
			var failSync atomic.Bool
			b, err := open(quietConfig(failingSyncAll(mem, &failSync), mode))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			// A sync after each change, so that each displaced record is
			// durable, and kept.
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
				t.Fatal(err)
			}
			mustSyncAll(t, b)
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			mustSyncAll(t, b)
			if err := b.MoveToState(ctx, "m", metastorage.StateIncoming, metastorage.StateActive); err != nil {
				t.Fatal(err)
			}
			want := 0
			if mode == Performance {
				// The first record; a move by one rename displaces none.
				want = 1
			}
			if got := temps(t, mem); len(got) != want {
				t.Fatalf("after a replace and a move: temp files %v, want %d", got, want)
			}
			if mode != Performance {
				return
			}

			if err := b.flushDisplaced(); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 0 {
				t.Errorf("after a flush: temp files %v, want none", got)
			}
			if got := b.Stats().Flushes; got != 1 {
				t.Errorf("Stats().Flushes = %d, want 1", got)
			}
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 2}); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 1 {
				t.Errorf("after an update: temp files %v, want the displaced record", got)
			}
			// A record written since the last sync began is no more
			// durable than the one that displaces it: it goes at once.
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 3}); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 1 {
				t.Errorf("after a second update with no sync between: temp files %v, want only the first displaced record", got)
			}

			// A failed sync is final: the next one would succeed
			// whether or not the data it failed to write reached the
			// disk. The Backend refuses writes, and neither it nor its
			// recovery removes the displaced record.
			failSync.Store(true)
			if err := b.flushDisplaced(); !errors.Is(err, syscall.EIO) {
				t.Errorf("flush with a failing sync: %v, want EIO", err)
			}
			failSync.Store(false)
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: metastorage.StateActive, Attempts: 3}); !errors.Is(err, syscall.EIO) {
				t.Errorf("UpdateMeta after a failed flush: %v, want the sync's error", err)
			}
			if err := b.RecoverFromCrash(); !errors.Is(err, syscall.EIO) {
				t.Errorf("RecoverFromCrash after a failed flush: %v, want the sync's error", err)
			}
			if err := b.Close(); !errors.Is(err, syscall.EIO) {
				t.Errorf("Close after a failed flush: %v, want the sync's error", err)
			}
			if got := temps(t, mem); len(got) != 1 {
				t.Errorf("after a failed flush, a recovery and Close: temp files %v, want the displaced record left", got)
			}
			// A Backend opened later cannot know of the failure: its
			// recovery syncs and removes the record.
			r, err := open(quietConfig(mem, mode))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			findings, err := r.Check(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 1 || findings[0].Kind != Displaced || !findings[0].Repaired {
				t.Errorf("recovery found %+v, want the displaced record removed", findings)
			}
			if got := temps(t, mem); len(got) != 0 {
				t.Errorf("after recovery: temp files %v, want none", got)
			}
		})
	}
}

// neighbour returns the ID of another message in the lock stripe of id's:
// a change of it in a state moves the change counter that id's file there
// counts by.
func neighbour(t *testing.T, id string) string {
	for i := 0; ; i++ {
		if n := fmt.Sprintf("n-%d", i); stripeOf(fileOf(t, n)) == stripeOf(fileOf(t, id)) {
			return n
		}
	}
}

// TestDisplacedYoungRecognisedInFile shows that a Performance-mode change
// removes at once the record it displaces if this Backend wrote it since
// its last sync began, also after another message of the stripe entered
// the directory: the file then holds the bytes it wrote. A record another Backend wrote is
// kept, by either.
func TestDisplacedYoungRecognisedInFile(t *testing.T) {
	mem := crashLayout(t)
	a, other := unflushed(t, mem), unflushed(t, mem)
	ctx := context.Background()
	inc := metastorage.StateIncoming
	change := func(b *Backend, attempts int, want int, what string) {
		t.Helper()
		if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: attempts}); err != nil {
			t.Fatal(err)
		}
		if got := temps(t, mem); len(got) != want {
			t.Errorf("%s: temp files %v, want %d", what, got, want)
		}
	}

	storeSynced(t, a, "m", metastorage.MessageMetadata{State: inc})
	change(a, 1, 1, "after a change of a synced record")
	if err := a.StoreMeta(ctx, neighbour(t, "m"), metastorage.MessageMetadata{State: inc}); err != nil {
		t.Fatal(err)
	}
	change(a, 2, 1, "after a change of the record written since the sync")
	change(other, 3, 2, "after another Backend's change")
	change(a, 4, 3, "after a change of the record another Backend wrote")
}

// TestYoungRecordCountsEveryBackendsSync shows that a Performance-mode
// Backend keeps the record it displaces, although it wrote it and began no
// sync since, once another Backend on the directory has begun one: that
// sync made the record durable, and may have been a recovery's, which then
// removed the record before it. After a power loss that keeps the changes
// of names but no unsynced data, the message is at the record the sync
// covered, or newer.
func TestYoungRecordCountsEveryBackendsSync(t *testing.T) {
	inc := metastorage.StateIncoming
	for _, tc := range []struct {
		name  string
		other func(t *testing.T, mem *vfs.Mem)
	}{
		{"another Backend's recovery", func(t *testing.T, mem *vfs.Mem) {
			b, err := open(quietConfig(mem, Standard))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.Check(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}},
		{"another Backend's flush", func(t *testing.T, mem *vfs.Mem) {
			mustSyncAll(t, unflushed(t, mem))
		}},
	} {
		for _, moved := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/counter moved %v", tc.name, moved), func(t *testing.T) {
				mem := crashLayout(t)
				a := unflushed(t, mem)
				ctx := context.Background()
				storeSynced(t, a, "m", metastorage.MessageMetadata{State: inc, LastError: "r0"})
				if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "r1"}); err != nil {
					t.Fatal(err)
				}
				tc.other(t, mem) // r1 is durable now
				if moved {       // a's recent record no longer stands for the file
					if err := a.StoreMeta(ctx, neighbour(t, "m"), metastorage.MessageMetadata{State: inc}); err != nil {
						t.Fatal(err)
					}
				}
				if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "r2"}); err != nil {
					t.Fatal(err)
				}
				if got := lastErrorAfterPowerLoss(t, mem); got != "r1" && got != "r2" {
					t.Errorf("after a power loss: m holds %s, want r1, which a sync covered, or r2", got)
				}
			})
		}
	}
}

// syncHookFS is a Mem whose SyncAll first calls before: a Backend has then
// counted the sync as begun, and it has not started.
type syncHookFS struct {
	*vfs.Mem
	before func()
}

func (h *syncHookFS) SyncAll(dir vfs.File) error {
	h.before()
	return h.Mem.SyncAll(dir)
}

// TestYoungRecordCountsSyncUnderWay shows that a Performance-mode Backend
// keeps the record it displaces if a sync that had begun (been counted)
// when it wrote the record ended since: that sync may have made it
// durable. The record is written between the count and the sync, by the
// syncing Backend itself or another; with a message stored for the first
// time, it is the message's only durable record.
func TestYoungRecordCountsSyncUnderWay(t *testing.T) {
	inc := metastorage.StateIncoming
	for _, tc := range []struct {
		name       string
		own, first bool
	}{
		{"another Backend's sync", false, false},
		{"its own sync", true, false},
		{"another Backend's sync, a new message", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := crashLayout(t)
			ctx := context.Background()
			var a *Backend
			var write func()
			hooked := &syncHookFS{Mem: mem, before: func() {
				if write != nil {
					w := write
					write = nil
					w()
				}
			}}
			syncer := unflushed(t, hooked)
			a = unflushed(t, mem)
			if tc.own {
				a = syncer
			}
			if !tc.first {
				storeSynced(t, a, "m", metastorage.MessageMetadata{State: inc, LastError: "r0"})
			}
			write = func() {
				if err := a.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "r1"}); err != nil {
					t.Error(err)
				}
			}
			mustSyncAll(t, syncer)
			if write != nil {
				t.Fatal("r1 was not written during the sync")
			}
			if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "r2"}); err != nil {
				t.Fatal(err)
			}
			if got := lastErrorAfterPowerLoss(t, mem); got != "r1" && got != "r2" {
				t.Errorf("after a power loss: m holds %s, want r1, which the sync made durable, or r2", got)
			}
		})
	}
}

// TestDisplacedFlushedWhenMany shows that the background flusher runs as
// soon as maxDisplaced records wait, long before its period.
func TestDisplacedFlushedWhenMany(t *testing.T) {
	t.Parallel()
	mem := crashLayout(t)
	synced := make(chan struct{}, 1)
	fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSyncAll {
			select {
			case synced <- struct{}{}:
			default:
			}
		}
		return nil
	}))
	cfg := quietConfig(fsys, Performance)
	cfg.flushEvery = time.Hour
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	md := metastorage.MessageMetadata{State: metastorage.StateIncoming}
	for i := range maxDisplaced + 1 {
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%d", i), md); err != nil {
			t.Fatal(err)
		}
	}
	mustSyncAll(t, b)
	<-synced // that sync's
	for i := range maxDisplaced + 1 {
		if err := b.StoreMeta(ctx, fmt.Sprintf("m-%d", i), md); err != nil { // displaces the synced one
			t.Fatal(err)
		}
	}
	select {
	case <-synced:
	case <-time.After(time.Minute):
		t.Fatalf("no flush a minute after %d records were displaced", maxDisplaced)
	}
}

// powerLossNamesFirst returns what a power loss now leaves of mem when the
// file system committed every change of names but no unsynced data, once
// a Performance-mode Backend opened on it has recovered.
func powerLossNamesFirst(t *testing.T, mem *vfs.Mem) diskImage {
	t.Helper()
	img := mem.CrashCloneNames()
	r, err := open(quietConfig(img, Performance))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	disk, err := readImage(img)
	if err != nil {
		t.Fatal(err)
	}
	return disk
}

// lastErrorAfterPowerLoss returns the LastError of message m after
// powerLossNamesFirst, or, if m is not there once as valid metadata, a
// description of what is.
func lastErrorAfterPowerLoss(t *testing.T, mem *vfs.Mem) string {
	t.Helper()
	es := powerLossNamesFirst(t, mem).msgs["m"]
	if len(es) != 1 || es[0].err != nil {
		return fmt.Sprintf("not one valid record but %+v", es)
	}
	return es[0].md.LastError
}

// TestRecoverTwoChangesInOneFlush shows that a message changed twice, the
// second time to another state, between two syncs is not lost by a power
// loss that keeps the changes of names but neither change's data: its
// synced record then lies in the first state's directory, and its damaged
// file in the second's.
func TestRecoverTwoChangesInOneFlush(t *testing.T) {
	inc, act, def := metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred
	for _, tc := range []struct {
		name    string
		changes func(ctx context.Context, b *Backend) error
	}{
		{"update, move", func(ctx context.Context, b *Backend) error {
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
				return err
			}
			return b.MoveToState(ctx, "m", inc, act)
		}},
		{"move, move", func(ctx context.Context, b *Backend) error {
			if err := b.MoveToState(ctx, "m", inc, act); err != nil {
				return err
			}
			return b.MoveToState(ctx, "m", act, def)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := crashLayout(t)
			b := unflushed(t, mem)
			storeSynced(t, b, "m", metastorage.MessageMetadata{State: inc, LastError: "synced"})
			if err := tc.changes(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			disk := powerLossNamesFirst(t, mem)
			if es := disk.msgs["m"]; len(es) != 1 || es[0].err != nil || es[0].md.LastError != "synced" {
				t.Errorf("after the power loss and recovery, m is %+v, want its synced record in one state", es)
			}
			for _, v := range disk.structural() {
				t.Error(v)
			}
		})
	}
}

// TestScanRemovesDisplacedOnlyAfterItsSync shows that a recovery scan
// removes a displaced record only if it saw it before a sync of the file
// system: a record another Backend displaces while the scan runs, after
// the scan's sync, stays, and the message survives a power loss.
func TestScanRemovesDisplacedOnlyAfterItsSync(t *testing.T) {
	mem := crashLayout(t)
	a := unflushed(t, mem)
	ctx := context.Background()
	inc, act := metastorage.StateIncoming, metastorage.StateActive
	if err := a.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: act, LastError: "synced"}); err != nil {
		t.Fatal(err)
	}
	// x, of another stripe than m, gets a displaced record for the scan
	// to remove.
	x := "x"
	for stripeOf(fileOf(t, x)) == stripeOf(fileOf(t, "m")) {
		x += "x"
	}
	storeSynced(t, a, x, metastorage.MessageMetadata{State: inc})
	if err := a.StoreMeta(ctx, x, metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	var changed atomic.Bool
	fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpRemove && strings.Contains(path, sep+"incoming"+sep+".tmp.") && !changed.Swap(true) {
			// After the scan's sync: m's synced record is displaced.
			if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: act, Attempts: 7}); err != nil {
				t.Error(err)
			}
		}
		return nil
	}))
	b, err := open(quietConfig(fsys, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	if !changed.Load() {
		t.Fatal("the scan removed no displaced record")
	}
	if got := lastErrorAfterPowerLoss(t, mem); got != "synced" {
		t.Errorf("after the power loss and recovery, m holds %s, want its synced record", got)
	}
}

// TestRecoverySyncsTheRecordItPutsInPlace shows that recovery syncs a temp
// file before it renames it over a message's file: killed between its
// temp file and its exchange, a Performance-mode writer leaves a complete
// record that is not on disk, and the file it would replace holds the
// message's only durable record. A power loss after the recovery must
// still find the message.
func TestRecoverySyncsTheRecordItPutsInPlace(t *testing.T) {
	for _, mode := range crashModes {
		t.Run(mode.String(), func(t *testing.T) {
			mem := crashLayout(t)
			a := unflushed(t, mem)
			ctx := context.Background()
			inc := metastorage.StateIncoming
			storeSynced(t, a, "m", metastorage.MessageMetadata{State: inc, LastError: "synced"})
			md, err := a.GetMeta(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			md.LastError, md.Updated = "in flight", md.Updated.Add(time.Second)
			data, err := codec.Encode(&md)
			if err != nil {
				t.Fatal(err)
			}
			// What put does before the exchange; then the process dies.
			if _, err := a.writeTemp(inc, fileOf(t, "m"), data, false); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := open(quietConfig(mem, mode))
			if err != nil {
				t.Fatal(err)
			}
			findings, err := r.Check(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 1 || findings[0].Kind != InterruptedPut || !findings[0].Repaired {
				t.Errorf("recovery found %+v, want the interrupted put finished", findings)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if got := lastErrorAfterPowerLoss(t, mem); got != "in flight" {
				t.Errorf("after recovery and a power loss, m holds %s, want the record recovery put in place", got)
			}
		})
	}
}

// TestCheckReportsWhatRepairDoes shows that a check without repair reports
// a damaged message file that a temp file's record would replace as a
// repair handles it: one record put in place (written anew, since it names
// the state the message left), the older one displaced, and no corrupt
// file.
func TestCheckReportsWhatRepairDoes(t *testing.T) {
	mem := crashLayout(t)
	a := unflushed(t, mem)
	ctx := context.Background()
	inc, act := metastorage.StateIncoming, metastorage.StateActive
	storeSynced(t, a, "m", metastorage.MessageMetadata{State: inc, LastError: "r0"})
	if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "r1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.syncAll(); err != nil { // r0 and r1 on disk; r0 displaced
		t.Fatal(err)
	}
	if err := a.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: act, LastError: "r2"}); err != nil {
		t.Fatal(err)
	}
	img := mem.CrashCloneNames() // the relocated record r2 is empty
	a.Close()
	kinds := map[bool][]FindingKind{}
	for _, repair := range []bool{false, true} {
		r, err := open(quietConfig(img.CrashCloneNames(), Performance))
		if err != nil {
			t.Fatal(err)
		}
		findings, err := r.Check(ctx, repair)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		for _, f := range findings {
			kinds[repair] = append(kinds[repair], f.Kind)
		}
	}
	want := []FindingKind{InterruptedPut, Displaced}
	for _, repair := range []bool{false, true} {
		if got := kinds[repair]; !slices.Equal(got, want) {
			t.Errorf("Check(repair %v) found %v, want %v", repair, got, want)
		}
	}
}

// TestPerformanceKeepsDisplacedBesideJournal shows that a Performance-mode
// Backend keeps the records it displaces also when the directory has a
// journal, through which it writes without syncing it: after a power loss
// that keeps the change of names but neither the journal's new record nor
// the new file's data, the message is back at its synced record.
func TestPerformanceKeepsDisplacedBesideJournal(t *testing.T) {
	mem := crashLayout(t)
	storeThroughJournal(t, mem, "synced")
	ctx := context.Background()
	inc := metastorage.StateIncoming
	p := unflushed(t, mem) // its open empties the journal
	if j, err := p.findJournal(); j == nil || err != nil {
		t.Fatalf("the Performance-mode Backend writes through no journal (%v)", err)
	}
	if err := p.syncAll(); err != nil {
		t.Fatal(err)
	}
	if err := p.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "unsynced"}); err != nil {
		t.Fatal(err)
	}
	if got := lastErrorAfterPowerLoss(t, mem); got != "synced" {
		t.Errorf("after the power loss and recovery, m holds %s, want its synced record", got)
	}
}

// TestCloseSyncsOnceBesideJournal shows that Close of a Performance-mode
// Backend that wrote through a journal runs one syncfs, its checkpoint's,
// which also covers its displaced records: they are gone after it, and a
// power loss then keeps the change.
func TestCloseSyncsOnceBesideJournal(t *testing.T) {
	mem := crashLayout(t)
	storeThroughJournal(t, mem, "first")
	ctx := context.Background()
	inc := metastorage.StateIncoming
	var syncs atomic.Int64
	p := unflushed(t, countingSyncAll(mem, &syncs))
	mustSyncAll(t, p)
	if err := p.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "second"}); err != nil {
		t.Fatal(err)
	}
	if got := temps(t, mem); len(got) != 1 {
		t.Fatalf("temp files %v, want the displaced record", got)
	}
	syncs.Store(0)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 1 {
		t.Errorf("Close ran %d syncfs, want 1", n)
	}
	if got := temps(t, mem); len(got) != 0 {
		t.Errorf("temp files %v after Close, want none", got)
	}
	if got := lastErrorAfterPowerLoss(t, mem); got != "second" {
		t.Errorf("after Close and a power loss, m holds %s, want the change made before Close", got)
	}
}

// TestCloseSyncsWithoutJournal shows that Close of a Performance-mode
// Backend whose checkpoint runs no sync (the directory has no journal)
// syncs itself before it removes its displaced records: a power loss then
// keeps the change made before Close.
func TestCloseSyncsWithoutJournal(t *testing.T) {
	mem := crashLayout(t)
	var syncs atomic.Int64
	p := unflushed(t, countingSyncAll(mem, &syncs))
	ctx := context.Background()
	inc := metastorage.StateIncoming
	storeSynced(t, p, "m", metastorage.MessageMetadata{State: inc, LastError: "first"})
	if err := p.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "second"}); err != nil {
		t.Fatal(err)
	}
	syncs.Store(0)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 1 {
		t.Errorf("Close ran %d syncfs, want 1", n)
	}
	if got := lastErrorAfterPowerLoss(t, mem); got != "second" {
		t.Errorf("after Close and a power loss, m holds %s, want the change made before Close", got)
	}
}

// storeThroughJournal stores message m, with lastError, through a
// Hybrid-mode Backend that stays open for the test: the directory then has
// a journal, which every Backend writes through.
func storeThroughJournal(t *testing.T, mem *vfs.Mem, lastError string) {
	t.Helper()
	h, err := open(quietConfig(mem, Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	md := metastorage.MessageMetadata{State: metastorage.StateIncoming, LastError: lastError}
	if err := h.StoreMeta(context.Background(), "m", md); err != nil {
		t.Fatal(err)
	}
}

// countingSyncAll returns mem behind an injector that counts the SyncAll
// calls in n.
func countingSyncAll(mem *vfs.Mem, n *atomic.Int64) vfs.FS {
	return vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSyncAll {
			n.Add(1)
		}
		return nil
	}))
}

// failingSyncAll returns mem behind an injector that fails every SyncAll
// with EIO while fail is set.
func failingSyncAll(mem *vfs.Mem, fail *atomic.Bool) vfs.FS {
	return vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSyncAll && fail.Load() {
			return syscall.EIO
		}
		return nil
	}))
}

// TestRecoverySyncFailureIsFinal shows that a recovery scan whose syncfs
// fails makes the Backend refuse writes, in Performance mode as in Hybrid
// mode: the kernel reports a lost write-back once, so the next syncfs (a
// flush's, a checkpoint's) would succeed and remove what may be the only
// durable record, or empty the journal. The scan still repairs what needs
// no sync of the file system.
func TestRecoverySyncFailureIsFinal(t *testing.T) {
	for _, mode := range []Mode{Performance, Hybrid} {
		t.Run(mode.String(), func(t *testing.T) {
			mem := crashLayout(t)
			var fail atomic.Bool
			ctx := context.Background()
			inc := metastorage.StateIncoming
			other := unflushed(t, mem)
			cfg := quietConfig(failingSyncAll(mem, &fail), mode)
			b, err := open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// other displaces a record, which b's recovery finds.
			storeSynced(t, other, "o", metastorage.MessageMetadata{State: inc})
			if err := other.UpdateMeta(ctx, "o", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			storeSynced(t, b, "m", metastorage.MessageMetadata{State: inc})
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			before := temps(t, mem)
			bad := filepath.Join(crashDir, "deferred", fileOf(t, "bad"))
			f, err := mem.Create(bad, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("{")); err != nil {
				t.Fatal(err)
			}
			f.Close()
			journal := func() int64 {
				fi, err := mem.Lstat(filepath.Join(crashDir, journalName))
				if err != nil {
					return -1
				}
				return fi.Size()
			}
			journalBefore := journal()
			fail.Store(true)
			findings, err := b.Check(ctx, true)
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("a recovery with a failing syncfs: %v, want EIO", err)
			}
			fail.Store(false)
			if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Kind == Corrupt && f.Path == bad && f.Repaired }) {
				t.Errorf("the recovery with a failing syncfs found %+v, want the damaged file set aside all the same", findings)
			}
			if err := b.checkpoint(ctx); !errors.Is(err, syscall.EIO) {
				t.Errorf("a checkpoint after the failed syncfs: %v, want it refused with EIO", err)
			}
			if got := journal(); got != journalBefore {
				t.Errorf("a checkpoint after the failed syncfs left the journal at %d bytes, want %d as before", got, journalBefore)
			}
			if err := b.StoreMeta(ctx, "later", metastorage.MessageMetadata{State: inc}); !errors.Is(err, syscall.EIO) {
				t.Errorf("StoreMeta after the recovery's failed syncfs: %v, want it refused with EIO", err)
			}
			if err := b.flushDisplaced(); mode == Performance && !errors.Is(err, syscall.EIO) {
				t.Errorf("flush after the recovery's failed syncfs: %v, want EIO", err)
			}
			if got := temps(t, mem); !slices.Equal(got, before) {
				t.Errorf("temp files %v after the failed syncfs, want them all kept: %v", got, before)
			}
		})
	}
}

// TestReplaySyncsJournalFirst shows that a replay syncs the journal before
// it replaces message files with its records: a Performance-mode writer
// appends its record without syncing it, and if it is killed before its own
// exchange, the next open's replay would otherwise put that record, whose
// data is not durable, over the message's synced file and remove the
// synced one, and a power loss before the checkpoint's syncfs would lose
// the message.
func TestReplaySyncsJournalFirst(t *testing.T) {
	mem, h, p := journaledUnflushed(t)
	ctx := context.Background()
	inc := metastorage.StateIncoming
	if err := p.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc, LastError: "synced"}); err != nil {
		t.Fatal(err)
	}
	if err := h.checkpoint(ctx); err != nil { // m synced, the journal empty
		t.Fatal(err)
	}
	j, err := p.findJournal()
	if j == nil || err != nil {
		t.Fatalf("no journal: %v", err)
	}
	md := metastorage.MessageMetadata{ID: "m", State: inc, LastError: "unsynced"}
	data, err := codec.Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	// p appends, unsynced, and is killed before its exchange.
	if err := p.appendToJournal(j, wal.KindPut, inc, fileOf(t, "m"), data); err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	fail.Store(true) // the power fails before the checkpoint's syncfs
	if o, err := open(quietConfig(failingSyncAll(mem, &fail), Performance)); err == nil {
		o.Close()
		t.Fatal("the open with a failing syncfs succeeded")
	}
	disk := powerLossNamesFirst(t, mem)
	if es := disk.msgs["m"]; len(es) != 1 || es[0].err != nil {
		t.Errorf("after the power loss and recovery, m is %+v, want a valid record", es)
	}
}

// TestFlushSyncsNewMessages shows that a flush syncs the file system when
// calls changed files, also if they displaced nothing: a message stored,
// then flushed, survives a power loss; a flush with nothing changed since
// syncs nothing.
func TestFlushSyncsNewMessages(t *testing.T) {
	mem := crashLayout(t)
	b := unflushed(t, mem)
	if err := b.StoreMeta(context.Background(), "m", metastorage.MessageMetadata{State: metastorage.StateIncoming, LastError: "new"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.flushDisplaced(); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Stats().Flushes; got != 1 {
		t.Errorf("Stats().Flushes = %d after a store and two flushes, want 1", got)
	}
	if got := lastErrorAfterPowerLoss(t, mem); got != "new" {
		t.Errorf("after a flush and a power loss, m holds %s, want it as stored", got)
	}
}

// TestFlushWithoutSyncfs shows what a Performance-mode flush does on a file
// system that cannot sync itself whole: it removes the displaced records,
// since nothing better than the kernel's own write-back can be had, unless
// the Backend has failed meanwhile (here, another call's fsync failing
// while the flush runs), when it leaves them.
func TestFlushWithoutSyncfs(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing %v", failing), func(t *testing.T) {
			mem := crashLayout(t)
			var b *Backend
			var flushing atomic.Bool
			fsys := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
				if op != vfs.OpSyncAll {
					return nil
				}
				if failing && flushing.Load() {
					b.fail(syscall.EIO)
				}
				return fmt.Errorf("syncfs: %w", errors.ErrUnsupported)
			}))
			b = unflushed(t, fsys)
			ctx := context.Background()
			inc := metastorage.StateIncoming
			if err := b.StoreMeta(ctx, "m", metastorage.MessageMetadata{State: inc}); err != nil {
				t.Fatal(err)
			}
			if err := b.syncAll(); !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("syncAll: %v, want ErrUnsupported", err)
			}
			if err := b.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			if got := temps(t, mem); len(got) != 1 {
				t.Fatalf("temp files %v, want the displaced record", got)
			}
			flushing.Store(true)
			err := b.flushDisplaced()
			got := temps(t, mem)
			if !failing {
				if err != nil || len(got) != 0 {
					t.Errorf("flush: %v, temp files %v; want no error and none left", err, got)
				}
				return
			}
			if !errors.Is(err, syscall.EIO) || len(got) != 1 {
				t.Errorf("flush: %v, temp files %v; want the failure, and the displaced record left", err, got)
			}
		})
	}
}

// TestCheckpointEmptiesJournalAndDisplaced shows what a checkpoint does
// when a Performance-mode Backend writes on a directory that has a
// journal: one sync of the file system makes its journaled changes
// durable, then the journal is emptied and the records its changes
// displaced are removed.
func TestCheckpointEmptiesJournalAndDisplaced(t *testing.T) {
	mem, _, p := journaledUnflushed(t)
	ctx := context.Background()
	inc := metastorage.StateIncoming
	storeSynced(t, p, "m", metastorage.MessageMetadata{State: inc})
	if err := p.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if len(temps(t, mem)) == 0 || journalSize(t, mem) == 0 {
		t.Fatalf("after the update: temps %v, journal %d bytes; want a displaced record and a journal record", temps(t, mem), journalSize(t, mem))
	}
	syncs := p.syncsOK.Load()
	if err := p.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.syncsOK.Load() - syncs; n != 1 {
		t.Errorf("the checkpoint ran %d syncs of the file system, want 1", n)
	}
	if got := temps(t, mem); len(got) != 0 {
		t.Errorf("temp files %v after the checkpoint, want none", got)
	}
	if n := journalSize(t, mem); n != 0 {
		t.Errorf("journal %d bytes after the checkpoint, want 0", n)
	}
	md, err := p.GetMeta(ctx, "m")
	if err != nil || md.Attempts != 1 {
		t.Errorf("GetMeta after the checkpoint: %+v, %v; want the update", md, err)
	}
}

// TestCheckpointKeepsDisplacedWhenItsSyncFails shows that a journal's
// checkpoint removes no displaced record unless its own sync of the file
// system succeeded: the record stays for recovery.
func TestCheckpointKeepsDisplacedWhenItsSyncFails(t *testing.T) {
	mem := crashLayout(t)
	ctx := context.Background()
	inc := metastorage.StateIncoming
	h, err := open(quietConfig(mem, Hybrid)) // makes the journal
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var fail atomic.Bool
	p := unflushed(t, failingSyncAll(mem, &fail))
	storeSynced(t, p, "m", metastorage.MessageMetadata{State: inc})
	if err := p.UpdateMeta(ctx, "m", metastorage.MessageMetadata{State: inc, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	before := temps(t, mem)
	if len(before) == 0 {
		t.Fatal("the update displaced no record")
	}
	fail.Store(true)
	if err := p.checkpoint(ctx); !errors.Is(err, syscall.EIO) {
		t.Errorf("checkpoint with a failing sync: %v, want EIO", err)
	}
	if got := temps(t, mem); !slices.Equal(got, before) {
		t.Errorf("temp files %v after a checkpoint whose sync failed, want %v kept", got, before)
	}
}

// TestDisplacedMovedFileKeepsMoveTime: a file moved by one rename, then
// displaced by an update in Performance mode whose data a power loss
// loses, is put back by recovery with its move's Updated (its time, by
// the rule for the directory it lies in), not its stale Updated field.
func TestDisplacedMovedFileKeepsMoveTime(t *testing.T) {
	act := metastorage.StateActive
	moved, got := movedThenLost(t, func(b *Backend) error {
		return b.UpdateMeta(context.Background(), "m", metastorage.MessageMetadata{State: act, Attempts: 1, LastError: "unsynced"})
	})
	if got.State != act || !got.Updated.Equal(moved.Updated) {
		t.Errorf("after recovery m = %s Updated %v (%q); want the synced move's record: %s, Updated %v", got.State, got.Updated, got.LastError, act, moved.Updated)
	}
}
