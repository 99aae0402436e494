package metastoragetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/model"
	ms "github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/metastoragetest"
)

func TestModel(t *testing.T) {
	metastoragetest.Run(t, func(t *testing.T) ms.Backend { return model.New() })
}

func TestModelShared(t *testing.T) {
	metastoragetest.RunShared(t, func(t *testing.T) func() (ms.Backend, error) {
		store := model.New()
		return func() (ms.Backend, error) { return newHandle(store), nil }
	})
}

// handle is one Backend on a model shared by several: its Close closes the
// handle, not the model.
type handle struct {
	ms.StateCounterBackend

	mu     sync.Mutex
	closed bool
}

func newHandle(m ms.StateCounterBackend) *handle {
	return &handle{StateCounterBackend: m}
}

func (h *handle) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *handle) check(op string) error {
	if h.isClosed() {
		return fmt.Errorf("%s: %w", op, ms.ErrBackendClosed)
	}
	return nil
}

func (h *handle) StoreMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	if err := h.check("store " + id); err != nil {
		return err
	}
	return h.StateCounterBackend.StoreMeta(ctx, id, m)
}

func (h *handle) GetMeta(ctx context.Context, id string) (ms.MessageMetadata, error) {
	if err := h.check("get " + id); err != nil {
		return ms.MessageMetadata{}, err
	}
	return h.StateCounterBackend.GetMeta(ctx, id)
}

func (h *handle) UpdateMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	if err := h.check("update " + id); err != nil {
		return err
	}
	return h.StateCounterBackend.UpdateMeta(ctx, id, m)
}

func (h *handle) DeleteMeta(ctx context.Context, id string) error {
	if err := h.check("delete " + id); err != nil {
		return err
	}
	return h.StateCounterBackend.DeleteMeta(ctx, id)
}

func (h *handle) MoveToState(ctx context.Context, id string, from, to ms.QueueState) error {
	if err := h.check("move " + id); err != nil {
		return err
	}
	return h.StateCounterBackend.MoveToState(ctx, id, from, to)
}

func (h *handle) ListMessages(ctx context.Context, s ms.QueueState, o ms.MessageListOptions) (ms.MessageListResult, error) {
	if err := h.check("list"); err != nil {
		return ms.MessageListResult{}, err
	}
	return h.StateCounterBackend.ListMessages(ctx, s, o)
}

func (h *handle) NewMessageIterator(ctx context.Context, s ms.QueueState, batch int) (ms.MessageIterator, error) {
	if err := h.check("iterate"); err != nil {
		return nil, err
	}
	it, err := h.StateCounterBackend.NewMessageIterator(ctx, s, batch)
	if err != nil {
		return nil, err
	}
	return &handleIterator{MessageIterator: it, h: h}, nil
}

func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return nil
}

// handleIterator fails once its handle is closed.
type handleIterator struct {
	ms.MessageIterator
	h *handle
}

func (it *handleIterator) Next(ctx context.Context) (ms.MessageMetadata, bool, error) {
	if err := it.h.check("iterate"); err != nil {
		return ms.MessageMetadata{}, false, err
	}
	return it.MessageIterator.Next(ctx)
}

// brokenEnv names, in the environment of a child test process, the broken
// backend TestBrokenChild runs the suite on.
const brokenEnv = "METASTORAGETEST_BROKEN"

// brokenCase is a backend with one deliberate bug, and a line the suite must
// print when it runs on it.
type brokenCase struct {
	name   string
	shared bool // run RunShared rather than Run
	open   func() ms.Backend
	want   string // "" for a backend without bugs, on which the suite passes
}

