package main

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"time"
)

// latencies collects the durations of operations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

// add merges the durations one worker measured.
func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// percentiles returns the 50th and 99th percentiles.
func (l *latencies) percentiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return 0, 0
	}
	slices.Sort(l.all)
	at := func(q float64) time.Duration { return l.all[int(q*float64(len(l.all)-1))] }
	return at(0.50), at(0.99)
}

// heapSampler records the peak of the live heap while a workload runs.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// startHeap collects garbage and starts sampling the heap every few
// milliseconds.
func startHeap() *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		peak := heapNow()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				h.done <- max(peak, heapNow())
				return
			case <-t.C:
				peak = max(peak, heapNow())
			}
		}
	}()
	return h
}

// peak stops sampling and returns the peak heap in bytes.
func (h *heapSampler) peak() uint64 {
	close(h.stop)
	return <-h.done
}

// parallel runs fn(w) for w in [0, workers) and waits for all.
func parallel(workers int, fn func(w int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() { errs[w] = fn(w) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// share returns the part of n that worker w of workers gets: [lo, hi).
func share(n, workers, w int) (lo, hi int) {
	return n * w / workers, n * (w + 1) / workers
}

// medians returns, for each row, the median of its rounds: rounds[k][i] is
// row i of round k. Peak heap is the largest; counters and notes are the
// first round's.
func medians(rounds [][]benchResult) []benchResult {
	out := slices.Clone(rounds[0])
	if len(rounds) == 1 {
		return out
	}
	for i := range out {
		r := &out[i]
		med := func(f func(benchResult) (float64, bool)) float64 {
			var v []float64
			for k := range rounds {
				if x, ok := f(rounds[k][i]); ok {
					v = append(v, x)
				}
			}
			slices.Sort(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		r.Seconds = med(func(b benchResult) (float64, bool) { return b.Seconds, true })
		r.MsgPerSec = med(func(b benchResult) (float64, bool) { return b.MsgPerSec, true })
		r.OpsPerSec = med(func(b benchResult) (float64, bool) { return b.OpsPerSec, true })
		r.P50Micros = med(func(b benchResult) (float64, bool) { return b.P50Micros, true })
		r.P99Micros = med(func(b benchResult) (float64, bool) { return b.P99Micros, true })
		if r.Ratio != nil {
			v := med(func(b benchResult) (float64, bool) { return deref(b.Ratio) })
			r.Ratio = &v
		}
		for k := range rounds {
			r.PeakHeap = max(r.PeakHeap, rounds[k][i].PeakHeap)
		}
		r.Rounds = len(rounds)
	}
	return out
}

func deref(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}
