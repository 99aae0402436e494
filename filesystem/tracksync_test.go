package filesystem

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The tests below run the crash tests with the strategy of macOS, on a file
// system that offers only what macOS offers (macFS): no syncfs, so that the
// Backends sync through a vfs.Tracker what they changed, and, as on HFS+,
// no exchange in the durable modes.

func TestCrashPowerLossAtEveryCallMac(t *testing.T) {
	for _, noSwap := range []bool{false, true} {
		for _, mode := range crashModes {
			if noSwap && mode == Performance {
				continue // refused at open where the file system lacks exchange
			}
			for _, sc := range crashScripts {
				t.Run(fmt.Sprintf("%s/noswap=%v/%s", mode, noSwap, sc.name), func(t *testing.T) {
					t.Parallel()
					crashAtEveryCallOn(t, crashLayout, asMac(noSwap), sc, mode, mode)
				})
			}
		}
	}
}

// TestCrashPowerLossSharedMac is TestCrashPowerLossShared with a journal,
// each Backend, as each process, syncing only what it changed: a
// checkpoint must still make durable the changes of the other.
func TestCrashPowerLossSharedMac(t *testing.T) {
	pairs := [][]Mode{{Hybrid, Hybrid}, {Standard, Hybrid}, {Hybrid, Standard}}
	for _, modes := range pairs {
		for _, sc := range crashScripts {
			if len(sc.tracks) < 2 {
				continue
			}
			t.Run(fmt.Sprintf("%s+%s/%s", modes[0], modes[1], sc.name), func(t *testing.T) {
				t.Parallel()
				crashAtEveryCallOn(t, crashLayout, asMac(false), sc, Standard, modes...)
			})
		}
	}
}

func TestCrashPerformanceNamesBeforeDataMac(t *testing.T) {
	for _, modes := range [][]Mode{{Performance}, {Performance, Standard}, {Hybrid, Performance}} {
		for _, sc := range crashScripts {
			if len(modes) > len(sc.tracks) {
				continue
			}
			t.Run(fmt.Sprint(modes, "/every call/", sc.name), func(t *testing.T) {
				t.Parallel()
				crashNamesFirstOn(t, asMac(false), sc, 1, modes)
			})
		}
	}
	for _, sc := range crashScripts {
		t.Run(fmt.Sprint("[performance]/every third call/", sc.name), func(t *testing.T) {
			t.Parallel()
			crashNamesFirstOn(t, asMac(false), sc, 3, []Mode{Performance})
		})
	}
}

