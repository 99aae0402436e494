package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"time"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// rescanPasses is the number of passes of each kind the rescan workload
// makes.
const rescanPasses = 20

// benchRescan: full iterator passes over the N messages in deferred, as a
// queue's scheduler makes them: passes over messages that have not changed
// since the last, and passes after a few changes, two updates by this
// process and a hold by another (a spoolmeta process of its own). It
// reports the CPU of this process per pass and per message, and its heap.
func benchRescan(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, "", err
	}
	n := cfg.messages
	pass := func(l *[]time.Duration) (time.Duration, error) {
		cpu := processCPU()
		start := time.Now()
		got, err := countPass(ctx, b)
		*l = append(*l, time.Since(start))
		if err == nil && got != n {
			err = fmt.Errorf("rescan: a pass returned %d messages, want %d", got, n)
		}
		return processCPU() - cpu, err
	}
	var quiet, changed []time.Duration
	var quietCPU, changedCPU time.Duration
	if _, err := pass(new([]time.Duration)); err != nil { // reads every file
		return 0, "", err
	}
	for i := range 2 * rescanPasses {
		if i >= rescanPasses {
			if err := rescanChange(ctx, b, exe, i, n); err != nil {
				return 0, "", err
			}
			n--
		}
		l := &quiet
		if i >= rescanPasses {
			l = &changed
		}
		cpu, err := pass(l)
		if err != nil {
			return 0, "", err
		}
		if i >= rescanPasses {
			changedCPU += cpu
		} else {
			quietCPU += cpu
		}
	}
	lat.add(quiet)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	perPass := func(cpu time.Duration) time.Duration { return cpu / rescanPasses }
	perMsg := func(cpu time.Duration) int64 { return int64(cpu) / int64(rescanPasses*cfg.messages) }
	note := fmt.Sprintf("%d passes each: unchanged %s CPU a pass (%d ns a message, median %s), after 3 changes %s CPU a pass (%d ns a message, median %s); live heap %s",
		rescanPasses, round(perPass(quietCPU)), perMsg(quietCPU), round(median(quiet)),
		round(perPass(changedCPU)), perMsg(changedCPU), round(median(changed)), mib(ms.HeapAlloc))
	return 2 * rescanPasses, note, nil
}

// countPass iterates deferred once and returns the number of messages.
func countPass(ctx context.Context, b *metafs.Backend) (int, error) {
	it, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, 100)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for {
		_, ok, err := it.Next(ctx)
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

// rescanChange makes the changes before the i-th pass: this process
// updates two messages, which stay deferred, and another holds one, so
// that n-1 stay deferred.
func rescanChange(ctx context.Context, b *metafs.Backend, exe string, i, n int) error {
	for k := range 2 {
		id := benchID((i*7919 + k*104729) % n)
		md, err := b.GetMeta(ctx, id)
		if err != nil {
			return err
		}
		md.Attempts++
		if err := b.UpdateMeta(ctx, id, md); err != nil {
			return err
		}
	}
	// The message with the highest number is held, so that the others
	// keep their numbers below n-1.
	out, err := exec.CommandContext(ctx, exe, "hold", "-d", b.Dir(), benchID(n-1)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rescan: spoolmeta hold: %v: %s", err, out)
	}
	return nil
}

// median returns the median of l.
func median(l []time.Duration) time.Duration {
	if len(l) == 0 {
		return 0
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return l[len(l)/2]
}
