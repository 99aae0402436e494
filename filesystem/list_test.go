package filesystem

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

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
						got := page(slices.Clone(entries), opts)
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