// TestMacFSSyncsThroughTracker shows that a Backend on a file system
// without syncfs syncs through a Tracker, and one with syncfs does not.
func TestMacFSSyncsThroughTracker(t *testing.T) {
	for _, mac := range []bool{false, true} {
		t.Run(fmt.Sprint("mac=", mac), func(t *testing.T) {
			t.Parallel()
			var fsys vfs.FS = vfs.NewMem()
			if mac {
				fsys = asMac(false)(fsys)
			}
			b, err := open(quietConfig(fsys, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := b.tracker != nil; got != mac {
				t.Errorf("tracker: %v, want %v", got, mac)
			}
			if err := b.syncAll(); err != nil {
				t.Errorf("syncAll: %v", err)
			}
		})
	}
}

// TestProbeRenames shows that open's probe refuses a file system without
// no-replace renames in every mode, and one without exchange in
// Performance mode only, with errors.ErrUnsupported.
func TestProbeRenames(t *testing.T) {
	for _, tc := range []struct {
		noSwap bool
		mode   Mode
		ok     bool
	}{
		{false, Performance, true},
		{true, Standard, true},
		{true, Hybrid, true},
		{true, Performance, false},
	} {
		t.Run(fmt.Sprintf("noswap=%v/%s", tc.noSwap, tc.mode), func(t *testing.T) {
			t.Parallel()
			mem := vfs.NewMem()
			if err := mem.Mkdir("/d", 0o755); err != nil {
				t.Fatal(err)
			}
			err := probeRenames(asMac(tc.noSwap)(mem), "/d", tc.mode)
			if tc.ok && err != nil {
				t.Errorf("probe: %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("probe: %v, want errors.ErrUnsupported", err)
			}
			for _, n := range []string{"/d/.probe-rename-a", "/d/.probe-rename-b"} {
				if _, err := mem.Lstat(n); err == nil {
					t.Errorf("probe left %s", n)
				}
			}
		})
	}
}

// TestCheckpointSyncsOthersChangesMac shows that a checkpoint through a
// Tracker makes durable the changes that another Backend, standing for
// another process, recorded in the journal, before it empties the
// journal: that Backend's own Tracker never syncs them.
func TestCheckpointSyncsOthersChangesMac(t *testing.T) {
	ctx := context.Background()
	mem := crashLayout(t)
	fsys := asMac(false)(mem)
	var bs [2]*Backend
	for i := range bs {
		b, err := open(quietConfig(fsys, Hybrid))
		if err != nil {
			t.Fatal(err)
		}
		bs[i] = b
	}
	want := map[string]metastorage.QueueState{"a": metastorage.StateIncoming, "b": metastorage.StateActive, "c": metastorage.StateDeferred}
	for id, s := range want {
		if err := bs[1].StoreMeta(ctx, id, metastorage.MessageMetadata{ID: id, State: metastorage.StateIncoming, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		if s != metastorage.StateIncoming {
			if err := bs[1].MoveToState(ctx, id, metastorage.StateIncoming, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bs[0].Close(); err != nil { // its checkpoint empties the journal
		t.Fatal(err)
	}
	img := mem.CrashClone() // the power fails before the other syncs
	bs[1].Close()
	c, err := open(quietConfig(img, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for id, s := range want {
		md, err := c.GetMeta(ctx, id)
		if err != nil || md.State != s || md.Attempts != 1 {
			t.Errorf("after the power loss, %s: %+v, %v; want it in %s with 1 attempt", id, md, err, s)
		}
	}
}

// TestRecoverySyncsDisplacedOwnersMac shows that a recovery through a
// Tracker makes durable the new record of a message, written unsynced by
// another Backend in Performance mode that then died, before it removes
// the displaced older record.
func TestRecoverySyncsDisplacedOwnersMac(t *testing.T) {
	ctx := context.Background()
	mem := crashLayout(t)
	fsys := asMac(false)(mem)
	p, err := open(quietConfig(fsys, Performance))
	if err != nil {
		t.Fatal(err)
	}
	md := metastorage.MessageMetadata{ID: "m", State: metastorage.StateIncoming, Attempts: 1}
	if err := p.StoreMeta(ctx, "m", md); err != nil {
		t.Fatal(err)
	}
	if err := p.syncAll(); err != nil {
		t.Fatal(err)
	}
	md.Attempts = 2
	if err := p.UpdateMeta(ctx, "m", md); err != nil { // displaces the first record
		t.Fatal(err)
	}
	// p dies here: nothing more of it is synced.
	r, err := open(quietConfig(fsys, Standard))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	img := mem.CrashClone() // then the power fails
	r.Close()
	p.tracker.Release()
	c, err := open(quietConfig(img, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.RecoverFromCrash(); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMeta(ctx, "m")
	if err != nil || got.Attempts != 2 {
		t.Errorf("after the recovery and a power loss: %+v, %v; want the record of 2 attempts", got, err)
	}
}

// TestUnsupportedPlatformError shows that the error open returns where the
// platform is not supported matches errors.ErrUnsupported and says what to
// use instead.
func TestUnsupportedPlatformError(t *testing.T) {
	if !errors.Is(errUnsupportedPlatform, errors.ErrUnsupported) {
		t.Errorf("%v does not match errors.ErrUnsupported", errUnsupportedPlatform)
	}
	for _, want := range []string{"Linux and macOS", "postgres", "WSL"} {
		if !strings.Contains(errUnsupportedPlatform.Error(), want) {
			t.Errorf("%q does not say %q", errUnsupportedPlatform, want)
		}
	}
}

// BenchmarkLifecycleSync runs BenchmarkLifecycle's workload in the modes
// that sync the file system as a whole, once with syncfs and once with
// the macOS strategy (a sync of each file and directory changed), Close
// and its last sync included.
func BenchmarkLifecycleSync(b *testing.B) {
	for _, mode := range []Mode{Performance, Hybrid} {
		for _, track := range []bool{false, true} {
			name := "syncfs"
			if track {
				name = "tracked"
			}
			b.Run(mode.String()+"/"+name, func(b *testing.B) {
				f := factoryFor(b.TempDir(), mode)
				f.cfg.trackSync = track
				be, err := f.Open()
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				var next atomic.Int64
				b.SetParallelism(32)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := lifecycle(ctx, be, fmt.Sprintf("m-%d", next.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
				if err := be.Close(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
