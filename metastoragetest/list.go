package metastoragetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// sortKeys and sortOrders are the values of MessageListOptions the suite
// lists with.
var (
	sortKeys   = []string{ms.SortByID, ms.SortByCreated, ms.SortByUpdated, ms.SortByPriority, ms.SortByAttempts}
	sortOrders = []string{"", ms.SortAsc, ms.SortDesc}
)

// listState is the state the list tests fill; listFixture puts decoys in
// another.
const listState = ms.StateActive

// listFixture stores 12 messages in listState whose sort keys tie in groups
// and whose IDs are not in the order they are stored in, plus decoys in
// another state. It returns the records GetMeta returns for the 12.
func listFixture(t *testing.T, b ms.Backend) []ms.MessageMetadata {
	t.Helper()
	const n = 12
	for i := range n {
		m := sample(i, listState)
		m.Created = baseTime.Add(time.Duration(i%5) * time.Minute)
		if i%2 == 0 {
			m.Created = m.Created.In(zoneEast)
		} else {
			m.Created = m.Created.In(zoneWest)
		}
		mustStore(t, b, fmt.Sprintf("list-%02d", (i*7)%n), m)
	}
	for i := range 3 {
		mustStore(t, b, fmt.Sprintf("list-decoy-%d", i), sample(i, ms.StateDeferred))
	}
	recs := make([]ms.MessageMetadata, 0, n)
	for i := range n {
		m, ok := get(t, b, fmt.Sprintf("list-%02d", i))
		if !ok {
			t.FailNow()
		}
		recs = append(recs, m)
	}
	return recs
}

// sorted returns the IDs of recs sorted as ListMessages with sortBy and
// order must sort them, with ties broken by ID ascending or, when tieDesc,
// descending.
func sorted(recs []ms.MessageMetadata, sortBy, order string, tieDesc bool) []string {
	key := func(a, b ms.MessageMetadata) int {
		switch sortBy {
		case ms.SortByCreated:
			return a.Created.Compare(b.Created)
		case ms.SortByUpdated:
			return a.Updated.Compare(b.Updated)
		case ms.SortByPriority:
			return cmp.Compare(a.Priority, b.Priority)
		case ms.SortByAttempts:
			return cmp.Compare(a.Attempts, b.Attempts)
		}
		return 0
	}
	sign, tie := 1, 1
	if order == ms.SortDesc {
		sign = -1
	}
	if tieDesc || sortBy == ms.SortByID && order == ms.SortDesc {
		tie = -1
	}
	s := slices.Clone(recs)
	slices.SortFunc(s, func(a, b ms.MessageMetadata) int {
		if c := sign * key(a, b); c != 0 {
			return c
		}
		return tie * strings.Compare(a.ID, b.ID)
	})
	ids := make([]string, len(s))
	for i, m := range s {
		ids[i] = m.ID
	}
	return ids
}

// listOp names a ListMessages call in failure messages.
func listOp(state ms.QueueState, o ms.MessageListOptions) string {
	s := fmt.Sprintf("ListMessages %s SortBy=%q SortOrder=%q Offset=%d Limit=%d", state, o.SortBy, o.SortOrder, o.Offset, o.Limit)
	if !o.Since.IsZero() {
		s += " Since=" + fmtTime(o.Since)
	}
	return s
}

// list calls ListMessages and checks the parts of the result that follow
// from Total: the page's length, that it is not nil, and HasMore. It returns
// false when the call failed.
func list(t *testing.T, b ms.Backend, state ms.QueueState, o ms.MessageListOptions, wantTotal int) (ms.MessageListResult, bool) {
	t.Helper()
	op := listOp(state, o)
	var res ms.MessageListResult
	err := safely(func() (err error) {
		res, err = b.ListMessages(t.Context(), state, o)
		return err
	})
	if err != nil {
		t.Errorf("%s: got %v, want nil", op, err)
		return res, false
	}
	end := wantTotal
	if o.Limit > 0 {
		end = min(o.Offset+o.Limit, wantTotal)
	}
	wantLen := max(end-o.Offset, 0)
	if res.Total != wantTotal {
		t.Errorf("%s: Total: got %d, want %d", op, res.Total, wantTotal)
	}
	if res.MessageIDs == nil {
		t.Errorf("%s: MessageIDs: got nil, want a non-nil slice", op)
	}
	if len(res.MessageIDs) != wantLen {
		t.Errorf("%s: got %d IDs %q, want %d", op, len(res.MessageIDs), res.MessageIDs, wantLen)
	}
	if want := end < wantTotal; res.HasMore != want {
		t.Errorf("%s: HasMore: got %t, want %t", op, res.HasMore, want)
	}
	return res, true
}

