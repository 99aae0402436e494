package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// diskLoadFile is the size of each file the disk load writes and syncs.
const diskLoadFile = 1 << 20

// diskLoadFiles is how many files the disk load rewrites in turn, which
// bounds the space it takes.
const diskLoadFiles = 8

// diskLoad is another writer on the disk under test: it writes and fsyncs
// 1 MiB files in dir, at most rate MiB a second, until stopped, as a
// mail or job server's other processes do.
type diskLoad struct {
	stop    context.CancelFunc
	done    sync.WaitGroup
	written int64 // MiB written and synced
	err     error
	began   time.Time
	ended   time.Time
}

// startDiskLoad starts a disk load of rate MiB/s in dir, which must exist.
func startDiskLoad(dir string, rate int) *diskLoad {
	ctx, stop := context.WithCancel(context.Background())
	d := &diskLoad{stop: stop, began: time.Now()}
	buf := make([]byte, diskLoadFile)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	interval := time.Second / time.Duration(rate)
	d.done.Go(func() {
		defer func() { d.ended = time.Now() }()
		next := time.Now()
		for i := 0; ; i++ {
			if wait := time.Until(next); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			} else if ctx.Err() != nil {
				return
			}
			next = next.Add(interval)
			if err := bareWrite(filepath.Join(dir, fmt.Sprintf("load-%d", i%diskLoadFiles)), buf, true); err != nil {
				d.err = err
				return
			}
			d.written++
		}
	})
	return d
}

// end stops the load and returns what it did, or why it stopped early.
func (d *diskLoad) end() (string, error) {
	d.stop()
	d.done.Wait()
	if d.err != nil {
		return "", fmt.Errorf("disk load: %w", d.err)
	}
	secs := d.ended.Sub(d.began).Seconds()
	return fmt.Sprintf("disk load: %d MiB written and synced in %.0f s (%.1f MiB/s)", d.written, secs, float64(d.written)/secs), nil
}