func brokenCases() []brokenCase {
	return []brokenCase{
		{name: "model", open: func() ms.Backend { return model.New() }},
		{name: "shared-model", shared: true, open: func() ms.Backend { return model.New() }},
		{
			name: "move-without-cas",
			open: func() ms.Backend { return noCAS{model.New()} },
			want: `MoveToState "msg-conflict" from incoming to active (it is in deferred): got error <nil>, want one wrapping "state conflict"`,
		},
		{
			name: "get-drops-nanoseconds",
			open: func() ms.Backend { return dropNanos{model.New()} },
			want: `GetMeta "rt-incoming": Created: got 2024-03-01T06:30:00-05:30, want 2024-03-01T06:30:00.987654321-05:30`,
		},
		{
			name: "list-ignores-offset",
			open: func() ms.Backend { return ignoreOffset{model.New()} },
			want: `ListMessages active SortBy="" SortOrder="" in pages of 3: got`,
		},
		{
			name: "iterator-repeats-first",
			open: func() ms.Backend { return repeatFirst{model.New()} },
			want: `iterating active with batch size 1: "iter-000" returned 2 times, want exactly once`,
		},
		{
			name: "iterator-unchecked-state",
			open: func() ms.Backend { return uncheckedState{model.New()} },
			want: `iterating active while other messages change: Next returned "move-000" with State deferred, want active`,
		},
		{
			name: "empty-headers-nil",
			open: func() ms.Backend { return nilHeaders{model.New()} },
			want: `GetMeta "rt-empty-headers": Headers: got nil, want map[string]string{}`,
		},
		{
			name: "counts-miss-moves",
			open: func() ms.Backend { return newMissMoves(model.New()) },
			want: `after MoveToState a from incoming to active: GetStateCount incoming: got 1, want 0`,
		},
		{
			name: "close-not-sticky",
			open: func() ms.Backend { return closeIgnored{model.New()} },
			want: `GetMeta "msg-close" after Close: got error <nil>, want one wrapping "backend is closed"`,
		},
		{
			name: "context-ignored",
			open: func() ms.Backend { return ignoreContext{model.New()} },
			want: `StoreMeta "msg-ctx" with a canceled context: got error <nil>, want one wrapping "context canceled"`,
		},
		{
			name: "ids-sanitized",
			open: func() ms.Backend { return sanitize{model.New()} },
			want: `GetMeta "a/b": ID: got "a_b", want "a/b"`,
		},
		{
			name: "utf8-replaced",
			open: func() ms.Backend { return replaceUTF8{model.New()} },
			want: `StoreMeta msg-never with an invalid LastError: got error <nil>, want one wrapping "invalid record"`,
		},
		{
			name: "zone-offset-minutes",
			open: func() ms.Backend { return minuteZones{model.New()} },
			want: `GetMeta "msg-zone-0": NextRetry: got 2024-03-01T12:19:32.123456789+00:19, want 2024-03-01T12:19:32.123456789+00:19:32`,
		},
		{
			name: "cas-compares-state-only",
			open: func() ms.Backend { return casStateOnly{model.New()} },
			want: `UpdateMetaIf "msg-cas" with the record read before an UpdateMeta: got error <nil>, want one wrapping "state conflict"`,
		},
		{
			name: "cas-not-atomic",
			open: func() ms.Backend { return casNotAtomic{model.New()} },
			want: `successful UpdateMetaIf calls, each adding 1 to Attempts: got Attempts`,
		},
		{
			name:   "shared-close-closes-store",
			shared: true,
			open:   func() ms.Backend { return model.New() },
			want:   `iterating through the second Backend after the first was closed: Next: got`,
		},
	}
}

// TestBrokenChild runs the suite on the broken backend named in the
// environment; it is skipped when none is named. TestSuiteCatchesBugs runs
// it in child processes.
func TestBrokenChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("run by TestSuiteCatchesBugs")
	}
	for _, c := range brokenCases() {
		if c.name != name {
			continue
		}
		switch {
		case !c.shared:
			metastoragetest.Run(t, func(t *testing.T) ms.Backend { return c.open() })
		case c.want == "":
			metastoragetest.RunShared(t, func(t *testing.T) func() (ms.Backend, error) {
				store := model.New()
				return func() (ms.Backend, error) { return newHandle(store), nil }
			})
		default:
			// Every Backend is the store itself, so closing one closes all.
			metastoragetest.RunShared(t, func(t *testing.T) func() (ms.Backend, error) {
				store := c.open()
				return func() (ms.Backend, error) { return store, nil }
			})
		}
		return
	}
	t.Fatalf("no broken backend %q", name)
}

// TestSuiteCatchesBugs runs the suite, in a child process each, on backends
// with one deliberate bug, and checks that it fails with the expected
// message; and on the model, where it must pass.
func TestSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	for _, c := range brokenCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenChild$", "-test.count=1", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case c.want == "" && err != nil:
				t.Errorf("suite on %s: got %v, want a pass; output:\n%s", c.name, err, out)
			case c.want != "" && !errors.As(err, &exit):
				t.Errorf("suite on %s: got %v, want a failing exit; output:\n%s", c.name, err, out)
			case c.want != "" && !strings.Contains(string(out), c.want):
				t.Errorf("suite on %s: output does not contain %q; output:\n%s", c.name, c.want, out)
			}
		})
	}
}

// noCAS moves a message whatever state it is in.
type noCAS struct{ *model.Backend }

