package filesystem

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// scaleDirs caches one seeded directory per size across the scale
// benchmarks of one run: seeding 100,000 files takes longer than reading
// them.
var scaleDirs sync.Map // int -> string

// scaleDir returns a directory whose deferred state holds n messages of
// benchRecord's size, written directly as the files StoreMeta writes
// (without fsync), with distinct Created times.
func scaleDir(b *testing.B, n int) string {
	b.Helper()
	if d, ok := scaleDirs.Load(n); ok {
		return d.(string)
	}
	var dir string
	if keep := os.Getenv("SPOOLMETA_SCALE_DIR"); keep != "" {
		// A directory kept between runs, to compare builds on the same
		// files.
		dir = filepath.Join(keep, fmt.Sprint(n))
		if _, err := os.Stat(filepath.Join(dir, "seeded")); err == nil {
			scaleDirs.Store(n, dir)
			return dir
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	} else {
		dir = b.TempDir() // removed with the benchmark, so not cached
	}
	be, err := factoryFor(dir, Performance).Open()
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Close(); err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				md := benchRecord(metastorage.StateDeferred)
				md.Created = base.Add(time.Duration((i*7919)%n) * time.Second)
				md.Updated = md.Created
				data, err := codec.Encode(&md)
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, "deferred", fmt.Sprintf("seed-%07d.json", i)), data, 0o644)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if os.Getenv("SPOOLMETA_SCALE_DIR") != "" {
		if err := os.WriteFile(filepath.Join(dir, "seeded"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		scaleDirs.Store(n, dir)
	}
	return dir
}

var scaleSizes = []int{10_000, 20_000, 100_000}

// openScale opens a backend on the seeded directory of n messages, without
// a recovery scan beside the measured reads, once its counts are done.
func openScale(b *testing.B, n int) *Backend {
	b.Helper()
	be, err := factoryFor(scaleDir(b, n), Performance).WithBackgroundRecovery(false).Open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	if err := be.WaitCounts(context.Background()); err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkIterateScale is one full iterator pass (batch 100) over n
// messages, cold (the index dropped before each pass) and warm (nothing
// changed since the last pass); compare ns/msg between the sizes. cpu-ns/msg
// counts the CPU of the whole process, the collector's included.
func BenchmarkIterateScale(b *testing.B) {
	for _, n := range scaleSizes {
		for _, warm := range []bool{false, true} {
			b.Run(fmt.Sprintf("n=%d/warm=%t", n, warm), func(b *testing.B) {
				be := openScale(b, n)
				if warm {
					// Past the clock tick of the last write, so that
					// the passes trust the directory's stamp.
					be.idx.now = func() time.Time { return time.Now().Add(time.Hour) }
					iterateCount(b, be, metastorage.StateDeferred, 100)
				}
				cpu := processCPU()
				for b.Loop() {
					if !warm {
						be.idx.drop(metastorage.StateDeferred)
					}
					if got := iterateCount(b, be, metastorage.StateDeferred, 100); got != n {
						b.Fatalf("iterated %d messages, want %d", got, n)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
				b.ReportMetric(float64(processCPU()-cpu)/float64(b.N*n), "cpu-ns/msg")
			})
		}
	}
}

// BenchmarkListScale is ListMessages(deferred, Limit 100) over n messages:
// by ID, which reads no file, and by created, cold, without the sort keys of
// an earlier listing, and warm, with them and nothing changed since.
func BenchmarkListScale(b *testing.B) {
	for _, n := range scaleSizes {
		for _, c := range []struct {
			sortBy string
			warm   bool
		}{{metastorage.SortByID, true}, {metastorage.SortByCreated, false}, {metastorage.SortByCreated, true}} {
			warm := c.warm
			b.Run(fmt.Sprintf("n=%d/sort=%s/warm=%t", n, cmp.Or(c.sortBy, "id"), warm), func(b *testing.B) {
				be := openScale(b, n)
				ctx := context.Background()
				opts := metastorage.MessageListOptions{Limit: 100, SortBy: c.sortBy}
				list := func() {
					res, err := be.ListMessages(ctx, metastorage.StateDeferred, opts)
					if err != nil {
						b.Fatal(err)
					}
					if res.Total != n {
						b.Fatalf("total %d, want %d", res.Total, n)
					}
				}
				if warm {
					list()
				}
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for b.Loop() {
					if !warm {
						be.idx.drop(metastorage.StateDeferred)
					}
					list()
				}
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
				if !warm {
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "cached-B/msg")
				}
			})
		}
	}
}
