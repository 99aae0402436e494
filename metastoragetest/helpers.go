package metastoragetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	ms "github.com/spoolmeta/spoolmeta/metastorage"
)

// Zones and times used in sample records: offsets that are not the local
// one, and instants with nanoseconds.
var (
	zoneEast = time.FixedZone("", 3600)
	zoneWest = time.FixedZone("XST", -(5*3600 + 30*60))
	baseTime = time.Date(2024, time.March, 1, 12, 0, 0, 0, time.UTC)
)

// clockSlack is how far Updated and a defaulted Created may lie outside the
// interval of the call that set them, to allow for backends whose clock is
// coarser than time.Now.
const clockSlack = time.Second

// sample returns a record in state in which every field is set to a value
// that depends on i. Its ID and Updated are values a backend must replace.
func sample(i int, state ms.QueueState) ms.MessageMetadata {
	return ms.MessageMetadata{
		ID:          fmt.Sprintf("not-the-id-%d", i),
		State:       state,
		Attempts:    i%4 + 1,
		MaxAttempts: 5 + i,
		NextRetry:   baseTime.Add(time.Duration(i)*time.Hour + 123456789).In(zoneEast),
		Created:     baseTime.Add(time.Duration(i)*time.Minute + 987654321).In(zoneWest),
		Updated:     time.Date(2001, time.January, 1, 0, 0, 0, 1, time.UTC),
		LastError:   fmt.Sprintf("451 4.3.0 \"temporary\" failure #%d\nsecond line, ü", i),
		Size:        1<<62 + int64(i),
		Priority:    i%3 - 1,
		Headers: map[string]string{
			"to":      fmt.Sprintf("user%d@example.com", i),
			"subject": "héllo \"world\"",
		},
		RetryPolicyName: fmt.Sprintf("policy-%d", i%2),
	}
}

// expect returns the record GetMeta should return for id after m was stored
// as it: m with ID id. Updated is not compared.
func expect(id string, m ms.MessageMetadata) ms.MessageMetadata {
	m.ID = id
	return m
}

// closeQuietly closes b for the suite's cleanup, reporting an error other
// than ErrBackendClosed.
func closeQuietly(t *testing.T, b ms.Backend) {
	t.Helper()
	if err := b.Close(); err != nil && !errors.Is(err, ms.ErrBackendClosed) {
		t.Errorf("Close: got %v, want nil", err)
	}
}

// mustStore stores m as id and stops the test if that fails.
func mustStore(t *testing.T, b ms.Backend, id string, m ms.MessageMetadata) {
	t.Helper()
	if err := b.StoreMeta(t.Context(), id, m); err != nil {
		t.Fatalf("StoreMeta %q: got %v, want nil", id, err)
	}
}

// get returns the record of id, reporting an error.
func get(t *testing.T, b ms.Backend, id string) (ms.MessageMetadata, bool) {
	t.Helper()
	m, err := b.GetMeta(t.Context(), id)
	if err != nil {
		t.Errorf("GetMeta %q: got %v, want nil", id, err)
		return m, false
	}
	return m, true
}

// listAll returns every ID in state, reporting an error.
func listAll(t *testing.T, b ms.Backend, state ms.QueueState) []string {
	t.Helper()
	res, err := b.ListMessages(t.Context(), state, ms.MessageListOptions{})
	if err != nil {
		t.Errorf("ListMessages %s: got %v, want nil", state, err)
		return nil
	}
	if len(res.MessageIDs) != res.Total {
		t.Errorf("ListMessages %s with Limit 0: got %d IDs, want Total = %d", state, len(res.MessageIDs), res.Total)
	}
	return res.MessageIDs
}

// checkStates checks that the backend holds exactly the messages of want,
// each in exactly one state, its state in want: as ListMessages, GetMeta and,
// when b is a StateCounterBackend, GetStateCount report it. after names what happened
// before, for the failure messages.
func checkStates(t *testing.T, b ms.Backend, want map[string]ms.QueueState, after string) {
	t.Helper()
	checkPlaces(t, b, want, after)
	checkCounts(t, b, want, after)
}