// testListEmpty checks pages of a state without messages.
func testListEmpty(t *testing.T, open opener) {
	b := open(t)
	mustStore(t, b, "msg-elsewhere", sample(1, ms.StateHold))
	for _, key := range sortKeys {
		for _, o := range []ms.MessageListOptions{
			{SortBy: key},
			{SortBy: key, SortOrder: ms.SortDesc, Limit: 3},
			{SortBy: key, Offset: 5, Limit: 2},
		} {
			list(t, b, listState, o, 0)
		}
	}
}

// testListSort checks the order of every sort key in every order, with ties
// broken by ID.
func testListSort(t *testing.T, open opener) {
	b := open(t)
	recs := listFixture(t, b)
	for _, key := range sortKeys {
		for _, order := range sortOrders {
			o := ms.MessageListOptions{SortBy: key, SortOrder: order}
			res, ok := list(t, b, listState, o, len(recs))
			if !ok {
				continue
			}
			checkOrder(t, listOp(listState, o), res.MessageIDs, recs, key, order)
		}
	}
}

// checkOrder checks that got is recs sorted by key and order, with ties
// broken by ID in either direction.
func checkOrder(t *testing.T, op string, got []string, recs []ms.MessageMetadata, key, order string) {
	t.Helper()
	asc := sorted(recs, key, order, false)
	desc := sorted(recs, key, order, true)
	if !slices.Equal(got, asc) && !slices.Equal(got, desc) {
		if slices.Equal(asc, desc) {
			t.Errorf("%s: got %q, want %q", op, got, asc)
		} else {
			t.Errorf("%s: got %q, want %q (ties by ID ascending) or %q (descending)", op, got, asc, desc)
		}
	}
}

// testListPaging pages through the messages with several page sizes in
// every order and checks that the pages, put together, are the whole list:
// no page overlaps or skips.
func testListPaging(t *testing.T, open opener) {
	b := open(t)
	recs := listFixture(t, b)
	n := len(recs)
	for _, key := range sortKeys {
		for _, order := range sortOrders {
			all, ok := list(t, b, listState, ms.MessageListOptions{SortBy: key, SortOrder: order}, n)
			if !ok {
				continue
			}
			for _, limit := range []int{1, 3, 5, n, n + 1} {
				var pages []string
				for offset := 0; offset < n; offset += limit {
					o := ms.MessageListOptions{SortBy: key, SortOrder: order, Offset: offset, Limit: limit}
					res, ok := list(t, b, listState, o, n)
					if !ok {
						break
					}
					pages = append(pages, res.MessageIDs...)
				}
				if !slices.Equal(pages, all.MessageIDs) {
					t.Errorf("ListMessages %s SortBy=%q SortOrder=%q in pages of %d: got %q, want %q (as with Limit 0)", listState, key, order, limit, pages, all.MessageIDs)
				}
			}
			for _, o := range []ms.MessageListOptions{
				{SortBy: key, SortOrder: order, Offset: 5},
				{SortBy: key, SortOrder: order, Offset: 4, Limit: 3},
				{SortBy: key, SortOrder: order, Offset: n - 2, Limit: 5},
			} {
				res, ok := list(t, b, listState, o, n)
				if !ok {
					continue
				}
				end := n
				if o.Limit > 0 {
					end = min(o.Offset+o.Limit, n)
				}
				if want := all.MessageIDs[o.Offset:end]; !slices.Equal(res.MessageIDs, want) {
					t.Errorf("%s: got %q, want %q", listOp(listState, o), res.MessageIDs, want)
				}
			}
		}
	}
}

// testListOffsetPastEnd checks that an Offset at or past the end gives an
// empty, non-nil page with the right Total.
func testListOffsetPastEnd(t *testing.T, open opener) {
	b := open(t)
	const n = 5
	for i, id := range ids("past", n) {
		mustStore(t, b, id, sample(i, listState))
	}
	for _, key := range sortKeys {
		for _, offset := range []int{n, n + 1, 1000} {
			for _, limit := range []int{0, 1, 2, 1000} {
				list(t, b, listState, ms.MessageListOptions{SortBy: key, Offset: offset, Limit: limit}, n)
			}
		}
	}
}