func (b noCAS) MoveToState(ctx context.Context, id string, from, to ms.QueueState) error {
	m, err := b.GetMeta(ctx, id)
	if errors.Is(err, ms.ErrMessageNotFound) {
		return fmt.Errorf("move %s: message not found in state %s: %w", id, from, ms.ErrStateConflict)
	}
	if err != nil {
		return err
	}
	m.State = to
	return b.UpdateMeta(ctx, id, m)
}

// dropNanos returns times truncated to the second.
type dropNanos struct{ *model.Backend }

func (b dropNanos) GetMeta(ctx context.Context, id string) (ms.MessageMetadata, error) {
	m, err := b.Backend.GetMeta(ctx, id)
	m.Created = m.Created.Truncate(time.Second)
	m.NextRetry = m.NextRetry.Truncate(time.Second)
	return m, err
}

// ignoreOffset always lists from the start.
type ignoreOffset struct{ *model.Backend }

func (b ignoreOffset) ListMessages(ctx context.Context, s ms.QueueState, o ms.MessageListOptions) (ms.MessageListResult, error) {
	o.Offset = 0
	return b.Backend.ListMessages(ctx, s, o)
}

// repeatFirst's iterators return their first message twice.
type repeatFirst struct{ *model.Backend }

func (b repeatFirst) NewMessageIterator(ctx context.Context, s ms.QueueState, batch int) (ms.MessageIterator, error) {
	it, err := b.Backend.NewMessageIterator(ctx, s, batch)
	if err != nil {
		return nil, err
	}
	return &repeatIterator{MessageIterator: it}, nil
}

type repeatIterator struct {
	ms.MessageIterator
	first    *ms.MessageMetadata
	repeated bool
}

func (it *repeatIterator) Next(ctx context.Context) (ms.MessageMetadata, bool, error) {
	if it.first != nil && !it.repeated {
		it.repeated = true
		return *it.first, true, nil
	}
	m, ok, err := it.MessageIterator.Next(ctx)
	if ok && it.first == nil {
		it.first = &m
	}
	return m, ok, err
}

// uncheckedState's iterators list the IDs in the state when they are made,
// and return each message's record without checking it is still there.
type uncheckedState struct{ *model.Backend }

func (b uncheckedState) NewMessageIterator(ctx context.Context, s ms.QueueState, batch int) (ms.MessageIterator, error) {
	res, err := b.ListMessages(ctx, s, ms.MessageListOptions{})
	if err != nil {
		return nil, err
	}
	return &uncheckedIterator{b: b.Backend, ids: res.MessageIDs}, nil
}

type uncheckedIterator struct {
	b      *model.Backend
	ids    []string
	closed bool
}

func (it *uncheckedIterator) Next(ctx context.Context) (ms.MessageMetadata, bool, error) {
	if it.closed {
		return ms.MessageMetadata{}, false, errors.New("iterator is closed")
	}
	for len(it.ids) > 0 {
		id := it.ids[0]
		it.ids = it.ids[1:]
		m, err := it.b.GetMeta(ctx, id)
		if errors.Is(err, ms.ErrMessageNotFound) {
			continue
		}
		return m, err == nil, err
	}
	// Ask the backend whether it is closed.
	if _, err := it.b.ListMessages(ctx, 0, ms.MessageListOptions{Limit: 1}); err != nil {
		return ms.MessageMetadata{}, false, err
	}
	return ms.MessageMetadata{}, false, nil
}

func (it *uncheckedIterator) Close() error {
	it.closed = true
	return nil
}

// nilHeaders returns empty Headers as nil.
type nilHeaders struct{ *model.Backend }

func (b nilHeaders) GetMeta(ctx context.Context, id string) (ms.MessageMetadata, error) {
	m, err := b.Backend.GetMeta(ctx, id)
	if len(m.Headers) == 0 {
		m.Headers = nil
	}
	return m, err
}

// missMoves keeps its own state counts and forgets to count MoveToState.
type missMoves struct {
	*model.Backend

	mu     sync.Mutex
	counts [ms.NumStates]int64
}

func newMissMoves(m *model.Backend) *missMoves { return &missMoves{Backend: m} }

// write makes the write f on id and counts the change of id's state.
func (b *missMoves) write(ctx context.Context, id string, f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	before, errBefore := b.Backend.GetMeta(ctx, id)
	if err := f(); err != nil {
		return err
	}
	if errBefore == nil {
		b.counts[before.State]--
	}
	if after, err := b.Backend.GetMeta(ctx, id); err == nil {
		b.counts[after.State]++
	}
	return nil
}