// checkPlaces is checkStates without the state counts.
func checkPlaces(t *testing.T, b ms.Backend, want map[string]ms.QueueState, after string) {
	t.Helper()
	seen := make(map[string][]ms.QueueState)
	for _, s := range ms.States() {
		for _, id := range listAll(t, b, s) {
			seen[id] = append(seen[id], s)
		}
	}
	for _, id := range sortedKeys(seen) {
		ws, ok := want[id]
		switch {
		case !ok:
			t.Errorf("after %s: ListMessages reports %q in %v, want it absent", after, id, seen[id])
		case len(seen[id]) != 1 || seen[id][0] != ws:
			t.Errorf("after %s: ListMessages reports %q in %v, want only in %s", after, id, seen[id], ws)
		}
	}
	for _, id := range sortedKeys(want) {
		if _, ok := seen[id]; !ok {
			t.Errorf("after %s: ListMessages reports %q in no state, want in %s", after, id, want[id])
		}
		m, err := b.GetMeta(t.Context(), id)
		if err != nil {
			t.Errorf("after %s: GetMeta %q: got %v, want nil", after, id, err)
			continue
		}
		if m.ID != id || m.State != want[id] {
			t.Errorf("after %s: GetMeta %q: got ID %q, State %s, want ID %q, State %s", after, id, m.ID, m.State, id, want[id])
		}
	}
}

// checkCounts checks GetStateCount against want when b is a
// StateCounterBackend.
func checkCounts(t *testing.T, b ms.Backend, want map[string]ms.QueueState, after string) {
	t.Helper()
	c, ok := b.(ms.StateCounterBackend)
	if !ok {
		return
	}
	var n [ms.NumStates]int64
	for _, s := range want {
		n[s]++
	}
	for _, s := range ms.States() {
		if got := c.GetStateCount(s); got != n[s] {
			t.Errorf("after %s: GetStateCount %s: got %d, want %d", after, s, got, n[s])
		}
	}
}

// checkRecord reports every field of got, other than Updated, that differs
// from want. op and id name the call that returned got.
func checkRecord(t *testing.T, op, id string, got, want ms.MessageMetadata) {
	t.Helper()
	for _, d := range diffRecord(got, want) {
		t.Errorf("%s %q: %s", op, id, d)
	}
}

