package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// benchIterate: one full NewMessageIterator pass (batch 100) over the N
// messages in deferred.
func benchIterate(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, string, error) {
	it, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, 100)
	if err != nil {
		return 0, "", err
	}
	defer it.Close()
	var l []time.Duration
	n := 0
	for {
		start := time.Now()
		_, ok, err := it.Next(ctx)
		if err != nil {
			return n, "", err
		}
		if !ok {
			break
		}
		l = append(l, time.Since(start))
		n++
	}
	lat.add(l)
	if n != cfg.messages {
		return n, "", fmt.Errorf("iterate: %d messages, want %d", n, cfg.messages)
	}
	return n, "", nil
}

// benchGet: W workers GetMeta random messages, four times N in all.
func benchGet(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, string, error) {
	total := 4 * cfg.messages
	err := parallel(cfg.workers, func(w int) error {
		lo, hi := share(total, cfg.workers, w)
		l := make([]time.Duration, 0, hi-lo)
		defer func() { lat.add(l) }()
		for range hi - lo {
			id := benchID(rand.N(cfg.messages))
			if err := timed(&l, func() error { _, err := b.GetMeta(ctx, id); return err }); err != nil {
				return err
			}
		}
		return nil
	})
	return total, "", err
}

// benchList: ListMessages(deferred, Limit 100, SortBy created), five
// times: the first reads every file, the later ones find the sort keys
// kept; and beside each, the same page sorted by ID, which reads no file.
func benchList(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, string, error) {
	const rounds = 5
	var sorted, byID []time.Duration
	var alloc [2]uint64 // bytes allocated by the later pages, sorted and by ID
	for r := range rounds {
		for i, c := range []struct {
			l    *[]time.Duration
			sort string
		}{{&sorted, metastorage.SortByCreated}, {&byID, metastorage.SortByID}} {
			before := totalAlloc()
			err := timed(c.l, func() error {
				res, err := b.ListMessages(ctx, metastorage.StateDeferred, metastorage.MessageListOptions{Limit: 100, SortBy: c.sort})
				if err == nil && (res.Total != cfg.messages || len(res.MessageIDs) != min(100, cfg.messages)) {
					err = fmt.Errorf("list: total %d, page %d, want %d and %d", res.Total, len(res.MessageIDs), cfg.messages, min(100, cfg.messages))
				}
				return err
			})
			if err != nil {
				return 0, "", err
			}
			if r > 0 {
				alloc[i] += totalAlloc() - before
			}
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	lat.add(sorted)
	return rounds, fmt.Sprintf("%d pages by created: the first %s, the later ones %s (median; keys kept, %s allocated each); by ID %s (median, %s allocated each); live heap after them %s",
		rounds, round(sorted[0]), round(median(sorted[1:])), mib(alloc[0]/(rounds-1)), round(median(byID)), mib(alloc[1]/(rounds-1)), mib(ms.HeapAlloc)), nil
}

// totalAlloc returns the bytes the process has allocated so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// mib formats n bytes in MiB.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// benchOpen: open a Backend on N messages: the time until it returns and
// until its state counts are exact.
func benchOpen(ctx context.Context, f *metafs.Factory, cfg benchRun, lat *latencies) (int, string, metafs.Stats, error) {
	start := time.Now()
	b, err := f.Open()
	if err != nil {
		return 0, "", metafs.Stats{}, err
	}
	defer b.Close()
	opened := time.Since(start)
	if err := b.WaitCounts(ctx); err != nil {
		return 0, "", metafs.Stats{}, err
	}
	exact := time.Since(start)
	lat.add([]time.Duration{opened, exact})
	var n int64
	for _, s := range metastorage.States() {
		n += b.GetStateCount(s)
	}
	if n != int64(cfg.messages) {
		return 0, "", b.Stats(), fmt.Errorf("open: counted %d messages, want %d", n, cfg.messages)
	}
	note := fmt.Sprintf("returned in %s, counts exact in %s", round(opened), round(exact))
	return cfg.messages, note, b.Stats(), nil
}

// round rounds d for display.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}