// testListSince checks that Since keeps the messages created or updated at
// or after it, at the nanosecond. It assumes the clock reads a time between
// the years 2001 and 2050.
func testListSince(t *testing.T, open opener) {
	b := open(t)
	cutoff := time.Date(2050, time.January, 1, 0, 0, 0, 500, zoneEast)
	created := map[string]time.Time{
		"since-at":     cutoff.In(zoneWest),                         // created at the cutoff: kept
		"since-after":  cutoff.Add(time.Nanosecond).UTC(),           // created after it: kept
		"since-before": cutoff.Add(-time.Nanosecond),                // created and updated before it
		"since-past":   time.Date(2000, 1, 1, 0, 0, 0, 0, zoneWest), // likewise
	}
	for i, id := range sortedKeys(created) {
		m := sample(i, listState)
		m.Created = created[id]
		mustStore(t, b, id, m)
	}
	decoy := sample(9, ms.StateDeferred)
	decoy.Created = cutoff.Add(time.Hour)
	mustStore(t, b, "since-decoy", decoy)

	all := sortedKeys(created)
	past := time.Date(2001, time.January, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		o    ms.MessageListOptions
		want []string
	}{
		{ms.MessageListOptions{Since: cutoff}, []string{"since-after", "since-at"}},
		{ms.MessageListOptions{Since: cutoff.UTC(), SortBy: ms.SortByCreated, SortOrder: ms.SortDesc}, []string{"since-after", "since-at"}},
		{ms.MessageListOptions{Since: cutoff.Add(time.Nanosecond)}, []string{"since-after"}},
		{ms.MessageListOptions{Since: cutoff.Add(2 * time.Nanosecond)}, []string{}},
		// Every message was updated (stored) after past, also those created before it.
		{ms.MessageListOptions{Since: past}, all},
		{ms.MessageListOptions{}, all},
	} {
		res, ok := list(t, b, listState, c.o, len(c.want))
		if ok && !slices.Equal(res.MessageIDs, c.want) {
			t.Errorf("%s: got %q, want %q", listOp(listState, c.o), res.MessageIDs, c.want)
		}
	}
	o := ms.MessageListOptions{Since: cutoff, Limit: 1}
	if res, ok := list(t, b, listState, o, 2); ok && !slices.Equal(res.MessageIDs, []string{"since-after"}) {
		t.Errorf("%s: got %q, want %q", listOp(listState, o), res.MessageIDs, []string{"since-after"})
	}
	o.Offset = 1
	if res, ok := list(t, b, listState, o, 2); ok && !slices.Equal(res.MessageIDs, []string{"since-at"}) {
		t.Errorf("%s: got %q, want %q", listOp(listState, o), res.MessageIDs, []string{"since-at"})
	}
}

// testListInvalid checks that ListMessages reports an invalid state with
// ErrInvalidState, and an unknown SortBy or a negative Limit or Offset with
// an error rather than a panic.
func testListInvalid(t *testing.T, open opener) {
	b := open(t)
	ctx := t.Context()
	mustStore(t, b, "msg-1", sample(1, listState))
	for _, s := range []ms.QueueState{-1, ms.NumStates} {
		err := safely(func() error {
			_, err := b.ListMessages(ctx, s, ms.MessageListOptions{})
			return err
		})
		wantErr(t, fmt.Sprintf("ListMessages state %d", int(s)), err, ms.ErrInvalidState)
	}
	for _, o := range []ms.MessageListOptions{
		{SortBy: "size"},
		{SortBy: "bogus", SortOrder: ms.SortDesc},
		{Limit: -1},
		{Offset: -1},
		{Offset: -1, Limit: 1},
		{Offset: 1, Limit: -5},
	} {
		op := listOp(listState, o)
		err := safely(func() error {
			_, err := b.ListMessages(ctx, listState, o)
			return err
		})
		if err == nil {
			t.Errorf("%s: got nil error, want an error", op)
		} else if errors.As(err, new(panicError)) {
			t.Errorf("%s: got %v, want an error", op, err)
		}
	}
}