// diffRecord describes each field, other than Updated, in which got differs
// from want.
func diffRecord(got, want ms.MessageMetadata) []string {
	var d []string
	field := func(name string, g, w any) {
		if g == w {
			return
		}
		if _, ok := g.(string); ok {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		} else {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	field("ID", got.ID, want.ID)
	field("State", got.State, want.State)
	field("Attempts", got.Attempts, want.Attempts)
	field("MaxAttempts", got.MaxAttempts, want.MaxAttempts)
	if s := diffTime(got.NextRetry, want.NextRetry); s != "" {
		d = append(d, "NextRetry: "+s)
	}
	if s := diffTime(got.Created, want.Created); s != "" {
		d = append(d, "Created: "+s)
	}
	field("LastError", got.LastError, want.LastError)
	field("Size", got.Size, want.Size)
	field("Priority", got.Priority, want.Priority)
	if s := diffHeaders(got.Headers, want.Headers); s != "" {
		d = append(d, "Headers: "+s)
	}
	field("RetryPolicyName", got.RetryPolicyName, want.RetryPolicyName)
	return d
}

// diffTime describes how got differs from want as an instant or in its zone
// offset, or returns "". want's offset is the one it is stored with (see
// storedOffset).
func diffTime(got, want time.Time) string {
	if !got.Equal(want) {
		return fmt.Sprintf("got %s, want %s", fmtTime(got), fmtTime(want))
	}
	if got.IsZero() {
		return ""
	}
	_, g := got.Zone()
	_, w := want.Zone()
	if w = storedOffset(w); g != w {
		return fmt.Sprintf("got zone offset %ds (%s), want %ds (%s)", g, fmtTime(got), w, fmtTime(want))
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	if _, off := t.Zone(); off%60 != 0 {
		return t.Format("2006-01-02T15:04:05.999999999-07:00:00") // RFC 3339 would hide the seconds
	}
	return t.Format(time.RFC3339Nano)
}

// diffHeaders describes how got differs from want, or returns "". A nil want
// accepts a nil or empty got; an empty, non-nil want needs an empty, non-nil
// got.
func diffHeaders(got, want map[string]string) string {
	switch {
	case want == nil && len(got) == 0:
		return ""
	case want != nil && got == nil:
		return fmt.Sprintf("got nil, want %#v", want)
	case !maps.Equal(got, want):
		return fmt.Sprintf("got %#v, want %#v", got, want)
	}
	return ""
}

// checkNow reports when tm, set by the backend during a call that ran from
// before to after, does not lie in that interval (widened by clockSlack).
func checkNow(t *testing.T, what string, tm, before, after time.Time) {
	t.Helper()
	if tm.Before(before.Add(-clockSlack)) || tm.After(after.Add(clockSlack)) {
		t.Errorf("%s: got %s, want the time of the call, %s to %s", what, fmtTime(tm), fmtTime(before), fmtTime(after))
	}
}

// wantErr reports when err does not wrap target, and returns whether it
// does.
func wantErr(t *testing.T, op string, err, target error) bool {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one wrapping %q", op, err, target)
		return false
	}
	return true
}

// wantAnyErr is like wantErr with several acceptable targets.
func wantAnyErr(t *testing.T, op string, err error, targets ...error) bool {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	names := make([]string, len(targets))
	for i, target := range targets {
		names[i] = fmt.Sprintf("%q", target)
	}
	t.Errorf("%s: got error %v, want one wrapping %s", op, err, strings.Join(names, " or "))
	return false
}

// panicError is the error safely returns for a panic.
type panicError struct{ value any }

func (e panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// safely runs f, turning a panic into a panicError.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	return f()
}

// canceled returns a context that is already canceled.
func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}

// maxIterations bounds the calls of Next in one drain, so that an iterator
// that never ends fails the test instead of hanging it.
const maxIterations = 10000

// drain calls Next until it reports the end and returns what it returned. It
// stops the test if Next fails or does not end.
func drain(t *testing.T, it ms.MessageIterator, what string) []ms.MessageMetadata {
	t.Helper()
	var got []ms.MessageMetadata
	for range maxIterations {
		m, ok, err := it.Next(t.Context())
		if err != nil {
			t.Fatalf("%s: Next: got %v, want nil", what, err)
		}
		if !ok {
			if d := diffRecord(m, ms.MessageMetadata{}); len(d) > 0 || !m.Updated.IsZero() {
				t.Errorf("%s: Next at the end: got %+v, want the zero MessageMetadata", what, m)
			}
			return got
		}
		got = append(got, m)
	}
	t.Fatalf("%s: Next did not report the end after %d calls", what, maxIterations)
	return nil
}

// iterate returns every record the iterator over state returns, with the
// given batch size, and closes the iterator.
func iterate(t *testing.T, b ms.Backend, state ms.QueueState, batchSize int) []ms.MessageMetadata {
	t.Helper()
	what := fmt.Sprintf("iterating %s with batch size %d", state, batchSize)
	it, err := b.NewMessageIterator(t.Context(), state, batchSize)
	if err != nil {
		t.Fatalf("NewMessageIterator %s %d: got %v, want nil", state, batchSize, err)
	}
	defer it.Close()
	return drain(t, it, what)
}

// statesOf returns a map from each of ids to s.
func statesOf(s ms.QueueState, ids ...string) map[string]ms.QueueState {
	m := make(map[string]ms.QueueState, len(ids))
	for _, id := range ids {
		m[id] = s
	}
	return m
}

// ids returns n IDs made of prefix and a number.
func ids(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return s
}
