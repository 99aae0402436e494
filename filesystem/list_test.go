package filesystem

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestPageMatchesFullSort checks every page of entries with many equal
// keys, in each order, against the same page of a full sort, whether the
// page ends in the first half of the entries (selected) or not (sorted).
func TestPageMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 7, 100, 257} {
		entries := make([]listEntry, n)
		for i := range entries {
			id := fmt.Sprintf("m-%04d", r.IntN(10000)*n+i) // distinct, not in key order
			entries[i] = listEntry{id: id, file: id + ".json", keys: listKeys{
				created:  instant{sec: int64(r.IntN(5)) - 2, nsec: int32(r.IntN(3))},
				updated:  instant{sec: int64(r.IntN(50))},
				priority: r.IntN(4), attempts: r.IntN(3) - 1,
			}}
		}
		for _, sortBy := range []string{metastorage.SortByID, metastorage.SortByCreated, metastorage.SortByUpdated, metastorage.SortByPriority, metastorage.SortByAttempts} {
			for _, sortOrder := range []string{"", metastorage.SortAsc, metastorage.SortDesc} {
				for _, limit := range []int{0, 1, 3, 10, n} {
					offsets := []int{n, n + 1}
					for o := 0; o < n; o += max(1, n/9) {
						offsets = append(offsets, o)
					}
					for _, offset := range offsets {
						opts := metastorage.MessageListOptions{SortBy: sortBy, SortOrder: sortOrder, Limit: limit, Offset: offset}
						sorted := slices.Clone(entries)
						slices.SortFunc(sorted, listOrder(opts))
						start, end := min(offset, n), n
						if limit > 0 {
							end = min(start+limit, n)
						}
						var want []string
						for _, e := range sorted[start:end] {
							want = append(want, e.id)
						}
						got := pageOf(entries, opts)
						if kept := keptOf(entries, opts); limit > 0 && kept > offset+limit {
							t.Fatalf("n=%d %+v: kept %d entries, want at most Offset+Limit", n, opts, kept)
						}
						if !slices.Equal(got.MessageIDs, want) || got.Total != n || got.HasMore != (end < n) {
							t.Fatalf("n=%d %+v: page %q, total %d, more %t; want %q, total %d, more %t",
								n, opts, got.MessageIDs, got.Total, got.HasMore, want, n, end < n)
						}
					}
				}
			}
		}
	}
}

// pageOf returns the page of entries that a selection for opts gives.
func pageOf(entries []listEntry, opts metastorage.MessageListOptions) metastorage.MessageListResult {
	sel := newSelection(opts)
	for _, e := range entries {
		sel.add(e)
	}
	return sel.page()
}

// keptOf returns the number of entries that a selection for opts keeps.
func keptOf(entries []listEntry, opts metastorage.MessageListOptions) int {
	sel := newSelection(opts)
	for _, e := range entries {
		sel.add(e)
	}
	return len(sel.kept)
}

// FuzzListOptions lists a small spool with any options: every call gives
// the page of a full sort done here, or an error for a negative Limit or
// Offset or an unknown SortBy or SortOrder, and never panics.
func FuzzListOptions(f *testing.F) {
	f.Add(1, math.MaxInt, "", "", int64(0))
	f.Add(math.MaxInt, math.MaxInt, "created", "desc", int64(0))
	f.Add(0, 0, "priority", "asc", int64(2))
	f.Add(-1, 3, "attempts", "", int64(0))
	f.Add(2, -1, "updated", "DESC", int64(-5))
	f.Add(3, 2, "size", "up", int64(0))
	b, err := open(quietConfig(vfs.NewMem(), Performance))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var stored []listEntry
	for i := range 7 {
		id := fmt.Sprintf("m-%d", (i*5)%7)
		md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: i % 3, Attempts: i % 2, Created: base.Add(time.Duration(i%4) * time.Second)}
		if err := b.StoreMeta(ctx, id, md); err != nil {
			f.Fatal(err)
		}
		if md, err = b.GetMeta(ctx, id); err != nil {
			f.Fatal(err)
		}
		stored = append(stored, listEntry{id: id, keys: keysOf(&md)})
	}
	f.Fuzz(func(t *testing.T, offset, limit int, sortBy, sortOrder string, since int64) {
		opts := metastorage.MessageListOptions{Offset: offset, Limit: limit, SortBy: sortBy, SortOrder: sortOrder}
		if since != 0 {
			opts.Since = base.Add(time.Duration(since) * time.Second)
		}
		res, err := b.ListMessages(ctx, metastorage.StateDeferred, opts)
		if valid := checkListOptions(opts) == nil; !valid || err != nil {
			if valid || err == nil {
				t.Fatalf("%+v: error %v, want one only for invalid options", opts, err)
			}
			return
		}
		var match []listEntry
		for _, e := range stored {
			if opts.Since.IsZero() || e.keys.created.compare(instantOf(opts.Since)) >= 0 || e.keys.updated.compare(instantOf(opts.Since)) >= 0 {
				match = append(match, e)
			}
		}
		slices.SortFunc(match, listOrder(opts))
		want := []string{}
		for i, e := range match {
			if i >= offset && (limit == 0 || i-offset < limit) {
				want = append(want, e.id)
			}
		}
		more := offset < len(match) && limit > 0 && len(match)-offset > limit
		if !slices.Equal(res.MessageIDs, want) || res.Total != len(match) || res.HasMore != more {
			t.Fatalf("%+v: page %q, total %d, more %t; want %q, total %d, more %t", opts, res.MessageIDs, res.Total, res.HasMore, want, len(match), more)
		}
	})
}