func (b *missMoves) StoreMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	return b.write(ctx, id, func() error { return b.Backend.StoreMeta(ctx, id, m) })
}

func (b *missMoves) UpdateMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	return b.write(ctx, id, func() error { return b.Backend.UpdateMeta(ctx, id, m) })
}

func (b *missMoves) DeleteMeta(ctx context.Context, id string) error {
	return b.write(ctx, id, func() error { return b.Backend.DeleteMeta(ctx, id) })
}

func (b *missMoves) GetStateCount(s ms.QueueState) int64 {
	if !s.Valid() {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[s]
}

// closeIgnored does not close.
type closeIgnored struct{ *model.Backend }

func (closeIgnored) Close() error { return nil }

// ignoreContext stores even when the context is done.
type ignoreContext struct{ *model.Backend }

func (b ignoreContext) StoreMeta(_ context.Context, id string, m ms.MessageMetadata) error {
	return b.Backend.StoreMeta(context.Background(), id, m)
}

// sanitize replaces slashes in IDs by underscores.
type sanitize struct{ *model.Backend }

func clean(id string) string { return strings.ReplaceAll(id, "/", "_") }

func (b sanitize) StoreMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	return b.Backend.StoreMeta(ctx, clean(id), m)
}

func (b sanitize) GetMeta(ctx context.Context, id string) (ms.MessageMetadata, error) {
	return b.Backend.GetMeta(ctx, clean(id))
}

func (b sanitize) UpdateMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	return b.Backend.UpdateMeta(ctx, clean(id), m)
}

func (b sanitize) DeleteMeta(ctx context.Context, id string) error {
	return b.Backend.DeleteMeta(ctx, clean(id))
}

func (b sanitize) MoveToState(ctx context.Context, id string, from, to ms.QueueState) error {
	return b.Backend.MoveToState(ctx, clean(id), from, to)
}

// replaceUTF8 stores strings with invalid UTF-8 replaced, as a JSON encoder
// does, instead of refusing them.
type replaceUTF8 struct{ *model.Backend }

func (b replaceUTF8) StoreMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	m.LastError = strings.ToValidUTF8(m.LastError, "\uFFFD")
	m.RetryPolicyName = strings.ToValidUTF8(m.RetryPolicyName, "\uFFFD")
	return b.Backend.StoreMeta(ctx, id, m)
}

// minuteZones stores times with their zone offset cut to whole minutes and
// the wall clock kept, as RFC 3339 writes them: the instant moves.
type minuteZones struct{ *model.Backend }

func (b minuteZones) StoreMeta(ctx context.Context, id string, m ms.MessageMetadata) error {
	cut := func(t time.Time) time.Time {
		_, off := t.Zone()
		y, mo, d := t.Date()
		h, mi, sec := t.Clock()
		return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.FixedZone("", off/60*60))
	}
	m.NextRetry, m.Created = cut(m.NextRetry), cut(m.Created)
	return b.Backend.StoreMeta(ctx, id, m)
}

// casStateOnly compares only the state in UpdateMetaIf and DeleteMetaIf,
// overwriting a change made since the caller's read.
type casStateOnly struct{ *model.Backend }

func (b casStateOnly) UpdateMetaIf(ctx context.Context, id string, expected, m ms.MessageMetadata) error {
	cur, err := b.GetMeta(ctx, id)
	if err == nil && cur.State == expected.State {
		expected = cur
	}
	return b.Backend.UpdateMetaIf(ctx, id, expected, m)
}

func (b casStateOnly) DeleteMetaIf(ctx context.Context, id string, expected ms.MessageMetadata) error {
	cur, err := b.GetMeta(ctx, id)
	if err == nil && cur.State == expected.State {
		expected = cur
	}
	return b.Backend.DeleteMetaIf(ctx, id, expected)
}

// casNotAtomic compares and then updates in two steps, yielding between
// them as a backend that does I/O in between would.
type casNotAtomic struct{ *model.Backend }

func (b casNotAtomic) UpdateMetaIf(ctx context.Context, id string, expected, m ms.MessageMetadata) error {
	cur, err := b.GetMeta(ctx, id)
	if err != nil {
		return fmt.Errorf("update %s: message not found in state %s: %w", id, expected.State, ms.ErrStateConflict)
	}
	if !ms.SameRecord(cur, expected) {
		return fmt.Errorf("update %s: record changed since it was read: %w", id, ms.ErrStateConflict)
	}
	runtime.Gosched()
	return b.UpdateMeta(ctx, id, m)
}
